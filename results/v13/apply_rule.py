"""Apply session 16's level rules (results/v13/SELECTION.md, SELECTION-loud.md); every row is printed.

    python results/v13/apply_rule.py                      # SELECTION.md: v060-hinge, MOS and LOUD
    python results/v13/apply_rule.py --rule loud ...      # SELECTION-loud.md (see its text)

(a) level agreement on a level sweep's test split: RMSE against the teacher labels lower by at
least 20 % than 0.6.0's for each named dimension; (b) no human-rated view's MOS PCC below 0.6.0 by
a margin the paired bootstrap resolves, and the four-view mean not below 0.6.0's by more than
0.002; (c) session 15's label-free guards; (d) six of six strict sanity checks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "results" / "v9"))
import importlib.util

from apply_rule import HUMAN_VIEWS, read_mos_pcc, table

_spec = importlib.util.spec_from_file_location("rule_v12", ROOT / "results" / "v12" / "apply_rule.py")
assert _spec is not None and _spec.loader is not None
v12 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(v12)

INCUMBENT = "v060"
MIN_DROP = 0.20
MEAN_TOLERANCE = 0.002
RULES = {  # name -> (title, candidate run name, level dimensions judged, level-agreement file judged)
    "hinge": ("Session 16: the level hinge on all five outputs (SELECTION.md)", "v060-hinge", ("mos", "loud"),
              "level-agreement.json"),
    "loud": ("Session 16: the level hinge on LOUD only (SELECTION-loud.md)", "v060-hinge-loud", ("loud",),
             "level-agreement-fresh.json"),
}
LOUD_GUARDS = (("aec-real", "real AEC recordings"), ("real-chain", "real-chain set"))  # LOUD RMSE +0.02 at most


def loud_rmse(path: Path) -> dict[tuple[str, str], float]:
    """(model, view) -> LOUD RMSE over the view's whole set."""
    import csv

    with path.open(newline="", encoding="utf-8") as f:
        return {(r["model"], r["view"]): float(r["rmse"]) for r in csv.DictReader(f)
                if r["dimension"] == "loud" and r["group"] == "all"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rule", choices=sorted(RULES), default="hinge")
    p.add_argument("--dir", type=Path, default=ROOT / "results" / "v13")
    args = p.parse_args()
    title, cand, dims, level_file = RULES[args.rule]
    d = args.dir
    pcc, models = read_mos_pcc([str(d / "eval" / "eval.csv")])
    print(f"# {title}\n\nMean MOS PCC over the four human-rated views:\n")
    means = table(pcc, models, lambda m: "incumbent (0.6.0)" if m == INCUMBENT else "candidate" if m == cand else "peer")
    boot = json.loads((d / "bootstrap.json").read_text(encoding="utf-8"))
    agree = v12.agreement(d / "agreement" / "agreement.csv")
    probe = v12.probe_pcc(d / "probe-scores.csv")
    level = json.loads((d / level_file).read_text(encoding="utf-8"))["models"]
    ref_key = next(k for k in level if Path(k).parent.name == INCUMBENT)
    cand_key = next(k for k in level if Path(k).parent.name == cand)

    drops = {dim: 1 - level[cand_key]["rmse"][dim] / level[ref_key]["rmse"][dim] for dim in dims}
    ok_a = all(v >= MIN_DROP for v in drops.values())
    below = [v for v in HUMAN_VIEWS if boot.get(v, {}).get(cand, {}).get("diff_hi", 0.0) < 0.0]
    mean_change = means[cand] - means[INCUMBENT]
    ok_b = not below and mean_change >= -MEAN_TOLERANCE
    vals = [agree[(cand, v, grp, k)] for v, grp, k, _ in v12.GUARDS]
    incs = [agree[(INCUMBENT, v, grp, k)] for v, grp, k, _ in v12.GUARDS]
    ok_c = all((val - inc) * (1 if k == "pcc" else -1) >= -abs(lim)
               for val, inc, (_, _, k, lim) in zip(vals, incs, v12.GUARDS, strict=True))
    ok_c = ok_c and probe[cand] - probe[INCUMBENT] >= -0.01
    loud = loud_rmse(d / "agreement" / "agreement.csv")
    ok_loud = args.rule != "loud" or all(loud[(cand, v)] - loud[(INCUMBENT, v)] <= 0.02 for v, _ in LOUD_GUARDS)
    sane = v12.sanity_passed(d, cand)
    win = ok_a and ok_b and ok_c and ok_loud and bool(sane)
    print("\n## The rule\n")
    print("| check | 0.6.0 | candidate | holds? |")
    print("|---|---:|---:|---|")
    for dim in dims:
        print(f"| (a) level sweep {dim.upper()} RMSE (drop >= 20 %) | {level[ref_key]['rmse'][dim]:.3f} | "
              f"{level[cand_key]['rmse'][dim]:.3f} ({-100 * drops[dim]:+.1f} %) | {'yes' if drops[dim] >= MIN_DROP else 'no'} |")
    print(f"| (b) four-view mean MOS PCC (not below by > 0.002) | {means[INCUMBENT]:.4f} | {means[cand]:.4f} "
          f"({mean_change:+.4f}) | {'yes' if mean_change >= -MEAN_TOLERANCE else 'no'} |")
    print(f"| (b) views resolved below | | {', '.join(below) or 'none'} | {'yes' if not below else 'no'} |")
    names = ("real-chain MOS PCC", "sim-test MOS PCC", "real AEC MOS RMSE")
    for name, val, inc in zip(names, vals, incs, strict=True):
        print(f"| (c) {name} | {inc:.3f} | {val:.3f} | |")
    print(f"| (c) VoIP probe MOS PCC with NISQA | {probe[INCUMBENT]:.3f} | {probe[cand]:.3f} | {'yes' if ok_c else 'no'} (all guards) |")
    if args.rule == "loud":
        for v, name in LOUD_GUARDS:
            ok = loud[(cand, v)] - loud[(INCUMBENT, v)] <= 0.02
            print(f"| (c) {name} LOUD RMSE (+0.02 at most) | {loud[(INCUMBENT, v)]:.3f} | {loud[(cand, v)]:.3f} | "
                  f"{'yes' if ok else 'no'} |")
    print(f"| (d) strict sanity | 6/6 | {'not run' if sane is None else '6/6' if sane else 'fails'} | {'yes' if sane else 'no'} |")
    print(f"\nwinner: {cand if win else 'none (0.6.0 stays)'}")


if __name__ == "__main__":
    main()
