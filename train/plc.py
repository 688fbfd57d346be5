"""Packet loss as real decoders conceal it: Opus (libopus PLC) and AMR (bad-frame concealment).

Why: a lost packet in a real call is not silence. Opus and AMR decoders fill it with their
own concealment (pitch-repeated, spectrally faded excitation), which sounds nothing like
zero insertion. A student that only ever heard zero-filled or repeated frames misjudges
the chopped speech of real calls, so the simulator renders loss through the decoders
themselves:

- Opus: encode with libopus (ctypes, the system ``libopus.so.0`` that Debian's ffmpeg
  brings, else the copy inside PyAV's wheel), then decode each frame, calling
  ``opus_decode`` with no data for the lost ones: libopus's own packet-loss concealment.
- AMR-NB / AMR-WB: encode with ffmpeg to the RFC 4867 storage format, mark lost frames
  bad (quality bit Q = 0, payload zeroed), decode with ffmpeg: the decoder's bad-frame
  handling (ETSI substitution and muting) conceals them.

Loss patterns come from a two-state Gilbert–Elliott model (bursty) or independent draws.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livesqa.audio import float32_to_pcm16, pcm16_to_float32, resample
from livesqa.errors import ConfigError
from train.codecs import align_to

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

OPUS_APPLICATION_VOIP = 2048
OPUS_SET_BITRATE_REQUEST = 4002
OPUS_RATE_HZ = 16000
#: payload bytes per frame type (RFC 4867 table 1/2); FT 15 = NO_DATA
AMR_NB_BYTES = {0: 12, 1: 13, 2: 15, 3: 17, 4: 19, 5: 20, 6: 26, 7: 31, 8: 5, 15: 0}
AMR_WB_BYTES = {0: 17, 1: 23, 2: 32, 3: 36, 4: 40, 5: 46, 6: 50, 7: 58, 8: 60, 9: 5, 15: 0}
AMR_MAGIC = {"amr-nb": b"#!AMR\n", "amr-wb": b"#!AMR-WB\n"}


def gilbert_elliott_mask(n_frames: int, loss_rate: float, mean_burst_frames: float,
                         rng: np.random.Generator) -> BoolArray:
    """Lost frames from a two-state Markov chain with the given mean loss and burst length.

    The bad state loses every frame; it is left with probability ``1/mean_burst``, and
    entered with the probability that makes the stationary loss rate ``loss_rate``.
    ``mean_burst_frames <= 1`` gives independent losses. The first frame is never lost.
    """
    loss_rate = float(np.clip(loss_rate, 0.0, 0.95))
    if mean_burst_frames <= 1.0:  # independent (Bernoulli) losses
        lost = rng.random(n_frames) < loss_rate
        lost[:1] = False
        return lost
    r = 1.0 / mean_burst_frames
    p = min(1.0, loss_rate * r / max(1e-9, 1.0 - loss_rate))
    lost = np.zeros(n_frames, dtype=bool)
    bad = False
    u = rng.random(n_frames)
    for i in range(1, n_frames):
        bad = (u[i] >= r) if bad else (u[i] < p)
        lost[i] = bad
    return lost


@functools.lru_cache(maxsize=1)
def _libopus() -> ctypes.CDLL:
    candidates = [ctypes.util.find_library("opus"), "libopus.so.0"]
    try:
        import av

        candidates += sorted(glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs",
                                                    "libopus*.so*")))
    except ImportError:
        pass
    for name in candidates:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_int)]
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_encode.restype = ctypes.c_int32
        lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16), ctypes.c_int,
                                    ctypes.c_char_p, ctypes.c_int32]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                    ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
        lib.opus_encoder_ctl.restype = ctypes.c_int
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        return lib
    raise ConfigError("libopus not found (apt-get install libopus0, or pip install av)")


def opus_with_loss(x: FloatArray, sample_rate_hz: int, lost: BoolArray, bitrate_bps: int = 16000,
                   frame_ms: int = 20) -> FloatArray:
    """Encode ``x`` with Opus (VoIP mode, ``frame_ms`` frames), drop the frames marked in ``lost``
    and decode with libopus's concealment; same length and timing as ``x``."""
    if frame_ms not in (10, 20, 40, 60):
        raise ValueError(f"Opus frame size {frame_ms} ms (10, 20, 40 or 60)")
    lib = _libopus()
    err = ctypes.c_int(0)
    enc = lib.opus_encoder_create(OPUS_RATE_HZ, 1, OPUS_APPLICATION_VOIP, ctypes.byref(err))
    dec = lib.opus_decoder_create(OPUS_RATE_HZ, 1, ctypes.byref(err))
    if not enc or not dec or err.value != 0:
        raise ConfigError(f"libopus could not create a codec (error {err.value})")
    try:
        lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(OPUS_SET_BITRATE_REQUEST),
                             ctypes.c_int32(int(bitrate_bps)))
        pcm = float32_to_pcm16(resample(np.asarray(x, np.float32), sample_rate_hz, OPUS_RATE_HZ))
        frame = OPUS_RATE_HZ * frame_ms // 1000
        n_frames = int(np.ceil(len(pcm) / frame))
        pcm = np.concatenate([pcm, np.zeros(n_frames * frame - len(pcm), np.int16)])
        out = np.zeros(n_frames * frame, np.int16)
        packet = ctypes.create_string_buffer(1500)
        buf = (ctypes.c_int16 * frame)()
        for i in range(n_frames):
            chunk = np.ascontiguousarray(pcm[i * frame: (i + 1) * frame])
            n = lib.opus_encode(ctypes.c_void_p(enc), chunk.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
                                frame, packet, 1500)
            is_lost = i < len(lost) and bool(lost[i])
            got = lib.opus_decode(ctypes.c_void_p(dec), None if is_lost else packet, 0 if is_lost else n,
                                  buf, frame, 0)
            if got > 0:
                out[i * frame: i * frame + got] = np.ctypeslib.as_array(buf)[:got]
    finally:
        lib.opus_encoder_destroy(ctypes.c_void_p(enc))
        lib.opus_decoder_destroy(ctypes.c_void_p(dec))
    y = resample(pcm16_to_float32(out), OPUS_RATE_HZ, sample_rate_hz)
    return align_to(np.asarray(x, np.float32), y, sample_rate_hz)


def _ffmpeg(args: list[str], stdin: bytes | None = None) -> bytes:
    try:
        return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                              input=stdin, capture_output=True, check=True).stdout
    except FileNotFoundError as e:
        raise ConfigError("ffmpeg not found; install it (apt-get install ffmpeg libavcodec-extra)") from e
    except subprocess.CalledProcessError as e:
        lines = e.stderr.decode(errors="replace").strip().splitlines()
        raise ConfigError(f"ffmpeg failed: {lines[-1] if lines else e}") from e


def amr_frames(data: bytes, codec: str) -> tuple[bytes, list[bytearray]]:
    """Split an RFC 4867 storage-format file into (magic, frames with their header byte)."""
    magic = AMR_MAGIC[codec]
    if not data.startswith(magic):
        raise ConfigError(f"not an {codec} storage file")
    sizes = AMR_NB_BYTES if codec == "amr-nb" else AMR_WB_BYTES
    frames: list[bytearray] = []
    pos = len(magic)
    while pos < len(data):
        ft = (data[pos] >> 3) & 0x0F
        size = sizes.get(ft, 0)
        frames.append(bytearray(data[pos: pos + 1 + size]))
        pos += 1 + size
    return magic, frames


def amr_with_loss(x: FloatArray, sample_rate_hz: int, lost: BoolArray, codec: str = "amr-nb",
                  bitrate: str = "12.2k") -> FloatArray:
    """AMR round trip (ffmpeg) with the 20 ms frames in ``lost`` marked bad before decoding."""
    if codec not in AMR_MAGIC:
        raise ValueError(f"codec {codec!r} (amr-nb or amr-wb)")
    encoder, rate = ("libopencore_amrnb", 8000) if codec == "amr-nb" else ("libvo_amrwbenc", 16000)
    pcm = float32_to_pcm16(np.asarray(x, np.float32)).tobytes()
    with tempfile.TemporaryDirectory(prefix="livesqa-amr-") as tmp:
        src = Path(tmp) / "x.amr"
        _ffmpeg(["-f", "s16le", "-ar", str(sample_rate_hz), "-ac", "1", "-i", "pipe:0", "-ar", str(rate),
                 "-c:a", encoder, "-b:a", bitrate, "-f", "amr", str(src)], stdin=pcm)
        magic, frames = amr_frames(src.read_bytes(), codec)
        for i, f in enumerate(frames):
            if i < len(lost) and lost[i] and len(f) > 1:
                f[0] &= ~0x04 & 0xFF  # Q = 0: bad frame
                f[1:] = bytes(len(f) - 1)
        bad = Path(tmp) / "y.amr"
        bad.write_bytes(magic + b"".join(bytes(f) for f in frames))
        raw = _ffmpeg(["-i", str(bad), "-f", "s16le", "-ac", "1", "-ar", str(sample_rate_hz), "pipe:1"])
    # the codec's delay is removed by cross-correlation, as for every codec round trip
    return align_to(np.asarray(x, np.float32), pcm16_to_float32(np.frombuffer(raw, dtype=np.int16)),
                    sample_rate_hz)
