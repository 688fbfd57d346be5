"""Apply session 11's rule (results/v9/SELECTION.md) to the v9 evaluation.

    python results/v9/apply_rule.py [--eval results/v9/eval/eval.csv] > results/v9/selection.md

Mean MOS PCC over the four human-rated views, each weighted equally; every row is printed.
A windowed candidate qualifies when its mean is above 0.5.0's; the qualifiers, best first,
still need the paired bootstrap (no view below 0.5.0 by a resolved margin) and the six sanity
checks. A streaming candidate qualifies when its mean is above the shipped streaming model's.
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

HUMAN_VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
INCUMBENT = "soup-v040-v7"
STREAM_INCUMBENT = "ft-v7-stream2k"
WINDOWED = {"ft-v9-enh": "runs/ft-v9-enh/best.pt", "ft-v9-enh@last": "runs/ft-v9-enh/last.pt",
            "ft-v9-enh-avg": "runs/ft-v9-enh-avg/best.pt", "soup-v040-v9": "runs/soup-v040-v9/best.pt",
            # the addendum's run (RNNoise and noisereduce clips only)
            "ft-v9-enh2": "runs/ft-v9-enh2/best.pt", "ft-v9-enh2@last": "runs/ft-v9-enh2/last.pt",
            "ft-v9-enh2-avg": "runs/ft-v9-enh2-avg/best.pt", "soup-v040-v9b": "runs/soup-v040-v9b/best.pt"}
STREAMING = {"ft-v9-stream": "runs/ft-v9-stream/best.pt", "ft-v9-stream@last": "runs/ft-v9-stream/last.pt",
             "ft-v9-stream-avg": "runs/ft-v9-stream-avg/best.pt"}
# addendum 2: scored with the final-partial-chunk protocol, against the incumbent scored the same way
SDIST = {"ft-v9-sdist": "runs/ft-v9-sdist/best.pt", "ft-v9-sdist@last": "runs/ft-v9-sdist/last.pt",
         "ft-v9-sdist-avg": "runs/ft-v9-sdist-avg/best.pt"}


def qualifiers(means: dict[str, float], group: dict[str, str], incumbent: str, label: str) -> None:
    ranked = sorted((m for m in means if m in group), key=lambda m: -means[m])
    if not ranked or incumbent not in means:
        return
    print(f"\n{label}: incumbent {incumbent} {means[incumbent]:.4f}; ranking "
          + ", ".join(f"{m} ({means[m]:.4f})" for m in ranked))
    above = [m for m in ranked if means[m] > means[incumbent]]
    if above:
        print(f"{label} qualified: " + ", ".join(f"{m} -> {group[m]}" for m in above))
    else:
        print(f"{label} qualified: none ({incumbent} stays)")


def read_mos_pcc(paths: list[str]) -> tuple[dict[tuple[str, str], float], list[str]]:
    """MOS PCC per (model, dataset) from ``evaluate``'s eval.csv files, and the models in order."""
    rows = []
    for path in paths:
        with Path(path).open(newline="", encoding="utf-8") as f:
            rows += [r for r in csv.DictReader(f) if r["dimension"] == "mos"]
    pcc = {(r["model"], r["dataset"]): float(r["pcc"]) for r in rows}
    return pcc, list(dict.fromkeys(r["model"] for r in rows))


def table(pcc: dict[tuple[str, str], float], models: list[str], role: Callable[[str], str]) -> dict[str, float]:
    """Print one row per model (its role, the four views, their mean); return the means."""
    print("| model | role | " + " | ".join(HUMAN_VIEWS) + " | mean |")
    print("|---|---|" + "---:|" * (len(HUMAN_VIEWS) + 1))
    means = {}
    for m in models:
        vals = [pcc.get((m, v), float("nan")) for v in HUMAN_VIEWS]
        means[m] = sum(vals) / len(vals)
        print(f"| {m} | {role(m)} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {means[m]:.4f} |")
    return means


def role_of(m: str) -> str:
    return ("incumbent (0.5.0)" if m == INCUMBENT else "incumbent streaming (0.5.0-stream)"
            if m == STREAM_INCUMBENT else "windowed candidate" if m in WINDOWED
            else "streaming candidate" if m in STREAMING or m in SDIST else "peer")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", nargs="+", default=["results/v9/eval/eval.csv"])
    p.add_argument("--sdist", help="eval.csv of addendum 2 (new streaming protocol, incumbent re-scored)")
    args = p.parse_args()
    pcc, models = read_mos_pcc(args.eval)
    print("# Session 11: real suppressors in the corpus. Mean MOS PCC over the four human-rated views\n")
    means = table(pcc, models, role_of)
    qualifiers(means, WINDOWED, INCUMBENT, "windowed")
    qualifiers(means, STREAMING, STREAM_INCUMBENT, "streaming")
    if args.sdist:
        new, _ = read_mos_pcc([args.sdist])
        print("\n## Addendum 2: streaming protocol with the final partial chunk\n")
        means2 = table(new, [STREAM_INCUMBENT, *SDIST], role_of)
        qualifiers(means2, SDIST, STREAM_INCUMBENT, "streaming (addendum 2)")


if __name__ == "__main__":
    main()
