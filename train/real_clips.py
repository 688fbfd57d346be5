"""Real device recordings as corpus clips (`python -m train real-clips`).

Why: every other clip of the corpus was made by our simulator. The AEC Challenge baseline
recordings (``real/aec-challenge-baseline/``, MIT) come from 98 real devices in real rooms,
with real residual echo, device colouring and room noise: audio no simulator made. They are
cut into windows of the student's own lengths (the same mix of 4 s and 1.5-4 s windows as the
simulated v3 corpus) and appended to a corpus manifest, so the teachers label exactly what
the student sees. The split is by device/room (the file-name prefix before the first ``_``),
hashed like speakers, so no device of the test split is heard in training: its windows are
the label-free "real recordings" view of teacher-student agreement.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from train.asr_data import resolve_data_root
from train.manifest_lock import manifest_locked
from train.sim_catalogue import split_of
from train.simulate import MANIFEST_COLUMNS, write_clip

AEC_FOLDER = "real/aec-challenge-baseline"
SAMPLE_RATE_HZ = 16000


def device_of(path: Path) -> str:
    """The device/room id: the file-name prefix before the first ``_``."""
    return path.name.split("_", 1)[0]


def windows(n_samples: int, rng: np.random.Generator, max_s: float, min_s: float,
            fixed_fraction: float) -> list[tuple[int, int]]:
    """Consecutive, non-overlapping (start, end) windows covering a recording from its start."""
    out: list[tuple[int, int]] = []
    pos = 0
    while True:
        length_s = max_s if rng.random() < fixed_fraction else float(rng.uniform(min_s, max_s))
        length = int(length_s * SAMPLE_RATE_HZ)
        if pos + length > n_samples:
            return out
        out.append((pos, pos + length))
        pos += length


def add_real_clips(manifest: Path, data_root: Path, seed: int = 20261129, max_s: float = 4.0,
                   min_s: float = 1.5, fixed_fraction: float = 0.7, progress: bool = True) -> int:
    """Cut every AEC recording into windows, write them beside the manifest, append rows.

    Idempotent: recordings whose windows are already listed are skipped.
    """
    from tqdm import tqdm

    folder = data_root / AEC_FOLDER
    files = sorted(folder.rglob("*.opus"))
    if not files:
        raise ConfigError(f"no recordings under {folder}")
    if not manifest.is_file():
        raise ConfigError(f"manifest not found: {manifest} (run `python -m train simulate` first)")
    with manifest.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or MANIFEST_COLUMNS)
        listed = {r.get("source", "") for r in reader}
    out_dir = manifest.parent / "real"
    out_dir.mkdir(parents=True, exist_ok=True)
    added = 0
    for k, path in enumerate(tqdm(files, desc="real clips", unit="file", disable=not progress)):
        rel = str(path.relative_to(data_root))
        if f"{rel}@0" in listed:
            continue
        audio = read_audio(path, SAMPLE_RATE_HZ)
        rng = np.random.default_rng([seed, k])
        device = device_of(path)
        split = split_of(f"aec-{device}")
        rows = []
        for j, (a, b) in enumerate(windows(len(audio), rng, max_s, min_s, fixed_fraction)):
            name = f"{path.parent.name}_{path.stem}_{j:02d}.flac"
            write_clip(out_dir / name, audio[a:b], SAMPLE_RATE_HZ)
            rows.append({"db": f"aec_real_{split}", "con": f"aec{k:04d}-{j:02d}", "filepath_deg": f"real/{name}",
                         "filename_deg": name, "source": f"{rel}@{j}", "split": split,
                         "condition": f"real:aec-{path.parent.name}-{path.stem.split('_', 1)[1]}",
                         "speaker": f"aec-{device}", "duration_s": f"{(b - a) / SAMPLE_RATE_HZ:.3f}"})
        with manifest_locked(manifest), manifest.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=fields, extrasaction="ignore").writerows(rows)
        added += len(rows)
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train real-clips", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", default="cache/sim5/manifest.csv")
    parser.add_argument("--data-root")
    args = parser.parse_args(argv)
    n = add_real_clips(Path(args.manifest), resolve_data_root(args.data_root))
    print(f"appended {n} windows of real recordings to {args.manifest}")
    return 0
