"""Could the ConferencingSpeech 2022 NISQA checkpoints serve as a second MOS teacher?

Why: every training label comes from one teacher (NISQA v2), so the student inherits its
errors. ``weights/cs22-nisqa/`` holds two MOS-only models of the NISQA architecture
(Apache-2.0). A second teacher only helps if it is about as good as the first on human
ratings, so this scores both on the three human-rated views (P.835 16 kHz, 48 kHz, and the
NOIZEUS conditions) beside NISQA v2, MOS PCC against OVRL. P.835 is for model selection
only; nothing here trains on it.

    python results/eval/second_teacher.py > results/eval/second_teacher.md

NISQA v2's scores come from (and extend) the evaluate stage's cache, ``cache/eval/nisqa/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from train.evaluate import EvaluateConfig, human_rated_set, score_set
from train.scorers import NisqaScorer

MOS = DIMENSIONS.index("mos")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    root = resolve_data_root(args.data_root)
    cfg = EvaluateConfig()
    scorers = [(NisqaScorer(root / cfg.nisqa_weights), Path(cfg.cache_dir) / "nisqa")]
    for weights in sorted((root / "weights/cs22-nisqa").glob("*.tar")):
        scorers.append((NisqaScorer(weights, name=weights.stem), None))
    sets = ["p835-wb", "p835-fb", "p835-nb"]
    print("| teacher | " + " | ".join(f"{s} MOS PCC" for s in sets) + " |")
    print("| --- |" + " --- |" * len(sets))
    for scorer, cache in scorers:
        cells = []
        for name in sets:
            ds = human_rated_set(name, root, cfg)
            scores = score_set(scorer, ds, None if cache is None else cache / f"{name}.csv")
            x, y = ds.aggregate(scores)[:, MOS], ds.aggregate(ds.targets)[:, MOS]
            cells.append(f"{np.corrcoef(x, y)[0, 1]:.3f}")
        print(f"| {scorer.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
