"""Apply the larger-student rule (results/v8/SELECTION.md) to the v8 evaluation.

    python results/v8/apply_rule.py [--eval results/v8/eval/eval.csv] > results/v8/selection.md

Mean MOS PCC over the four human-rated views, each weighted equally; every row is printed.
A 12-block candidate qualifies when its mean is at least MARGIN above the incumbent's (0.5.0);
the qualifiers, best first, still need the paired bootstrap (no view below 0.5.0 by a resolved
margin) and the six sanity checks. The last line names the first qualifier, or says none.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

HUMAN_VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
INCUMBENT = "soup-v040-v7"
MARGIN = 0.005
DEEP = {"ft-v8-deep12": "runs/ft-v8-deep12/best.pt", "ft-v8-deep12@last": "runs/ft-v8-deep12/last.pt",
        "ft-v8-deep12-avg": "runs/ft-v8-deep12-avg/best.pt", "soup-deep12": "runs/soup-deep12/best.pt"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", nargs="+", default=["results/v8/eval/eval.csv"])
    args = p.parse_args()
    rows = []
    for path in args.eval:
        with Path(path).open(newline="", encoding="utf-8") as f:
            rows += [r for r in csv.DictReader(f) if r["dimension"] == "mos"]
    pcc = {(r["model"], r["dataset"]): float(r["pcc"]) for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    print("# 0.6.0: a larger student? Mean MOS PCC over the four human-rated views\n")
    print("| model | role | " + " | ".join(HUMAN_VIEWS) + " | mean |")
    print("|---|---|" + "---:|" * (len(HUMAN_VIEWS) + 1))
    means = {}
    for m in models:
        vals = [pcc.get((m, v), float("nan")) for v in HUMAN_VIEWS]
        means[m] = sum(vals) / len(vals)
        role = "incumbent (0.5.0)" if m == INCUMBENT else "12-block candidate" if m in DEEP else "peer"
        print(f"| {m} | {role} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {means[m]:.4f} |")
    bar = means[INCUMBENT] + MARGIN
    ranked = sorted((m for m in models if m in DEEP), key=lambda m: -means[m])
    qualified = [m for m in ranked if means[m] >= bar]
    print(f"\nBar: 0.5.0's mean {means[INCUMBENT]:.4f} + {MARGIN} = {bar:.4f}.")
    print(f"Ranking of the 12-block candidates: {', '.join(f'{m} ({means[m]:.4f})' for m in ranked)}")
    print()
    if qualified:
        print(f"qualified: {', '.join(f'{m} -> {DEEP[m]}' for m in qualified)}")
    else:
        print("qualified: none (0.5.0 stays the default)")


if __name__ == "__main__":
    main()
