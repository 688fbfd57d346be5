"""`python -m train.bench_streaming`: windowed vs chunk-streaming speed of the shipped architecture.

Exports the configs/train/small.toml model twice with random weights (cost does not depend
on weight values): windowed (4 s window per 1 s hop) and streaming (1 s chunks with 3 s
cached left context, causal conv, chunk positions), checks the streaming ONNX against
torch, then runs ``livesqa.streambench.compare`` (one ORT thread, cases interleaved) and
writes ``bench.json`` and ``bench.txt`` to ``--out``. Speed only: no accuracy is implied.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from livesqa.streambench import compare, format_compare
from train import export as wexport
from train import export_streaming as sexport
from train.config import ModelConfig, load_toml
from train.model import QualityModel
from train.streaming import StreamingStep

STREAMING_SETS = (
    "model.encoder.causal_conv=true",
    'model.encoder.positions="chunk"',
    "model.streaming.enabled=true",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.bench_streaming", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/train/small.toml")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--out", default="results/streaming")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wcfg = ModelConfig.from_dict(load_toml(args.config).get("model", {}))
        wmodel = QualityModel(wcfg).eval()
        wpath = Path(tmp) / "windowed-random.onnx"
        wargs = wexport.parse_args(["--random-init", args.config, "--out", str(wpath)])
        wexport.export_onnx(wmodel, wpath, wexport.build_spec(wargs, wcfg, {"stage": "random"}, wmodel.n_params()))
        scfg = ModelConfig.from_dict(load_toml(args.config, STREAMING_SETS).get("model", {}))
        smodel = QualityModel(scfg).eval()
        step = StreamingStep(smodel, per_layer_state=True)  # the layout export-streaming writes
        spath = Path(tmp) / "streaming-random.onnx"
        sargs = sexport.parse_args(["--random-init", args.config, "--out", str(spath)])
        sexport.export_streaming_onnx(step, spath, sexport.build_spec(sargs, step, scfg, {"stage": "random"}, smodel.n_params()))
        parity = sexport.check_parity(step, spath)
        report = compare(wpath, spath, rounds=args.rounds)
    report["streaming_onnx_vs_torch_max_abs"] = parity
    report["weights"] = "random (speed only; accuracy needs a dynamic-chunk retrain)"
    report["params"] = {"windowed": wmodel.n_params(), "streaming": smodel.n_params()}
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    text = format_compare(report) + f"\nstreaming ONNX vs torch over 6 chunks: max |diff| {parity:.1e}\n"
    (out / "bench.txt").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
