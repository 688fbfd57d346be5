"""MOS agreement with NISQA on real AEC-challenge recordings of held-out devices (no simulator).

    python results/v10/aec_agreement.py > results/v10/aec-agreement.md

The dense corpus's test-split AEC windows (4-10 s, devices never heard in training) are scored
whole by NISQA v2 and by each model as `livesqa file` would (windowed: mean of 4 s windows;
streaming: mean of rows). Label-free: the teacher is the reference, not listeners.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from livesqa.audio import read_audio
from train.asr_data import resolve_data_root
from train.scorers import NisqaScorer, model_scorer

MODELS = ["exported/livesqa-small.onnx", "cache/livesqa-small-stream-0.6.0.onnx", "exported/livesqa-small-stream.onnx"]


def main() -> None:
    base = Path("cache/dense")
    rows = [r for r in csv.DictReader(open(base / "manifest.csv", encoding="utf-8")) if r["db"] == "aec_real_test"]
    nisqa = NisqaScorer(resolve_data_root(None) / "weights/nisqa/nisqa.tar")
    scorers = [model_scorer(m) for m in MODELS]
    teacher, preds, kinds = [], [[] for _ in MODELS], []
    for r in rows:
        wav = read_audio(base / r["filepath_deg"], 16000)
        teacher.append(nisqa.score(wav, 16000)[0])
        for i, s in enumerate(scorers):
            preds[i].append(s.score(wav, 16000)[0])
        kinds.append("doubletalk" if "doubletalk" in r["condition"] else "farend-singletalk")
    t, kinds = np.array(teacher), np.array(kinds)
    print(f"# MOS agreement with NISQA v2 on {len(rows)} real AEC windows of held-out devices\n")
    print("| group | n | " + " | ".join(f"{m} PCC / RMSE / offset" for m in MODELS) + " |")
    print("|---|---:|" + "---|" * len(MODELS))
    for group in ["all", "doubletalk", "farend-singletalk"]:
        keep = np.ones(len(t), bool) if group == "all" else kinds == group
        cells = []
        for p in preds:
            p = np.array(p)[keep]
            cells.append(f"{np.corrcoef(p, t[keep])[0, 1]:.3f} / {np.sqrt(np.mean((p - t[keep]) ** 2)):.3f} / "
                         f"{np.mean(p - t[keep]):+.2f}")
        print(f"| {group} | {int(keep.sum())} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
