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
