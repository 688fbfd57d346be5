"""Apply session 18's rule (results/v15/SELECTION-nb.md) to the v15 evaluation; every row is printed.

    python results/v15/apply_rule.py --rule nb > results/v15/nb/selection.md      # SELECTION-nb.md
    python results/v15/apply_rule.py --rule nb2 > results/v15/nb2/selection.md    # SELECTION-nb2.md

(a) fresh narrowband-path set: MOS RMSE against the target at least 20 % below 0.6.2's and MOS PCC
not below it; (b) no human-rated view below 0.6.2 by a margin the paired bootstrap resolves, and the
four-view mean not below 0.6.2's by more than 0.002; (c) session 17's label-free guards; (d) six of
six strict sanity checks. Of the candidates meeting all four, the lowest fresh-set MOS RMSE wins.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
RULES = {  # rule -> (title, results folder, run name)
    "nb": ("Session 18: the narrowband-path repair (SELECTION-nb.md)", HERE / "nb", "ft-v15-nb"),
    "nb2": ("Session 18: the repair on the v2 render, a telephone leg (SELECTION-nb2.md)", HERE / "nb2", "ft-v15-nb2"),
}


def _load(name: str, path: Path) -> ModuleType:
    """A sibling session's rule script, loaded as a module (its readers and limits are reused)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


v12 = _load("v12_rule", HERE.parent / "v12" / "apply_rule.py")  # readers: agreement, probe_pcc, sanity_passed
v14 = _load("v14_rule", HERE.parent / "v14" / "apply_rule.py")  # session 17's guards and their limits
INCUMBENT = "v060-hinge-loud"
RMSE_CUT = 0.20
MEAN_SLACK = 0.002


FreshTest = Callable[[str, dict[str, float], dict[str, float]], tuple[bool, str]]


def twenty_percent_cut(m: str, f: dict[str, float], f0: dict[str, float]) -> tuple[bool, str]:
    """Session 18's (a): fresh MOS RMSE at least 20 % below 0.6.2's and MOS PCC not below it."""
    change = f["mos_rmse"] / f0["mos_rmse"] - 1
    return change <= -RMSE_CUT and f["mos_pcc"] >= f0["mos_pcc"], f"{f['mos_rmse']:.3f} ({100 * change:+.1f} %)"


def judge(title: str, d: Path, candidates: list[str], fresh_test: FreshTest, fresh_name: str = "nb-fresh.json",
          controls: tuple[str, ...] = (), margin: float = 0.0) -> str | None:
    """Print the four-view table and the rule's row for every candidate (and control); return the winner.

    A human-rated view counts against a candidate when the paired bootstrap puts it below 0.6.2 by
    more than ``margin`` (the upper end of the 95 % interval of the difference below -margin)."""
    def role_of(m: str) -> str:
        return ("incumbent (0.6.2)" if m == INCUMBENT else "candidate" if m in candidates
                else "control" if m in controls else "peer")

    pcc, models = v12.read_mos_pcc([str(d / "eval" / "eval.csv")])
    print(f"# {title}. Mean MOS PCC over the four human-rated views\n")
    means = v12.table(pcc, models, role_of)
    boot = json.loads((d / "bootstrap.json").read_text(encoding="utf-8"))
    agree = v12.agreement(d / "agreement" / "agreement.csv")
    probe = v12.probe_pcc(d / "probe-scores.csv")
    sweep = json.loads((d / "level-agreement-fresh.json").read_text(encoding="utf-8"))["models"]
    sweep_rmse = {Path(k).parent.name: v["rmse"]["mos"] for k, v in sweep.items()}
    fresh = {Path(k).parent.name: v for k, v in json.loads((d / fresh_name).read_text(encoding="utf-8")).items()}
    guards = v14.GUARDS
    inc = [agree[(INCUMBENT, v, grp, k)] for v, grp, k, _ in guards]
    f0 = fresh[INCUMBENT]
    print("\n## The rule, every candidate\n")
    print("| candidate | fresh MOS RMSE (change) | fresh MOS PCC | (a) | mean - 0.6.2 | views resolved below | (b) | "
          "real-chain PCC | sim-test PCC | AEC RMSE | probe PCC | fresh-sweep MOS RMSE | (c) | (d) sanity | qualifies |")
    print("|---|---:|---:|---|---:|---|---|---:|---:|---:|---:|---:|---|---|---|")
    print(f"| {INCUMBENT} (incumbent, 0.6.2) | {f0['mos_rmse']:.3f} | {f0['mos_pcc']:.3f} | | | | | "
          f"{inc[0]:.3f} | {inc[1]:.3f} | {inc[2]:.3f} | {probe[INCUMBENT]:.3f} | {sweep_rmse[INCUMBENT]:.3f} | | "
          f"{'yes' if v12.sanity_passed(HERE.parent / 'v13' / 'loud', INCUMBENT) else 'see results/sanity'} | |")
    passing = []
    for m in [*candidates, *controls]:
        f = fresh[m]
        a, shown = fresh_test(m, f, f0)
        below = [v for v in v12.HUMAN_VIEWS if boot.get(v, {}).get(m, {}).get("diff_hi", 0.0) < -margin]
        dmean = means[m] - means[INCUMBENT]
        b = not below and dmean >= -MEAN_SLACK
        vals = [agree[(m, v, grp, k)] for v, grp, k, _ in guards]
        c = all((val - ref) * (1 if k == "pcc" else -1) >= -abs(lim)
                for val, ref, (_, _, k, lim) in zip(vals, inc, guards, strict=True))
        c = c and probe[m] - probe[INCUMBENT] >= v14.PROBE_LIMIT and sweep_rmse[m] - sweep_rmse[INCUMBENT] <= v14.SWEEP_LIMIT
        sane = v12.sanity_passed(d, m)
        q = a and b and c and bool(sane)
        if q and m in candidates:
            passing.append((f["mos_rmse"], m))
        label = f"{m} (control)" if m in controls else m
        print(f"| {label} | {shown} | {f['mos_pcc']:.3f} | {'yes' if a else 'no'} | "
              f"{dmean:+.4f} | {', '.join(below) or 'none'} | {'yes' if b else 'no'} | "
              f"{vals[0]:.3f} | {vals[1]:.3f} | {vals[2]:.3f} | {probe[m]:.3f} | {sweep_rmse[m]:.3f} | "
              f"{'yes' if c else 'no'} | {'not run' if sane is None else 'yes' if sane else 'no'} | "
              f"{'n/a' if m in controls else 'yes' if q else 'no'} |")
    winner = min(passing)[1] if passing else None
    print(f"\nwinner: {winner or 'none (0.6.2 stays)'}")
    return winner


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rule", choices=sorted(RULES), default="nb")
    args = p.parse_args()
    title, d, run = RULES[args.rule]
    judge(title, d, [f"{run}-h", f"{run}-avg-h"], twenty_percent_cut)  # the rule's fixed pair


if __name__ == "__main__":
    main()
