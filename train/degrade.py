"""Signal degradations for the simulated corpus (numpy/scipy; no torch).

Why these: they are the distortions a call suffers and the NISQA dimensions name —
background noise (NOI), band limitation and filtering (COL), packet loss and time
clipping (DIS), level problems (LOUD), plus clipping, reverberation, echo and MNRU
(the signal-correlated noise of ITU-T P.810, the classic reference distortion of
P.800/P.835 listening tests: it degrades the speech signal itself, not the
background). Every
function is pure: mono float32 ``[samples]`` in, same length out, randomness only
through an explicit ``numpy.random.Generator`` so a clip is reproducible from its seed.
Levels are in dBFS of RMS (full scale 1.0); speech levels are *active* levels
(silences excluded), as in ITU-T P.56, so an SNR means the same for chatty and
sparse clips.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import signal

from livesqa.audio import resample

FloatArray = npt.NDArray[np.float32]
Concealment = Literal["zero", "repeat", "fade"]

EPS = 1e-12
ACTIVITY_FRAME_S = 0.02
ACTIVITY_MARGIN_DB = 15.9  # P.56's margin between the active level and the activity threshold


def rms_db(x: npt.NDArray[np.floating]) -> float:
    """RMS level in dBFS (full scale 1.0) over all samples."""
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + EPS))


def active_level_db(x: FloatArray, sample_rate_hz: int) -> float:
    """Active speech level in dBFS: RMS over the 20 ms frames that carry speech.

    A simplification of ITU-T P.56: iterate the activity threshold at (level − 15.9 dB)
    until it settles; frames above it are active. For a tone burst it is the tone's RMS.
    """
    frame = max(1, int(ACTIVITY_FRAME_S * sample_rate_hz))
    n = len(x) // frame
    if n == 0:
        return rms_db(x)
    energy = np.mean(np.square(x[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    level = 10 * np.log10(np.mean(energy) + EPS)
    for _ in range(20):
        active = energy > 10 ** ((level - ACTIVITY_MARGIN_DB) / 10)
        if not np.any(active):
            break
        new_level = 10 * np.log10(np.mean(energy[active]) + EPS)
        if abs(new_level - level) < 1e-3:
            level = new_level
            break
        level = new_level
    return float(level)


def gain_db(x: FloatArray, db: float) -> FloatArray:
    return (x * np.float32(10 ** (db / 20))).astype(np.float32)


def set_level(x: FloatArray, sample_rate_hz: int, target_dbfs: float) -> FloatArray:
    """Scale so the active speech level is ``target_dbfs`` (no clipping here; see :func:`clip`)."""
    return gain_db(x, target_dbfs - active_level_db(x, sample_rate_hz))


def fit_length(noise: FloatArray, n_samples: int, rng: np.random.Generator) -> FloatArray:
    """A random ``n_samples`` excerpt of ``noise``, looped (with a 10 ms crossfade) if short."""
    if len(noise) == 0:
        raise ValueError("noise is empty")
    if len(noise) < n_samples:
        fade = min(160, len(noise) // 4)
        reps = int(np.ceil(n_samples / max(1, len(noise) - fade))) + 1
        ramp = np.linspace(0, 1, fade, dtype=np.float32)
        out = noise.copy()
        for _ in range(reps):
            if fade:
                joint = out[-fade:] * (1 - ramp) + noise[:fade] * ramp
                out = np.concatenate([out[:-fade], joint, noise[fade:]])
            else:
                out = np.concatenate([out, noise])
            if len(out) >= 2 * n_samples:
                break
        noise = out
    start = int(rng.integers(0, len(noise) - n_samples + 1))
    return np.asarray(noise[start: start + n_samples], np.float32)


def add_noise(speech: FloatArray, noise: FloatArray, snr_db: float, sample_rate_hz: int,
              rng: np.random.Generator) -> FloatArray:
    """Mix noise at ``snr_db`` = active speech level − noise RMS level (both dB)."""
    excerpt = fit_length(noise, len(speech), rng)
    target_noise_db = active_level_db(speech, sample_rate_hz) - snr_db
    return (speech + gain_db(excerpt, target_noise_db - rms_db(excerpt))).astype(np.float32)


def bandpass(x: FloatArray, sample_rate_hz: int, low_hz: float | None, high_hz: float | None,
             order: int = 6) -> FloatArray:
    """Zero-phase Butterworth band/low/high-pass (``None`` leaves that edge open)."""
    nyq = sample_rate_hz / 2
    if low_hz and high_hz and high_hz < nyq:
        sos = signal.butter(order, [low_hz, high_hz], btype="bandpass", fs=sample_rate_hz, output="sos")
    elif high_hz and high_hz < nyq:
        sos = signal.butter(order, high_hz, btype="lowpass", fs=sample_rate_hz, output="sos")
    elif low_hz:
        sos = signal.butter(order, low_hz, btype="highpass", fs=sample_rate_hz, output="sos")
    else:
        return x.astype(np.float32)
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def narrowband(x: FloatArray, sample_rate_hz: int, low_hz: float = 300.0,
               high_hz: float = 3400.0) -> FloatArray:
    """Telephone band: 300–3400 Hz, then through 8 kHz sampling and back (nothing above 4 kHz)."""
    band = bandpass(x, sample_rate_hz, low_hz, high_hz, order=4)
    back = resample(resample(band, sample_rate_hz, 8000), 8000, sample_rate_hz)
    return _same_length(back, len(x))


def wideband(x: FloatArray, sample_rate_hz: int) -> FloatArray:
    """Wideband telephony: 100–7000 Hz."""
    return bandpass(x, sample_rate_hz, 100.0, 7000.0, order=6)


# Rough send-side handset shape (IRS-like, not the exact ITU-T P.48 mask): rises
# through the voice band, peaks near 3 kHz, falls off below 300 Hz and above 3.6 kHz.
_IRS_POINTS_HZ = (0, 100, 200, 300, 500, 1000, 2000, 3000, 3400, 3700, 4000)
_IRS_GAIN_DB = (-60, -40, -20, -10, -4, 0, 3, 4, 1, -15, -40)


def irs_like(x: FloatArray, sample_rate_hz: int, n_taps: int = 255) -> FloatArray:
    """Handset-like coloration (linear-phase FIR, delay compensated)."""
    nyq = sample_rate_hz / 2
    freqs = [f for f in _IRS_POINTS_HZ if f < nyq] + [nyq]
    gains = list(_IRS_GAIN_DB[: len(freqs) - 1]) + [-60]
    taps = signal.firwin2(n_taps, freqs, 10 ** (np.asarray(gains) / 20), fs=sample_rate_hz)
    y = signal.fftconvolve(x, taps)[n_taps // 2: n_taps // 2 + len(x)]
    return y.astype(np.float32)


def _peaking_sos(f0_hz: float, gain: float, q: float, sample_rate_hz: int) -> npt.NDArray[np.float64]:
    """One peaking-EQ biquad (RBJ cookbook form) as an SOS row."""
    a = 10 ** (gain / 40)
    w0 = 2 * np.pi * f0_hz / sample_rate_hz
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def random_eq(x: FloatArray, sample_rate_hz: int, rng: np.random.Generator,
              n_bands: int = 3, max_gain_db: float = 12.0) -> FloatArray:
    """Random coloration: ``n_bands`` peaking filters, log-uniform centres 150–6000 Hz."""
    sos = np.concatenate([
        _peaking_sos(float(np.exp(rng.uniform(np.log(150), np.log(6000)))),
                     float(rng.uniform(-max_gain_db, max_gain_db)), float(rng.uniform(0.5, 3.0)),
                     sample_rate_hz)
        for _ in range(n_bands)
    ])
    return signal.sosfilt(sos, x).astype(np.float32)


def clip(x: FloatArray, clipped_fraction: float) -> FloatArray:
    """Hard-clip at the level that ``clipped_fraction`` of the samples exceed (0..1)."""
    if clipped_fraction <= 0:
        return x.astype(np.float32)
    threshold = float(np.quantile(np.abs(x), 1.0 - clipped_fraction))
    return np.clip(x, -threshold, threshold).astype(np.float32)


def saturate(x: FloatArray) -> FloatArray:
    """What a 16-bit path does to a too-loud signal: clip at full scale."""
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def loss_mask(n_frames: int, loss_rate: float, rng: np.random.Generator,
              mean_burst_frames: float = 1.5) -> npt.NDArray[np.bool_]:
    """Exactly ``round(loss_rate·n_frames)`` lost frames, in geometric bursts, never the first.

    Bursts (rather than independent losses) are what jitter-buffer underruns look like.
    """
    n_lost = round(loss_rate * n_frames)
    lost = np.zeros(n_frames, dtype=bool)
    n_lost = min(n_lost, n_frames - 1)
    while int(lost.sum()) < n_lost:
        burst = min(int(rng.geometric(1.0 / mean_burst_frames)), n_lost - int(lost.sum()))
        start = int(rng.integers(1, n_frames))
        free = np.flatnonzero(~lost[start: start + burst])
        lost[start + free] = True
    return lost


def conceal(x: FloatArray, lost: npt.NDArray[np.bool_], frame_samples: int,
            method: Concealment) -> FloatArray:
    """Apply a frame-loss mask: zero insertion, fade in/out around gaps, or repeat-with-decay."""
    y = x.astype(np.float32).copy()
    fade_n = min(frame_samples // 4, 32)
    ramp = np.linspace(1.0, 0.0, fade_n, dtype=np.float32)
    prev_good: FloatArray | None = None
    run = 0
    for i, is_lost in enumerate(lost):
        seg = slice(i * frame_samples, (i + 1) * frame_samples)
        if not is_lost:
            prev_good = x[seg]
            run = 0
            continue
        run += 1
        if method == "repeat" and prev_good is not None and len(prev_good) == frame_samples:
            y[seg] = prev_good * np.float32(0.5 ** (run - 1))  # decays over a burst
        else:
            y[seg] = 0.0
            if method == "fade" and fade_n:
                before = i * frame_samples
                if before >= fade_n and run == 1:
                    y[before - fade_n: before] *= ramp
                after = (i + 1) * frame_samples
                if after + fade_n <= len(y) and (i + 1 >= len(lost) or not lost[i + 1]):
                    y[after: after + fade_n] *= ramp[::-1]
    return y


def packet_loss(x: FloatArray, sample_rate_hz: int, loss_rate: float, rng: np.random.Generator,
                concealment: Concealment = "zero", frame_ms: float = 20.0,
                mean_burst_frames: float = 1.5) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Drop ``loss_rate`` of the ``frame_ms`` packets; returns (audio, lost-frame mask)."""
    frame = round(frame_ms * sample_rate_hz / 1000)
    n_frames = len(x) // frame
    lost = loss_mask(n_frames, loss_rate, rng, mean_burst_frames)
    return conceal(x, lost, frame, concealment), lost


def time_clip(x: FloatArray, sample_rate_hz: int, n_gaps: int, rng: np.random.Generator,
              min_ms: float = 60.0, max_ms: float = 400.0) -> FloatArray:
    """Silence ``n_gaps`` random stretches of 60–400 ms (dropouts, over-eager VAD/AGC)."""
    y = x.astype(np.float32).copy()
    for _ in range(n_gaps):
        length = int(rng.uniform(min_ms, max_ms) * sample_rate_hz / 1000)
        start = int(rng.integers(0, max(1, len(x) - length)))
        y[start: start + length] = 0.0
    return y


def reverberate(x: FloatArray, rir: FloatArray) -> FloatArray:
    """Convolve with a room impulse response, aligned on its direct path, at the input's level."""
    rir = np.asarray(rir, np.float32)
    peak = int(np.argmax(np.abs(rir)))
    wet = signal.fftconvolve(x, rir)[peak: peak + len(x)].astype(np.float32)
    wet = _same_length(wet, len(x))
    return gain_db(wet, rms_db(x) - rms_db(wet)) if np.any(wet) else wet


def room_rir(sample_rate_hz: int, rng: np.random.Generator, rt60_s: float | None = None) -> FloatArray:
    """A simulated shoebox-room RIR (pyroomacoustics image method), random size and positions."""
    import pyroomacoustics as pra

    rt60 = float(rt60_s if rt60_s is not None else rng.uniform(0.2, 1.0))
    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=sample_rate_hz, materials=pra.Material(absorption),
                       max_order=int(min(max_order, 40)))
    room.add_source(rng.uniform(0.5, dims - 0.5))
    room.add_microphone(rng.uniform(0.5, dims - 0.5))
    room.compute_rir()
    return np.asarray(room.rir[0][0], np.float32)


def echo(x: FloatArray, sample_rate_hz: int, delay_ms: float, attenuation_db: float,
         n_echoes: int = 1) -> FloatArray:
    """Talker echo: delayed copies, each ``attenuation_db`` weaker than the one before."""
    y = x.astype(np.float32).copy()
    delay = int(delay_ms * sample_rate_hz / 1000)
    for k in range(1, n_echoes + 1):
        if k * delay >= len(x):
            break
        y[k * delay:] += x[: len(x) - k * delay] * np.float32(10 ** (-k * attenuation_db / 20))
    return y


def babble(talkers: list[FloatArray], n_samples: int, rng: np.random.Generator) -> FloatArray:
    """Sum of other talkers (each at its own random level ±3 dB) as a babble noise track."""
    out = np.zeros(n_samples, np.float32)
    for t in talkers:
        seg = fit_length(t, n_samples, rng)
        out += gain_db(seg, -rms_db(seg) - 26.0 + float(rng.uniform(-3, 3)))
    return out


def mnru(x: FloatArray, q_db: float, rng: np.random.Generator) -> FloatArray:
    """Modulated noise: ``y = x * (1 + 10^(-Q/20) * n)``, ``n`` white Gaussian of unit RMS.

    Q is the ratio of speech to speech-correlated noise in dB (P.810): Q = 40 is barely
    audible, Q = 5 is very rough. The noise follows the speech envelope, so it is
    silent in pauses and lowers signal quality (COL/SIG), not background quality.
    """
    n = rng.standard_normal(x.shape[0])
    return (x * (1.0 + 10.0 ** (-q_db / 20.0) * n)).astype(np.float32)


def _same_length(x: FloatArray, n: int) -> FloatArray:
    if len(x) >= n:
        return np.asarray(x[:n], np.float32)
    return np.concatenate([x, np.zeros(n - len(x), np.float32)]).astype(np.float32)
