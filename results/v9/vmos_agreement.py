"""Student-teacher agreement on VoiceMOS 2024 track 3 (enhanced noisy speech), the motivating number.

    python results/v9/vmos_agreement.py MODEL [MODEL ...] > results/v9/vmos_agreement.md

For each model (checkpoint or ONNX), MOS on the 280 clips against NISQA v2's cached MOS on the
same clips (`cache/eval/nisqa/vmos24-t3.csv`, written by `python -m train evaluate`) and against
the listeners' OVRL. Reported, not used for selection (results/v9/SELECTION.md).
"""

from __future__ import annotations

import csv
import sys

import numpy as np

from train.asr_data import resolve_data_root
from train.evaluate import EvaluateConfig, human_rated_set, score_set
from train.scorers import model_scorer


def main(models: list[str]) -> None:
    ds = human_rated_set("vmos24-t3", resolve_data_root(None), EvaluateConfig())
    with open("cache/eval/nisqa/vmos24-t3.csv", newline="", encoding="utf-8") as f:
        peer = {r["file"]: float(r["mos"]) for r in csv.DictReader(f)}
    teacher = np.array([peer[str(p)] for p in ds.files])
    human = ds.targets[:, 0]
    print("| model | PCC with NISQA | RMSE to NISQA | mean minus NISQA | PCC with listeners |")
    print("|---|---:|---:|---:|---:|")
    for m in models:
        ours = score_set(model_scorer(m), ds)[:, 0]
        print(f"| {m} | {np.corrcoef(ours, teacher)[0, 1]:.3f} | {np.sqrt(np.mean((ours - teacher) ** 2)):.3f} "
              f"| {np.mean(ours - teacher):+.3f} | {np.corrcoef(ours, human)[0, 1]:.3f} |")
    print(f"| NISQA v2 (the teacher) | 1 | 0 | 0 | {np.corrcoef(teacher, human)[0, 1]:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
