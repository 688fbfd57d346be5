"""Pipeline overhead of two checkouts side by side, alternating, pinned to one core.

Usage (from the repository root; OLD is another checkout, e.g. ``git worktree add /tmp/old REV``):
    python results/bench/compare_pipeline.py /tmp/old . --minutes 10 --rounds 3

Each round runs ``livesqa.bench._pipeline_run`` of each checkout in a fresh process on the
same model, with the model's compute timed as thread CPU time in both, and prints one
JSON line per run. Alternating the two cancels most of the drift of a shared machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import asyncio, json, os, sys, tempfile, time
from pathlib import Path
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
root, model, minutes = sys.argv[1], sys.argv[2], float(sys.argv[3])
sys.path.insert(0, root)
import livesqa
assert Path(livesqa.__file__).resolve().is_relative_to(Path(root).resolve()), livesqa.__file__
from livesqa.bench import _pipeline_run
from livesqa.config import RuntimeConfig
from livesqa.scoring import OnnxScorer

class Timed:
    def __init__(self, inner):
        self.inner, self.spec, self.model_s, self.calls = inner, inner.spec, 0.0, 0
    def score(self, batch):
        t = time.thread_time()
        out = self.inner.score(batch)
        self.model_s += time.thread_time() - t
        return out

scorer = Timed(OnnxScorer.load(model))
with tempfile.TemporaryDirectory() as d:
    r = asyncio.run(_pipeline_run(scorer, RuntimeConfig(), minutes * 60, False, Path(d) / "x.csv"))
print(json.dumps({"checkout": root, "overhead_ratio": round(r["overhead_ratio"], 4),
                  "overhead_ms_per_window": round(r["overhead_ms_per_window"], 3),
                  "model_ms_per_window": round(r["model_s"] / r["windows"] * 1e3, 2)}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--model", default="exported/livesqa-small.onnx")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    model = str(Path(a.model).resolve())
    for _ in range(a.rounds):
        for root in (a.old, a.new):
            out = subprocess.run([sys.executable, "-c", CHILD, str(Path(root).resolve()), model,
                                  str(a.minutes)], capture_output=True, text=True, check=True,
                                 cwd="/")
            print(out.stdout.strip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
