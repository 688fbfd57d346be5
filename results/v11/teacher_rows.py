"""The teachers' own MOS PCC on the four human-rated dev views, alone and combined (session 13).

    python results/v11/teacher_rows.py > results/v11/teacher_rows.md

Why: before labelling a new corpus, check whether the third MOS checkpoint in ../shared/data
(the NISQA architecture retrained for ConferencingSpeech 2022, Apache-2.0) would help the
MOS target. Scores are cached per file under cache/eval/<teacher>/ (NISQA, DistillMOS) and
cache/eval/cs22/ (computed here when missing).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr

from train.evaluate import EvaluateConfig, human_rated_set, score_set
from train.scorers import DistillMosScorer, NisqaScorer

ROOT = Path("../shared/data")
VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
CS22 = ROOT / "weights/cs22-nisqa/baseline2_retraining_NISQA_full_ep_080.tar"


def cached(name: str, view: str, make) -> dict[str, float]:
    path = Path(f"cache/eval/{name}/{view}.csv")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        score_set(make(), human_rated_set(view, ROOT, EvaluateConfig()), path)
    return {Path(r["file"]).name: float(r["mos"]) for r in csv.DictReader(path.open())}


def main() -> None:
    combos = {"NISQA": (1, 0, 0), "DistillMOS": (0, 1, 0), "CS22-NISQA": (0, 0, 1),
              "2/3 NISQA + 1/3 DistillMOS (the target)": (2 / 3, 1 / 3, 0), "NISQA + DistillMOS, mean": (0.5, 0.5, 0),
              "all three, mean": (1 / 3, 1 / 3, 1 / 3), "(2 NISQA + DistillMOS + CS22) / 4": (0.5, 0.25, 0.25)}
    table = {c: [] for c in combos}
    for view in VIEWS:
        ds = human_rated_set(view, ROOT, EvaluateConfig())
        keys = [f.name for f in ds.files]
        parts = [cached("nisqa", view, lambda: NisqaScorer(ROOT / "weights/nisqa/nisqa.tar")),
                 cached("distillmos", view, DistillMosScorer),
                 cached("cs22", view, lambda: NisqaScorer(CS22, name="CS22-NISQA"))]
        x = np.array([[p[k] for k in keys] for p in parts])  # [3, files]
        target = ds.aggregate(ds.targets)[:, 0]
        for c, w in combos.items():
            table[c].append(pearsonr(ds.aggregate((np.array(w) @ x)[:, None])[:, 0], target)[0])
    print("# Teachers' MOS PCC on the human-rated dev views (per file; NOIZEUS per condition)\n")
    print("| MOS from | " + " | ".join(VIEWS) + " | mean |\n|---|" + "---:|" * (len(VIEWS) + 1))
    for c, vals in table.items():
        print(f"| {c} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {np.mean(vals):.4f} |")


if __name__ == "__main__":
    main()
