"""Does a student that follows its teachers better on real software follow them on the dev sets too?

    python results/v14/teacher_following.py runs/v060-hinge-loud/best.pt runs/ft-v14-lwf-h/best.pt \
        runs/ft-v11-crops/best.pt > results/v14/teacher-following.md

For each human-rated view, on the files (or NOIZEUS condition means) the rule scores, each
student's MOS against (1) the listeners and (2) its own training target, 2/3 NISQA v2 + 1/3
DistillMOS (the crops' MOS label), from the teachers' cached scores in ``cache/eval`` (run
``python -m train evaluate`` first). Students are scored as ``evaluate`` scores them. If a
fine-tune follows the target better on a view where it loses the listeners, it has learnt its
teachers' errors there; if it follows the target worse, it did not generalise to that audio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from train.asr_data import resolve_data_root
from train.evaluate import EvaluateConfig, human_rated_set, score_set
from train.scorers import model_scorer

VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
MOS = 0


def _pcc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _teacher(name: str, view: str, files: list[Path]) -> np.ndarray:
    import csv

    path = ROOT / "cache" / "eval" / name / f"{view}.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = {r["file"]: float(r["mos"]) for r in csv.DictReader(f)}
    return np.array([rows[str(p)] for p in files])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="checkpoints or ONNX files; the first is the reference")
    args = ap.parse_args()
    root, cfg = resolve_data_root(None), EvaluateConfig()
    names = [Path(m).parent.name if Path(m).suffix == ".pt" else Path(m).stem for m in args.models]
    print("# Students against the listeners and against their own MOS target, per human-rated view\n")
    print("Target: 2/3 NISQA v2 + 1/3 DistillMOS (the crops' MOS label). Cells: PCC with the listeners; "
          "PCC / RMSE with the target. NOIZEUS as 12 condition means.\n")
    print("| view | target vs listeners | " + " | ".join(f"{n}: listeners | {n}: target PCC / RMSE" for n in names) + " |")
    print("|---|---:|" + "---:|---:|" * len(names))
    for view in VIEWS:
        ds = human_rated_set(view, root, cfg)
        target = 2 / 3 * _teacher("nisqa", view, ds.files) + 1 / 3 * _teacher("distillmos", view, ds.files)
        target = ds.aggregate(target[:, None])[:, 0]
        listeners = ds.aggregate(ds.targets)[:, MOS]
        cells = [f"{_pcc(target, listeners):.3f}"]
        for m in args.models:
            s = ds.aggregate(score_set(model_scorer(m), ds))[:, MOS]
            cells += [f"{_pcc(s, listeners):.3f}", f"{_pcc(s, target):.3f} / {np.sqrt(np.mean((s - target) ** 2)):.3f}"]
        print(f"| {view} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
