"""Teacher-student agreement across level: the level sweep's test split (rule (a) of SELECTION.md).

    python results/v13/level_agreement.py runs/v060/best.pt runs/v060-hinge/best.pt \
        --json results/v13/level-agreement.json > results/v13/level-agreement.md

Each 4 s clip of test-split talkers (``python -m train level-sweep``, labelled by ``python -m
train label``: MOS the mean of NISQA v2 and DistillMOS, the other four NISQA's) is scored as one
window by each model. Reported: PCC and RMSE against the labels per dimension over all clips, and
per bin of the drawn active level the mean label and each model's mean error (model - label).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from livesqa.audio import read_audio
from livesqa.spec import DIMENSIONS
from train.scorers import model_scorer

BINS_DBFS = (-66, -56, -46, -36, -26, -16, -6)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="checkpoints or ONNX files; the first is the reference")
    ap.add_argument("--manifest", default=str(ROOT / "cache" / "levelsweep" / "manifest.csv"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    manifest = Path(args.manifest)
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == args.split and r["mos"]]
    if not rows:
        raise SystemExit(f"{manifest}: no labelled rows in split {args.split!r}")
    labels = np.array([[float(r[d]) for d in DIMENSIONS] for r in rows])
    level = np.array([float(r["con"]) for r in rows])
    clips = [read_audio(manifest.parent / r["filepath_deg"], 16000) for r in rows]
    scores: dict[str, np.ndarray] = {}
    for m in args.models:
        scorer = model_scorer(m)
        scores[m] = np.stack([scorer.score(x, 16000) for x in clips])
    out: dict[str, object] = {"n": len(rows), "split": args.split, "models": {}}
    print(f"# Level sweep, {args.split} split: {len(rows)} clips of 4 s, active level -66..-6 dBFS\n")
    print("Labels: MOS = mean of NISQA v2 and DistillMOS, NOI/COL/DIS/LOUD = NISQA v2. One window per clip.\n")
    print("| model | " + " | ".join(f"{d.upper()} PCC / RMSE" for d in DIMENSIONS) + " |")
    print("|---|" + "---:|" * len(DIMENSIONS))
    for m, s in scores.items():
        pcc = [float(np.corrcoef(s[:, k], labels[:, k])[0, 1]) for k in range(len(DIMENSIONS))]
        rmse = [float(np.sqrt(np.mean((s[:, k] - labels[:, k]) ** 2))) for k in range(len(DIMENSIONS))]
        out["models"][m] = {"pcc": dict(zip(DIMENSIONS, pcc)), "rmse": dict(zip(DIMENSIONS, rmse))}  # type: ignore[index]
        print(f"| {m} | " + " | ".join(f"{p:.3f} / {r:.3f}" for p, r in zip(pcc, rmse)) + " |")
    ref = args.models[0]
    for m in args.models[1:]:
        change = {d: out["models"][m]["rmse"][d] / out["models"][ref]["rmse"][d] - 1 for d in DIMENSIONS}  # type: ignore[index]
        out["models"][m]["rmse_change_vs_reference"] = change  # type: ignore[index]
        print(f"\nRMSE change of {m} against {ref}: " + ", ".join(f"{d.upper()} {100 * c:+.1f} %" for d, c in change.items()))
    for dim in ("mos", "loud"):
        k = DIMENSIONS.index(dim)
        print(f"\n## {dim.upper()} by active level: mean label, then each model's mean error (model - label)\n")
        print("| active level (dBFS) | clips | label | " + " | ".join(args.models) + " |")
        print("|---|---:|---:|" + "---:|" * len(args.models))
        for lo, hi in itertools.pairwise(BINS_DBFS):
            sel = (level >= lo) & (level < hi)
            if not sel.any():
                continue
            errs = " | ".join(f"{np.mean(scores[m][sel, k] - labels[sel, k]):+.2f}" for m in args.models)
            print(f"| {lo}..{hi} | {int(sel.sum())} | {labels[sel, k].mean():.2f} | {errs} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
