"""Audio sources: microphone, file (as fast as possible or paced), numpy array, WebRTC.

A source is an async iterator of :class:`~livesqa.types.AudioChunk` already converted
at the edge (mono float32 at the model's rate, on a sample clock). End of stream is
the end of iteration; a lost device raises :class:`~livesqa.errors.DeviceError`.
Conversion is :class:`EdgeConverter` so every source does it the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np
import numpy.typing as npt

from livesqa.audio import StreamingResampler, downmix, sanitize
from livesqa.types import AudioChunk


class Source(Protocol):
    """What the pipeline consumes; ``description`` is shown on the dashboard status line."""

    description: str
    live: bool  # True: real-time (mic, replay) - drop windows rather than fall behind

    def chunks(self) -> AsyncIterator[AudioChunk]: ...


class EdgeConverter:
    """Any-rate, any-channel float blocks -> mono float32 chunks at ``to_hz`` on a sample clock.

    NaN/inf samples become silence and are counted (the window is flagged as a gap);
    the streaming resampler keeps the output continuous across blocks.
    """

    def __init__(self, from_hz: int, to_hz: int, start_sample: int = 0) -> None:
        self.from_hz = from_hz
        self.to_hz = to_hz
        self._resampler = StreamingResampler(from_hz, to_hz)
        self._clock = start_sample
        self.nonfinite = 0

    @property
    def clock(self) -> int:
        return self._clock

    def convert(
        self, block: npt.NDArray[np.floating], arrival: float = 0.0, last: bool = False
    ) -> AudioChunk | None:
        """``block`` is ``[frames]`` or ``[frames, channels]``; returns None if nothing came out."""
        mono, bad = sanitize(downmix(np.asarray(block, dtype=np.float32)))
        self.nonfinite += bad
        out = self._resampler.process(mono, last=last)
        if out.size == 0:
            return None
        chunk = AudioChunk(self._clock, out, arrival, bad)
        self._clock += int(out.size)
        return chunk

    def skip(self, from_frames: int) -> None:
        """Advance the clock over ``from_frames`` input frames that were lost (a gap)."""
        self._clock += int(round(from_frames * self.to_hz / self.from_hz))
