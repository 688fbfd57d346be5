"""`python -m train window-crops`: crops are exact cuts of their stream, carry its split, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livesqa.errors import ConfigError
from train import window_crops as wc
from train.simulate import MANIFEST_COLUMNS

SR = 16000


def _stream_corpus(root: Path, lengths_s: list[float]) -> Path:
    """A stream manifest whose clips hold a ramp, so a crop's first sample says where it was cut."""
    (root / "clips").mkdir(parents=True)
    rows = []
    for i, seconds in enumerate(lengths_s):
        n = int(seconds * SR)
        ramp = ((np.arange(n) % 30000) / 32768.0).astype(np.float32)  # exact in 16-bit PCM
        sf.write(str(root / "clips" / f"s{i}.flac"), ramp, SR, subtype="PCM_16")
        rows.append({"db": "sim", "con": str(i), "filepath_deg": f"clips/s{i}.flac", "filename_deg": f"s{i}.flac",
                     "split": "val" if i == 1 else "train", "condition": f"cond{i}", "speaker": f"spk{i}"})
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_spans_first_is_a_window_rest_are_short_and_inside() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        spans = wc.crop_spans(7 * SR, 3, rng)
        assert spans[0][1] - spans[0][0] == 4 * SR
        for a, b in spans:
            assert 0 <= a < b <= 7 * SR
        for a, b in spans[1:]:
            assert 1.5 * SR <= b - a < 4 * SR


def test_spans_of_a_short_stream_are_the_whole_stream() -> None:
    assert wc.crop_spans(3 * SR, 1, np.random.default_rng(0)) == [(0, 3 * SR)]


def test_spans_refuse_zero_crops() -> None:
    with pytest.raises(ConfigError, match="per-stream"):
        wc.crop_spans(SR * 5, 0, np.random.default_rng(0))


def test_crops_are_exact_cuts_and_carry_the_stream(tmp_path: Path) -> None:
    manifest = _stream_corpus(tmp_path / "streams", [5.0, 6.0, 9.0])
    out = tmp_path / "crops"
    assert wc.crop_corpus([manifest], out, per_stream=2, progress=False) == 6
    rows = _rows(out / "manifest.csv")
    assert [r["split"] for r in rows] == ["train", "train", "val", "val", "train", "train"]
    assert [r["condition"] for r in rows[::2]] == ["cond0", "cond1", "cond2"]
    for r in rows:
        crop, _ = sf.read(str(out / r["filepath_deg"]), dtype="float32")
        stream_name, offset_s = r["source"].rsplit("@", 1)
        stream, _ = sf.read(str(tmp_path / stream_name), dtype="float32")
        start = int(round(float(offset_s) * SR))
        np.testing.assert_array_equal(crop, stream[start: start + len(crop)])
        assert float(r["duration_s"]) == pytest.approx(len(crop) / SR, abs=1e-3)


def test_rerun_adds_nothing_and_keeps_the_same_crops(tmp_path: Path) -> None:
    manifest = _stream_corpus(tmp_path / "streams", [5.0, 8.0])
    out = tmp_path / "crops"
    wc.crop_corpus([manifest], out, progress=False)
    first = _rows(out / "manifest.csv")
    assert wc.crop_corpus([manifest], out, progress=False) == 0
    assert _rows(out / "manifest.csv") == first


def test_cli_names_a_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.csv"):
        wc.main(["--manifest", str(tmp_path / "nope.csv"), "--out-dir", str(tmp_path / "o")])
