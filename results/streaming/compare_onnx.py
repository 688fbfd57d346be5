"""Old vs re-exported streaming ONNX: identical whole-chunk scores? (and what changed in the spec)

OLD: the file before the re-export (`git show 287f1f7:exported/livesqa-small-stream.onnx > OLD`),
passed as the first argument; NEW: exported/livesqa-small-stream.onnx.
"""
import glob
import json
import sys

import numpy as np

sys.path.insert(0, "/work/main")
import soundfile as sf

from livesqa.audio import resample
from livesqa.spec import read_spec
from livesqa.streaming import StreamingScorer

old_p, new_p = sys.argv[1] if len(sys.argv) > 1 else "/tmp/livesqa-small-stream.old.onnx", "/work/main/exported/livesqa-small-stream.onnx"
so, sn = read_spec(old_p), read_spec(new_p)
print("name/version:", so.name, so.version, "->", sn.name, sn.version)
for k in sorted(set(so.extra) | set(sn.extra)):
    if so.extra.get(k) != sn.extra.get(k):
        a = json.loads(so.extra[k]) if k == "streaming" else so.extra.get(k)
        b = json.loads(sn.extra[k]) if k == "streaming" else sn.extra.get(k)
        if isinstance(a, dict):
            print(f"extra.{k}: keys added {sorted(set(b) - set(a))}, changed {[x for x in a if a[x] != b.get(x)]}")
        else:
            print(f"extra.{k}: {a!r} -> {b!r}")
for f in ("name", "version", "sample_rate_hz", "window_samples", "hop_samples", "output_names", "licence", "training_data", "description"):
    if getattr(so, f) != getattr(sn, f):
        print("spec", f, "differs:", getattr(so, f), getattr(sn, f))
rng = np.random.default_rng(0)
sigs = {"noise": (0.1 * rng.standard_normal(720 + 6 * 16000)).astype(np.float32)}
t = np.arange(720 + 6 * 16000) / 16000
f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
ph = 2 * np.pi * np.cumsum(f0) / 16000
voice = sum(np.sin(k * ph) / k for k in range(1, 20)) * np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
sigs["voice"] = (0.2 * voice + 0.003 * rng.standard_normal(t.size)).astype(np.float32)
for f in sorted(glob.glob("/work/shared/data/dev/p835/degraded_WB_16KHz/*.flac"))[:4] + sorted(glob.glob("/work/shared/data/dev/voicemos24-track3/**/*.flac", recursive=True))[:4]:
    x, r = sf.read(f, dtype="float32")
    sigs[f.split("/")[-1]] = resample(x if x.ndim == 1 else x.mean(1), r, 16000).astype(np.float32)
worst, rows, exact = 0.0, 0, True
for name, x in sigs.items():
    a, b = StreamingScorer.load(old_p), StreamingScorer.load(new_p)
    a.push("s", x); b.push("s", x)
    while a.due():
        ra, rb = a.run_due()["s"], b.run_due()["s"]
        assert ra.end_sample == rb.end_sample
        worst = max(worst, float(np.abs(ra.scores - rb.scores).max())); rows += 1
        exact &= bool(np.array_equal(ra.scores, rb.scores))
    print(f"{name}: old flush {a.flush('s')}, new flush end {getattr(b.flush('s'), 'end_sample', None)}")
print(f"whole chunks: {rows} rows over {len(sigs)} signals, max |old - new| = {worst:.3g}, bit-identical: {exact}")
