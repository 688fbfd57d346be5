"""Degradations with known answers on seeded synthetic signals (torch-free)."""

from __future__ import annotations

import numpy as np
import pytest

from train import degrade as dg

SR = 16000


def _speechlike(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Noise bursts shaped like syllables (250 ms on, 150 ms off) at -20 dBFS active."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = rng.standard_normal(n).astype(np.float32) * np.float32(10 ** (-20 / 20))
    gate = (np.arange(n) % int(0.4 * SR)) < int(0.25 * SR)
    return (x * gate).astype(np.float32)


def _band_energy_db(x: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    band = spec[(freqs >= lo_hz) & (freqs < hi_hz)].sum()
    return float(10 * np.log10(band / spec.sum()))


def test_active_level_ignores_pauses() -> None:
    x = _speechlike()
    assert dg.active_level_db(x, SR) == pytest.approx(-20.0, abs=0.3)
    assert dg.rms_db(x) == pytest.approx(-20.0 + 10 * np.log10(0.25 / 0.4), abs=0.3)


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 25.0])
def test_add_noise_hits_snr(snr_db: float) -> None:
    speech = _speechlike()
    rng = np.random.default_rng(1)
    noise = np.sin(2 * np.pi * 120 * np.arange(SR) / SR).astype(np.float32) + rng.standard_normal(SR).astype(np.float32)
    mixed = dg.add_noise(speech, noise, snr_db, SR, np.random.default_rng(2))
    measured = dg.active_level_db(speech, SR) - dg.rms_db(mixed - speech)
    assert measured == pytest.approx(snr_db, abs=0.5)
    assert mixed.shape == speech.shape and mixed.dtype == np.float32


def test_fit_length_loops_short_noise() -> None:
    noise = np.ones(1000, np.float32)
    out = dg.fit_length(noise, 5000, np.random.default_rng(0))
    assert out.shape == (5000,)
    assert np.allclose(out, 1.0, atol=1e-6)  # crossfading equal signals changes nothing


def test_narrowband_removes_energy_above_4khz() -> None:
    white = np.random.default_rng(3).standard_normal(2 * SR).astype(np.float32) * 0.1
    assert _band_energy_db(white, 4000, 8000) > -4  # half the band before
    nb = dg.narrowband(white, SR)
    assert nb.shape == white.shape
    assert _band_energy_db(nb, 4000, 8000) < -30
    assert _band_energy_db(nb, 0, 200) < -15


def test_wideband_and_lowpass_limits() -> None:
    white = np.random.default_rng(4).standard_normal(2 * SR).astype(np.float32) * 0.1
    assert _band_energy_db(dg.wideband(white, SR), 7600, 8000) < -20
    assert _band_energy_db(dg.bandpass(white, SR, None, 2000), 3000, 8000) < -25


def test_irs_like_emphasises_voice_band() -> None:
    white = np.random.default_rng(5).standard_normal(2 * SR).astype(np.float32) * 0.1
    y = dg.irs_like(white, SR)
    assert _band_energy_db(y, 1000, 3400) > _band_energy_db(y, 0, 200) + 20
    assert _band_energy_db(y, 4500, 8000) < -25


def test_random_eq_is_seeded() -> None:
    x = _speechlike()
    a = dg.random_eq(x, SR, np.random.default_rng(7))
    b = dg.random_eq(x, SR, np.random.default_rng(7))
    assert np.array_equal(a, b) and not np.allclose(a, x)


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.2])
def test_clip_ratio(fraction: float) -> None:
    x = np.random.default_rng(6).standard_normal(SR).astype(np.float32) * 0.1
    y = dg.clip(x, fraction)
    peak = np.max(np.abs(y))
    assert np.mean(np.abs(x) >= peak) == pytest.approx(fraction, abs=0.002)


@pytest.mark.parametrize("target", [-45.0, -26.0, -6.0])
def test_set_level_hits_target(target: float) -> None:
    y = dg.set_level(_speechlike(), SR, target)
    assert dg.active_level_db(y, SR) == pytest.approx(target, abs=0.1)


@pytest.mark.parametrize(("rate", "method"), [(0.05, "zero"), (0.2, "fade"), (0.3, "repeat")])
def test_packet_loss_removes_asked_fraction(rate: float, method: str) -> None:
    x = np.random.default_rng(8).standard_normal(4 * SR).astype(np.float32) * 0.1 + 0.5
    y, lost = dg.packet_loss(x, SR, rate, np.random.default_rng(9), method)  # type: ignore[arg-type]
    frame = SR // 50
    assert lost.mean() == pytest.approx(rate, abs=1 / len(lost))
    frames = y[: len(lost) * frame].reshape(len(lost), frame)
    kept = frames[~lost]
    assert np.array_equal(kept[:, frame // 4: -frame // 4], x[: len(lost) * frame].reshape(len(lost), frame)[~lost][:, frame // 4: -frame // 4])
    if method == "repeat":
        first_lost = np.flatnonzero(lost & ~np.roll(lost, 1))
        i = int(first_lost[0])
        assert np.array_equal(frames[i], x[(i - 1) * frame: i * frame])
    else:
        assert np.all(frames[lost] == 0.0)


def test_time_clip_and_echo() -> None:
    x = np.ones(SR, np.float32)
    y = dg.time_clip(x, SR, 2, np.random.default_rng(0), min_ms=100, max_ms=100)
    assert 1600 <= np.sum(y == 0) <= 3200
    impulse = np.zeros(SR, np.float32)
    impulse[0] = 1.0
    e = dg.echo(impulse, SR, delay_ms=100, attenuation_db=6, n_echoes=2)
    assert e[1600] == pytest.approx(10 ** (-6 / 20), rel=1e-5)
    assert e[3200] == pytest.approx(10 ** (-12 / 20), rel=1e-5)


def test_reverberate_keeps_alignment_and_level() -> None:
    rng = np.random.default_rng(10)
    rir = dg.room_rir(SR, rng, rt60_s=0.5)
    x = _speechlike()
    y = dg.reverberate(x, rir)
    assert y.shape == x.shape
    assert dg.rms_db(y) == pytest.approx(dg.rms_db(x), abs=0.01)
    lag = np.argmax(np.correlate(y[:8000], x[:8000], mode="full")) - 7999
    assert abs(lag) <= 2


@pytest.mark.parametrize("q_db", [5.0, 15.0, 30.0])
def test_mnru_noise_is_q_db_below_the_speech_and_silent_in_pauses(q_db: float) -> None:
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(32000)).astype(np.float32)
    x[16000:] = 0.0  # a pause
    y = dg.mnru(x, q_db, np.random.default_rng(1))
    err = y - x
    measured_q = 10 * np.log10(np.sum(x[:16000] ** 2) / np.sum(err[:16000] ** 2))
    assert measured_q == pytest.approx(q_db, abs=0.3)
    assert np.all(y[16000:] == 0.0)
    assert np.array_equal(y, dg.mnru(x, q_db, np.random.default_rng(1)))  # seeded
