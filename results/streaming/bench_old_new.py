"""Old (fixed chunk length) vs new (dynamic length) streaming ONNX: CPU per whole chunk, interleaved.

OLD: the file before the re-export (`git show 287f1f7:exported/livesqa-small-stream.onnx > OLD`),
passed as the first argument; NEW: exported/livesqa-small-stream.onnx.
"""
import sys
import time

import numpy as np

sys.path.insert(0, "/work/main")
from livesqa.streaming import StreamingScorer

old_p, new_p = sys.argv[1] if len(sys.argv) > 1 else "/tmp/livesqa-small-stream.old.onnx", "/work/main/exported/livesqa-small-stream.onnx"
rng = np.random.default_rng(0)
res = {}
for batch in (1, 8):
    s = {p: StreamingScorer.load(p) for p in (old_p, new_p)}
    x = (0.1 * rng.standard_normal(720 + 40 * 16000)).astype(np.float32)
    for sc in s.values():
        for i in range(batch):
            sc.push(i, x)
    t = {p: [] for p in s}
    for rep in range(30):
        for p, sc in (s.items() if rep % 2 else reversed(list(s.items()))):
            t0 = time.process_time(); sc.run(list(range(batch))); t[p].append(time.process_time() - t0)
    for p in s:
        res[(p, batch)] = np.median(t[p][5:]) * 1000 / batch
    print(f"batch {batch}: old {res[(old_p, batch)]:.2f} ms, new {res[(new_p, batch)]:.2f} ms CPU per stream-chunk, new/old {res[(new_p, batch)] / res[(old_p, batch)]:.3f}", flush=True)
