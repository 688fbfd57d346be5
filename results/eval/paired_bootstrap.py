"""How sure are the P.835 MOS differences? Paired bootstrap over the rated files.

Why: the P.835 set has 78 files per bandwidth, so a PCC gap of 0.01 between two models
may be noise. Resampling the files with replacement (the same draw for every model, so
the comparison is paired) gives a 95% interval for each model's PCC and for each model's
difference from a reference. The NOIZEUS part (``p835-nb``) is rated per condition, so
there the unit resampled is one of its 12 condition means. VoiceMOS 2024 track 3 (``vmos24-t3``,
280 short clips) is the fourth human-rated view.

    python results/eval/paired_bootstrap.py --reference ft-asr-la-long \
        runs/ft-asr-la-long/best.pt runs/ft-asr-la-mnru/best.pt runs/ft-asr-la-mnru-avg/best.pt

NISQA's scores come from (and extend) the evaluate stage's cache, ``cache/eval/nisqa/``.
Prints a Markdown table per set; ``--json FILE`` also writes the same numbers for a rule script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from train.evaluate import HUMAN_SETS, EvalSet, EvaluateConfig, human_rated_set, score_set
from train.scorers import DistillMosScorer, NisqaScorer, model_scorer


def pcc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``x`` and ``y`` (``[..., n]``)."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    return (xc * yc).sum(-1) / np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="checkpoints or ONNX files")
    p.add_argument("--reference", default="NISQA", help="row the differences are taken against")
    p.add_argument("--resamples", type=int, default=10000)
    p.add_argument("--data-root", default=None)
    p.add_argument("--distillmos", action="store_true", help="add DistillMOS (cached in cache/eval/distillmos/)")
    p.add_argument("--json", type=Path, help="also write {set: {model: {pcc, diff, diff_lo, diff_hi}}} here")
    args = p.parse_args()
    table: dict[str, dict[str, dict[str, float]]] = {}
    cfg = EvaluateConfig()
    root = resolve_data_root(args.data_root)
    rng = np.random.default_rng(0)
    mos = DIMENSIONS.index("mos")
    distill = DistillMosScorer() if args.distillmos else None
    for name in HUMAN_SETS:
        ds: EvalSet = human_rated_set(name, root, cfg)
        preds: dict[str, np.ndarray] = {}
        for path in args.models:
            scorer = model_scorer(path)
            preds[scorer.name] = ds.aggregate(score_set(scorer, ds, None))[:, mos]
        cache = Path(cfg.cache_dir) / "nisqa" / f"{name}.csv"
        preds["NISQA"] = ds.aggregate(score_set(NisqaScorer(root / cfg.nisqa_weights), ds, cache))[:, mos]
        if distill is not None:
            dcache = Path(cfg.cache_dir) / "distillmos" / f"{name}.csv"
            preds["DistillMOS"] = ds.aggregate(score_set(distill, ds, dcache))[:, mos]
        target = ds.aggregate(ds.targets)[:, mos]
        idx = rng.integers(0, len(target), size=(args.resamples, len(target)))
        boot = {k: pcc(v[idx], target[idx]) for k, v in preds.items()}
        ref = boot[args.reference]
        unit = "condition means" if ds.groups else "files"
        print(f"\n### {name} ({len(target)} {unit}): MOS PCC vs OVRL, {args.resamples} paired resamples\n")
        print(f"| model | PCC | 95% CI | minus {args.reference} | 95% CI | P(better) |")
        print("|---|---:|---:|---:|---:|---:|")
        for k, v in preds.items():
            d = boot[k] - ref
            lo, hi = np.percentile(boot[k], [2.5, 97.5])
            dlo, dhi = np.percentile(d, [2.5, 97.5])
            point = float(pcc(v, target))
            print(f"| {k} | {point:.3f} | {lo:.3f}–{hi:.3f} | {point - float(pcc(preds[args.reference], target)):+.3f} "
                  f"| {dlo:+.3f}–{dhi:+.3f} | {float((d > 0).mean()):.2f} |")
            table.setdefault(name, {})[k] = {"pcc": point, "diff": point - float(pcc(preds[args.reference], target)),
                                             "diff_lo": float(dlo), "diff_hi": float(dhi)}
    if args.json:
        args.json.write_text(json.dumps(table, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
