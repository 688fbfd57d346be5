"""NOIZEUS (dev view p835-nb) per condition: listeners, the teachers, the target and each model.

    python results/v16/noizeus_conditions.py runs/v060-hinge-loud/best.pt runs/ft-v16-nbn-h/best.pt ... \
        > results/v16/noizeus-conditions.md

A diagnostic of where the fine-tunes lose NOIZEUS (12 condition means, each of 8 files); no model
is chosen on it. Teacher scores come from the evaluation's peer cache (``cache/eval/<peer>/p835-nb.csv``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from train.asr_data import resolve_data_root
from train.evaluate import EvaluateConfig, noizeus_set
from train.scorers import model_scorer


def peer_means(path: Path, files: list[Path], aggregate) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A cached peer's per-file MOS, as condition means in the set's order."""
    by_file = {Path(r["file"]).name: float(r["mos"]) for r in csv.DictReader(path.open(newline="", encoding="utf-8"))}
    return aggregate(np.array([[by_file[f.name]] for f in files]))[:, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data-root")
    args = ap.parse_args()
    es = noizeus_set(resolve_data_root(args.data_root) / EvaluateConfig().p835_workbook)
    assert es.groups is not None
    names = sorted(set(es.groups), key=lambda s: int(s.lstrip("c")))
    cols: dict[str, np.ndarray] = {"listeners (OVRL)": es.aggregate(es.targets)[:, 0]}
    nisqa = peer_means(Path("cache/eval/nisqa/p835-nb.csv"), es.files, es.aggregate)
    distill = peer_means(Path("cache/eval/distillmos/p835-nb.csv"), es.files, es.aggregate)
    cols |= {"NISQA": nisqa, "DistillMOS": distill, "target (2/3 N + 1/3 D)": 2 / 3 * nisqa + 1 / 3 * distill}
    audio = [sf.read(str(f), dtype="float32") for f in es.files]
    for m in args.models:
        s = model_scorer(m)
        cols[Path(m).parent.name] = es.aggregate(np.array([s.score(x, sr) for x, sr in audio]))[:, 0]
    ovrl = cols["listeners (OVRL)"]
    print("# NOIZEUS per condition: mean MOS of its 8 files\n")
    print(f"Made by `python results/v16/noizeus_conditions.py {' '.join(args.models)}`.\n")
    print("| condition | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for i, c in enumerate(names):
        print(f"| {c} | " + " | ".join(f"{v[i]:.2f}" for v in cols.values()) + " |")
    print("| **PCC with listeners** | | " + " | ".join(f"{np.corrcoef(v, ovrl)[0, 1]:.3f}" for k, v in cols.items()
                                               if k != "listeners (OVRL)") + " |")


if __name__ == "__main__":
    main()
