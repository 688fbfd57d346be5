"""Apply session 13's rule (results/v11/SELECTION.md) to the v11 evaluation.

    python results/v11/apply_rule.py --eval results/v11/eval/eval.csv [--bootstrap B.json --sanity-dir DIR]

(a) mean MOS PCC over the four human-rated views above 0.6.0's; then, best mean first,
(b) no view below 0.6.0 by a margin the paired bootstrap resolves (``--bootstrap``, the JSON of
``results/eval/paired_bootstrap.py --reference v060``) and (c) six of six strict sanity checks
(``<sanity-dir>/sanity-<name>.txt``). Every row is printed. Without ``--bootstrap`` only (a) is
applied and the qualifiers are listed for the ship stage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "v9"))
from apply_rule import HUMAN_VIEWS, read_mos_pcc, table  # noqa: E402  (session 11's table code)

INCUMBENT = "v060"
CANDIDATES = {"ft-v11-crops": "runs/ft-v11-crops/best.pt", "ft-v11-crops@last": "runs/ft-v11-crops/last.pt",
              "ft-v11-crops-avg": "runs/ft-v11-crops-avg/best.pt", "soup-v060-v11": "runs/soup-v060-v11/best.pt"}


def role_of(m: str) -> str:
    return "incumbent (0.6.0)" if m == INCUMBENT else "candidate" if m in CANDIDATES else "peer"


def resolved_below(boot: dict[str, dict[str, dict[str, float]]], name: str) -> list[str]:
    """Views where the 95 % interval of (candidate - 0.6.0) lies wholly below zero."""
    return [v for v in HUMAN_VIEWS if boot.get(v, {}).get(name, {}).get("diff_hi", 0.0) < 0.0]


def sanity_passed(sanity_dir: Path, name: str) -> bool | None:
    path = sanity_dir / f"sanity-{name}.txt"
    if not path.is_file():
        return None
    return "6/6 checks passed" in path.read_text(encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", nargs="+", default=["results/v11/eval/eval.csv"])
    p.add_argument("--bootstrap", type=Path, help="paired_bootstrap.py --json output (rule b)")
    p.add_argument("--sanity-dir", type=Path, default=Path("results/v11"), help="where sanity-<name>.txt are (rule c)")
    args = p.parse_args()
    pcc, models = read_mos_pcc(args.eval)
    print("# Session 13: teacher labels on exact crops. Mean MOS PCC over the four human-rated views\n")
    means = table(pcc, models, role_of)
    ranked = sorted((m for m in means if m in CANDIDATES), key=lambda m: -means[m])
    above = [m for m in ranked if means[m] > means[INCUMBENT]]
    print(f"\nincumbent v060 (0.6.0) {means[INCUMBENT]:.4f}; ranking "
          + ", ".join(f"{m} ({means[m]:.4f})" for m in ranked))
    print("qualified-names: " + (" ".join(above) or "none"))
    print("qualified-paths: " + (" ".join(CANDIDATES[m] for m in above) or "none"))
    if args.bootstrap is None:
        return
    boot = json.loads(args.bootstrap.read_text(encoding="utf-8"))
    winner = "none"
    print("\n| qualifier | (b) views resolved below 0.6.0 | (c) sanity 6/6 |\n|---|---|---|")
    for m in above:
        below, sane = resolved_below(boot, m), sanity_passed(args.sanity_dir, m)
        print(f"| {m} | {', '.join(below) or 'none'} | {'missing' if sane is None else 'yes' if sane else 'no'} |")
        if winner == "none" and not below and sane:
            winner = m
    print(f"\nwinner: {winner}" + (f" -> {CANDIDATES[winner]}" if winner != "none" else " (0.6.0 stays)"))


if __name__ == "__main__":
    main()
