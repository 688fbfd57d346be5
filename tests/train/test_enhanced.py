"""Real noise suppressors as a training family (train/enhanced.py): timing, effect, manifest, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.fakedata import SR, make_fake_data_root
from tests.realspeech import speech
from train import enhanced


def _noisy(seconds: float = 2.0, snr_db: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, noise, mix): 0.5 s of noise alone, then a real talker in the same white noise."""
    rng = np.random.default_rng(3)
    clean = np.concatenate([np.zeros(SR // 2, np.float32), speech(seconds, SR)])
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    noise *= np.sqrt(np.mean(clean[SR // 2:] ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return clean, noise, (clean + noise).astype(np.float32)


def _lag(y: np.ndarray, x: np.ndarray, max_lag: int = 400) -> int:
    """Samples by which ``y`` trails ``x`` (FFT cross-correlation, within +-max_lag)."""
    size = 2 * len(x)
    xc = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    return int(lags[int(np.argmax(np.concatenate([xc[: max_lag + 1], xc[size - max_lag:]])))])


def test_rnnoise_keeps_length_and_timing() -> None:
    clean, _, mix = _noisy()
    y = enhanced.rnnoise(mix, SR)
    assert y.shape == mix.shape and y.dtype == np.float32
    assert _lag(y, clean) == 0  # its two frames of delay are undone


@pytest.mark.parametrize("kind", enhanced.SUPPRESSORS)
def test_each_suppressor_lowers_noise_where_nobody_talks(kind: str) -> None:
    clean, _, mix = _noisy()
    y, tag = enhanced.suppress(kind, mix, np.random.default_rng(1))
    assert tag.startswith(kind) and y.shape == mix.shape and np.all(np.isfinite(y))
    before = 10 * np.log10(np.mean(mix[: SR // 2] ** 2))
    after = 10 * np.log10(np.mean(y[: SR // 2] ** 2) + 1e-12)
    assert after < before - 3.0, f"{kind}: noise-only part {before:.1f} -> {after:.1f} dB"
    assert abs(_lag(y, clean)) <= 1
    # the talker survives: the output follows the clean signal better than the mix does
    talk = slice(SR // 2, None)
    assert np.corrcoef(y[talk], clean[talk])[0, 1] > 0.5


def test_render_level_length_and_condition() -> None:
    clean, noise, _ = _noisy(3.0)
    for seed in range(6):
        y, cond = enhanced.render(clean[SR // 2:], noise, np.random.default_rng(seed))
        assert y.shape == (3 * SR,) and np.max(np.abs(y)) <= 1.0
        assert any(cond.startswith(k) for k in enhanced.SUPPRESSORS) and "dB" in cond


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_data_root(tmp_path_factory.mktemp("data"), speakers=30, noises=20)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_build_writes_clips_and_resumes(data_root: Path, tmp_path: Path) -> None:
    full = enhanced.build(tmp_path / "a", data_root, n_clips=5)
    rows = _rows(full)
    assert [r["filename_deg"] for r in rows] == [f"enh_{k:05d}.flac" for k in range(5)]
    assert [r["split"] for r in rows] == ["val", "train", "train", "train", "train"]
    for r in rows:
        assert 1.5 <= float(r["duration_s"]) <= 4.0 and (full.parent / r["filepath_deg"]).is_file()
        assert r["db"] == "enhanced" and r["condition"] and r["mos"] == ""  # unlabelled
    # an interrupted run: two clips and their rows written, no final manifest
    out = tmp_path / "b"
    (out / "clips").mkdir(parents=True)
    for r in rows[:2]:
        (out / r["filepath_deg"]).write_bytes((full.parent / r["filepath_deg"]).read_bytes())
    with (out / "manifest.partial.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[:2])
    stamp = (out / rows[0]["filepath_deg"]).stat().st_mtime_ns
    resumed = enhanced.build(out, data_root, n_clips=5)
    assert _rows(resumed) == rows and not (out / "manifest.partial.csv").exists()
    assert (out / rows[0]["filepath_deg"]).stat().st_mtime_ns == stamp  # not rendered again
    for r in rows:
        assert (out / r["filepath_deg"]).read_bytes() == (full.parent / r["filepath_deg"]).read_bytes()


def test_cli_refuses_a_bad_count(capsys: pytest.CaptureFixture[str]) -> None:
    from livesqa.errors import ConfigError

    with pytest.raises(ConfigError, match="--n-clips"):
        enhanced.main(["--n-clips", "0"])
