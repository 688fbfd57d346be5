"""Audio files as sources: scored as fast as possible, or replayed in real time.

Files of any soundfile-readable format (wav, flac, ogg/vorbis/opus, mp3), any sample
rate and channel count are read block by block (memory stays flat for hour-long
calls), downmixed and resampled at the edge. ``realtime=True`` paces blocks by the
file's sample clock (``livesqa replay``), so the live pipeline sees what a
microphone would deliver.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

from livesqa.errors import AudioInputError
from livesqa.sources import EdgeConverter
from livesqa.sources.array import pace
from livesqa.types import AudioChunk

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".opus", ".oga", ".mp3", ".aiff", ".aif", ".au"}


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given, folders searched recursively for audio suffixes (sorted)."""
    out: list[Path] = []
    for text in paths:
        p = Path(text)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES)
        else:
            out.append(p)
    return out


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
            raise AudioInputError(
                f"{self.path}: {self.duration_s:.2f} s is shorter than the model's "
                f"{min_duration_s:.2f} s window"
            )
        self.block_frames = max(1, int(round(block_s * self.sample_rate_hz)))

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        import soundfile as sf

        conv = EdgeConverter(self.sample_rate_hz, self.to_hz)
        t0 = time.perf_counter()
        read = 0
        try:
            with sf.SoundFile(str(self.path)) as f:
                while True:
                    block = f.read(self.block_frames, dtype="float32", always_2d=True)
                    n = int(block.shape[0])
                    last = n < self.block_frames
                    read += n
                    if self.live:
                        await pace(t0, read / self.sample_rate_hz)
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
