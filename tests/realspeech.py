"""Real speech for tests: the bundled sample call's clean section (LibriSpeech, CC BY 4.0).

Why not a synthetic "speech-like" signal: the speech detector (Silero VAD) rightly says
modulated noise and tones are not speech, so tests that need scored windows feed a real
talker. ``speech(seconds, rate)`` loops the 9 s clean section and resamples with soxr.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "livesqa" / "assets"


@functools.lru_cache(maxsize=1)
def _clean_section() -> np.ndarray:
    import soundfile as sf

    table = json.loads((ASSETS / "sample_call.json").read_text(encoding="utf-8"))
    clean = next(s for s in table["sections"] if s["section"] == "clean")
    audio, rate = sf.read(str(ASSETS / "sample_call.flac"), dtype="float32")
    return audio[int(clean["start_s"] * rate): int(clean["end_s"] * rate)].copy()


def speech(seconds: float, sample_rate_hz: int = 16000, offset_s: float = 0.0) -> np.ndarray:
    """``seconds`` of real speech (float32, about -26 dBFS active level) at ``sample_rate_hz``."""
    import soxr

    x = _clean_section()
    start = int(offset_s * 16000) % x.size
    n = int(round(seconds * 16000))
    looped = np.tile(x, n // x.size + 2)[start: start + n]
    if sample_rate_hz != 16000:
        looped = soxr.resample(looped, 16000, sample_rate_hz).astype(np.float32)
    return np.ascontiguousarray(looped, dtype=np.float32)
