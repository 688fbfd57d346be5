"""The evaluation tables as one picture (`results/eval/eval.png`).

Why: which model wins where, and by how much against NISQA and DNSMOS, is quicker to see
in grouped bars than to read across four Markdown tables. One panel per dataset; bars are
PCC per dimension that the dataset labels (P.835: MOS, NOI, COL); one bar colour per model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from livesqa.spec import DIMENSIONS


def write_eval_plot(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Grouped PCC bars from ``eval.csv``-style rows; False (nothing written) if no finite PCC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = [r for r in rows if isinstance(r["pcc"], float) and math.isfinite(r["pcc"])]
    datasets = list(dict.fromkeys(r["dataset"] for r in finite))
    models = list(dict.fromkeys(r["model"] for r in finite))
    if not datasets:
        return False
    pcc = {(r["dataset"], r["model"], r["dimension"]): r["pcc"] for r in finite}
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.2 + 2.6 * len(datasets), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    width = 0.8 / max(len(models), 1)
    for ax, ds in zip(axes[0], datasets, strict=True):
        dims = [d for d in DIMENSIONS if any((ds, m, d) in pcc for m in models)]
        for k, model in enumerate(models):
            xs = [i + (k - (len(models) - 1) / 2) * width for i in range(len(dims))]
            ys = [pcc.get((ds, model, d), math.nan) for d in dims]
            ax.bar(xs, ys, width, color=colours(k % 10), label=model)
        ax.set_xticks(range(len(dims)), [d.upper() for d in dims])
        ax.set_ylim(min(0.0, *(v for (d_, _, _), v in pcc.items() if d_ == ds)), 1.0)
        ax.set_title(ds)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("PCC")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(models), 4), fontsize="small")
    fig.tight_layout(rect=(0, 0.06 + 0.05 * math.ceil(len(models) / 4), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
