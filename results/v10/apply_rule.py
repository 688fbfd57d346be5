"""Apply results/v10/SELECTION.md to the paired bootstrap (--json) and the strict sanity logs.

    python results/v10/apply_rule.py --bootstrap results/v10/bootstrap.json \
        --sanity ft-v10-dense=results/v10/sanity-best.txt ...

Prints the table of every row and the decision; the rule lives here once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VIEWS = ["p835-wb", "p835-fb", "p835-nb", "vmos24-t3"]
LABELS = {"p835-wb": "P.835 16k", "p835-fb": "P.835 48k", "p835-nb": "NOIZEUS", "vmos24-t3": "VoiceMOS t3"}


def sanity_passed(path: Path) -> bool:
    """A strict sanity run's log ends with its verdict; 6/6 is the only pass."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    return "6/6 checks passed" in text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", type=Path, required=True)
    p.add_argument("--reference", default="v060")
    p.add_argument("--incumbent", default="v060-stream")
    p.add_argument("--sanity", nargs="*", default=[], help="MODEL=LOG of each candidate's strict sanity run")
    args = p.parse_args()
    table = json.loads(args.bootstrap.read_text(encoding="utf-8"))
    sanity = {k: sanity_passed(Path(v)) for k, v in (s.split("=", 1) for s in args.sanity)}
    models = list(table[VIEWS[0]])
    print("| model | " + " | ".join(LABELS[v] for v in VIEWS) + " | mean | resolved below the windowed model | sanity 6/6 | eligible |")
    print("|---|" + "---:|" * (len(VIEWS) + 1) + "---|---|---|")
    eligible: dict[str, float] = {}
    for m in models:
        mean = sum(table[v][m]["pcc"] for v in VIEWS) / len(VIEWS)
        below = [LABELS[v] for v in VIEWS if table[v][m]["diff_hi"] < 0]
        candidate = m in sanity
        ok = candidate and not below and sanity[m]
        if ok:
            eligible[m] = mean
        cells = " | ".join(f"{table[v][m]['pcc']:.3f} ({table[v][m]['diff']:+.3f})" for v in VIEWS)
        print(f"| {m} | {cells} | {mean:.4f} | {', '.join(below) or 'none'} | "
              f"{'-' if not candidate else 'yes' if sanity[m] else 'NO'} | {'yes' if ok else '-' if not candidate else 'no'} |")
    print(f"\nIn brackets: minus {args.reference} (the windowed 0.6.0). Candidates are the models given with --sanity.")
    if eligible:
        win = max(eligible, key=eligible.get)
        print(f"\n**Decision:** {win} ships (mean {eligible[win]:.4f}; eligible: {', '.join(eligible)}).")
    else:
        print(f"\n**Decision:** no candidate is eligible; {args.incumbent} stays.")


if __name__ == "__main__":
    main()
