"""Crops of longer streams as a labelled corpus (`python -m train window-crops`), issue #13 item 4.

Why: in a stream of 4-10 s the impairments vary (a talker starts, a burst of loss, echo only
while the far end speaks), so a label for the whole stream is not the label of any window the
student sees. Here each stream gives ``--per-stream`` crops, cut and written as clips of their
own, so that ``python -m train label`` gives the teachers exactly the audio the student trains
on. The first crop of a stream is one runtime window (4 s); the others are 1.5-4 s, the short
inputs the runtime scores as one window of their own length. Splits, conditions and talkers are
carried from the stream, so no talker or device changes split.

The crop offsets come from ``--seed`` and the stream's row, so a rerun writes the same corpus;
streams whose crops are already listed are skipped (resume).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from train.manifest_lock import manifest_locked
from train.simulate import MANIFEST_COLUMNS, write_clip, write_manifest

SAMPLE_RATE_HZ = 16000
WINDOW_S = 4.0


def crop_spans(n_samples: int, per_stream: int, rng: np.random.Generator, min_s: float = 1.5,
               max_s: float = WINDOW_S) -> list[tuple[int, int]]:
    """``per_stream`` (start, end) sample spans inside ``n_samples``: the first ``max_s`` long
    (or the whole stream if shorter), the rest of a uniform length in [min_s, max_s)."""
    if per_stream < 1:
        raise ConfigError(f"--per-stream = {per_stream}: need at least 1")
    spans = []
    for k in range(per_stream):
        length_s = max_s if k == 0 else float(rng.uniform(min_s, max_s))
        length = min(n_samples, int(round(length_s * SAMPLE_RATE_HZ)))
        start = int(rng.integers(0, n_samples - length + 1))
        spans.append((start, start + length))
    return spans


def _rows(manifest: Path) -> list[dict[str, str]]:
    if not manifest.is_file():
        raise ConfigError(f"manifest not found: {manifest}")
    with manifest.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def crop_corpus(manifests: list[Path], out_dir: Path, per_stream: int = 2, seed: int = 20261203,
                min_s: float = 1.5, progress: bool = True) -> int:
    """Write the crops of every stream listed in ``manifests`` under ``out_dir``; returns how
    many crops were added now. ``out_dir/manifest.csv`` uses the simulator's columns."""
    from tqdm import tqdm

    out_manifest = out_dir / "manifest.csv"
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    done_rows = _rows(out_manifest) if out_manifest.is_file() else []
    done_sources = {r["source"].rsplit("@", 1)[0] for r in done_rows}
    if not out_manifest.is_file():
        write_manifest(out_manifest, [])
    streams = [(m, i, r) for m in manifests for i, r in enumerate(_rows(m))]
    added = 0
    batch: list[dict[str, str]] = []
    for m_index, (manifest, i, row) in enumerate(tqdm(streams, desc="crops", unit="stream", disable=not progress)):
        source = f"{manifest.parent.name}/{row['filepath_deg']}"
        if source in done_sources:
            continue
        audio = read_audio(manifest.parent / row["filepath_deg"], SAMPLE_RATE_HZ)
        rng = np.random.default_rng([seed, manifests.index(manifest), i])
        for k, (a, b) in enumerate(crop_spans(len(audio), per_stream, rng, min_s)):
            name = f"w{m_index:06d}-{k}.flac"
            write_clip(out_dir / "clips" / name, audio[a:b], SAMPLE_RATE_HZ)
            batch.append({"db": row["db"], "con": f"{row['con']}-{k}", "filepath_deg": f"clips/{name}",
                          "filename_deg": name, "source": f"{source}@{a / SAMPLE_RATE_HZ:.5f}",
                          "split": row["split"], "condition": row["condition"], "speaker": row.get("speaker", ""),
                          "noise_file": row.get("noise_file", ""), "seed": str(seed),
                          "duration_s": f"{(b - a) / SAMPLE_RATE_HZ:.3f}"})
        if len(batch) >= 200 or m_index == len(streams) - 1:
            _append(out_manifest, batch)
            added += len(batch)
            batch = []
    if batch:
        _append(out_manifest, batch)
        added += len(batch)
    return added


def _append(manifest: Path, rows: list[dict[str, str]]) -> None:
    with manifest_locked(manifest), manifest.open("a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore").writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train window-crops", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", action="append", required=True,
                        help="a corpus manifest of streams (repeat for several)")
    parser.add_argument("--out-dir", required=True, help="where the crops and their manifest.csv go")
    parser.add_argument("--per-stream", type=int, default=2, help="crops per stream: one 4 s window, the rest 1.5-4 s")
    parser.add_argument("--min-s", type=float, default=1.5, help="shortest crop in seconds")
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args(argv)
    n = crop_corpus([Path(m) for m in args.manifest], Path(args.out_dir), args.per_stream, args.seed, args.min_s)
    print(f"{args.out_dir}/manifest.csv: {n} crops added")
    return 0
