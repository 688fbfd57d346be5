"""Streaming ONNX files timed alternately (issue #18): CPU per stream-second through
StreamingScorer.run (state gather/scatter included), one ORT thread, steady state.

python results/streaming/ab_stream.py A.onnx B.onnx [...] --batch 8 --rounds 40 --repeats 3
Run pinned to one core (taskset -c 0). Each round times one call of every file, in an order
that rotates per round; a repeat is a fresh set of sessions; reported: median per repeat.
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from livesqa.bench import speechlike
from livesqa.streaming import StreamingScorer


def case(path: str, batch: int, tag: int):
    sc = StreamingScorer.load(path, max_batch=64)
    lay = sc.layout
    audio = speechlike(60.0, sc.spec.sample_rate_hz, seed=1)
    streams = list(range(batch))
    pos = {s: 977 * s for s in streams}

    def feed(n):
        for s in streams:
            a = pos[s] % (audio.size - n)
            sc.push(s, audio[a:a + n]); pos[s] += n

    feed(lay.tail_samples)
    for _ in range(4):
        feed(lay.chunk_samples); sc.run(streams)

    def call():
        feed(lay.chunk_samples)
        out = sc.run(streams)
        assert len(out) == batch
    return call, lay.chunk_samples / sc.spec.sample_rate_hz


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--batch", type=int, nargs="+", default=[8])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cpu = Path("/proc/cpuinfo").read_text().split("model name")[1].split("\n")[0].strip(": \t")
    print(f"machine: {cpu}, {os.cpu_count()} cores, affinity {sorted(os.sched_getaffinity(0))}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.2f}")
    for b in a.batch:
        for rep in range(a.repeats):
            calls = {m: case(m, b, i) for i, m in enumerate(a.models)}
            for m in a.models:
                calls[m][0]()
            t = {m: [] for m in a.models}
            for r in range(a.rounds):
                order = a.models[r % len(a.models):] + a.models[: r % len(a.models)]
                for m in order:
                    c0 = time.thread_time(); calls[m][0](); t[m].append(time.thread_time() - c0)
            row = []
            base = None
            for m in a.models:
                per = float(np.median(t[m])) / b / calls[m][1]
                spc = 1.0 / per
                base = base or spc
                row.append(f"{Path(m).name}: {per*1000:.2f} ms/stream-s = {spc:.0f} streams/core ({spc/base:.3f}x)")
            print(f"batch {b} repeat {rep} load {os.getloadavg()[0]:.2f}: " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
