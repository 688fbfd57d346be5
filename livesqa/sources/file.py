"""Audio files as sources: scored as fast as possible, or replayed in real time.

Files of any soundfile-readable format (wav, flac, ogg/vorbis/opus, mp3), any sample
rate and channel count are read block by block (memory stays flat for hour-long
calls), downmixed and resampled at the edge. ``realtime=True`` paces blocks by the
file's sample clock (``livesqa replay``), so the live pipeline sees what a
microphone would deliver.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

from livesqa.errors import AudioInputError
from livesqa.sources import EdgeConverter
from livesqa.sources.array import pace
from livesqa.types import AudioChunk

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".oga", ".mp3", ".aiff", ".aif", ".au"}


def _os_reason(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop (the link points back to itself)"
    if e.errno == errno.ENOENT:
        return "no such file"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: cannot read it"
    return (e.strerror or e.__class__.__name__).lower()


def check_input(path: Path) -> int:
    """Why ``path`` cannot be read as an audio file, as :class:`AudioInputError`; else its size.

    Why before soundfile: libsndfile says "System error." for a missing file, a
    permission problem and a symlink loop alike, and opening a named pipe blocks
    until a writer comes (Ctrl-C included). Only regular files are read.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        raise AudioInputError(f"{path}: {_os_reason(e)}") from e
    if stat.S_ISDIR(st.st_mode):
        raise AudioInputError(f"{path}: is a folder; pass it to `livesqa file` to score its files")
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise AudioInputError(f"{path}: is {kind}, not a regular file; save the audio to a "
                              "file first (e.g. ffmpeg -i - call.wav)")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise AudioInputError(f"{path}: {_os_reason(e)}") from e
    if st.st_size == 0:
        raise AudioInputError(f"{path}: file is empty (0 bytes)")
    return int(st.st_size)


def is_regular_file(path: Path) -> bool:
    """True for a regular file (following links); never opens it (a pipe would block)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def expand_paths(paths: list[str], problems: list[str] | None = None) -> list[Path]:
    """Files as given, folders searched recursively for audio suffixes (sorted).

    A folder that cannot be listed is reported in ``problems`` (one line each,
    naming it) or, without that list, raised as :class:`AudioInputError`: never
    skipped without a word.
    """
    out: list[Path] = []
    for text in paths:
        p = Path(text)
        if not p.is_dir():
            out.append(p)
            continue
        found: list[Path] = []
        errors: list[str] = []

        def onerror(e: OSError, errors: list[str] = errors, top: Path = p) -> None:
            where = e.filename or top
            errors.append(f"{where}: cannot list this folder ({_os_reason(e)}); its files were "
                          "not scored")

        for root, dirs, names in os.walk(p, onerror=onerror):
            dirs.sort()
            found += [Path(root) / n for n in names if Path(n).suffix.lower() in AUDIO_SUFFIXES]
        out += sorted(found)
        if errors and problems is None:
            raise AudioInputError(errors[0])
        if problems is not None:
            problems += errors
    return out


def _seconds(frames: int, rate: int) -> str:
    """A duration that never rounds onto a limit: 63,999 samples at 16 kHz is 3.9999 s."""
    text = f"{frames / rate:.2f}"
    digits = 2
    while digits < 6 and float(text) * rate != frames:
        digits += 1
        text = f"{frames / rate:.{digits}f}"
    return text.rstrip("0").rstrip(".") + " s"


class FileSource:
    """Streams one audio file as :class:`AudioChunk` s at ``to_hz``."""

    def __init__(
        self,
        path: str | Path,
        to_hz: int,
        min_duration_s: float = 0.0,
        block_s: float = 0.5,
        realtime: bool = False,
    ) -> None:
        import soundfile as sf

        self.path = Path(path)
        self.to_hz = to_hz
        self.live = realtime
        self.description = f"{'replay' if realtime else 'file'}: {self.path.name}"
        check_input(self.path)
        try:
            info = sf.info(str(self.path))
        except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
            raise AudioInputError(f"{self.path}: cannot read audio ({_reason(e)})") from e
        self.sample_rate_hz = int(info.samplerate)
        self.channels = int(info.channels)
        self.frames = int(info.frames)
        if self.frames <= 0 and info.format not in {"MPEG"}:
            raise AudioInputError(f"{self.path}: file holds no audio samples")
        self.duration_s = self.frames / self.sample_rate_hz if self.sample_rate_hz else 0.0
        if 0 < self.duration_s < min_duration_s:
            window = int(round(min_duration_s * self.sample_rate_hz))
            raise AudioInputError(
                f"{self.path}: {_seconds(self.frames, self.sample_rate_hz)} "
                f"({self.frames} samples at {self.sample_rate_hz} Hz) is too short to score: "
                f"a score needs at least {_seconds(window, self.sample_rate_hz)}"
            )
        self.block_frames = max(1, int(round(block_s * self.sample_rate_hz)))

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        import soundfile as sf

        conv = EdgeConverter(self.sample_rate_hz, self.to_hz)
        t0 = time.perf_counter()
        read = 0
        blocks = 0
        try:
            with sf.SoundFile(str(self.path)) as f:
                while True:
                    block = f.read(self.block_frames, dtype="float32", always_2d=True)
                    n = int(block.shape[0])
                    last = n < self.block_frames
                    read += n
                    blocks += 1
                    if self.live:
                        await pace(t0, read / self.sample_rate_hz)
                    elif blocks % 8 == 0:
                        await asyncio.sleep(0)  # let Ctrl-C/SIGTERM and results in between
                    chunk = conv.convert(block, time.perf_counter(), last=last)
                    if chunk is not None:
                        yield chunk
                    if last:
                        break
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise AudioInputError(f"{self.path}: read failed after {read} frames ({_reason(e)})") from e
        if read == 0:
            raise AudioInputError(f"{self.path}: file holds no audio samples")


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else error.__class__.__name__
