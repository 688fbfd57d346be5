"""Apply the 0.5.0 selection rule (results/v5/SELECTION.md) to results/eval/eval.csv.

    python results/v5/select.py [--eval results/eval/eval.csv] > results/v5/selection.md

Mean MOS PCC over the four human-rated views, each weighted equally; every row is printed,
peers beside our candidates (peers are not candidates). The last line names the winner.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

HUMAN_VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
CANDIDATES = {"v040": "runs/v040/best.pt", "ft-v5-realcall-avg": "runs/ft-v5-realcall-avg/best.pt",
              "ft-v5-realcall@last": "runs/ft-v5-realcall/last.pt", "ft-v5-realcall": "runs/ft-v5-realcall/best.pt"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", default="results/eval/eval.csv")
    args = p.parse_args()
    with Path(args.eval).open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["dimension"] == "mos"]
    pcc = {(r["model"], r["dataset"]): float(r["pcc"]) for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    print("# 0.5.0 selection: mean MOS PCC over the four human-rated views\n")
    print("| model | candidate | " + " | ".join(HUMAN_VIEWS) + " | mean |")
    print("|---|---|" + "---:|" * (len(HUMAN_VIEWS) + 1))
    means = {}
    for m in models:
        vals = [pcc.get((m, v), float("nan")) for v in HUMAN_VIEWS]
        means[m] = sum(vals) / len(vals)
        print(f"| {m} | {'yes' if m in CANDIDATES else 'peer'} | " + " | ".join(f"{v:.3f}" for v in vals)
              + f" | {means[m]:.4f} |")
    ranked = sorted((m for m in models if m in CANDIDATES), key=lambda m: -means[m])
    print(f"\nRanking of candidates: {', '.join(f'{m} ({means[m]:.4f})' for m in ranked)}")
    print(f"\nwinner: {ranked[0]} -> {CANDIDATES[ranked[0]]}")


if __name__ == "__main__":
    main()
