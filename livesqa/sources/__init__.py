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
        self._fed = 0  # input frames given to the resampler
        self._made = 0  # output samples it returned
        # [start, end) in resampler output samples of replaced input samples not yet emitted
        self._bad: list[tuple[int, int, int]] = []  # (start, end, count)

    @property
    def clock(self) -> int:
        return self._clock

    def convert(
        self, block: npt.NDArray[np.floating], arrival: float = 0.0, last: bool = False
    ) -> AudioChunk | None:
        """``block`` is ``[frames]`` or ``[frames, channels]``; returns None if nothing came out.

        Replaced (NaN/inf) samples are flagged on the output samples that stand for
        them (``AudioChunk.nonfinite_span``): the resampler returns audio later than
        it takes it, so they may fall in a later chunk than the block they came in.
        """
        mono = downmix(np.asarray(block, dtype=np.float32))
        if not np.isfinite(mono).all():
            where = np.flatnonzero(~np.isfinite(mono))
            ratio = self.to_hz / self.from_hz
            a = int(np.floor((self._fed + int(where[0])) * ratio))
            b = int(np.ceil((self._fed + int(where[-1]) + 1) * ratio))
            self._bad.append((a, max(b, a + 1), int(where.size)))
        mono, bad = sanitize(mono)
        self.nonfinite += bad
        self._fed += int(mono.size)
        out = self._resampler.process(mono, last=last)
        if out.size == 0:
            return None
        lo, hi = self._made, self._made + int(out.size)
        span: tuple[int, int] | None = None
        count = 0
        keep = []
        for a, b, n in self._bad:
            if a < hi and b > lo:
                s0, s1 = max(a, lo) - lo, min(b, hi) - lo
                span = (s0, s1) if span is None else (min(span[0], s0), max(span[1], s1))
                count += n if b <= hi else 0
            if b > hi and not last:
                keep.append((a, b, n))
        self._bad = keep
        if span is not None:
            count = max(count, 1)
        chunk = AudioChunk(self._clock, out, arrival, count, span)
        self._clock += int(out.size)
        self._made = hi
        return chunk

    def skip(self, from_frames: int) -> None:
        """Advance the clock over ``from_frames`` input frames that were lost (a gap)."""
        self._clock += int(round(from_frames * self.to_hz / self.from_hz))
