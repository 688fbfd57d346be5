"""Apply the third 0.5.0 selection rule (results/v7/SELECTION.md) to the v7 evaluation.

    python results/v7/select.py [--eval results/v7/eval/eval.csv ...] > results/v7/selection.md

Mean MOS PCC over the four human-rated views, each weighted equally; every row is printed.
Two groups are ranked by it: the default (windowed) model's candidates and the streaming
model's; ``soup-v040-v6nisqa`` is reported only (its ingredients were seen before). The last
two lines name the winners.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

HUMAN_VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
DEFAULT = {"v040": "runs/v040/best.pt", "ft-v7-w23": "runs/ft-v7-w23/best.pt",
           "ft-v7-w23@last": "runs/ft-v7-w23/last.pt", "ft-v7-w23-avg": "runs/ft-v7-w23-avg/best.pt",
           "soup-v040-v7": "runs/soup-v040-v7/best.pt"}
STREAMING = {"ft-v7-stream": "runs/ft-v7-stream/best.pt", "ft-v7-stream@last": "runs/ft-v7-stream/last.pt",
             "ft-v7-stream-avg": "runs/ft-v7-stream-avg/best.pt",
             # addendum 2 (declared before it ran): the streaming recipe's full 2,000 steps
             "ft-v7-stream2k": "runs/ft-v7-stream2k/best.pt", "ft-v7-stream2k@last": "runs/ft-v7-stream2k/last.pt",
             "ft-v7-stream2k-avg": "runs/ft-v7-stream2k-avg/best.pt"}
REPORTED = {"soup-v040-v6nisqa": "runs/soup-v040-v6nisqa/best.pt"}


def role(model: str) -> str:
    return ("default candidate" if model in DEFAULT else "streaming candidate" if model in STREAMING
            else "reported only" if model in REPORTED else "peer")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", nargs="+", default=["results/v7/eval/eval.csv"],
                   help="evaluate outputs; several (e.g. a later run's rows) are read together")
    args = p.parse_args()
    rows = []
    for path in args.eval:
        with Path(path).open(newline="", encoding="utf-8") as f:
            rows += [r for r in csv.DictReader(f) if r["dimension"] == "mos"]
    pcc = {(r["model"], r["dataset"]): float(r["pcc"]) for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    print("# 0.5.0, third attempt: mean MOS PCC over the four human-rated views\n")
    print("| model | role | " + " | ".join(HUMAN_VIEWS) + " | mean |")
    print("|---|---|" + "---:|" * (len(HUMAN_VIEWS) + 1))
    means = {}
    for m in models:
        vals = [pcc.get((m, v), float("nan")) for v in HUMAN_VIEWS]
        means[m] = sum(vals) / len(vals)
        print(f"| {m} | {role(m)} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {means[m]:.4f} |")
    winners = {}
    for label, group in (("default", DEFAULT), ("streaming", STREAMING)):
        ranked = sorted((m for m in models if m in group), key=lambda m: -means[m])
        print(f"\nRanking of the {label} candidates: {', '.join(f'{m} ({means[m]:.4f})' for m in ranked)}")
        winners[label] = ranked[0] if ranked else None
    print()
    if winners["default"]:
        print(f"winner: {winners['default']} -> {DEFAULT[winners['default']]}")
    if winners["streaming"]:
        print(f"streaming winner: {winners['streaming']} -> {STREAMING[winners['streaming']]}")


if __name__ == "__main__":
    main()
