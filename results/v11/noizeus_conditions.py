"""Where the v11 candidates lose NOIZEUS: per-condition MOS of each model beside the listeners'.

    python results/v11/noizeus_conditions.py runs/v060/best.pt runs/ft-v11-crops/last.pt ... > results/v11/noizeus-conditions.md

NOIZEUS (``p835-nb``) is rated per condition (12 condition means, narrowband speech in noise), so
a PCC over 12 points hides which conditions moved. This prints each condition's human OVRL, NISQA
and DistillMOS (from the evaluate stage's caches), the
students' MOS target (2/3 NISQA + 1/3 DistillMOS) and every model's mean MOS over the condition's files, and each
model's offset from its own linear fit to the listeners (the residual that costs PCC).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from train.evaluate import NOIZEUS_SET, EvaluateConfig, _natural_key, human_rated_set, score_set
from train.scorers import DistillMosScorer, NisqaScorer, model_scorer


def residuals(pred: np.ndarray, human: np.ndarray) -> np.ndarray:
    """``human`` minus the least-squares line of ``human`` on ``pred``: what a linear map cannot fix."""
    slope, icept = np.polyfit(pred, human, 1)
    return human - (slope * pred + icept)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="checkpoints or ONNX files")
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    cfg = EvaluateConfig()
    root = resolve_data_root(args.data_root)
    ds = human_rated_set(NOIZEUS_SET, root, cfg)
    mos = DIMENSIONS.index("mos")
    names = sorted(set(ds.groups or []), key=_natural_key)
    human = ds.aggregate(ds.targets)[:, mos]
    preds = {"NISQA": ds.aggregate(score_set(NisqaScorer(root / cfg.nisqa_weights), ds,
                                             Path(cfg.cache_dir) / "nisqa" / f"{NOIZEUS_SET}.csv"))[:, mos]}
    preds["DistillMOS"] = ds.aggregate(score_set(DistillMosScorer(), ds,
                                                 Path(cfg.cache_dir) / "distillmos" / f"{NOIZEUS_SET}.csv"))[:, mos]
    preds["2/3 NISQA + 1/3 DistillMOS"] = 2 / 3 * preds["NISQA"] + 1 / 3 * preds["DistillMOS"]  # the MOS target
    for path in args.models:
        scorer = model_scorer(path)
        preds[scorer.name] = ds.aggregate(score_set(scorer, ds, None))[:, mos]
    print(f"# NOIZEUS per condition: mean MOS over each condition's files ({len(ds.files)} files)\n")
    print("Cells: mean MOS (residual from the model's own linear fit to the listeners; |residual| is what costs PCC).\n")
    print("| condition | listeners | " + " | ".join(preds) + " |")
    print("|---|---:|" + "---:|" * len(preds))
    res = {k: residuals(v, human) for k, v in preds.items()}
    for i, name in enumerate(names):
        print(f"| {name} | {human[i]:.2f} | " + " | ".join(f"{preds[k][i]:.2f} ({res[k][i]:+.2f})" for k in preds) + " |")
    print("| PCC | | " + " | ".join(f"{np.corrcoef(v, human)[0, 1]:.3f}" for v in preds.values()) + " |")


if __name__ == "__main__":
    main()
