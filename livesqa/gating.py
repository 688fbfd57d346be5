"""Speech gating: a window with too little active speech is "no speech", never a bad score.

Why: a quality model asked to rate silence or a muted microphone returns a
confident, meaningless low score; the dashboard would then show a terrible call
while nobody talks. We measure speech activity first and skip the model when it
is too low.

The detector is an energy VAD with hysteresis, stateless per window (so results
do not depend on chunking or on the previous window):

- frames of ``frame_ms`` (20 ms), energy in dBFS (RMS re full scale 1.0);
- the window's noise floor is the ``floor_percentile`` (10th) percentile frame energy;
- a frame turns active above ``on = max(abs_floor_dbfs, floor + on_margin_db)`` and
  stays active until it drops below ``on - hysteresis_db``;
- defaults: ``abs_floor_dbfs = -55``, ``on_margin_db = 9``, ``hysteresis_db = 4``;
  a window is speech when at least ``min_speech_ratio = 0.2`` of its frames are active.

Stationary noise (fan, hiss) keeps every frame near the floor and is rejected;
speech has pauses and syllable dips, so its loud frames rise well above the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livesqa.errors import ConfigError
from livesqa.types import FloatArray

SILENCE_DBFS = -120.0  # what we report for digital silence instead of -inf
CLIP_LEVEL = 0.999  # |x| at or above this counts as a clipped sample
CLIP_MIN_SAMPLES = 3  # fewer clipped samples than this is a peak, not clipping


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the energy VAD (see module docstring for their meaning)."""

    frame_ms: float = 20.0
    abs_floor_dbfs: float = -55.0
    on_margin_db: float = 9.0
    hysteresis_db: float = 4.0
    floor_percentile: float = 10.0
    min_speech_ratio: float = 0.2

    def __post_init__(self) -> None:
        if not 5.0 <= self.frame_ms <= 100.0:
            raise ConfigError(f"gate.frame_ms {self.frame_ms} outside 5..100")
        if not 0.0 <= self.min_speech_ratio <= 1.0:
            raise ConfigError(f"gate.min_speech_ratio {self.min_speech_ratio} outside 0..1")
        if self.hysteresis_db < 0 or self.on_margin_db < 0:
            raise ConfigError("gate.hysteresis_db and gate.on_margin_db must be >= 0")
        if not 0.0 <= self.floor_percentile <= 100.0:
            raise ConfigError(f"gate.floor_percentile {self.floor_percentile} outside 0..100")


@dataclass(frozen=True)
class WindowAnalysis:
    """Level, activity and clipping of one window (model-independent)."""

    level_dbfs: float
    speech_ratio: float
    is_speech: bool
    clipping: bool


def level_dbfs(samples: FloatArray) -> float:
    """RMS level in dBFS (full scale 1.0 sine peak = -3 dBFS); silence -> ``SILENCE_DBFS``."""
    if samples.size == 0:
        return SILENCE_DBFS
    mean_sq = float(np.mean(np.square(samples, dtype=np.float64)))
    if mean_sq <= 1e-12:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(mean_sq))


def frame_energies_dbfs(samples: FloatArray, frame_samples: int) -> np.ndarray:
    """Per-frame RMS in dBFS, ``[n_frames]`` float64; a trailing partial frame is dropped."""
    n_frames = int(samples.shape[0]) // frame_samples
    if n_frames == 0:
        return np.zeros(0)
    frames = samples[: n_frames * frame_samples].reshape(n_frames, frame_samples)
    mean_sq = np.mean(np.square(frames, dtype=np.float64), axis=1)
    return 10.0 * np.log10(np.maximum(mean_sq, 1e-12))


def speech_activity(samples: FloatArray, sample_rate_hz: int, config: GateConfig) -> np.ndarray:
    """Boolean ``[n_frames]``: which frames are active speech (hysteresis across frames)."""
    frame_samples = max(1, int(round(sample_rate_hz * config.frame_ms / 1000.0)))
    energy = frame_energies_dbfs(samples, frame_samples)
    if energy.size == 0:
        return np.zeros(0, dtype=bool)
    floor = float(np.percentile(energy, config.floor_percentile))
    on = max(config.abs_floor_dbfs, floor + config.on_margin_db)
    off = on - config.hysteresis_db
    active = np.zeros(energy.size, dtype=bool)
    state = False
    for i, e in enumerate(energy):
        state = e >= on if not state else e >= off
        active[i] = state
    return active


def analyze(samples: FloatArray, sample_rate_hz: int, config: GateConfig) -> WindowAnalysis:
    """Level, speech ratio, speech decision and clipping flag of one window."""
    active = speech_activity(samples, sample_rate_hz, config)
    ratio = float(active.mean()) if active.size else 0.0
    clipped = int(np.count_nonzero(np.abs(samples) >= CLIP_LEVEL))
    return WindowAnalysis(
        level_dbfs=level_dbfs(samples),
        speech_ratio=ratio,
        is_speech=ratio >= config.min_speech_ratio and ratio > 0.0,
        clipping=clipped >= CLIP_MIN_SAMPLES,
    )
