"""fp32 vs int8 streaming file, interleaved in one run (issue #18; SELECTION.md addendum 2).

    python results/v8/bench_stream_int8.py exported/livesqa-small.onnx \
        exported/livesqa-small-stream.onnx cache/livesqa-small-stream.int8.onnx [--rounds 50]

Same cases and clocks as `livesqa bench --streaming` (livesqa/streambench.py), with a second
streaming file in the rotation: thread CPU time per call, one ORT thread, 1 s hop.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from livesqa.bench import _machine
from livesqa.scoring import OnnxScorer
from livesqa.streambench import _streaming_case, _windowed_case
from livesqa.streaming import StreamingScorer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("windowed", type=Path)
    p.add_argument("fp32", type=Path)
    p.add_argument("int8", type=Path)
    p.add_argument("--rounds", type=int, default=50)
    args = p.parse_args()
    cases = {"windowed b=1": (_windowed_case(OnnxScorer.load(args.windowed), 1), 1)}
    for tag, path in (("fp32", args.fp32), ("int8", args.int8)):
        s = StreamingScorer.load(path, max_batch=32)
        for b in (1, 8, 32):
            cases[f"{tag} streaming b={b}"] = (_streaming_case(s, b, f"{tag}{b}"), b)
    names = list(cases)
    for n in names:
        cases[n][0]()
    cpu: dict[str, list[float]] = {n: [] for n in names}
    load0 = os.getloadavg()
    for r in range(args.rounds):
        for n in names[r % len(names):] + names[: r % len(names)]:
            c0 = time.thread_time()
            cases[n][0]()
            cpu[n].append(time.thread_time() - c0)
    load1 = os.getloadavg()
    print(f"machine: {_machine()}; one ORT thread; {args.rounds} rounds interleaved; "
          f"load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    print(f"{'case':24s} {'CPU ms/call':>11s} {'ms per stream-s':>15s} {'streams/core':>12s}")
    for n in names:
        per = float(np.median(cpu[n])) / cases[n][1] * 1000
        print(f"{n:24s} {np.median(cpu[n]) * 1000:11.2f} {per:15.2f} {1000 / per:12.0f}")


if __name__ == "__main__":
    main()
