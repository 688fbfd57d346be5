"""Audio conversion at the edge: PCM16 <-> float32, downmix, resampling, file reading.

Why one module: the runtime and ``train/`` must turn audio into the model's input
the same way (mono float32 in [-1, 1] at the model's rate), or training and
inference drift apart. Resampling uses soxr (a real band-limited resampler).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from livesqa.errors import AudioInputError

FloatArray = npt.NDArray[np.float32]

PCM16_FULL_SCALE = 32768.0  # int16 range is [-32768, 32767]


def pcm16_to_float32(pcm: npt.NDArray[np.int16]) -> FloatArray:
    """int16 samples -> float32 in [-1, 1)."""
    return (pcm.astype(np.float32) / np.float32(PCM16_FULL_SCALE)).astype(np.float32)


def float32_to_pcm16(audio: npt.NDArray[np.floating]) -> npt.NDArray[np.int16]:
    """float samples (full scale 1.0) -> int16, clipped."""
    scaled = np.clip(np.asarray(audio, dtype=np.float64) * PCM16_FULL_SCALE, -32768, 32767)
    return np.round(scaled).astype(np.int16)


def downmix(audio: npt.NDArray[np.floating]) -> FloatArray:
    """``[samples]`` or ``[samples, channels]`` -> mono ``[samples]`` float32 (channel mean)."""
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2:
        return arr.mean(axis=1, dtype=np.float32)
    raise AudioInputError(f"audio must be 1-D or 2-D [samples, channels], got shape {arr.shape}")


def resample(audio: npt.NDArray[np.floating], from_hz: int, to_hz: int) -> FloatArray:
    """Whole-signal band-limited resampling (soxr, high quality). Mono ``[samples]``."""
    arr = np.asarray(audio, dtype=np.float32)
    if from_hz == to_hz:
        return arr
    import soxr

    return np.asarray(soxr.resample(arr, from_hz, to_hz, quality="HQ"), dtype=np.float32)


class StreamingResampler:
    """Chunk-by-chunk resampler for live sources; output is continuous across chunks."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._stream = None
        if from_hz != to_hz:
            import soxr

            self._stream = soxr.ResampleStream(from_hz, to_hz, 1, dtype="float32", quality="HQ")

    def process(self, chunk: FloatArray, last: bool = False) -> FloatArray:
        """Resample one mono chunk; pass ``last=True`` to flush the filter tail."""
        if self._stream is None:
            return np.asarray(chunk, dtype=np.float32)
        return np.asarray(self._stream.resample_chunk(chunk, last=last), dtype=np.float32)


def sanitize(audio: FloatArray) -> tuple[FloatArray, int]:
    """Replace NaN/inf with 0 and clip to [-1, 1]; returns (clean, count of non-finite)."""
    bad = ~np.isfinite(audio)
    n_bad = int(bad.sum())
    if n_bad:
        audio = np.where(bad, np.float32(0.0), audio).astype(np.float32)
    return np.clip(audio, -1.0, 1.0).astype(np.float32), n_bad


def read_audio(path: str | Path, sample_rate_hz: int) -> FloatArray:
    """Read any soundfile-readable file (wav, flac, ogg/opus, mp3) as mono float32 at a rate.

    Raises :class:`AudioInputError` with the file name and reason for anything unreadable.
    """
    import soundfile as sf

    p = Path(path)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise AudioInputError(f"{p}: cannot read audio ({e})") from e
    if data.shape[0] == 0:
        raise AudioInputError(f"{p}: file holds no audio samples")
    mono = downmix(data)
    mono, _ = sanitize(mono)
    return resample(mono, int(rate), sample_rate_hz)
