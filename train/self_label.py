"""Label a corpus with a model's own scores (`python -m train self-label`).

Why: a fine-tune toward new labels forgets what the model knew on audio the new labels do not
cover (``results/v14/SELECTION-lwf.md``). Clips of the old distribution labelled by the model
itself, mixed into the new data, hold those scores in place (learning without forgetting): on
them the loss is the distance to the model's own outputs.

Each clip is scored whole (one window for clips of the runtime's window length) by
``train.scorers.model_scorer`` (ONNX through the runtime's scorer, or a checkpoint), and its five
scores are written into the manifest's target columns; ``teacher`` names the model. Rows of other
splits are left out.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from tqdm import tqdm

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train.scorers import model_scorer
from train.simulate import write_manifest

SAMPLE_RATE_HZ = 16000


def self_label(manifest: Path, model: Path, out: Path, splits: tuple[str, ...]) -> int:
    """Write ``out``: the ``splits`` rows of ``manifest`` with ``model``'s scores as targets."""
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] in splits]
    if not rows:
        raise ConfigError(f"{manifest}: no rows in splits {', '.join(splits)}")
    scorer = model_scorer(model)
    base = manifest.parent
    for r in tqdm(rows, desc=f"self-label ({model.name})", unit="clip"):
        scores = scorer.score(read_audio(base / r["filepath_deg"], SAMPLE_RATE_HZ), SAMPLE_RATE_HZ)
        for name, value in zip(DIMENSIONS, scores, strict=True):
            r[name] = f"{float(value):.4f}"
        r["teacher"] = f"self:{model.name}"
    for r in rows:  # paths stay valid from the output's folder
        r["filepath_deg"] = os.path.relpath((base / r["filepath_deg"]).resolve(), out.parent.resolve())
    write_manifest(out, rows)
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train self-label", description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, type=Path, help="corpus manifest (the simulator's columns)")
    parser.add_argument("--model", required=True, type=Path, help="ONNX file or checkpoint whose scores become the labels")
    parser.add_argument("--splits", default="train,val", help="comma-separated splits to keep (default train,val)")
    parser.add_argument("--out", required=True, type=Path, help="manifest to write")
    args = parser.parse_args(argv)
    if not args.manifest.is_file():
        raise ConfigError(f"manifest not found: {args.manifest}")
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    n = self_label(args.manifest, args.model, args.out, splits)
    print(f"wrote {args.out}: {n} clips labelled by {args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
