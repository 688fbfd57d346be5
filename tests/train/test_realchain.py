"""The real-chain set: WebRTC's own audio processing on signals with known answers, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from livesqa.errors import ConfigError
from train import realchain

SR = 16000


def _db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20))


def _bursts(level_db: float, seconds: float = 4.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 300 Hz tone on for half of each second, over white noise 30 dB below it; (signal, on mask)."""
    t = np.arange(int(seconds * SR)) / SR
    on = np.sin(2 * np.pi * t) > 0
    amp = np.sqrt(2) * 10 ** (level_db / 20)
    noise = np.random.default_rng(seed).normal(0, 10 ** ((level_db - 30) / 20), t.size)
    return (amp * np.sin(2 * np.pi * 300 * t) * on + noise).astype(np.float32), on


def test_apm_off_is_the_input_and_keeps_the_length() -> None:
    x, _ = _bursts(-30.0, seconds=1.005)  # a final partial 10 ms frame passes unprocessed
    y = realchain.webrtc_apm(x, 0, 0)
    assert y.shape == x.shape
    assert abs(_db(y) - _db(x)) < 0.5


def test_noise_suppression_lowers_stationary_noise_alone() -> None:
    noise = np.random.default_rng(1).normal(0, 0.01, 3 * SR).astype(np.float32)  # -40 dBFS white
    y = realchain.webrtc_apm(noise, 0, 4)
    assert _db(y[SR:]) < _db(noise[SR:]) - 6.0  # after it has learnt the noise


def test_agc_lifts_a_quiet_talker_over_the_seconds_it_adapts() -> None:
    x, on = _bursts(-38.0)
    y = realchain.webrtc_apm(x, 3, 0)
    first, last = slice(0, SR), slice(3 * SR, 4 * SR)

    def gain(part: slice) -> float:
        return _db(y[part][on[part]]) - _db(x[part][on[part]])

    assert gain(first) > 5.0
    assert gain(last) > gain(first) + 2.0  # the gain grows: it adapts


def test_webrtc_chains_render_same_length_audio_named_by_condition() -> None:
    rng = np.random.default_rng(3)
    x, _ = _bursts(-26.0)
    noise = rng.normal(0, 0.05, 5 * SR).astype(np.float32)
    for chain in realchain.WEBRTC_CHAINS:
        y, cond = realchain.render(chain, x, noise, np.random.default_rng(4))
        assert y.shape == x.shape and np.all(np.isfinite(y))
        assert cond.startswith(chain + "@")


def test_cli_refuses_an_unknown_chain_by_option_name(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--chains: unknown"):
        realchain.main(["--chains", "webrtc-ns,telepathy", "--out-dir", str(tmp_path / "rc")])
    assert not (tmp_path / "rc").exists()
