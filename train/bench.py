"""`python -m train bench`: per-window speed of exported models side by side, one thread.

Why one run for all: latencies on a shared 2-core machine drift with load, so models are
only comparable when measured in the same process, interleaved, on the same signal. Each
model gets its own spec window (e.g. 4 s); RTFX = window duration / median latency.
NISQA (``--nisqa nisqa.tar``) runs its full per-window pipeline as the ``nisqa`` package
does it: resample to 48 kHz, librosa mel spectrogram, segmentation, CNN-self-attention
model on torch with one thread.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livesqa.errors import ModelSpecError
from livesqa.spec import INPUT_NAME, OUTPUT_NAME, read_spec


def speech_like(n_samples: int, sample_rate_hz: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """A harmonic voice with a 4 Hz syllable envelope plus quiet noise, ``[n_samples]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / sample_rate_hz
    phase = 2 * np.pi * np.cumsum(120.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t)) / sample_rate_hz
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    return (0.2 * voice * envelope + 0.003 * rng.standard_normal(n_samples)).astype(np.float32)


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 3) -> npt.NDArray[np.float64]:
    """Wall-clock milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - start) * 1000.0
    return out


def summarise(ms: npt.NDArray[np.float64], window_s: float) -> dict[str, float]:
    p50 = float(np.percentile(ms, 50))
    return {
        "p50_ms": p50,
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "rtfx": window_s * 1000.0 / p50,
        "window_s": window_s,
    }


def onnx_runner(path: str | Path, window_samples: int) -> Callable[[], object]:
    """A closure scoring one ``[1, window_samples]`` window with a one-thread ORT session."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    wav = speech_like(window_samples, 16000)[None]
    return lambda: session.run([OUTPUT_NAME], {INPUT_NAME: wav})


def measure_onnx(
    path: str | Path, window_samples: int, runs: int = 30, sample_rate_hz: int = 16000
) -> dict[str, float]:
    """p50/p95 latency (ms) and RTFX of one window on one thread."""
    ms = time_calls(onnx_runner(path, window_samples), runs)
    return summarise(ms, window_samples / sample_rate_hz)


def nisqa_runner(weights: str | Path, window_s: float) -> Callable[[], object]:
    """NISQA's per-window pipeline on torch with one thread (weights: ``nisqa.tar``).

    The teacher's loader and mel front end are reused; the segments are not padded to
    ``ms_max_segments`` here, so NISQA runs on just the window's segments (its fastest path).
    """
    try:
        import soxr
        import torch
        from nisqa import NISQA_lib as nl

        from train.teachers import NisqaTeacher
    except ImportError as e:
        raise ModelSpecError(
            f"NISQA bench needs torch, librosa and nisqa: pip install nisqa --no-deps ({e})"
        ) from e
    teacher = NisqaTeacher(weights)  # one torch thread
    args, model, sr = teacher.args, teacher.model, teacher.sample_rate_hz
    wav16 = speech_like(round(window_s * 16000), 16000)

    def run() -> object:
        spec = teacher.melspec(soxr.resample(wav16, 16000, sr))
        x, n_wins = nl.segment_specs(
            "window", spec, args["ms_seg_length"], args["ms_seg_hop_length"]
        )
        with torch.no_grad():
            return model(x.unsqueeze(0).float(), torch.tensor([int(n_wins)]))

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train bench", description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=[], help="exported .onnx files")
    p.add_argument(
        "--nisqa", default="", help="NISQA checkpoint (e.g. ../shared/data/weights/nisqa/nisqa.tar)"
    )
    p.add_argument("--window-s", type=float, default=0.0, help="override every model's window (s)")
    p.add_argument("--runs", type=int, default=50)
    p.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds (runs split across them)"
    )
    args = p.parse_args(argv)
    runners: dict[str, tuple[Callable[[], object], float]] = {}
    for path in args.models:
        spec = read_spec(path)
        window = (
            round(args.window_s * spec.sample_rate_hz) if args.window_s else spec.window_samples
        )
        if spec.sample_rate_hz != 16000:
            raise ModelSpecError(
                f"{path}: bench feeds 16 kHz audio, model wants {spec.sample_rate_hz} Hz"
            )
        runners[Path(path).name] = (onnx_runner(path, window), window / spec.sample_rate_hz)
    if args.nisqa:
        window_s = args.window_s or 4.0
        runners[f"NISQA ({Path(args.nisqa).name}, torch)"] = (
            nisqa_runner(args.nisqa, window_s),
            window_s,
        )
    if not runners:
        p.error("give --models and/or --nisqa")
    per_round = max(1, args.runs // args.rounds)
    timings: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):  # interleave so load drift hits every model alike
        for name, (fn, _) in runners.items():
            timings[name].extend(time_calls(fn, per_round).tolist())
    print(f"{'model':<44} {'window':>7} {'p50 ms':>8} {'p95 ms':>8} {'RTFX':>7}   (1 thread)")
    for name, (_, window_s) in runners.items():
        s = summarise(np.asarray(timings[name]), window_s)
        print(
            f"{name:<44} {window_s:>6.1f}s {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} {s['rtfx']:>7.0f}"
        )
    return 0
