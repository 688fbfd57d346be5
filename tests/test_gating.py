"""Speech gate and level: silence and stationary noise are not speech; speech-like audio is."""

from __future__ import annotations

import numpy as np
import pytest

from livesqa.bench import speechlike
from livesqa.gating import SILENCE_DBFS, GateConfig, analyze, level_dbfs

SR = 16000


def test_full_scale_sine_is_minus_3_dbfs():
    t = np.arange(SR) / SR
    assert level_dbfs(np.sin(2 * np.pi * 1000 * t).astype(np.float32)) == pytest.approx(-3.01, abs=0.01)
    assert level_dbfs(0.1 * np.sin(2 * np.pi * 1000 * t).astype(np.float32)) == pytest.approx(-23.01, abs=0.01)
    assert level_dbfs(np.zeros(100, dtype=np.float32)) == SILENCE_DBFS


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros(2 * SR, dtype=np.float32),  # muted microphone
        (1e-4 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32),  # -80 dBFS hiss
        (0.1 * np.random.default_rng(1).standard_normal(2 * SR)).astype(np.float32),  # loud fan noise
    ],
    ids=["digital-silence", "faint-hiss", "stationary-noise"],
)
def test_no_speech(signal):
    result = analyze(signal, SR, GateConfig())
    assert not result.is_speech
    assert result.speech_ratio < 0.2


def test_speechlike_signal_is_speech_and_ratio_tracks_activity():
    x = speechlike(2.0, SR)
    result = analyze(x, SR, GateConfig())
    assert result.is_speech
    assert 0.3 < result.speech_ratio < 0.8  # bursts with pauses: about half the frames
    half = x.copy()
    half[SR:] = 0.0  # talk for 1 s then mute
    assert analyze(half, SR, GateConfig()).speech_ratio < result.speech_ratio


def test_one_short_burst_is_below_the_min_ratio():
    x = np.zeros(2 * SR, dtype=np.float32)
    x[:1600] = 0.3 * np.random.default_rng(2).standard_normal(1600)  # 100 ms cough = 5% of frames
    result = analyze(x, SR, GateConfig())
    assert 0.0 < result.speech_ratio < 0.2 and not result.is_speech


def test_clipping_flag_needs_several_full_scale_samples():
    x = speechlike(1.0, SR)
    assert not analyze(x, SR, GateConfig()).clipping
    y = x.copy()
    y[100:110] = 1.0
    assert analyze(y, SR, GateConfig()).clipping


def _loop_hysteresis(energy, on, off):
    state, out = False, []
    for e in energy:
        state = e >= on if not state else e >= off
        out.append(state)
    return np.array(out, dtype=bool)


@pytest.mark.parametrize("seed", range(20))
def test_vectorised_hysteresis_equals_the_frame_loop(seed):
    from livesqa.gating import hysteresis

    rng = np.random.default_rng(seed)
    energy = rng.uniform(-70, -10, size=int(rng.integers(1, 300)))
    on = float(rng.uniform(-50, -20))
    off = on - float(rng.uniform(0, 10))
    assert np.array_equal(hysteresis(energy, on, off), _loop_hysteresis(energy, on, off))


def test_level_matches_float64_reference():
    x = speechlike(4.0, SR, seed=3)
    ref = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
    assert level_dbfs(x) == pytest.approx(ref, abs=1e-3)


def test_negative_full_scale_samples_count_as_clipping():
    y = speechlike(1.0, SR).copy()
    y[200:205] = -1.0
    assert analyze(y, SR, GateConfig()).clipping


@pytest.mark.parametrize("q", [0.0, 10.0, 33.3, 50.0, 99.0, 100.0])
@pytest.mark.parametrize("n", [1, 2, 7, 200])
def test_partial_sort_percentile_equals_numpy(q, n):
    from livesqa.gating import percentile

    values = np.random.default_rng(n).normal(size=n)
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-12)
