"""Could the Silero gate meet issue #14's 10 % cost goal with its STFT done in numpy?

    taskset -c 1 python results/vad/stft_split_cost.py

Silero's sequence export spends about a third of its time in one Conv: the STFT (258 fixed
filters of 256 taps, hop 128, on the 576-sample frame reflect-padded by 128 each side; the first
of its 5 columns is dropped). That filter bank is a periodic-Hann-windowed DFT, so the same
magnitudes come from ``numpy.fft.rfft``. This splits the bundled graph after the STFT
(``onnx.utils.extract_model``), checks parity, and times, interleaved on one thread, the whole
graph, numpy STFT + the rest of the graph, and the shipped quality model's 4 s window.
Session 16: the runtime now takes this path (``livesqa.vad``: ``stft_magnitude`` + the bundled cut graph);
its row measures exactly that code.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path

import sys

import numpy as np
import onnx.utils
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
SILERO = ROOT / "livesqa" / "assets" / "silero" / "silero_vad_16k_sequence.onnx"
MODEL = ROOT / "exported" / "livesqa-small.onnx"
sys.path.insert(0, str(ROOT))
from livesqa.vad import SILERO_ONNX, SileroSession  # noqa: E402  (the runtime's path since session 16)

MAG = "/stft/Sqrt_output_0"  # [n, 129, 4]: the STFT magnitudes the encoder reads
WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(256) / 256)).astype(np.float32)


def session(path: Path) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.log_severity_level = 3
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def stft_magnitude(frames: np.ndarray) -> np.ndarray:
    """``[n, 576]`` -> ``[n, 129, 4]``: columns 1-4 of the graph's padded STFT (only the last reads the pad)."""
    padded = np.concatenate([frames, frames[:, -2:-66:-1]], axis=1)  # reflect, 64 samples right
    cols = np.lib.stride_tricks.sliding_window_view(padded, 256, axis=1)[:, 0:385:128]
    return np.ascontiguousarray(np.abs(np.fft.rfft(cols * WINDOW, axis=-1)).transpose(0, 2, 1), np.float32)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rest = Path(tmp) / "rest.onnx"
        onnx.utils.extract_model(str(SILERO), str(rest), [MAG, "h", "c"], ["speech_probs", "hn", "cn"])
        full, tail, model = session(SILERO), session(rest), session(MODEL)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((31, 576)) * 0.1).astype(np.float32)  # one 1 s hop: 31 frames
    z = np.zeros((1, 1, 128), np.float32)
    audio = (rng.standard_normal((1, 64000)) * 0.1).astype(np.float32)
    p_full = full.run(None, {"input": x, "h": z, "c": z})[0]
    p_split = tail.run(None, {MAG: stft_magnitude(x), "h": z, "c": z})[0]
    runtime = SileroSession(SILERO_ONNX)
    p_runtime = runtime.run(x, z, z)[0]
    times: dict[str, list[float]] = {"whole graph": [], "numpy STFT + rest": [], "numpy STFT alone": [],
                                     "runtime (livesqa.vad.SileroSession)": [], "model": []}

    def timed(key: str, fn) -> None:
        t = time.thread_time_ns()
        fn()
        times[key].append((time.thread_time_ns() - t) / 1e6)

    for i in range(600):
        timed("whole graph", lambda: full.run(None, {"input": x, "h": z, "c": z}))
        timed("numpy STFT + rest", lambda: tail.run(None, {MAG: stft_magnitude(x), "h": z, "c": z}))
        timed("numpy STFT alone", lambda: stft_magnitude(x))
        timed("runtime (livesqa.vad.SileroSession)", lambda: runtime.run(x, z, z))
        if i % 6 == 0:
            timed("model", lambda: model.run(None, {"audio": audio}))
    med = {k: float(np.median(v[len(v) // 10:])) for k, v in times.items()}
    print(f"parity: max |p_whole - p_split| = {np.abs(p_full - p_split).max():.1e}, "
          f"max |p_whole - p_runtime| = {np.abs(p_full.reshape(-1) - p_runtime).max():.1e}")
    print(f"host: {platform.processor() or platform.machine()}, model {MODEL.name}\n")
    print("| what (thread CPU ms, median, one 1 s hop = 31 frames) | ms | share of the model's 4 s window |")
    print("| --- | ---: | ---: |")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {100 * v / med['model']:.1f} % |")


if __name__ == "__main__":
    main()
