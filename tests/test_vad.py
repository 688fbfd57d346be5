"""The speech gate: Silero finds a real talker in loud noise; noise, tones and silence are not speech.

The detector's accuracy over many signals is measured by results/vad/bench_vad.py; these
tests pin the behaviour the runtime relies on: the verdicts on signals with a known answer,
and that frame probabilities depend on the samples only, never on the windows' hop.
"""

from __future__ import annotations

import numpy as np
import pytest
from realspeech import speech

from livesqa.errors import ConfigError
from livesqa.gating import GateConfig, StreamGate, analyze
from livesqa.vad import FRAME, StreamVad

SR = 16000


def _windows(x: np.ndarray, window: int, hop: int):
    for start in range(0, x.size - window + 1, hop):
        yield start, x[start: start + window]


def _noise(n: int, dbfs: float, seed: int = 0) -> np.ndarray:
    return (10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_a_talker_in_noise_louder_than_the_talker_is_scored_where_the_energy_vad_is_not():
    talk = speech(4.0)  # about -26 dBFS active level
    mixed = talk + _noise(talk.size, -21.0)  # -5 dB SNR, white noise
    silero = StreamGate(GateConfig(), SR).analyze(0, mixed)
    assert silero.is_speech
    assert not analyze(mixed, SR, GateConfig(detector="energy")).is_speech  # issue #14's bug


@pytest.mark.parametrize("name", ["white noise", "dial tone", "busy tone", "silence", "hum"])
def test_signals_without_a_talker_are_no_speech(name):
    t = np.arange(4 * SR) / SR
    x = {
        "white noise": _noise(t.size, -20.0),
        "dial tone": 0.1 * (np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t)),
        "busy tone": 0.1 * np.sin(2 * np.pi * 480 * t) * ((t % 1.0) < 0.5),
        "silence": np.zeros(t.size),
        "hum": 0.1 * np.sin(2 * np.pi * 50 * t) + 0.05 * np.sin(2 * np.pi * 150 * t),
    }[name].astype(np.float32)
    result = StreamGate(GateConfig(), SR).analyze(0, x)
    assert not result.is_speech and result.speech_ratio < 0.1


def test_frame_probabilities_do_not_depend_on_the_hop():
    x = np.concatenate([speech(6.0), _noise(3 * SR, -40.0)])
    per_frame: list[dict[int, float]] = []
    for hop in (SR, 4000, 3 * SR):
        vad = StreamVad()
        seen: dict[int, float] = {}
        for start, w in _windows(x, 4 * SR, hop):
            probs = vad.window_probs(start, w)
            first = -(-start // FRAME) * FRAME
            for k, p in enumerate(probs):
                seen.setdefault(first + k * FRAME, float(p))
        per_frame.append(seen)
    common = sorted(set(per_frame[0]) & set(per_frame[1]) & set(per_frame[2]))
    assert len(common) > 200
    for a in per_frame[1:]:
        np.testing.assert_allclose([a[k] for k in common], [per_frame[0][k] for k in common],
                                   atol=1e-5)


def test_a_window_gets_the_frames_that_lie_inside_it():
    vad = StreamVad()
    assert vad.window_probs(0, speech(4.0)).size == 4 * SR // FRAME  # 125
    assert vad.window_probs(SR, speech(4.0, offset_s=1.0)).size == (5 * SR // FRAME) - 32  # 124
    short = StreamVad().window_probs(0, speech(1.5))
    assert short.size == int(1.5 * SR) // FRAME


def test_a_hop_longer_than_the_window_restarts_cleanly():
    x = speech(12.0)
    vad = StreamVad()
    a = vad.window_probs(0, x[: 2 * SR])
    b = vad.window_probs(8 * SR, x[8 * SR: 10 * SR])  # frames 2..8 s never seen
    fresh = StreamVad().window_probs(0, x[8 * SR: 10 * SR])
    assert a.size == b.size == fresh.size
    np.testing.assert_allclose(b, fresh, atol=1e-5)


def test_bad_gate_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="gate.detector"):
        GateConfig(detector="webrtc")
    with pytest.raises(ConfigError, match="speech_threshold"):
        GateConfig(speech_threshold=1.5)
    with pytest.raises(ConfigError, match="16000 Hz"):
        StreamGate(GateConfig(), 8000)
    assert GateConfig().ratio_needed == 0.1 and GateConfig(detector="energy").ratio_needed == 0.2
    assert GateConfig(min_speech_ratio=0.3).ratio_needed == 0.3
