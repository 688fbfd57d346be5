"""Sliding windows by sample count: the same windows whatever the chunk sizes.

Why by sample count: window ``k`` always covers ``[origin + k*hop, origin + k*hop + window)``
on the stream clock, so a file read in one block, a microphone delivering 10 ms
callbacks and a WebRTC track delivering 20 ms frames all yield identical windows
(a hypothesis property test holds us to it). The origin is the first chunk's
``start_sample``.

Gaps: a chunk starting after the clock means lost audio; the gap is filled with
silence and every window overlapping it is flagged ``gap``. A chunk starting
before the clock (overlap/duplicate) has its already-seen head dropped.
"""

from __future__ import annotations

from collections import deque

from livesqa.ringbuffer import RingBuffer
from livesqa.types import AudioChunk, Window


class Windower:
    """Turns :class:`AudioChunk` s into :class:`Window` s of ``window_samples`` every ``hop_samples``."""

    def __init__(self, window_samples: int, hop_samples: int) -> None:
        if window_samples <= 0 or hop_samples <= 0:
            raise ValueError("window_samples and hop_samples must be positive")
        self.window_samples = window_samples
        self.hop_samples = hop_samples
        self._ring = RingBuffer(window_samples)
        self._origin: int | None = None
        self._next_index = 0
        self._gaps: deque[tuple[int, int]] = deque()  # [start, end) of filled-in samples
        self._last_arrival = 0.0

    @property
    def started(self) -> bool:
        return self._origin is not None

    @property
    def clock(self) -> int:
        """Sample clock one past the newest sample received (origin before any audio)."""
        return self._ring.end

    @property
    def origin(self) -> int:
        return 0 if self._origin is None else self._origin

    def _next_end(self) -> int:
        return self.origin + self._next_index * self.hop_samples + self.window_samples

    def push(self, chunk: AudioChunk) -> list[Window]:
        """Add a chunk; return the windows it completed, oldest first."""
        if self._origin is None:
            self._origin = chunk.start_sample
            self._ring = RingBuffer(self.window_samples, start_sample=chunk.start_sample)
        self._last_arrival = chunk.arrival
        samples = chunk.samples
        start = chunk.start_sample
        if start < self.clock:  # overlap: drop what we already have
            samples = samples[self.clock - start :]
            start = self.clock
        windows: list[Window] = []
        if start > self.clock:
            gap_start = self.clock
            self._gaps.append((gap_start, start))
            windows += self._advance_silence(start - gap_start, chunk.arrival)
        if chunk.nonfinite:
            # samples replaced at the edge count as lost audio for the whole chunk
            self._gaps.append((start, start + int(samples.shape[0])))
        pos = 0
        n = int(samples.shape[0])
        while pos < n:
            take = min(n - pos, self._next_end() - self.clock)
            self._ring.write(samples[pos : pos + take])
            pos += take
            if self.clock == self._next_end():
                windows.append(self._emit(chunk.arrival))
        return windows

    def _advance_silence(self, n: int, arrival: float) -> list[Window]:
        windows: list[Window] = []
        while n > 0:
            take = min(n, self._next_end() - self.clock)
            self._ring.write_silence(take)
            n -= take
            if self.clock == self._next_end():
                windows.append(self._emit(arrival))
        return windows

    def _emit(self, arrival: float) -> Window:
        start = self.clock - self.window_samples
        end = self.clock
        while self._gaps and self._gaps[0][1] <= start:
            self._gaps.popleft()  # no later window can overlap it
        gap = any(g0 < end and g1 > start for g0, g1 in self._gaps)
        window = Window(
            index=self._next_index,
            start_sample=start,
            samples=self._ring.read(start, self.window_samples),
            arrival=arrival,
            gap=gap,
        )
        self._next_index += 1
        return window

    def flush(self) -> Window | None:
        """At end of stream: a last window aligned to the end if the tail was never scored.

        Returns ``None`` if the stream is shorter than one window or the tail is
        shorter than half a hop (it is already covered well enough).
        """
        if self._origin is None or self.clock - self.origin < self.window_samples:
            return None
        last_end = self._next_end() - self.hop_samples  # end of the last emitted window
        if self.clock - last_end < max(1, self.hop_samples // 2):
            return None
        start = self.clock - self.window_samples
        gap = any(g0 < self.clock and g1 > start for g0, g1 in self._gaps)
        window = Window(
            index=self._next_index,
            start_sample=start,
            samples=self._ring.read(start, self.window_samples),
            arrival=self._last_arrival,
            gap=gap,
        )
        self._next_index += 1
        return window
