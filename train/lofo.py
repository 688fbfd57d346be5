"""Leave-one-family-out fine-tunes (`python -m train lofo`): which impairment families transfer.

Why: a student that has never heard an impairment family must still score it the way its
teacher does, because real calls bring renderings no simulator made. Holding one family out
of a short fine-tune and measuring teacher-student agreement on the test clips that contain
it shows how much of that family the student gets from the others. Each run starts from the
same checkpoint, with the same steps and learning rates as a control run that sees every
family; the gap between the two on the held-out family is what training on it buys.

Writes ``lofo.md`` and ``lofo.csv`` under ``--out-dir``; the runs go to ``runs/lofo-<family>``
(resumable: a finished run is not trained again).
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from train.agreement import FAMILY_OF, families_of

CONTROL = "none"


def filtered_manifest(corpus: Path, family: str) -> Path:
    """A copy of ``corpus`` whose train split lacks every clip with ``family`` (val/test kept).

    Written beside the corpus so that its relative clip paths still resolve."""
    out = corpus.with_name(f"lofo-{family}.csv")
    with corpus.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields, rows = list(reader.fieldnames or []), list(reader)
    keep = [r for r in rows if family == CONTROL or r.get("split") != "train"
            or family not in families_of(r.get("condition", ""))]
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(keep)
    return out


def train_run(config: str, family: str, manifest: Path, init: str, steps: int, overrides: list[str]) -> Path:
    """One short fine-tune (a subprocess of `python -m train finetune`); returns its last.pt."""
    run = f"lofo-{family}"
    last = Path("runs") / run / "last.pt"
    cmd = [sys.executable, "-m", "train", "finetune", "--config", config,
           "--set", f"finetune.run={run}", "--set", f"finetune.manifest={manifest}",
           "--set", "finetune.init=checkpoint", "--set", f"finetune.init_checkpoint={init}",
           "--set", "finetune.schedule=cosine", "--set", f"finetune.total_steps={steps}",
           "--set", f"finetune.max_steps={steps}", "--set", "finetune.crop_s=0",
           "--set", "finetune.val_minutes=0", "--set", "finetune.val_max_clips=100",
           "--set", "finetune.max_minutes=120"]
    for o in overrides:
        cmd += ["--set", o]
    subprocess.run(cmd, check=True)
    return last


def held_out_rows(corpus: Path, family: str, max_rows: int) -> list[dict[str, str]]:
    """Simulated test clips that contain ``family`` (evenly spaced, at most ``max_rows``)."""
    with corpus.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split") == "test" and r.get("mos")
                and family in families_of(r.get("condition", ""))]
    if max_rows and len(rows) > max_rows:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_rows).round().astype(int)]
    return rows


def mos_agreement(checkpoint: Path | str, corpus: Path, rows: list[dict[str, str]]) -> tuple[float, float, float]:
    """(PCC, RMSE, mean offset student - teacher) of MOS on ``rows``."""
    from train.scorers import model_scorer

    scorer = model_scorer(checkpoint)
    pred = np.array([scorer.score(read_audio(corpus.parent / r["filepath_deg"], 16000), 16000)[0] for r in rows])
    target = np.array([float(r["mos"]) for r in rows])
    pcc = float(np.corrcoef(pred, target)[0, 1]) if len(rows) > 2 and np.std(pred) > 0 else math.nan
    return pcc, float(np.sqrt(np.mean((pred - target) ** 2))), float(np.mean(pred - target))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train lofo", description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/train/small.toml")
    p.add_argument("--corpus", default="cache/sim6/manifest.csv", help="labelled corpus manifest")
    p.add_argument("--families", default="loss,clipping,talker,echo", help="families to hold out, comma-separated")
    p.add_argument("--init", default="runs/v040/best.pt", help="checkpoint every run starts from")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per run (cosine)")
    p.add_argument("--max-rows", type=int, default=200, help="held-out test clips per family at most")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="finetune.KEY=VALUE")
    p.add_argument("--out-dir", default="results/lofo")
    args = p.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_file():
        raise ConfigError(f"--corpus {corpus}: not found (run `python -m train simulate` and `label` first)")
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    known = set(FAMILY_OF.values())
    if not families or set(families) - known:
        raise ConfigError(f"--families {args.families!r}: choose from {', '.join(sorted(known))}")
    checkpoints = {fam: train_run(args.config, fam, filtered_manifest(corpus, fam), args.init, args.steps,
                                  args.overrides) for fam in [CONTROL, *families]}
    out_rows = []
    for fam in families:
        rows = held_out_rows(corpus, fam, args.max_rows)
        for model, ckpt in (("start", args.init), ("control", checkpoints[CONTROL]), ("held out", checkpoints[fam])):
            pcc, rmse, bias = mos_agreement(ckpt, corpus, rows)
            out_rows.append({"family": fam, "model": model, "n": len(rows), "pcc": pcc, "rmse": rmse, "bias": bias})
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "lofo.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(out_rows[0]))
        w.writeheader()
        w.writerows(out_rows)
    (out / "lofo.md").write_text(markdown(out_rows, args), encoding="utf-8")
    print((out / "lofo.md").read_text(encoding="utf-8"))
    return 0


def markdown(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    """One row per held-out family: MOS agreement of the start, the control and the held-out run."""
    lines = ["# Leave-one-family-out: MOS agreement with the teachers on the held-out family", "",
             f"Every run: `{args.init}` fine-tuned {args.steps} cosine steps on `{args.corpus}` (the control with "
             "every family, each other run without the clips of one family in its train split); scored on the "
             "test clips that contain the family (alone or in a chain). Cells: PCC / RMSE / mean offset "
             "(student - teacher MOS target).", "",
             "| held-out family | n | start | control (all families) | family held out | PCC gap (control - held out) |",
             "|---|---:|---|---|---|---:|"]
    for fam in dict.fromkeys(str(r["family"]) for r in rows):
        cell = {str(r["model"]): r for r in rows if r["family"] == fam}
        fmt = lambda r: f"{r['pcc']:.3f} / {r['rmse']:.3f} / {r['bias']:+.2f}"  # noqa: E731
        gap = float(cell["control"]["pcc"]) - float(cell["held out"]["pcc"])  # type: ignore[arg-type]
        lines.append(f"| {fam} | {cell['control']['n']} | {fmt(cell['start'])} | {fmt(cell['control'])} | "
                     f"{fmt(cell['held out'])} | {gap:+.3f} |")
    return "\n".join(lines) + "\n"


__all__ = ["families_of", "filtered_manifest", "held_out_rows", "main"]
