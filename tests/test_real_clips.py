"""AEC real-recording windows: contiguous windows, device-level split, idempotent append."""

from __future__ import annotations

import csv
from itertools import pairwise
from pathlib import Path

import numpy as np
import soundfile as sf

from train.real_clips import add_real_clips, device_of, windows
from train.simulate import MANIFEST_COLUMNS


def test_windows_are_contiguous_and_within_the_recording() -> None:
    rng = np.random.default_rng(0)
    w = windows(16000 * 30, rng, 4.0, 1.5, 0.7)
    assert w[0][0] == 0 and all(a[1] == b[0] for a, b in pairwise(w))
    assert w[-1][1] <= 16000 * 30 and all(1.5 * 16000 <= b - a <= 4.0 * 16000 for a, b in w)


def test_rows_split_by_device_and_rerun_adds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "data"
    folder = root / "real" / "aec-challenge-baseline" / "noisy"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for dev in ("devA", "devB", "devC"):
        for kind in ("doubletalk", "farend_singletalk"):
            sf.write(folder / f"{dev}_{kind}.opus", (0.05 * rng.standard_normal(16000 * 10)).astype(np.float32),
                     16000, format="OGG", subtype="OPUS")
    manifest = tmp_path / "corpus" / "manifest.csv"
    manifest.parent.mkdir()
    with manifest.open("w", newline="") as f:
        csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS).writeheader()
    n = add_real_clips(manifest, root, progress=False)
    assert n > 0 and add_real_clips(manifest, root, progress=False) == 0
    rows = list(csv.DictReader(manifest.open()))
    assert len(rows) == n
    split_of_device: dict[str, set[str]] = {}
    for r in rows:
        split_of_device.setdefault(r["speaker"], set()).add(r["split"])
        assert (manifest.parent / r["filepath_deg"]).is_file() and r["condition"].startswith("real:aec-noisy")
    assert all(len(s) == 1 for s in split_of_device.values())
    assert device_of(Path("x/devA_doubletalk.opus")) == "devA"
