"""`python -m train export`: checkpoint -> waveform-in ONNX with the livesqa spec, checked.

The graph is ``audio [batch, samples] float32 -> scores [batch, 5]`` with the log-mel front
end inside, so the runtime has no feature code. After writing the file this stage checks
PyTorch vs ONNX Runtime parity on noise and speech-like signals of several lengths (fails
above ``--tolerance``) and measures one-thread latency and RTFX at the spec's window.

``--int8`` also writes ``NAME.int8.onnx`` by ORT dynamic quantisation of the MatMul weights
only, as unsigned 8-bit with ``reduce_range`` (7-bit): signed int8 weights on AVX2 hit
VPMADDUBSW saturation and run slower and less accurately. Its parity is checked against a
looser tolerance. ``--random-init CONFIG`` exports untrained weights for speed comparison
only (the spec says so in its name and description).
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from livesqa.errors import ConfigError, ModelSpecError
from livesqa.spec import (
    DIMENSIONS,
    INPUT_NAME,
    OUTPUT_NAME,
    SPEECH_OUTPUT_KEY,
    SPEECH_OUTPUT_NAME,
    ModelSpec,
    read_spec,
    spec_metadata,
)
from train.bench import measure_onnx
from train.checkpoint import load_model
from train.config import ModelConfig, load_toml
from train.model import QualityModel

DEFAULT_OPSET = 17
PARITY_LENGTHS_S = (1.0, 2.5, 4.0, 6.0)


def export_onnx(
    model: QualityModel, out_path: str | Path, spec: ModelSpec, opset: int = DEFAULT_OPSET
) -> Path:
    """Trace ``model.forward(audio)`` to ONNX with dynamic batch/samples and write the spec."""
    import onnx

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.zeros(1, spec.window_samples)
    outputs = [OUTPUT_NAME]
    axes = {INPUT_NAME: {0: "batch", 1: "samples"}, OUTPUT_NAME: {0: "batch"}}
    traced: torch.nn.Module = model
    if model.speech_head is not None:  # second output: per-frame speech probabilities
        traced = _ScoresAndSpeech(model)
        outputs.append(SPEECH_OUTPUT_NAME)
        axes[SPEECH_OUTPUT_NAME] = {0: "batch", 1: "frames"}
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter warns it is deprecated; the dynamo one needs onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            traced,
            (dummy,),
            str(out),
            dynamo=False,  # the TorchScript exporter: no onnxscript dependency
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )
    write_metadata(out, spec)
    onnx.checker.check_model(str(out))
    return out


class _ScoresAndSpeech(torch.nn.Module):
    """``audio -> (scores, speech)`` from one encoder pass (the traced graph of a model with a
    speech head)."""

    def __init__(self, model: QualityModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, wav: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.scores_and_speech(wav)


def write_metadata(path: Path, spec: ModelSpec) -> None:
    """Replace the file's ``livesqa_spec`` metadata entry (other entries are kept)."""
    import onnx

    proto = onnx.load(str(path))
    entries = spec_metadata(spec)
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def quantize_int8(src: Path, dst: Path, spec: ModelSpec) -> Path:
    """Dynamic quantisation of MatMul weights to QUInt8 (reduce_range); keeps the spec."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QUInt8,
        op_types_to_quantize=["MatMul"],
        per_channel=False,
        reduce_range=True,
    )
    write_metadata(dst, spec)
    return dst


def test_signals(
    lengths_s: Sequence[float], sample_rate_hz: int, seed: int = 0
) -> list[tuple[str, npt.NDArray[np.float32]]]:
    """Named ``[2, samples]`` batches: white noise, and speech-like (a gliding harmonic
    voice with a syllable-rate envelope plus quiet noise), each at several lengths."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, npt.NDArray[np.float32]]] = []
    for length_s in lengths_s:
        n = int(length_s * sample_rate_hz)
        t = np.arange(n) / sample_rate_hz
        noise = 0.1 * rng.standard_normal((2, n))
        f0 = 120.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
        voice = sum(np.sin(k * phase) / k for k in range(1, 20))
        envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
        speech = 0.2 * voice * envelope
        speech_batch = np.stack([speech, 0.3 * speech]) + 0.003 * rng.standard_normal((2, n))
        out.append((f"noise@{length_s:g}s", noise.astype(np.float32)))
        out.append((f"speech@{length_s:g}s", speech_batch.astype(np.float32)))
    return out


def check_parity(
    model: QualityModel, onnx_path: Path, lengths_s: Sequence[float] = PARITY_LENGTHS_S
) -> dict[str, float]:
    """Max |torch - ORT| per test signal (ORT with one thread, as deployed)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    diffs: dict[str, float] = {}
    model = model.eval()
    for name, wav in test_signals(lengths_s, model.cfg.frontend.sample_rate_hz):
        with torch.no_grad():
            ref = model(torch.from_numpy(wav)).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: wav})[0]
        if got.shape != ref.shape:
            raise ModelSpecError(f"{onnx_path}: ORT output shape {got.shape} != torch {ref.shape}")
        diffs[name] = float(np.max(np.abs(got - ref)))
        if model.speech_head is not None:
            with torch.no_grad():
                ref_speech = model.scores_and_speech(torch.from_numpy(wav))[1].numpy()
            got_speech = session.run([SPEECH_OUTPUT_NAME], {INPUT_NAME: wav})[0]
            if got_speech.shape != ref_speech.shape:
                raise ModelSpecError(f"{onnx_path}: ORT speech shape {got_speech.shape} != torch "
                                     f"{ref_speech.shape}")
            diffs[f"speech {name}"] = float(np.max(np.abs(got_speech - ref_speech)))
    return diffs


def build_spec(
    args: argparse.Namespace, cfg: ModelConfig, ckpt: dict[str, Any], n_params: int
) -> ModelSpec:
    sr = cfg.frontend.sample_rate_hz
    extra_in = dict(ckpt.get("extra", {}))
    random = ckpt.get("stage") == "random"
    name = args.name or Path(args.out).stem
    speech: dict[str, str] = {}
    if cfg.speech_head:  # the runtime's "model" speech gate reads these
        speech = {SPEECH_OUTPUT_KEY: SPEECH_OUTPUT_NAME,
                  "speech_frame_samples": str(4 * cfg.frontend.hop_samples)}
    return ModelSpec(
        name=name + ("-random-untrained" if random and "random" not in name else ""),
        version=args.version,
        sample_rate_hz=sr,
        window_samples=round(args.window_s * sr),
        hop_samples=round(args.hop_s * sr),
        output_names=DIMENSIONS,
        score_min=cfg.head.score_min,
        score_max=cfg.head.score_max,
        licence=args.licence or str(extra_in.get("licence", "unknown")),
        training_data=args.training_data or str(extra_in.get("training_data", "unknown")),
        description=(
            "UNTRAINED random weights: for speed comparison only, scores are meaningless"
            if random
            else f"Conformer {cfg.encoder.n_layers}x{cfg.encoder.d_model} quality model "
            f"(ASR-pretrained encoder, layer attention={cfg.head.layer_attention})"
        ),
        extra={
            "checkpoint_stage": str(ckpt.get("stage", "")),
            "checkpoint_step": str(ckpt.get("step", "")),
            "n_params": str(n_params),
            "model_config": json.dumps(cfg.to_dict(), sort_keys=True),
            **speech,
        },
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train export", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="quality checkpoint (runs/NAME/best.pt)")
    src.add_argument(
        "--random-init",
        metavar="CONFIG",
        help="training TOML: export untrained weights (speed only)",
    )
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], help="override for --random-init"
    )
    p.add_argument("--out", required=True, help="output .onnx path (exported/NAME.onnx)")
    p.add_argument("--window-s", type=float, default=4.0, help="window the runtime feeds (s)")
    p.add_argument("--hop-s", type=float, default=1.0, help="recommended live hop (s)")
    p.add_argument("--name", default="", help="model name in the spec (default: file stem)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument(
        "--licence", default="", help="licence of the weights (default: from checkpoint)"
    )
    p.add_argument(
        "--training-data", default="", help="what it was trained on (default: from checkpoint)"
    )
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |torch - ORT| allowed")
    p.add_argument(
        "--int8", action="store_true", help="also write NAME.int8.onnx (QUInt8 MatMul weights)"
    )
    p.add_argument(
        "--int8-tolerance", type=float, default=0.15, help="max |torch - ORT int8| allowed"
    )
    p.add_argument(
        "--parity-s", type=float, nargs="+", default=list(PARITY_LENGTHS_S), help="test lengths (s)"
    )
    p.add_argument("--bench-runs", type=int, default=30, help="timed runs for latency (0 = skip)")
    return p.parse_args(argv)


def load_for_export(checkpoint: str | None, random_init: str | None,
                    overrides: list[str]) -> tuple[QualityModel, ModelConfig, dict[str, Any]]:
    """(model, config, checkpoint dict) from a quality checkpoint, or untrained from a TOML
    (``--random-init``, for speed); shared by `export` and `export-streaming`."""
    torch.manual_seed(0)
    if checkpoint:
        model, cfg, ckpt = load_model(checkpoint)
        if ckpt.get("stage") != "quality":
            raise ConfigError(f"{checkpoint}: stage {ckpt.get('stage')!r}, want a 'quality' checkpoint")
        return model, cfg, ckpt
    cfg = ModelConfig.from_dict(load_toml(random_init, overrides).get("model", {}))
    return QualityModel(cfg).eval(), cfg, {"stage": "random", "extra": {}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, cfg, ckpt = load_for_export(args.checkpoint, args.random_init, args.overrides)
    spec = build_spec(args, cfg, ckpt, model.n_params())
    out = export_onnx(model, args.out, spec, args.opset)
    read_spec(out)  # the runtime's own reader must accept it
    card: dict[str, Any] = {"spec": json.loads(spec.to_json()), "files": {}}
    targets = [(out, args.tolerance)]
    if args.int8:
        q = quantize_int8(out, out.with_suffix(".int8.onnx"), spec)
        targets.append((q, args.int8_tolerance))
    failed = False
    for path, tolerance in targets:
        diffs = check_parity(model, path, args.parity_s)
        worst = max(diffs.values())
        ok = worst <= tolerance and math.isfinite(worst)
        failed |= not ok
        info: dict[str, Any] = {
            "parity_max_abs": worst,
            "parity_tolerance": tolerance,
            "parity_ok": ok,
        }
        print(
            f"{path}: parity max |torch - ORT| = {worst:.2e} (tolerance {tolerance:g}) {'OK' if ok else 'FAIL'}"
        )
        for name, d in diffs.items():
            print(f"    {name:<14} {d:.2e}")
        if args.bench_runs > 0:
            speed = measure_onnx(path, spec.window_samples, runs=args.bench_runs)
            info.update(speed)
            print(
                f"    one thread, {spec.window_s:g} s window: p50 {speed['p50_ms']:.1f} ms, "
                f"p95 {speed['p95_ms']:.1f} ms, RTFX {speed['rtfx']:.0f}, "
                f"{path.stat().st_size / 1e6:.1f} MB"
            )
        card["files"][path.name] = info
    card_path = out.with_suffix(".export.json")
    card_path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {out} ({model.n_params() / 1e6:.2f}M params) and {card_path}")
    return 1 if failed else 0
