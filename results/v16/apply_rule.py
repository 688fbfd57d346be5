"""Apply session 19's rules (results/v16/SELECTION-*.md) to the v16 evaluation; every row is printed.

    python results/v16/apply_rule.py --rule wise > results/v16/selection.md
    python results/v16/apply_rule.py --rule nbn > results/v16/nbn/selection.md
    python results/v16/apply_rule.py --rule mnru > results/v16/mnru/selection.md

(a) on the new fresh narrowband-path set, MOS RMSE against the target below 0.6.2's by a margin the
paired bootstrap resolves (2,000 resamples of the clips, seed 0, 95 % interval of the difference
below zero) and MOS PCC not below 0.6.2's; (b)-(d) as session 18's (results/v15/apply_rule.py).
The no-op control is printed with the candidates and can never win. The second rule (nbn) is the
same with (b)'s margin 0.005 (a view is lost when resolved below 0.6.2 by more than that); so is the
third (mnru).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

HERE = Path(__file__).resolve().parent
RULES = {  # rule -> (title, results folder, candidates, controls, (b)'s margin)
    "wise": ("Session 19: the narrowband repair interpolated towards 0.6.0 (SELECTION-wise.md)", HERE,
             ["wise-25-h", "wise-50-h", "wise-75-h"], ("ft-v16-noop-h",), 0.0),
    "nbn": ("Session 19: the repair without dropout, narrowband noise taught (SELECTION-nbn.md)", HERE / "nbn",
            ["ft-v16-nbn-h", "ft-v16-nbn-avg-h"], (), 0.005),
    "mnru": ("Session 19: the repair taught MNRU through the phone paths (SELECTION-mnru.md)", HERE / "mnru",
             ["ft-v16-mnru-h", "ft-v16-mnru-avg-h"], (), 0.005),
}
RESAMPLES = 2000


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


v15 = _load("v15_rule", HERE.parent / "v15" / "apply_rule.py")  # session 18's judge: (b)-(d) and the table


def rmse_diff_interval(pred: np.ndarray, ref: np.ndarray, target: np.ndarray, seed: int = 0,
                       resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """MOS RMSE of ``pred`` minus that of ``ref`` and its 95 % paired-bootstrap interval over clips."""
    rng = np.random.default_rng(seed)
    e1, e0 = (pred - target) ** 2, (ref - target) ** 2
    idx = rng.integers(0, len(target), size=(resamples, len(target)))
    diffs = np.sqrt(e1[idx].mean(1)) - np.sqrt(e0[idx].mean(1))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(np.sqrt(e1.mean()) - np.sqrt(e0.mean())), float(lo), float(hi)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rule", choices=sorted(RULES), default="wise")
    title, d, candidates, controls, margin = RULES[p.parse_args().rule]
    saved = np.load(d / "fresh-predictions.npz")
    target = saved["target"][:, 0]
    ref = saved[v15.INCUMBENT][:, 0]

    def resolved_cut(m: str, f: dict[str, float], f0: dict[str, float]) -> tuple[bool, str]:
        diff, lo, hi = rmse_diff_interval(saved[m][:, 0], ref, target)
        change = f["mos_rmse"] / f0["mos_rmse"] - 1
        return hi < 0.0 and f["mos_pcc"] >= f0["mos_pcc"], (
            f"{f['mos_rmse']:.3f} ({100 * change:+.1f} %; diff {diff:+.3f} [{lo:+.3f}, {hi:+.3f}])")

    v15.judge(title, d, candidates, resolved_cut, fresh_name="fresh.json", controls=controls, margin=margin)


if __name__ == "__main__":
    main()
