"""Apply session 15's rule (results/v12/SELECTION.md) to the v12 evaluation; every row is printed.

    python results/v12/apply_rule.py --eval results/v12/eval/eval.csv --bootstrap results/v12/bootstrap.json \
        --agreement results/v12/agreement/agreement.csv --probe results/v12/probe-scores.csv --sanity-dir results/v12

(a) mean MOS PCC over the four human-rated views at least 0.005 above 0.6.0's; then, best mean
first, (b) no view below 0.6.0 by a margin the paired bootstrap resolves, (c) the label-free
guards against 0.6.0 (real-chain and sim-test MOS PCC -0.01 at most, real AEC MOS RMSE +0.02 at
most, VoIP probe MOS PCC with NISQA -0.01 at most), (d) six of six strict sanity checks.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "v9"))
from apply_rule import HUMAN_VIEWS, read_mos_pcc, table  # noqa: E402  (session 11's table code)

INCUMBENT = "v060"
MARGIN = 0.005
CANDIDATES = {"v060-mos-lvl": "runs/v060-mos-lvl/best.pt", "v060-mos-nolvl": "runs/v060-mos-nolvl/best.pt",
              "soup-v11-mos-lvl": "runs/soup-v11-mos-lvl/best.pt"}
# (view, group, metric, worst allowed change against 0.6.0; sign: +1 higher is better)
GUARDS = [("real-chain", "all", "pcc", -0.01), ("sim-test", "all", "pcc", -0.01), ("aec-real", "all", "rmse", 0.02)]


def role_of(m: str) -> str:
    return "incumbent (0.6.0)" if m == INCUMBENT else "candidate" if m in CANDIDATES else "peer"


def agreement(path: Path) -> dict[tuple[str, str, str, str], float]:
    """(model, view, group, metric) -> value, MOS rows only."""
    out = {}
    with path.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["dimension"] == "mos":
                for k in ("pcc", "rmse"):
                    out[(r["model"], r["view"], r["group"], k)] = float(r[k])
    return out


def probe_pcc(path: Path) -> dict[str, float]:
    """Each scorer's all-file MOS PCC with NISQA on the VoIP symptom probe (its scores.csv)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    nisqa = np.array([float(r["NISQA:mos"]) for r in rows])
    names = [c[: -len(":mos")] for c in rows[0] if c.endswith(":mos") and c != "NISQA:mos"]
    return {n: float(np.corrcoef([float(r[f"{n}:mos"]) for r in rows], nisqa)[0, 1]) for n in names}


def sanity_passed(sanity_dir: Path, name: str) -> bool | None:
    path = sanity_dir / f"sanity-{name}.txt"
    return None if not path.is_file() else "6/6 checks passed" in path.read_text(encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--eval", nargs="+", default=["results/v12/eval/eval.csv"])
    p.add_argument("--bootstrap", type=Path, required=True)
    p.add_argument("--agreement", type=Path, required=True)
    p.add_argument("--probe", type=Path, required=True, help="the probe's scores.csv")
    p.add_argument("--sanity-dir", type=Path, default=Path("results/v12"))
    args = p.parse_args()
    pcc, models = read_mos_pcc(args.eval)
    print("# Session 15: the MOS output's level term. Mean MOS PCC over the four human-rated views\n")
    means = table(pcc, models, role_of)
    boot = json.loads(args.bootstrap.read_text(encoding="utf-8"))
    agree = agreement(args.agreement)
    probe = probe_pcc(args.probe)
    print("\n## The rule, every candidate\n")
    print("| candidate | (a) mean - 0.6.0 | (b) views resolved below | real-chain PCC | sim-test PCC | "
          "AEC RMSE | probe PCC | (c) | (d) sanity | qualifies |")
    print("|---|---:|---|---:|---:|---:|---:|---|---|---|")
    inc = {g: agree.get((INCUMBENT, v, grp, m)) for g, (v, grp, m, _) in zip("rsa", GUARDS, strict=True)}
    print(f"| v060 (incumbent) | | | {inc['r']:.3f} | {inc['s']:.3f} | {inc['a']:.3f} | "
          f"{probe.get(INCUMBENT, float('nan')):.3f} | | | |")
    winner = None
    for m in sorted(CANDIDATES, key=lambda k: -means.get(k, -1)):
        a = means[m] - means[INCUMBENT] >= MARGIN
        below = [v for v in HUMAN_VIEWS if boot.get(v, {}).get(m, {}).get("diff_hi", 0.0) < 0.0]
        vals = [agree[(m, v, grp, k)] for v, grp, k, _ in GUARDS]
        ok_c = all((val - agree[(INCUMBENT, v, grp, k)]) * (1 if k == "pcc" else -1) >= -abs(lim)
                   for val, (v, grp, k, lim) in zip(vals, GUARDS, strict=True))
        ok_c = ok_c and probe[m] - probe[INCUMBENT] >= -0.01
        sane = sanity_passed(args.sanity_dir, m)
        q = a and not below and ok_c and bool(sane)
        if q and winner is None:
            winner = m
        print(f"| {m} | {means[m] - means[INCUMBENT]:+.4f} {'yes' if a else 'no'} | {', '.join(below) or 'none'} | "
              f"{vals[0]:.3f} | {vals[1]:.3f} | {vals[2]:.3f} | {probe[m]:.3f} | {'yes' if ok_c else 'no'} | "
              f"{'not run' if sane is None else 'yes' if sane else 'no'} | {'yes' if q else 'no'} |")
    print(f"\nwinner: {winner or 'none (0.6.0 stays)'}")


if __name__ == "__main__":
    main()
