"""Real-call impairments rendered the way they occur (numpy/scipy; no torch).

Why these and not only those of :mod:`train.degrade`: on real VoIP calls the model met
chops concealed by real decoders, clipping from gain staging before a limiter, other
voices, echo shaped by a loudspeaker and a suppressor, and noise reduced by a noise
suppressor. Each function here renders one of them with the mechanism that produces it
in a call, and a parameter range from mild to unusable:

- :func:`competing_talker`: one or two other voices (not babble) placed overlapping and
  alternating with the talker, 0–20 dB below it;
- :func:`echo_path` + :func:`residual_echo_suppressor`: a delayed voice through a loudspeaker
  (soft saturation), a short room response and the echo return loss, then optionally a
  suppressor that attenuates where echo dominates, and so also chops double talk;
- :func:`limiter`: hot input gain into a hard clipper, a soft (tanh) clipper or a fast
  peak limiter;
- :func:`noise_suppressor`: spectral subtraction with over-subtraction and a floor: musical
  noise in pauses and distorted speech at low SNR;
- :func:`agc`: a slow automatic gain control that lifts the noise in pauses (pumping).

All functions are pure: float32 mono in, same length out, randomness only through the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal

from train import degrade as dg

FloatArray = npt.NDArray[np.float32]
EPS = 1e-10
STFT_WIN = 512  # 32 ms at 16 kHz
STFT_HOP = 128


def competing_talker(x: FloatArray, others: list[FloatArray], sample_rate_hz: int, rel_db: list[float],
                     rng: np.random.Generator) -> FloatArray:
    """Add each voice of ``others`` ``rel_db[i]`` dB below the talker's active level.

    A voice is cut into speech bursts of 0.5–2 s placed at random onsets, so it overlaps the
    talker in places and fills the talker's pauses in others (alternating turns).
    """
    n = len(x)
    level = dg.active_level_db(x, sample_rate_hz)
    out = x.astype(np.float32).copy()
    for voice, rel in zip(others, rel_db, strict=False):
        track = np.zeros(n, np.float32)
        pos = int(rng.integers(0, max(1, n // 3)))
        while pos < n:
            burst = int(rng.uniform(0.5, 2.0) * sample_rate_hz)
            seg = dg.fit_length(voice, min(burst, n - pos), rng)
            track[pos: pos + len(seg)] += seg
            pos += len(seg) + int(rng.uniform(0.1, 1.2) * sample_rate_hz)
        if not np.any(track):
            continue
        track = dg.gain_db(track, level - rel - dg.active_level_db(track, sample_rate_hz))
        out += track
    return out


def echo_path(far: FloatArray, sample_rate_hz: int, delay_ms: float, erl_db: float,
              rng: np.random.Generator) -> FloatArray:
    """What a microphone picks up of ``far`` played on a loudspeaker: delayed by ``delay_ms``,
    softly saturated and band-limited by the speaker, smeared by a short room response, and
    ``erl_db`` (echo return loss) below ``far``'s level."""
    n = len(far)
    drive = float(rng.uniform(1.0, 4.0))
    peak = float(np.max(np.abs(far))) + EPS
    speaker = (np.tanh(drive * far / peak) / np.tanh(drive) * peak).astype(np.float32)
    speaker = dg.bandpass(speaker, sample_rate_hz, float(rng.uniform(150, 400)), float(rng.uniform(3500, 7000)),
                          order=2)
    taps = int(rng.uniform(0.02, 0.15) * sample_rate_hz)
    ir = rng.standard_normal(taps) * np.exp(-np.arange(taps) / (0.2 * taps))
    ir[0] = 3.0
    wet = signal.fftconvolve(speaker, ir)[:n].astype(np.float32)
    delay = int(delay_ms * sample_rate_hz / 1000)
    delayed = np.zeros(n, np.float32)
    if delay < n:
        delayed[delay:] = wet[: n - delay]
    if not np.any(delayed):
        return delayed
    return dg.gain_db(delayed, dg.rms_db(far) - erl_db - dg.rms_db(delayed))


def residual_echo_suppressor(mix: FloatArray, echo: FloatArray, strength: float,
                             floor_db: float = -25.0) -> FloatArray:
    """Attenuate time-frequency cells of ``mix`` where the echo estimate dominates.

    The gain is ``1 - strength * E/(E + S)`` per cell (``E`` echo power, ``S`` the rest),
    floored at ``floor_db``: residual echo is reduced, and during double talk the near
    talker's speech is attenuated and distorted along with it, as real suppressors do.
    """
    _, _, spec_mix = signal.stft(mix, nperseg=STFT_WIN, noverlap=STFT_WIN - STFT_HOP)
    _, _, spec_echo = signal.stft(echo, nperseg=STFT_WIN, noverlap=STFT_WIN - STFT_HOP)
    e = np.abs(spec_echo) ** 2
    s = np.maximum(np.abs(spec_mix) ** 2 - e, 0.0)
    gain = np.maximum(10 ** (floor_db / 20), 1.0 - strength * e / (e + s + EPS))
    gain = signal.lfilter([0.5], [1, -0.5], gain, axis=-1)  # smoothed over frames, like a real one
    _, y = signal.istft(spec_mix * gain, nperseg=STFT_WIN, noverlap=STFT_WIN - STFT_HOP)
    return _fit(y, len(mix))


def limiter(x: FloatArray, sample_rate_hz: int, gain_db: float, kind: str) -> FloatArray:
    """``gain_db`` of input gain, then a ``hard`` clipper at full scale, a ``soft`` tanh
    clipper, or a fast peak ``limiter`` (1 ms attack, 50 ms release) at -1 dBFS."""
    y = dg.gain_db(x, gain_db)
    if kind == "hard":
        return np.clip(y, -1.0, 1.0).astype(np.float32)
    if kind == "soft":
        return np.tanh(y).astype(np.float32)
    if kind != "limiter":
        raise ValueError(f"limiter kind {kind!r} (hard, soft, limiter)")
    threshold = 10 ** (-1 / 20)
    attack = np.exp(-1.0 / (0.001 * sample_rate_hz))
    release = np.exp(-1.0 / (0.05 * sample_rate_hz))
    need = np.maximum(np.abs(y) / threshold, 1.0)
    env = _peak_envelope(need, attack, release)
    return np.clip(y / env, -1.0, 1.0).astype(np.float32)


def _peak_envelope(x: npt.NDArray[np.floating], attack: float, release: float) -> npt.NDArray[np.float64]:
    """One-pole peak follower (fast rise, slow fall); never below the input."""
    out = np.empty(len(x), np.float64)
    env = 1.0
    for i, v in enumerate(x):
        coeff = attack if v > env else release
        env = coeff * env + (1 - coeff) * v
        env = max(env, v) if v > env else env
        out[i] = env
    return out


def noise_suppressor(x: FloatArray, over_subtraction: float, floor_db: float) -> FloatArray:
    """Spectral subtraction: noise power from the quietest 15 % of frames, subtracted
    ``over_subtraction`` times, gain floored at ``floor_db``. Strong settings leave musical
    noise in pauses and thin, watery speech at low SNR."""
    _, _, spec = signal.stft(x, nperseg=STFT_WIN, noverlap=STFT_WIN - STFT_HOP)
    power = np.abs(spec) ** 2
    frame_energy = power.sum(axis=0)
    quiet = frame_energy <= np.quantile(frame_energy, 0.15)
    noise = power[:, quiet].mean(axis=1, keepdims=True) if np.any(quiet) else power.min(axis=1, keepdims=True)
    gain = np.sqrt(np.maximum(1.0 - over_subtraction * noise / (power + EPS), 10 ** (floor_db / 10)))
    _, y = signal.istft(spec * gain, nperseg=STFT_WIN, noverlap=STFT_WIN - STFT_HOP)
    return _fit(y, len(x))


def agc(x: FloatArray, sample_rate_hz: int, target_dbfs: float, max_gain_db: float,
        release_s: float) -> FloatArray:
    """Frame-wise (10 ms) gain towards ``target_dbfs``: fast down, slow up (``release_s``),
    at most ``max_gain_db``: in pauses it lifts the background, on speech onsets it lags."""
    frame = sample_rate_hz // 100
    n = len(x) // frame
    if n == 0:
        return x.astype(np.float32)
    level = 10 * np.log10(np.mean(np.square(x[: n * frame].reshape(n, frame), dtype=np.float64), axis=1) + EPS)
    up = 10.0 / (release_s * 100)  # dB per frame
    g = 0.0
    gains = np.empty(n)
    for i, lv in enumerate(level):
        want = float(np.clip(target_dbfs - lv, -30.0, max_gain_db))
        g = want if want < g else min(want, g + up)
        gains[i] = g
    per_sample = np.repeat(10 ** (gains / 20), frame)
    per_sample = np.concatenate([per_sample, np.full(len(x) - len(per_sample), per_sample[-1])])
    smooth, _ = signal.lfilter([0.01], [1, -0.99], per_sample, zi=[0.99 * per_sample[0]])
    return np.clip(x * smooth, -1.0, 1.0).astype(np.float32)


def _fit(y: npt.NDArray[np.floating], n: int) -> FloatArray:
    out = np.zeros(n, np.float32)
    out[: min(n, len(y))] = y[:n]
    return out
