"""Windows for the speech head: simulated audio with per-frame "a talker is active" labels.

Why simulated: the simulator holds the clean talker, so where speech is active is known
exactly, in any noise, codec or level. Every window is a pure function of (seed, index),
so a feature cache can be resumed and a run repeated.

Kinds (``KIND_SHARES``): a TRAIN-split talker in TRAIN-split noise at an SNR drawn from
``SNR_RANGE_DB`` (the talker may start or stop inside the window, so its edges and the
noise around it are in the data); noise right after a talker stops (with reverb tail when
the talker was reverberant); and windows with no talker at all: noise files alone,
synthetic tones (dial/ringback/busy-like pairs at random frequencies and cadences, DTMF,
sweeps, hum), synthetic music (notes, chords, drums), digital silence and dither, coloured comfort noise. A share of every kind
goes through a call path (narrowband, a real codec, packet loss). Levels are random.

Labels: a 25 ms frame (10 ms hop, the model's mel frames) of the dry clean talker is
active when its energy is within ``LABEL_MARGIN_DB`` of the utterance's active speech
level (P.56-like, ``train.degrade.active_level_db``); an encoder frame's label is the
mean over the central five of the seven mel frames that feed it (a soft label).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livesqa.errors import AudioInputError
from train import degrade as dg
from train.sim_catalogue import Catalogue

SR = 16000
SNR_RANGE_DB = (-10.0, 30.0)
LABEL_MARGIN_DB = 35.0
MEL_WIN, MEL_HOP = 400, 160
KIND_SHARES = {
    "talker": 0.5,
    "after-talker": 0.07,
    "noise": 0.16,
    "tones": 0.07,
    "music": 0.1,
    "silence": 0.04,
    "comfort": 0.06,
}
CALL_PATH_SHARE = 0.3
CODEC_SHARE = 0.2  # of the call paths; a codec is an ffmpeg round trip (~0.5 s of CPU)
TALKER_POOL = 800  # utterances drawn from (decoded once each, kept in memory)
CALL_CODECS = (("g711-alaw", ""), ("amr-nb", "7.95k"), ("gsm", ""), ("opus", "8k"), ("g722", "64k"))


@dataclass(frozen=True)
class SpeechWindow:
    """One training window: audio and the clean talker's mel-frame activity (both 16 kHz)."""

    kind: str
    audio: np.ndarray  # float32 [n]
    active: np.ndarray  # float32 [n_mel_frames], 0/1 per 25 ms frame at a 10 ms hop


def mel_frame_activity(clean: np.ndarray, active_level_db: float) -> np.ndarray:
    """1 where a mel frame of the dry talker is within LABEL_MARGIN_DB of its active level."""
    n = max(0, (len(clean) - MEL_WIN) // MEL_HOP + 1)
    if n == 0:
        return np.zeros(0, np.float32)
    idx = np.arange(n)[:, None] * MEL_HOP + np.arange(MEL_WIN)[None, :]
    e = 10 * np.log10(np.mean(np.square(clean[idx], dtype=np.float64), axis=1) + 1e-12)
    return (e >= active_level_db - LABEL_MARGIN_DB).astype(np.float32)


def encoder_labels(active: np.ndarray, n_frames: int) -> np.ndarray:
    """Soft label of each 40 ms encoder frame: mean activity of mel frames 4j+1 .. 4j+5."""
    out = np.zeros(n_frames, np.float32)
    for j in range(n_frames):
        seg = active[4 * j + 1: 4 * j + 6]
        out[j] = float(seg.mean()) if seg.size else 0.0
    return out


class WindowMaker:
    """Makes window ``i`` of a seeded series from one split of a catalogue (train by default)."""

    def __init__(self, cat: Catalogue, seed: int, split: str = "train", call_path: bool = True) -> None:
        self.cat = cat
        self.seed = seed
        self.split = split
        self.call_path = call_path
        utts = list(cat.speech[split])
        pick = np.random.default_rng([seed, 1]).permutation(len(utts))[:TALKER_POOL]
        self.utts = [utts[i] for i in sorted(pick)]
        self._talkers: dict[int, np.ndarray] = {}
        self.noise_paths = list(cat.noise[split])
        self._noise: dict[str, np.ndarray] = {}
        self._irs: list[np.ndarray] | None = None
        kinds = list(KIND_SHARES)
        self._kinds = kinds
        self._p = np.array([KIND_SHARES[k] for k in kinds]) / sum(KIND_SHARES.values())

    # --- sources ------------------------------------------------------------------
    def _noise_of(self, rng: np.random.Generator) -> np.ndarray:
        path = self.noise_paths[int(rng.integers(len(self.noise_paths)))]
        if path not in self._noise:
            self._noise[path] = _load(path)[: 120 * SR]
        return self._noise[path]

    def _talker(self, rng: np.random.Generator) -> np.ndarray:
        for _ in range(10):
            k = int(rng.integers(len(self.utts)))
            if k not in self._talkers:
                try:
                    self._talkers[k] = _load(self.utts[k].path)
                except (AudioInputError, OSError):
                    self._talkers[k] = np.zeros(0, np.float32)
            x = self._talkers[k]
            if len(x) > SR // 2 and np.any(x):
                return x
        raise AudioInputError("ten unreadable utterances in a row")

    def _ir(self, rng: np.random.Generator) -> np.ndarray | None:
        if self._irs is None:
            self._irs = []
            for p in self.cat.irs:
                try:
                    self._irs.append(_load(p)[: SR])
                except (AudioInputError, OSError):
                    pass
        return self._irs[int(rng.integers(len(self._irs)))] if self._irs else None

    # --- windows ------------------------------------------------------------------
    def __call__(self, index: int) -> SpeechWindow:
        rng = np.random.default_rng([self.seed, index])
        kind = self._kinds[int(rng.choice(len(self._kinds), p=self._p))]
        n = 4 * SR if rng.random() < 0.5 else int(rng.uniform(1.0, 4.0) * SR)
        n_mel = (n - MEL_WIN) // MEL_HOP + 1
        active = np.zeros(n_mel, np.float32)
        if kind in ("talker", "after-talker"):
            x, active = self._talker_window(kind, n, rng)
        elif kind == "noise":
            x = dg.fit_length(self._noise_of(rng), n, rng)
            x = _at_dbfs(x, rng.uniform(-65.0, -15.0))
        elif kind == "tones":
            x = _at_dbfs(synthetic_tone(n, rng), rng.uniform(-45.0, -10.0))
        elif kind == "music":
            x = _at_dbfs(synthetic_music(n, rng), rng.uniform(-45.0, -12.0))
        elif kind == "silence":
            x = np.zeros(n, np.float32) if rng.random() < 0.4 else _at_dbfs(
                rng.standard_normal(n), rng.uniform(-100.0, -75.0))
        else:  # comfort noise
            x = _at_dbfs(coloured(n, rng.uniform(0.0, 2.0), rng), rng.uniform(-75.0, -40.0))
        if self.call_path and rng.random() < CALL_PATH_SHARE:
            x = self._call_path(x, rng)
        return SpeechWindow(kind, dg.saturate(x).astype(np.float32), active)

    def _talker_window(self, kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        talk = self._talker(rng)
        level = rng.uniform(-45.0, -15.0)
        act_db = dg.active_level_db(talk, SR)
        talk = dg.gain_db(talk, level - act_db)
        total = len(talk) + 2 * n
        clean = np.zeros(total, np.float32)
        clean[n: n + len(talk)] = talk  # the talker between n samples of nothing each side
        if kind == "talker":
            # any window [start, start + n) that overlaps the talker [n, n + len) by >= 0.3 s
            lo, hi = int(0.3 * SR), n + len(talk) - int(0.3 * SR)
            start = int(rng.integers(lo, max(lo + 1, hi)))
        else:  # the window starts 0-1 s after the talker stops
            start = n + len(talk) + int(rng.uniform(0.0, 1.0) * SR)
            start = min(start, total - n)
        wet = clean
        if rng.random() < 0.25:
            ir = self._ir(rng)
            if ir is not None:
                wet = dg.reverberate(clean, ir)
        mix = wet
        if rng.random() < 0.9:
            snr = rng.uniform(*SNR_RANGE_DB)
            noise = dg.fit_length(self._noise_of(rng), total, rng)
            noise_db = level - snr
            mix = wet + dg.gain_db(noise, noise_db - dg.rms_db(noise))
        else:  # clean talker with a low dither floor
            mix = wet + _at_dbfs(rng.standard_normal(total), rng.uniform(-90.0, -70.0))
        x = mix[start: start + n].astype(np.float32)
        active = mel_frame_activity(clean[start: start + n], level)
        return x, active

    def _call_path(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Narrowband, a real codec or packet loss (one of them), as a call would do."""
        from train.codecs import CODECS, codec_roundtrip, usable_codecs

        pick = rng.random()
        try:
            if pick < 0.5:
                return dg.narrowband(x, SR)
            if pick < 0.5 + CODEC_SHARE:
                usable = usable_codecs()
                options = [(c, b) for c, b in CALL_CODECS if c in usable]
                if options:
                    name, rate = options[int(rng.integers(len(options)))]
                    return codec_roundtrip(x, SR, CODECS[name], rate)
                return dg.narrowband(x, SR)
            y, _ = dg.packet_loss(x, SR, rng.uniform(0.03, 0.15), rng,
                                  concealment=("zero", "fade", "repeat")[int(rng.integers(3))])
            return y
        except Exception:  # noqa: BLE001 - a codec that fails on one window: keep the window as is
            return x


def synthetic_tone(n: int, rng: np.random.Generator) -> np.ndarray:
    """Call-progress-like tones: a pair at random frequencies with a random cadence, DTMF,
    a single sine, a sweep or mains hum."""
    t = np.arange(n) / SR
    pick = int(rng.integers(5))
    if pick == 0:
        f = rng.uniform(300, 700, size=2)
        x = np.sin(2 * np.pi * f[0] * t) + np.sin(2 * np.pi * f[1] * t)
        if rng.random() < 0.7:
            on, off = rng.uniform(0.2, 2.5), rng.uniform(0.2, 4.0)
            x = x * ((t % (on + off)) < on)
    elif pick == 1:
        lows, highs = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
        x = np.zeros(n)
        step = int(rng.uniform(0.08, 0.3) * SR)
        for s in range(0, n, 2 * step):
            seg = t[s: s + step]
            x[s: s + step] = (np.sin(2 * np.pi * rng.choice(lows) * seg)
                              + np.sin(2 * np.pi * rng.choice(highs) * seg))
    elif pick == 2:
        x = np.sin(2 * np.pi * rng.uniform(200, 4000) * t)
        if rng.random() < 0.5:
            on = rng.uniform(0.3, 1.0)
            x = x * ((t % (on + rng.uniform(0.5, 3.0))) < on)
    elif pick == 3:
        f = np.geomspace(rng.uniform(80, 500), rng.uniform(2000, 7000), n)
        x = np.sin(2 * np.pi * np.cumsum(f) / SR)
    else:
        base = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(np.sin(2 * np.pi * base * k * t) / k for k in (1, 2, 3, 5))
    return np.asarray(x, np.float32)


def synthetic_music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like signals (no recordings: the benchmark's hold music stays unseen): 1-3
    voices of harmonic notes on a random scale with attack/decay envelopes, at a random
    tempo, sometimes with a sustained chord pad and noise-burst drums on the beat."""
    t = np.arange(n) / SR
    root = rng.uniform(110.0, 330.0)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16]) if rng.random() < 0.5 else \
        np.array([0, 2, 3, 5, 7, 8, 10, 12, 14, 15])
    beat = rng.uniform(0.25, 0.8)  # seconds per beat
    x = np.zeros(n)
    for voice in range(int(rng.integers(1, 4))):
        octave = 2.0 ** int(rng.integers(-1, 2))
        pos = 0
        while pos < n:
            dur = int(beat * rng.choice([0.5, 1.0, 1.0, 2.0]) * SR)
            f0 = root * octave * 2 ** (rng.choice(scale) / 12)
            seg = t[: min(dur, n - pos)]
            n_harm = int(rng.integers(1, 8))
            note = sum(np.sin(2 * np.pi * f0 * k * seg) * rng.uniform(0.2, 1.0) / k
                       for k in range(1, n_harm + 1))
            env = np.minimum(1.0, seg / 0.01) * np.exp(-seg * rng.uniform(0.5, 6.0))
            x[pos: pos + len(seg)] += note * env
            pos += dur
    if rng.random() < 0.4:  # a sustained chord pad
        for step in rng.choice(scale, size=3, replace=False):
            x += 0.3 * np.sin(2 * np.pi * root * 2 ** (step / 12) * t)
    if rng.random() < 0.5:  # drums: decaying noise bursts on the beat
        hit = int(0.08 * SR)
        env = np.exp(-np.arange(hit) / (0.015 * SR))
        for pos in range(0, n - hit, int(beat * SR)):
            x[pos: pos + hit] += rng.uniform(0.5, 1.5) * rng.standard_normal(hit) * env
    return np.asarray(x, np.float32)


def coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power ~ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.arange(1, len(spec)) ** (exponent / 2)
    spec[0] = 0
    return np.fft.irfft(spec, n).astype(np.float32)


def _at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if not np.any(x):
        return x
    return dg.gain_db(x, dbfs - dg.rms_db(x))


def _load(path: str) -> np.ndarray:
    from livesqa.audio import read_audio
    from train.codecs import ffmpeg_decode

    try:
        return read_audio(path, SR)
    except AudioInputError:
        return ffmpeg_decode(path, SR)
