"""Real-call renderers (train/callsim.py, train/plc.py) on synthetic signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from train import callsim as cs
from train import degrade as dg
from train import plc

SR = 16000


def _voice(seconds: float, f0: float, seed: int = 0) -> np.ndarray:
    """Speech-like: a harmonic tone with a 3 Hz syllable envelope and short pauses."""
    t = np.arange(int(seconds * SR)) / SR
    env = np.clip(np.sin(2 * np.pi * 3 * t + seed), 0, None)
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.1 * env * tone).astype(np.float32)


def test_gilbert_elliott_rate_and_bursts() -> None:
    rng = np.random.default_rng(0)
    lost = plc.gilbert_elliott_mask(200_000, 0.1, 3.0, rng)
    assert not lost[0]
    assert lost.mean() == pytest.approx(0.1, abs=0.01)
    edges = np.flatnonzero(np.diff(lost.astype(int)) == 1)
    assert lost.sum() / len(edges) == pytest.approx(3.0, rel=0.1)  # mean burst length
    independent = plc.gilbert_elliott_mask(200_000, 0.1, 1.0, rng)
    runs = independent.sum() / np.count_nonzero(np.diff(independent.astype(int)) == 1)
    assert runs == pytest.approx(1 / 0.9, rel=0.05)  # geometric runs of independent losses


def test_opus_plc_keeps_timing_and_conceals_losses() -> None:
    x = _voice(2.0, 150)
    clean = plc.opus_with_loss(x, SR, np.zeros(100, bool), 24000, 20)
    assert clean.shape == x.shape and np.corrcoef(x, clean)[0, 1] > 0.8
    lost = np.zeros(100, bool)
    lost[50:] = True  # the second second is never received
    y = plc.opus_with_loss(x, SR, lost, 24000, 20)
    # concealment continues the voice briefly, then fades: the last half second is near silent
    assert dg.rms_db(y[-SR // 2:]) < dg.rms_db(x[-SR // 2:]) - 20
    assert np.abs(y[SR + 160: SR + 480]).max() > 0  # not zero insertion: the first lost frame has sound


@pytest.mark.parametrize("codec,rate", [("amr-nb", "12.2k"), ("amr-wb", "12.65k")])
def test_amr_bad_frames_are_concealed(codec: str, rate: str) -> None:
    x = _voice(2.0, 150)
    clean = plc.amr_with_loss(x, SR, np.zeros(102, bool), codec, rate)
    assert clean.shape == x.shape and np.corrcoef(x, clean)[0, 1] > 0.5
    lost = np.zeros(102, bool)
    lost[40:90] = True
    y = plc.amr_with_loss(x, SR, lost, codec, rate)
    assert dg.rms_db(y[int(1.5 * SR): int(1.75 * SR)]) < dg.rms_db(clean[int(1.5 * SR): int(1.75 * SR)]) - 10


def test_competing_talker_level_below_the_talker() -> None:
    rng = np.random.default_rng(1)
    x = _voice(4.0, 120)
    other = _voice(6.0, 210, seed=2)
    y = cs.competing_talker(x, [other], SR, [10.0], rng)
    added = y - x
    assert dg.active_level_db(added, SR) == pytest.approx(dg.active_level_db(x, SR) - 10.0, abs=0.5)


def test_echo_path_delay_and_return_loss() -> None:
    rng = np.random.default_rng(2)
    far = _voice(3.0, 140)
    e = cs.echo_path(far, SR, 250.0, 20.0, rng)
    assert dg.rms_db(e) == pytest.approx(dg.rms_db(far) - 20.0, abs=0.1)
    assert not np.any(e[: int(0.249 * SR)])
    xc = np.correlate(e[: 2 * SR], far[: 2 * SR - 4000], "valid")
    assert abs(int(np.argmax(np.abs(xc))) - int(0.25 * SR)) < int(0.01 * SR)


def test_residual_echo_suppressor_removes_echo_and_spares_clean_speech() -> None:
    rng = np.random.default_rng(3)
    far = _voice(3.0, 140)
    e = cs.echo_path(far, SR, 100.0, 0.0, rng)
    assert dg.rms_db(cs.residual_echo_suppressor(e, e, 1.0)) < dg.rms_db(e) - 15
    near = _voice(3.0, 200, seed=1)
    kept = cs.residual_echo_suppressor(near, np.zeros_like(near), 1.0)
    assert dg.rms_db(kept) == pytest.approx(dg.rms_db(near), abs=0.5)


@pytest.mark.parametrize("kind", ["hard", "soft", "limiter"])
def test_limiters_bound_a_hot_input(kind: str) -> None:
    x = _voice(1.0, 150)
    y = cs.limiter(x, SR, 30.0, kind)
    assert np.abs(y).max() <= 1.0
    assert dg.rms_db(y) < dg.rms_db(x) + 30.0 - 3  # the gain was not passed through


def test_noise_suppressor_lowers_noise_in_pauses() -> None:
    rng = np.random.default_rng(4)
    talk, pause = _voice(0.5, 150), np.zeros(SR // 2, np.float32)
    x = np.concatenate([talk, pause] * 4)
    noisy = dg.add_noise(x, (0.05 * rng.standard_normal(len(x))).astype(np.float32), 5.0, SR, rng)
    middle = np.concatenate([np.arange(SR * k + SR // 2 + 800, SR * (k + 1) - 800) for k in range(4)])
    mild = cs.noise_suppressor(noisy, 1.0, -25.0)
    strong = cs.noise_suppressor(noisy, 4.0, -25.0)
    # a noise estimate from the quietest frames is low, so residual (musical) noise remains
    assert dg.rms_db(noisy[middle]) - 3 > dg.rms_db(mild[middle]) > dg.rms_db(strong[middle]) + 3
    assert dg.rms_db(strong[middle]) < dg.rms_db(noisy[middle]) - 10


def test_agc_lifts_quiet_pauses_up_to_its_limit() -> None:
    rng = np.random.default_rng(5)
    quiet = (0.001 * rng.standard_normal(2 * SR)).astype(np.float32)  # -60 dBFS background only
    y = cs.agc(quiet, SR, -20.0, 20.0, 0.5)
    assert dg.rms_db(y[SR:]) == pytest.approx(dg.rms_db(quiet[SR:]) + 20.0, abs=1.0)
