"""Sliding windows by sample count: the same windows whatever the chunk sizes.

Why by sample count: window ``k`` always covers ``[origin + k*hop, origin + k*hop + window)``
on the stream clock, so a file read in one block, a microphone delivering 10 ms
callbacks and a WebRTC track delivering 20 ms frames all yield identical windows
(a hypothesis property test holds us to it). The origin is the first chunk's
``start_sample``.

Gaps: a chunk starting after the clock means lost audio; the gap is filled with
silence and every window overlapping it is flagged ``gap``. A chunk starting
before the clock (overlap/duplicate) has its already-seen head dropped.

Short streams: a stream that ends before one full window but lasts at least
``min_samples`` (1 s at the defaults) gets one window of its own length from
:meth:`Windower.flush` (the model takes any length; it was trained on crops of 1-4 s),
so short files, voice messages and IVR prompts are scored, never dropped.

Cost: ``push`` runs for every 10-20 ms of audio of every stream, so the common
case (a contiguous chunk that completes no window) is a list append and a few
integer comparisons: the chunk is held by reference (sources must not reuse a
chunk's array after pushing it) and all held chunks are copied into the ring at
once when a window completes. Window copies come from an :class:`ArrayPool`;
whoever consumes a window last may hand its samples back with ``pool.give``.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

from livesqa.bufferpool import ArrayPool
from livesqa.ringbuffer import RingBuffer
from livesqa.types import AudioChunk, FloatArray, Window

MIN_CLIP_S = 1.0  # a stream shorter than this gets no score ("too short"); see Windower.flush


ItemT = TypeVar("ItemT")


class RingFeed(Generic[ItemT]):
    """Ring bookkeeping shared by :class:`Windower` and ``livesqa.stepping.StepCutter``:
    chunks held by reference until a boundary, then written into the ring, emitting one
    item each time the ring's end reaches ``_next_end`` (which ``_emit`` moves on).

    Why shared: both cut a stream on its sample clock and must emit the same items
    whatever the chunk sizes; one write loop keeps them from drifting apart.
    """

    _ring: RingBuffer
    _next_end: int
    _held: list[FloatArray]
    _held_n: int

    def _emit(self, arrival: float) -> ItemT:
        raise NotImplementedError

    def _write_held(self) -> None:
        if self._held_n:
            self._ring.write_many(self._held, self._held_n)
            self._held.clear()
            self._held_n = 0

    def _write(self, samples: FloatArray, arrival: float) -> list[ItemT]:
        items: list[ItemT] = []
        pos, n = 0, int(samples.shape[0])
        while pos < n:
            take = min(n - pos, self._next_end - self._ring.end)
            self._ring.write(samples[pos : pos + take])
            pos += take
            if self._ring.end == self._next_end:
                items.append(self._emit(arrival))
        return items

    def _silence(self, n: int, arrival: float) -> list[ItemT]:
        items: list[ItemT] = []
        while n > 0:
            take = min(n, self._next_end - self._ring.end)
            self._ring.write_silence(take)
            n -= take
            if self._ring.end == self._next_end:
                items.append(self._emit(arrival))
        return items


class Windower(RingFeed[Window]):
    """Turns :class:`AudioChunk` s into :class:`Window` s of ``window_samples`` every ``hop_samples``."""

    def __init__(self, window_samples: int, hop_samples: int, pool: ArrayPool | None = None,
                 min_samples: int | None = None) -> None:
        if window_samples <= 0 or hop_samples <= 0:
            raise ValueError("window_samples and hop_samples must be positive")
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        # shortest stream that still gets a (short) window; default: the whole window
        self.min_samples = window_samples if min_samples is None else min(min_samples, window_samples)
        if self.min_samples <= 0:
            raise ValueError("min_samples must be positive")
        self.pool = pool if pool is not None else ArrayPool(window_samples)
        if self.pool.size != window_samples:
            raise ValueError("pool arrays must be window_samples long")
        self._ring = RingBuffer(window_samples)
        self._origin: int | None = None
        self._next_index = 0
        self._next_end = window_samples  # clock at which the next window completes
        self._held: list[FloatArray] = []  # contiguous chunks received, not yet in the ring
        self._held_n = 0
        self._clock = 0  # == ring end + held samples, kept as a plain int for the fast path
        self._gaps: deque[tuple[int, int]] = deque()  # [start, end) of filled-in samples
        self._last_arrival = 0.0

    @property
    def started(self) -> bool:
        return self._origin is not None

    @property
    def clock(self) -> int:
        """Sample clock one past the newest sample received (origin before any audio)."""
        return self._clock

    @property
    def origin(self) -> int:
        return 0 if self._origin is None else self._origin

    def push(self, chunk: AudioChunk) -> list[Window]:
        """Add a chunk; return the windows it completed, oldest first."""
        if self._origin is None:
            self._origin = chunk.start_sample
            self._next_end = chunk.start_sample + self.window_samples
            self._ring = RingBuffer(self.window_samples, start_sample=chunk.start_sample)
            self._clock = chunk.start_sample
        self._last_arrival = chunk.arrival
        samples = chunk.samples
        start = chunk.start_sample
        n_new = samples.shape[0]
        if start == self._clock and start + n_new < self._next_end and not chunk.nonfinite:
            # the common case, contiguous and completing no window: keep a reference and
            # copy all held chunks into the ring in one go when a window completes
            self._held.append(samples)
            self._held_n += n_new
            self._clock += n_new
            return []
        self._write_held()
        if chunk.nonfinite:
            # samples replaced at the edge count as lost audio (the span, else the whole chunk)
            g0, g1 = chunk.nonfinite_span or (0, n_new)
            bad = (chunk.start_sample + g0, chunk.start_sample + g1)
        if start < self._ring.end:  # overlap: drop what we already have
            samples = samples[self._ring.end - start :]
            start = self._ring.end
        windows: list[Window] = []
        if start > self._ring.end:
            gap_start = self._ring.end
            self._gaps.append((gap_start, start))
            windows += self._silence(start - gap_start, chunk.arrival)
        if chunk.nonfinite:
            self._gaps.append(bad)
        windows += self._write(samples, chunk.arrival)
        self._clock = self._ring.end
        return windows

    def _emit(self, arrival: float) -> Window:
        start = self._ring.end - self.window_samples
        end = self._ring.end
        while self._gaps and self._gaps[0][1] <= start:
            self._gaps.popleft()  # no later window can overlap it
        gap = any(g0 < end and g1 > start for g0, g1 in self._gaps)
        window = Window(
            index=self._next_index,
            start_sample=start,
            samples=self._ring.read(start, self.window_samples, out=self.pool.take()),
            arrival=arrival,
            gap=gap,
        )
        self._next_index += 1
        self._next_end += self.hop_samples
        return window

    def flush(self) -> Window | None:
        """At end of stream: a last window aligned to the end if the tail was never scored.

        Returns ``None`` if the tail is shorter than half a hop (it is already covered
        well enough), or the whole stream is shorter than ``min_samples``. A stream
        shorter than one window (but at least ``min_samples``) gets one window of its
        own length, ``[origin, end)``.
        """
        self._write_held()
        if self._origin is None:
            return None
        received = self._ring.end - self.origin
        if received < self.window_samples:
            if received < self.min_samples:
                return None
            return self._final(self.origin, received)
        last_end = self._next_end - self.hop_samples  # end of the last emitted window
        if self._ring.end - last_end < max(1, self.hop_samples // 2):
            return None
        return self._final(self._ring.end - self.window_samples, self.window_samples)

    def _final(self, start: int, n: int) -> Window:
        out = self.pool.take() if n == self.window_samples else None
        gap = any(g0 < start + n and g1 > start for g0, g1 in self._gaps)
        window = Window(
            index=self._next_index,
            start_sample=start,
            samples=self._ring.read(start, n, out=out),
            arrival=self._last_arrival,
            gap=gap,
        )
        self._next_index += 1
        self._next_end += self.hop_samples
        return window
