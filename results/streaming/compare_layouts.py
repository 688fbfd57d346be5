"""Shipped streaming file vs a re-export (e.g. cache/stream-fast.onnx): same scores through the
runtime? Streams of speech-like audio, whole chunks then a final partial chunk; spec differences.

python results/streaming/compare_layouts.py exported/livesqa-small-stream.onnx cache/stream-fast.onnx
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from livesqa.bench import speechlike
from livesqa.spec import read_spec
from livesqa.streaming import StreamingScorer

a_p, b_p = sys.argv[1], sys.argv[2]
sa, sb = read_spec(a_p), read_spec(b_p)
for f in ("name", "version", "sample_rate_hz", "window_samples", "hop_samples", "output_names",
          "licence", "training_data", "description"):
    if getattr(sa, f) != getattr(sb, f):
        print(f"spec {f}: {getattr(sa, f)!r} -> {getattr(sb, f)!r}")
for k in sorted(set(sa.extra) | set(sb.extra)):
    if sa.extra.get(k) != sb.extra.get(k):
        if k == "streaming":
            la, lb = json.loads(sa.extra[k]), json.loads(sb.extra[k])
            print("extra.streaming states:", [s["name"] for s in la["states"]], "->",
                  [s["name"] for s in lb["states"]])
            print("extra.streaming other keys equal:",
                  {x: la[x] for x in la if x != "states"} == {x: lb[x] for x in lb if x != "states"})
        else:
            print(f"extra.{k}: {sa.extra.get(k)!r} -> {sb.extra.get(k)!r}")
A, B = StreamingScorer.load(a_p), StreamingScorer.load(b_p)
lay = A.layout
worst, rows = 0.0, 0
for i in range(8):
    x = speechlike(30.0 + 0.37 * i, 16000, seed=10 + i) * (0.05 + 0.3 * i)
    A.push(i, x)
    B.push(i, x)
while True:
    ra, rb = A.run_due(), B.run_due()
    assert ra.keys() == rb.keys()
    if not ra:
        break
    for k in ra:
        assert ra[k].end_sample == rb[k].end_sample
        worst = max(worst, float(np.abs(ra[k].scores - rb[k].scores).max()))
        rows += 1
for i in range(8):
    fa, fb = A.flush(i), B.flush(i)
    if fa is not None:
        worst = max(worst, float(np.abs(fa.scores - fb.scores).max()))
        rows += 1
print(f"{rows} rows (8 streams, whole chunks + final partial chunks): max |score A - score B| = {worst:.2e}")
