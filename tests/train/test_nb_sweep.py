"""The narrowband-path set (train/nb_sweep.py): the fault comes before the band, splits and manifest hold."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from livesqa.errors import ConfigError
from tests.fakedata import SR, make_fake_data_root
from train import nb_sweep
from train.sim_catalogue import build_catalogue


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = signal.welch(x, SR, nperseg=1024)
    return float(p[(f >= lo) & (f < hi)].sum())


def _talker(seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.05 * np.sin(2 * np.pi * 200 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_a_hot_fault_clips_and_its_harmonics_reach_the_upper_band() -> None:
    rng = np.random.default_rng(0)
    x = _talker()
    for _ in range(40):  # draw until a hot fault that is not brought back down
        y, label = nb_sweep.device_fault(x, np.zeros(SR, np.float32), rng)
        if label.startswith("hot:hard@+") and np.max(np.abs(y)) >= 0.999:
            break
    else:
        pytest.fail("no hard clipping drawn in 40 tries")
    # a 200 Hz tone has nothing above 4 kHz; clipped, its odd harmonics do
    assert _band_energy(y, 4000, 8000) > 1e3 * _band_energy(x, 4000, 8000)


def test_the_narrowband_band_path_removes_what_clipping_put_above_4_khz() -> None:
    rng = np.random.default_rng(1)
    hot = np.clip(_talker() * 40, -1, 1).astype(np.float32)
    for _ in range(60):
        y, label = nb_sweep.path(hot, rng)
        if label == "nb:band300-3400":
            break
    else:
        pytest.fail("the band path was not drawn in 60 tries")
    assert len(y) == len(hot)
    assert _band_energy(y, 4200, 8000) < 1e-3 * _band_energy(hot, 4200, 8000)
    assert _band_energy(y, 300, 3400) > 0.3 * _band_energy(hot, 300, 3400)


def test_build_writes_split_talkers_four_second_clips_and_keeps_an_existing_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_fake_data_root(tmp_path / "data")
    out = tmp_path / "nb"
    monkeypatch.setattr(nb_sweep, "NB_PATHS", (("band", ""),))  # the codec paths are tested in test_codecs
    monkeypatch.setattr(nb_sweep, "WB_PATHS", (("none", ""),))
    manifest = nb_sweep.build(out, root, {"train": 4, "test": 2}, seed=3)
    rows = list(csv.DictReader(manifest.open()))
    cat = build_catalogue(root)
    assert [r["split"] for r in rows] == ["train"] * 4 + ["test"] * 2
    for r in rows:
        info = sf.info(str(out / r["filepath_deg"]))
        assert info.samplerate == SR and info.duration == pytest.approx(4.0, abs=1e-3)
        assert r["speaker"] in {u.speaker for u in cat.speech[r["split"]]}
        fault, link = r["condition"].rsplit("+", 1)
        assert fault.split(":")[0].split("@")[0] in ("hot", "loss", "noise", "none") and link.startswith(("nb:", "wb:"))
        assert r["mos"] == ""
    before = manifest.read_bytes()
    nb_sweep.build(out, root, {"train": 9}, seed=4)
    assert manifest.read_bytes() == before


def test_cli_refuses_when_every_split_is_empty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="every split count is 0"):
        nb_sweep.main(["--out-dir", str(tmp_path / "x"), "--train", "0", "--val", "0", "--test", "0"])


def test_fault_shares_choose_the_device_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--faults 0,0,1,0 makes every clip a noisy one; the default shares keep session 18's thresholds."""
    assert nb_sweep.fault_thresholds() == pytest.approx((0.4, 0.7, 0.85, 0.85))
    assert nb_sweep.fault_thresholds((0.4, 0.3, 0.15, 0.15)) == nb_sweep.fault_thresholds()
    root = make_fake_data_root(tmp_path / "data")
    monkeypatch.setattr(nb_sweep, "NB_PATHS", (("band", ""),))
    monkeypatch.setattr(nb_sweep, "WB_PATHS", (("none", ""),))
    manifest = nb_sweep.build(tmp_path / "nb", root, {"train": 5}, seed=3, fault_shares=(0, 0, 1, 0))
    rows = list(csv.DictReader(manifest.open()))
    assert [r["con"] for r in rows] == ["noise"] * 5 and all(r["noise_file"] for r in rows)
    mnru = nb_sweep.build(tmp_path / "mnru", root, {"train": 3}, seed=3, fault_shares=(0, 0, 0, 0, 1))
    assert [r["con"] for r in csv.DictReader(mnru.open())] == ["mnru"] * 3


def test_mnru_at_the_device_is_speech_correlated_noise() -> None:
    """The mnru fault adds noise that follows the talker (silent in a pause), unlike the noise fault."""
    x = np.concatenate([_talker(2.0), np.zeros(SR, np.float32)])
    y, label = nb_sweep.device_fault(x, np.zeros(SR, np.float32), np.random.default_rng(0), (0, 0, 0, 1))
    assert label.startswith("mnru@Q") and not np.allclose(y[:SR], x[:SR])
    assert np.all(y[-SR:] == 0)


@pytest.mark.parametrize("faults", ["0.5,0.5", "a,b,c,d", "-1,1,1,1", "0,0,0,0", "1,1,1,1,1,1"])
def test_cli_refuses_bad_fault_shares(tmp_path: Path, faults: str) -> None:
    with pytest.raises(ConfigError, match="--faults"):
        nb_sweep.main(["--out-dir", str(tmp_path / "x"), f"--faults={faults}"])
    assert not (tmp_path / "x").exists()
