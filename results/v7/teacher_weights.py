"""MOS PCC of the teacher target ``w * NISQA + (1 - w) * DistillMOS`` on the four human-rated views.

    PYTHONPATH=. python results/v7/teacher_weights.py > results/v7/teacher_weights.txt

Reads the cached teacher rows of ``python -m train evaluate`` (``cache/eval/{nisqa,distillmos}``);
no student is involved. Why: to choose the MOS target's weighting before the v7 runs
(``results/v7/SELECTION.md``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from train.evaluate import EvaluateConfig, human_rated_set

VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
WEIGHTS = (1, 5 / 6, 3 / 4, 2 / 3, 1 / 2, 1 / 3, 0)


def teacher_mos(teacher: str, view: str, files: list[Path], cache: Path) -> np.ndarray:
    with (cache / teacher / f"{view}.csv").open(newline="", encoding="utf-8") as f:
        rows = {str(Path(r["file"]).resolve()): float(r["mos"]) for r in csv.DictReader(f)}
    return np.array([rows[str(Path(p).resolve())] for p in files])


def main(data_root: Path = Path("../shared/data"), cache: Path = Path("cache/eval")) -> None:
    cfg, table = EvaluateConfig(), {}
    for view in VIEWS:
        ds = human_rated_set(view, data_root, cfg)
        nisqa, distill = (teacher_mos(t, view, ds.files, cache) for t in ("nisqa", "distillmos"))
        human = ds.aggregate(ds.targets)[:, 0]
        table[view] = [np.corrcoef(ds.aggregate((w * nisqa + (1 - w) * distill)[:, None])[:, 0], human)[0, 1]
                       for w in WEIGHTS]
    print("w_nisqa", *[f"{w:.2f}" for w in WEIGHTS])
    for view, row in table.items():
        print(view, *[f"{x:.3f}" for x in row])
    print("mean", *[f"{x:.4f}" for x in np.mean(list(table.values()), axis=0)])


if __name__ == "__main__":
    main()
