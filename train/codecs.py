"""Real speech codecs by round trip through the ``ffmpeg`` command line.

Why ffmpeg: Debian's build with libavcodec-extra carries the real telephony encoders
(G.711, G.722, G.726, AMR-NB/WB, GSM, Speex, Opus, MP3); PyAV lacks GSM, Speex and
AMR-WB encoding. A round trip is encode to a temporary file (so muxers that seek,
e.g. MP3's LAME tag, write complete files), decode back to 16-bit PCM at the input
rate, then realign by cross-correlation and cut to the input length, so a codec's
algorithmic delay never shifts the clip against its labels or its source.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livesqa.audio import float32_to_pcm16, pcm16_to_float32
from livesqa.errors import ConfigError

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float32]

MAX_DELAY_S = 0.1  # search range for the codec's delay when realigning


@dataclass(frozen=True)
class Codec:
    """One ffmpeg encoder setting family; ``bitrates`` are ffmpeg ``-b:a`` values."""

    name: str
    encoder: str  # ffmpeg encoder name, as in `ffmpeg -encoders`
    container: str  # ffmpeg muxer (-f)
    rate_hz: int  # the codec's sampling rate; the round trip resamples in and out
    bitrates: tuple[str, ...] = ("",)  # "" = the codec's only rate
    extra_args: tuple[str, ...] = ()


#: The codecs the simulator draws from (low bitrates on purpose: that is where quality drops).
CODECS: dict[str, Codec] = {c.name: c for c in (
    Codec("g711-alaw", "pcm_alaw", "wav", 8000),
    Codec("g711-ulaw", "pcm_mulaw", "wav", 8000),
    Codec("g722", "g722", "wav", 16000, ("64k",)),
    Codec("g726", "g726", "wav", 8000, ("16k", "24k", "32k")),
    Codec("amr-nb", "libopencore_amrnb", "amr", 8000,
          ("4.75k", "5.15k", "5.9k", "6.7k", "7.4k", "7.95k", "10.2k", "12.2k")),
    Codec("amr-wb", "libvo_amrwbenc", "amr", 16000,
          ("6.6k", "8.85k", "12.65k", "15.85k", "23.85k")),
    Codec("gsm", "libgsm", "gsm", 8000),
    Codec("opus", "libopus", "ogg", 16000, ("6k", "8k", "10k", "12k", "16k", "24k"),
          ("-application", "voip")),
    Codec("speex", "libspeex", "ogg", 16000, ("8k", "12k", "16k", "24k")),
    Codec("mp3", "libmp3lame", "mp3", 16000, ("8k", "16k", "24k", "32k")),
)}


@functools.lru_cache(maxsize=1)
def available_encoders() -> frozenset[str]:
    """Encoder names that this machine's ``ffmpeg -encoders`` lists (empty without ffmpeg)."""
    if shutil.which("ffmpeg") is None:
        return frozenset()
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True,
                         check=False).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "AVS.":
            names.add(parts[1])
    return frozenset(names)


def usable_codecs() -> dict[str, Codec]:
    """The codecs of :data:`CODECS` whose encoder exists here; warns once for each missing one."""
    have = available_encoders()
    missing = [c.name for c in CODECS.values() if c.encoder not in have]
    if missing:
        log.warning("ffmpeg lacks encoders for %s; they are skipped (install ffmpeg and "
                    "libavcodec-extra)", ", ".join(missing))
    return {name: c for name, c in CODECS.items() if c.encoder in have}


def _ffmpeg(args: list[str], stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                               *args], input=stdin, capture_output=True, check=True)
    except FileNotFoundError as e:
        raise ConfigError("ffmpeg not found; install it (apt-get install ffmpeg libavcodec-extra)") from e
    except subprocess.CalledProcessError as e:
        msg = e.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(f"ffmpeg failed: {msg[-1] if msg else e}") from e
    return done.stdout


def align_to(reference: FloatArray, decoded: FloatArray, sample_rate_hz: int) -> FloatArray:
    """Shift ``decoded`` by the lag that best matches ``reference`` and cut/pad to its length.

    The lag is searched within ±:data:`MAX_DELAY_S` by FFT cross-correlation.
    """
    n = len(reference)
    max_lag = int(MAX_DELAY_S * sample_rate_hz)
    size = 1 << int(np.ceil(np.log2(n + len(decoded) + 1)))
    spec = np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(reference, size))
    xcorr = np.fft.irfft(spec, size)
    # xcorr[k] = sum decoded[t + k] * reference[t]; negative k wraps to the end
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([xcorr[: max_lag + 1], xcorr[size - max_lag:]])
    lag = int(lags[int(np.argmax(values))]) if np.any(reference) else 0
    if lag >= 0:
        shifted = decoded[lag:]
    else:
        shifted = np.concatenate([np.zeros(-lag, np.float32), decoded])
    out = np.zeros(n, np.float32)
    out[: min(n, len(shifted))] = shifted[:n]
    return out


def codec_roundtrip(audio: FloatArray, sample_rate_hz: int, codec: Codec, bitrate: str = "") -> FloatArray:
    """Encode and decode ``audio`` (mono float32) with a real codec; same length and timing out."""
    pcm = float32_to_pcm16(audio).tobytes()
    rate_args = ["-b:a", bitrate] if bitrate else []
    with tempfile.TemporaryDirectory(prefix="livesqa-codec-") as tmp:
        encoded = Path(tmp) / f"x.{codec.container}"
        _ffmpeg(["-f", "s16le", "-ar", str(sample_rate_hz), "-ac", "1", "-i", "pipe:0",
                 "-ar", str(codec.rate_hz), "-c:a", codec.encoder, *rate_args, *codec.extra_args,
                 "-f", codec.container, str(encoded)], stdin=pcm)
        raw = _ffmpeg(["-i", str(encoded), "-f", "s16le", "-ac", "1", "-ar", str(sample_rate_hz),
                       "pipe:1"])
    decoded = pcm16_to_float32(np.frombuffer(raw, dtype=np.int16))
    return align_to(np.asarray(audio, np.float32), decoded, sample_rate_hz)


def ffmpeg_decode(path: str | Path, sample_rate_hz: int) -> FloatArray:
    """Decode any file ffmpeg reads to mono float32 at a rate (for files libsndfile rejects)."""
    raw = _ffmpeg(["-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(sample_rate_hz), "pipe:1"])
    return pcm16_to_float32(np.frombuffer(raw, dtype=np.int16))
