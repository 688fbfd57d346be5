"""`python -m train export-streaming`: a streaming checkpoint -> chunk-in, state-in ONNX, checked.

The graph is ``(audio [batch, chunk_samples], *state) -> (scores [batch, 5], *next_state)``
(``train.streaming.StreamingStep``). The audio's length axis is dynamic: a stream's final
partial chunk (any whole number of 640-sample frames below ``chunk_samples``) is scored by the
same graph, and the spec says so with ``min_chunk_samples`` (files exported before it lack
the key, and the runtime scores only their whole chunks). The state layout goes into the spec's ``extra``
(``kind = "streaming"``, ``streaming`` = JSON: chunk and tail sizes, and per state tensor its
input name, output name and shape after the batch axis; every state starts at zero except
``tail``, which holds the stream's first ``tail_samples`` samples; since issue #18's speed work
one tensor per layer and cache, ``keys0..``, ``values0..``, ``conv0..``, unless
``--stacked-state``). A windowed runtime refuses
the file (inputs besides ``audio``); ``livesqa.streaming`` runs it.

After writing, ORT (one thread) is checked against torch over several chunks with the state
carried, for a batch of two streams, and on partial chunks (1, 5 and 13 frames, those below
the chunk) after two whole ones. ``--random-init CONFIG`` exports untrained weights for
speed measurement only (the spec says so).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS, INPUT_NAME, OUTPUT_NAME, ModelSpec, read_spec
from train.config import ModelConfig
from train.export import DEFAULT_OPSET, load_for_export, quantize_int8, write_metadata
from train.streaming import SAMPLES_PER_FRAME, StreamingStep

KIND = "streaming"
NEXT_PREFIX = "next_"


def layout(step: StreamingStep) -> dict[str, Any]:
    """The ``streaming`` JSON of the spec: what the runtime needs to keep one state per stream."""
    return {
        "chunk_samples": step.chunk_samples,
        "min_chunk_samples": SAMPLES_PER_FRAME,  # a final partial chunk: whole 40 ms frames
        "tail_samples": step.tail,
        "chunk_frames": step.k,
        "left_frames": step.left,
        "states": [
            {"name": s.name, "output": NEXT_PREFIX + s.name, "shape": list(s.shape)}
            for s in step.states
        ],
    }


def export_streaming_onnx(
    step: StreamingStep, out_path: str | Path, spec: ModelSpec, opset: int = DEFAULT_OPSET
) -> Path:
    import onnx

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in step.states]
    inputs = (torch.zeros(1, step.chunk_samples), *step.init_state(1))
    outputs = [OUTPUT_NAME] + [NEXT_PREFIX + n for n in names]
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in [*names, *outputs]}
    axes[INPUT_NAME] = {0: "batch", 1: "samples"}  # a final partial chunk is shorter
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            step.eval(), inputs, str(out), dynamo=False, input_names=[INPUT_NAME, *names],
            output_names=outputs, dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
        )
    write_metadata(out, spec)
    onnx.checker.check_model(str(out))
    return out


def per_layer_state(spec_extra: dict[str, str]) -> bool:
    """Whether a streaming file's state is one tensor per layer and cache (``keys0``...,
    written since issue #18's speed work) rather than the stacked ``kv``/``conv`` of older files:
    :class:`StreamingStep` must be built with the same layout to feed the file."""
    names = {s["name"] for s in json.loads(spec_extra["streaming"])["states"]}
    return "kv" not in names


def partial_frames(step: StreamingStep) -> list[int]:
    """Partial-chunk lengths the parity check tries: 1, 5 and 13 frames, those below ``K``."""
    return [f for f in (1, 5, 13) if f < step.k]


def check_parity(step: StreamingStep, path: Path, n_chunks: int = 6, seed: int = 0) -> float:
    """Max |torch - ORT| over ``n_chunks`` consecutive chunks of two streams, state carried,
    and over final partial chunks (:func:`partial_frames`) scored after the second chunk."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    wav = 0.1 * torch.randn(2, step.tail + n_chunks * step.chunk_samples, generator=g)
    wav[1] *= torch.linspace(0.05, 1.0, wav.shape[1])
    names = [s.name for s in step.states]
    state_t = step.init_state(2)
    state_t[0] = wav[:, : step.tail].clone()
    state_o = {n: s.numpy().copy() for n, s in zip(names, state_t)}
    worst = 0.0
    for c in range(n_chunks):
        a = step.tail + c * step.chunk_samples
        chunk = wav[:, a : a + step.chunk_samples]
        with torch.no_grad():
            ref, *state_t = step(chunk, *state_t)
        got = session.run(None, {INPUT_NAME: chunk.numpy(), **state_o})
        if c == 1:  # after two whole chunks: a final partial chunk from this state
            for f in partial_frames(step):
                part = wav[:, a + step.chunk_samples : a + step.chunk_samples + f * SAMPLES_PER_FRAME]
                with torch.no_grad():
                    ref_p = step(part, *state_t)[0]
                state_now = dict(zip(names, got[1:]))
                got_p = session.run([OUTPUT_NAME], {INPUT_NAME: part.numpy(), **state_now})[0]
                worst = max(worst, float(np.max(np.abs(got_p - ref_p.numpy()))))
        state_o = dict(zip(names, got[1:]))
        worst = max(worst, float(np.max(np.abs(got[0] - ref.numpy()))))
    return worst


def build_spec(args: argparse.Namespace, step: StreamingStep, cfg: ModelConfig,
               ckpt: dict[str, Any], n_params: int) -> ModelSpec:
    sr = cfg.frontend.sample_rate_hz
    random = ckpt.get("stage") == "random"
    name = args.name or Path(args.out).stem
    extra_in = dict(ckpt.get("extra", {}))
    return ModelSpec(
        name=name + ("-random-untrained" if random and "random" not in name else ""),
        version=args.version,
        sample_rate_hz=sr,
        window_samples=(step.k + step.left) * 4 * cfg.frontend.hop_samples,
        hop_samples=step.chunk_samples,
        output_names=DIMENSIONS,
        score_min=cfg.head.score_min,
        score_max=cfg.head.score_max,
        licence=args.licence or str(extra_in.get("licence", "unknown")),
        training_data=getattr(args, "training_data", "") or str(extra_in.get("training_data", "unknown")),
        description=(
            "UNTRAINED random weights: for speed comparison only, scores are meaningless"
            if random
            else f"chunk-streaming Conformer {cfg.encoder.n_layers}x{cfg.encoder.d_model} quality model"
        ),
        extra={
            "kind": KIND,
            "streaming": json.dumps(layout(step), sort_keys=True),
            "checkpoint_stage": str(ckpt.get("stage", "")),
            "n_params": str(n_params),
            "model_config": json.dumps(cfg.to_dict(), sort_keys=True),
        },
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train export-streaming",
                                description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="quality checkpoint of a streaming model")
    src.add_argument("--random-init", metavar="CONFIG", help="training TOML: untrained weights (speed only)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="override for --random-init (e.g. model.streaming.enabled=true)")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--chunk-frames", type=int, default=0,
                   help="40 ms frames per chunk (default: the model's streaming.chunk_frames)")
    p.add_argument("--name", default="")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--licence", default="")
    p.add_argument("--training-data", default="", help="spec training_data (default: the checkpoint's record)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--stacked-state", action="store_true",
                   help="the older state layout (one stacked kv and conv tensor for all layers); "
                        "default: one state tensor per layer and cache, ~5%% more streams per core "
                        "(results/streaming/profile-v10.md)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="max |torch - ORT| allowed")
    p.add_argument("--int8", action="store_true",
                   help="also write NAME.int8.onnx (QUInt8 MatMul weights): ~1.1x the streams per core, "
                        "MOS PCC 0.001-0.002 lower on two dev views (results/v8/stream-int8.md)")
    p.add_argument("--int8-tolerance", type=float, default=0.15, help="max |torch - ORT int8| allowed")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, cfg, ckpt = load_for_export(args.checkpoint, args.random_init, args.overrides)
    if not cfg.streaming.enabled:
        raise ConfigError("not a streaming model (model.streaming.enabled=false): use `export`")
    try:
        step = StreamingStep(model, args.chunk_frames or None, per_layer_state=not args.stacked_state)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    spec = build_spec(args, step, cfg, ckpt, model.n_params())
    out = export_streaming_onnx(step, args.out, spec, args.opset)
    read_spec(out)
    targets = [(out, args.tolerance)]
    if args.int8:
        int8_spec = dataclasses.replace(spec, version=f"{spec.version}-int8")
        targets.append((quantize_int8(out, out.with_suffix(".int8.onnx"), int8_spec), args.int8_tolerance))
    failed = False
    for path, tolerance in targets:
        worst = check_parity(step, path)
        ok = worst <= tolerance and math.isfinite(worst)
        failed |= not ok
        print(f"{path}: streaming parity max |torch - ORT| = {worst:.2e} over 6 chunks x 2 streams "
              f"and partial chunks of {partial_frames(step)} frames "
              f"(tolerance {tolerance:g}) {'OK' if ok else 'FAIL'}")
    return 1 if failed else 0
