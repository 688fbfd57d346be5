"""Apply the second 0.5.0 selection rule (results/v6/SELECTION.md) to results/eval/eval.csv.

    python results/v6/select.py [--eval results/eval/eval.csv] > results/v6/selection.md

The rule is the first attempt's (results/v5/select.py: mean MOS PCC over the four human-rated
views); only the candidates differ, so this reuses that script with this run's candidates.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CANDIDATES = {"v040": "runs/v040/best.pt", "ft-v6-mix": "runs/ft-v6-mix/best.pt",
              "ft-v6-mix@last": "runs/ft-v6-mix/last.pt", "ft-v6-mix-avg": "runs/ft-v6-mix-avg/best.pt",
              "soup-v040-v6": "runs/soup-v040-v6/best.pt",
              # the addendum's ablation (MOS = NISQA alone), declared before it ran
              "ft-v6-nisqa": "runs/ft-v6-nisqa/best.pt", "ft-v6-nisqa@last": "runs/ft-v6-nisqa/last.pt",
              "ft-v6-nisqa-avg": "runs/ft-v6-nisqa-avg/best.pt"}


def main() -> None:
    spec = importlib.util.spec_from_file_location("select_v5", Path(__file__).parents[1] / "v5" / "select.py")
    assert spec is not None and spec.loader is not None
    v5 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(v5)
    v5.CANDIDATES = CANDIDATES
    v5.main()


if __name__ == "__main__":
    main()
