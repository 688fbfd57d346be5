"""Apply session 17's rule (results/v14/SELECTION.md) to the v14 evaluation; every row is printed.

    python results/v14/apply_rule.py > results/v14/selection.md                      # SELECTION.md
    python results/v14/apply_rule.py --rule lwf > results/v14/lwf/selection.md       # SELECTION-lwf.md
    python results/v14/apply_rule.py --rule tlwf > results/v14/tlwf/selection.md     # SELECTION-tlwf.md
    python results/v14/apply_rule.py --rule slow > results/v14/slow/selection.md     # SELECTION-slow.md

(a) mean MOS PCC over the four human-rated views at least 0.005 above 0.6.2's; then, best mean
first, (b) no view below 0.6.2 by a margin the paired bootstrap resolves, (c) the label-free guards
against 0.6.2 (real-chain and sim-test MOS PCC -0.01 at most, real AEC MOS RMSE +0.02 at most, VoIP
probe MOS PCC with NISQA -0.01 at most, fresh level-sweep MOS RMSE +0.02 at most), (d) six of six
strict sanity checks.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("v12_rule", HERE.parent / "v12" / "apply_rule.py")
assert _spec is not None and _spec.loader is not None
v12 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(v12)  # session 15's readers (agreement, probe_pcc, sanity_passed) and session 11's table
HUMAN_VIEWS, read_mos_pcc, table = v12.HUMAN_VIEWS, v12.read_mos_pcc, v12.table

INCUMBENT = "v060-hinge-loud"
INCUMBENT_PATH = "runs/v060-hinge-loud/best.pt"
MARGIN = 0.005
RULES = {  # rule -> (title, results folder, candidates)
    "refit": ("Session 17: a level-blind MOS output on 0.6.2's own scale (SELECTION.md)", HERE,
              {"v062-self-nolvl": "runs/v062-self-nolvl/best.pt", "v062-self-lvl": "runs/v062-self-lvl/best.pt"}),
    "lwf": ("Session 17: crops fine-tune with a 0.6.2-labelled replay (SELECTION-lwf.md)", HERE / "lwf",
            {"ft-v14-lwf-h": "runs/ft-v14-lwf-h/best.pt", "ft-v14-lwf-last-h": "runs/ft-v14-lwf-last-h/best.pt",
             "ft-v14-lwf-avg-h": "runs/ft-v14-lwf-avg-h/best.pt"}),
    "tlwf": ("Session 17: the same replay labelled by the teachers (SELECTION-tlwf.md)", HERE / "tlwf",
             {"ft-v14-tlwf-h": "runs/ft-v14-tlwf-h/best.pt", "ft-v14-tlwf-last-h": "runs/ft-v14-tlwf-last-h/best.pt",
              "ft-v14-tlwf-avg-h": "runs/ft-v14-tlwf-avg-h/best.pt"}),
    "slow": ("Session 17: the third rule's fine-tune at lr / 5 (SELECTION-slow.md)", HERE / "slow",
             {"ft-v14-slow-h": "runs/ft-v14-slow-h/best.pt", "ft-v14-slow-last-h": "runs/ft-v14-slow-last-h/best.pt",
              "ft-v14-slow-avg-h": "runs/ft-v14-slow-avg-h/best.pt"}),
}
# (view, group, metric, worst allowed change against 0.6.2)
GUARDS = [("real-chain", "all", "pcc", -0.01), ("sim-test", "all", "pcc", -0.01), ("aec-real", "all", "rmse", 0.02)]
PROBE_LIMIT = -0.01
SWEEP_LIMIT = 0.02


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rule", choices=sorted(RULES), default="refit")
    args = p.parse_args()
    title, d, candidates = RULES[args.rule]

    def role_of(m: str) -> str:
        return "incumbent (0.6.2)" if m == INCUMBENT else "candidate" if m in candidates else "peer"

    pcc, models = read_mos_pcc([str(d / "eval" / "eval.csv")])
    print(f"# {title}. Mean MOS PCC over the four human-rated views\n")
    means = table(pcc, models, role_of)
    boot = json.loads((d / "bootstrap.json").read_text(encoding="utf-8"))
    agree = v12.agreement(d / "agreement" / "agreement.csv")
    probe = v12.probe_pcc(d / "probe-scores.csv")
    sweep = json.loads((d / "level-agreement-fresh.json").read_text(encoding="utf-8"))["models"]
    sweep_rmse = {Path(k).parent.name: v["rmse"]["mos"] for k, v in sweep.items()}
    print("\n## The rule, every candidate\n")
    print("| candidate | (a) mean - 0.6.2 | (b) views resolved below | real-chain PCC | sim-test PCC | "
          "AEC RMSE | probe PCC | fresh-sweep MOS RMSE | (c) | (d) sanity | qualifies |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---|---|")
    inc = [agree[(INCUMBENT, v, grp, k)] for v, grp, k, _ in GUARDS]
    print(f"| {INCUMBENT} (incumbent, 0.6.2) | | | {inc[0]:.3f} | {inc[1]:.3f} | {inc[2]:.3f} | "
          f"{probe[INCUMBENT]:.3f} | {sweep_rmse[INCUMBENT]:.3f} | | "
          f"{'yes' if v12.sanity_passed(HERE.parent / 'v13' / 'loud', INCUMBENT) else 'see results/sanity'} | |")
    winner = None
    for m in sorted(candidates, key=lambda k: -means.get(k, -1)):
        a = means[m] - means[INCUMBENT] >= MARGIN
        below = [v for v in HUMAN_VIEWS if boot.get(v, {}).get(m, {}).get("diff_hi", 0.0) < 0.0]
        vals = [agree[(m, v, grp, k)] for v, grp, k, _ in GUARDS]
        ok_c = all((val - ref) * (1 if k == "pcc" else -1) >= -abs(lim)
                   for val, ref, (_, _, k, lim) in zip(vals, inc, GUARDS, strict=True))
        ok_c = ok_c and probe[m] - probe[INCUMBENT] >= PROBE_LIMIT
        ok_c = ok_c and sweep_rmse[m] - sweep_rmse[INCUMBENT] <= SWEEP_LIMIT
        sane = v12.sanity_passed(d, m)
        q = a and not below and ok_c and bool(sane)
        if q and winner is None:
            winner = m
        print(f"| {m} | {means[m] - means[INCUMBENT]:+.4f} {'yes' if a else 'no'} | {', '.join(below) or 'none'} | "
              f"{vals[0]:.3f} | {vals[1]:.3f} | {vals[2]:.3f} | {probe[m]:.3f} | {sweep_rmse[m]:.3f} | "
              f"{'yes' if ok_c else 'no'} | {'not run' if sane is None else 'yes' if sane else 'no'} | "
              f"{'yes' if q else 'no'} |")
    print(f"\nwinner: {winner or 'none (0.6.2 stays)'}")


if __name__ == "__main__":
    main()
