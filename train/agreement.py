"""Label-free generalisation: teacher-student agreement off the simulator (`python -m train agreement`).

Why: the hidden real-call sets showed the student far from its own teacher on impairments
the simulator rendered differently, while P.835 (the selection set for years) could not
show it. Agreement with the teachers needs no human ratings, so it can run on any audio:

- ``real-chain``: held-out talkers through real software (``python -m train realchain``);
- ``aec-real``: windows of real device recordings from devices held out of training
  (the test split of the ``real-clips`` rows);
- ``sim-test``: the simulator's own test split, per impairment family (what the student
  was trained on: an upper bound, not a measure of generalisation).

For each view and group (chain, family) it reports, per dimension, PCC and RMSE between
student and teacher and the mean offset (student - teacher): a student that ranks
impairment types differently from its teacher shows up as offsets of different signs
across groups, and as a pooled PCC below the within-group ones. The MOS teacher is the
manifest's ``mos`` column (the label the student learnt: NISQA, or the NISQA+DistillMOS
mean); ``nisqa_mos`` is reported beside it when present. Writes ``agreement.md``/``.csv``.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
from pathlib import Path

import numpy as np

from livesqa.audio import read_audio
from livesqa.spec import DIMENSIONS
from train.scorers import model_scorer

#: simulated condition token prefix -> family (train/simulate.py's kinds)
FAMILY_OF = {
    "noise": "noise", "babble": "noise", "ns": "noise", "agc": "noise", "talker": "talker",
    "echo": "echo", "farecho": "echo", "loss": "loss", "opusplc": "loss", "amrplc": "loss", "timeclip": "loss",
    "clip": "clipping", "hot": "clipping", "overload": "clipping", "codec": "codec", "band": "filter",
    "filter": "filter", "reverb": "acoustic", "level": "level", "mnru": "signal", "clean": "clean",
}


def group_of(view: str, row: dict[str, str]) -> str:
    """The group a row is reported in: chain (real-chain), recording kind (aec), or family."""
    cond = row.get("condition", "")
    if view == "real-chain":
        return row.get("con", "") or cond.split("@")[0]
    if view == "aec-real":
        return "doubletalk" if "doubletalk" in cond else "farend-singletalk" if "farend" in cond else "other"
    fams = sorted(families_of(cond)) or ["clean"]
    return fams[0] if len(fams) == 1 else "mixed"


def families_of(condition: str) -> set[str]:
    """The impairment families of a simulated condition (``kind:params+kind:params``).

    Parameters may hold ``+`` themselves (``overload:g711-alaw+18dB``, ``echo:44ms@-8dB+res``),
    so only fragments with a ``kind:`` prefix name a kind; clean and real rows have none."""
    if not condition or condition == "clean" or condition.startswith("real:"):
        return set()
    kinds = (re.sub(r"[^a-z]", "", t.split(":")[0]) for t in condition.split("+") if ":" in t)
    return {FAMILY_OF.get(k, k) for k in kinds}


def read_view(manifest: Path, view: str, max_rows: int = 0) -> list[dict[str, str]]:
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split") == "test" and r.get("mos")]
    if view == "aec-real":
        rows = [r for r in rows if r.get("condition", "").startswith("real:")]
    elif view == "sim-test":
        rows = [r for r in rows if not r.get("condition", "").startswith("real:")]
    if max_rows and len(rows) > max_rows:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_rows).round().astype(int)]
    return rows


def _stats(pred: np.ndarray, target: np.ndarray) -> tuple[float, float, float, int]:
    ok = np.isfinite(pred) & np.isfinite(target)
    p, t = pred[ok], target[ok]
    if len(p) < 3 or np.std(p) == 0 or np.std(t) == 0:
        pcc = math.nan
    else:
        pcc = float(np.corrcoef(p, t)[0, 1])
    rmse = float(np.sqrt(np.mean((p - t) ** 2))) if len(p) else math.nan
    bias = float(np.mean(p - t)) if len(p) else math.nan
    return pcc, rmse, bias, len(p)


def agreement(models: list[str], views: dict[str, Path], max_rows: int = 0) -> list[dict[str, object]]:
    """Rows (model, view, group, dimension, teacher, pcc, rmse, bias, n); group 'all' pools the view."""
    out: list[dict[str, object]] = []
    for view, manifest in views.items():
        rows = read_view(manifest, view, max_rows)
        if not rows:
            continue
        audio = [read_audio(manifest.parent / r["filepath_deg"], 16000) for r in rows]
        groups = np.array([group_of(view, r) for r in rows])
        teachers = {d: np.array([float(r[d]) if r.get(d) else math.nan for r in rows]) for d in DIMENSIONS}
        if all(r.get("nisqa_mos") for r in rows):
            teachers["mos(nisqa)"] = np.array([float(r["nisqa_mos"]) for r in rows])
        for model in models:
            scorer = model_scorer(model)
            pred = np.array([scorer.score(a, 16000) for a in audio])
            for key, target in teachers.items():
                k = DIMENSIONS.index(key.split("(")[0])
                for g in ["all", *sorted(set(groups.tolist()))]:
                    sel = np.ones(len(rows), bool) if g == "all" else groups == g
                    pcc, rmse, bias, n = _stats(pred[sel, k], target[sel])
                    out.append({"model": scorer.name, "view": view, "group": g, "dimension": key,
                                "pcc": pcc, "rmse": rmse, "bias": bias, "n": n})
    return out


def markdown(rows: list[dict[str, object]]) -> str:
    """One table per view: groups as rows; per model MOS PCC / RMSE / offset and the other dimensions' PCC."""
    lines = ["# Teacher-student agreement (label-free)", ""]
    views = list(dict.fromkeys(str(r["view"]) for r in rows))
    models = list(dict.fromkeys(str(r["model"]) for r in rows))
    index = {(r["model"], r["view"], r["group"], r["dimension"]): r for r in rows}
    for view in views:
        groups = list(dict.fromkeys(str(r["group"]) for r in rows if r["view"] == view))
        n_of = {g: next(int(r["n"]) for r in rows if r["view"] == view and r["group"] == g) for g in groups}  # type: ignore[call-overload]
        note = ("MOS against the MOS target (PCC / RMSE / mean offset student - teacher); "
                "NOI, COL, DIS, LOUD: PCC against NISQA.")
        lines += [f"## {view}", "", note, ""]
        head = "| group | n | " + " | ".join(f"{m} MOS PCC | RMSE | offset | NOI | COL | DIS | LOUD" for m in models)
        lines += [head + " |", "|---|---:|" + "---:|" * (7 * len(models))]
        for g in groups:
            cells = [g, str(n_of[g])]
            for m in models:
                r = index.get((m, view, g, "mos"))
                cells += [_f(r, "pcc"), _f(r, "rmse"), _f(r, "bias", signed=True)] if r else ["–"] * 3
                cells += [_f(index.get((m, view, g, d)), "pcc") for d in ("noi", "col", "dis", "loud")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_plot(rows: list[dict[str, object]], path: Path) -> bool:
    """Per view and group: MOS PCC and mean offset against the teacher, one bar per model."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    mos = [r for r in rows if r["dimension"] == "mos"]
    views = list(dict.fromkeys(str(r["view"]) for r in mos))
    models = list(dict.fromkeys(str(r["model"]) for r in mos))
    fig, axes = plt.subplots(2, len(views), figsize=(5 * len(views), 7), squeeze=False)
    for col, view in enumerate(views):
        groups = list(dict.fromkeys(str(r["group"]) for r in mos if r["view"] == view))
        x = np.arange(len(groups))
        width = 0.8 / max(1, len(models))
        for k, model in enumerate(models):
            vals = {str(r["group"]): r for r in mos if r["view"] == view and r["model"] == model}
            for row, key in ((0, "pcc"), (1, "bias")):
                heights = [float(vals[g][key]) if g in vals else np.nan for g in groups]  # type: ignore[arg-type]
                axes[row][col].bar(x + k * width, heights, width, label=model)
        for row, title in ((0, "MOS PCC with the teacher"), (1, "mean MOS offset (student - teacher)")):
            ax = axes[row][col]
            ax.set_xticks(x + 0.4 - width / 2, groups, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{view}: {title}", fontsize=9)
            ax.axhline(0, color="black", linewidth=0.5)
        axes[0][col].set_ylim(0, 1)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _f(row: dict[str, object] | None, key: str, signed: bool = False) -> str:
    if row is None:
        return "–"
    v = float(row[key])  # type: ignore[arg-type]
    return "–" if not math.isfinite(v) else (f"{v:+.2f}" if signed else f"{v:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train agreement", description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="checkpoint or ONNX (repeatable)")
    parser.add_argument("--corpus", default="cache/sim5/manifest.csv", help="corpus manifest (sim-test, aec-real)")
    parser.add_argument("--realchain", default="cache/realchain/manifest.csv")
    parser.add_argument("--sim-max", type=int, default=600, help="sim-test rows at most (evenly spaced)")
    parser.add_argument("--out-dir", default="results/agreement")
    args = parser.parse_args(argv)
    views = {k: Path(v) for k, v in (("real-chain", args.realchain), ("aec-real", args.corpus),
                                     ("sim-test", args.corpus)) if Path(v).is_file()}
    rows = agreement(args.model, {k: v for k, v in views.items() if k != "sim-test"})
    if "sim-test" in views:
        rows += agreement(args.model, {"sim-test": views["sim-test"]}, args.sim_max)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "agreement.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["model", "view", "group", "dimension", "pcc", "rmse", "bias", "n"])
        writer.writeheader()
        writer.writerows(rows)
    text = markdown(rows)
    (out / "agreement.md").write_text(text + "\n", encoding="utf-8")
    write_plot(rows, out / "agreement.png")
    print(text)
    return 0
