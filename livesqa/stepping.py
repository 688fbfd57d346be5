"""Cutting one stream into the steps of a streaming model: one chunk (the model's hop) each.

Why not the :class:`~livesqa.windowing.Windower`: a streaming model (``livesqa.streaming``)
encodes each chunk of audio once and carries its state; it needs every chunk of the stream,
in order, once, plus ``tail`` samples (45 ms) before a stream's first chunk. Its score after
a chunk describes the window that ends there: the last ``window`` samples, or everything
since the state started when the stream is younger than that.

Steps sit on the stream clock: a segment starts at its first sample ``s``; step ``k`` of it
ends at ``s + tail + (k + 1) * chunk``, so the same audio yields the same steps whatever the
chunk sizes the source delivers. Each step carries:

- ``feed``: the ``tail + chunk`` samples ending at ``end_sample`` (the model's input; the
  scoring worker pushes only the last ``chunk`` of them when the stream's state is current,
  all of them when it must start the state again, e.g. after a live monitor dropped a step);
- the speech gate's verdict on the row's window ``[start_sample, end_sample)``, computed here
  (on the event loop, with the samples hot in cache) by the ``analyze`` callback.

Gaps: audio that never arrived (a jump of the clock, NaN/inf replaced at the edge) shorter
than ``reset_gap`` samples (default: one window) is filled with silence, as the windowed path
does, and every step whose window overlaps it is flagged ``gap``: the model hears the hole as
a listener does (packet loss must reach the Discontinuity score), and its state carries on.
A longer gap would leave nothing but silence in the window, so it ends the segment instead:
the next audio starts a new one (fresh state, ``first``), and that segment's first step is
flagged ``gap`` (it follows lost audio). A chunk starting before the clock has its seen head
dropped.

End of stream (:meth:`StepCutter.flush`): a model that takes partial chunks (spec
``min_chunk_samples``, ``m``) gets one last step over the samples after the last whole chunk,
rounded down to whole multiples of ``m`` (``partial``; its row's window is the left context
plus those samples), so a clip shorter than ``tail + chunk`` is scored and a long one's last
second is heard. As for windowed models, that step comes at the end of every source that
ends (a file, a replay, a mic or WebRTC stream that stops); nothing follows it. A stream
shorter than ``min_samples`` (1 s, the project-wide floor, as the windowed path) gets no
step. Older models take whole chunks only: the last partial chunk is not scored, and a
stream shorter than ``tail + chunk`` gets no step. :meth:`StepCutter.too_short` says which.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from livesqa.gating import WindowAnalysis
from livesqa.ringbuffer import RingBuffer
from livesqa.types import AudioChunk, FloatArray
from livesqa.windowing import RingFeed


@dataclass(frozen=True, eq=False)
class Step:
    """One chunk for the streaming model and the row it will produce."""

    index: int  # 0, 1, 2... on this stream
    start_sample: int  # the row's window: max(segment start, end_sample - window)
    end_sample: int
    feed_start: int  # stream position of feed[0]
    feed: FloatArray  # [tail + chunk] float32 ending at end_sample (a copy)
    first: bool  # first step of a segment: the model's state starts here, at feed_start
    arrival: float  # perf_counter when the step's last sample arrived
    gap: bool
    analysis: WindowAnalysis
    partial: bool = False  # a stream's final partial chunk (feed = tail + fewer than chunk)


class StepCutter(RingFeed[Step]):
    """Turns :class:`AudioChunk` s into :class:`Step` s, one per ``chunk_samples``."""

    def __init__(self, window_samples: int, chunk_samples: int, tail_samples: int,
                 analyze: Callable[[int, FloatArray], WindowAnalysis], sample_rate_hz: int,
                 reset_gap_samples: int | None = None, min_chunk_samples: int = 0,
                 min_samples: int = 0) -> None:
        """``min_chunk_samples``: > 0 when the model scores a final partial chunk (whole
        multiples of it); ``min_samples``: the shortest stream scored then (1 s, as windowed)."""
        if window_samples <= 0 or chunk_samples <= 0 or tail_samples < 0:
            raise ValueError("window and chunk must be positive, tail not negative")
        if min_chunk_samples < 0 or (min_chunk_samples and chunk_samples % min_chunk_samples):
            raise ValueError("min_chunk_samples must divide the chunk")
        self.window_samples = window_samples
        self.sample_rate_hz = sample_rate_hz
        self.hop_samples = chunk_samples
        self.tail_samples = tail_samples
        self.min_chunk_samples = min_chunk_samples
        # run_source: shorter is "too short"
        self.min_samples = (max(min_samples, tail_samples + min_chunk_samples) if min_chunk_samples
                            else tail_samples + chunk_samples)
        self._last_arrival = 0.0
        self.reset_gap_samples = window_samples if reset_gap_samples is None else reset_gap_samples
        self._analyze = analyze
        self._capacity = max(window_samples, tail_samples + chunk_samples)
        self._scratch = np.empty(window_samples, np.float32)  # the gate's window, reused
        self._ring = RingBuffer(self._capacity)
        self._origin: int | None = None
        self._segment = 0  # stream position where the current segment (model state) began
        self._first = True
        self._after_gap = False
        self._next_index = 0
        self._next_end = 0
        self._held: list[FloatArray] = []
        self._held_n = 0
        self._clock = 0
        self._gaps: deque[tuple[int, int]] = deque()
        self.segments = 0  # segments started (1 + resets)

    @property
    def started(self) -> bool:
        return self._origin is not None

    @property
    def clock(self) -> int:
        return self._clock

    @property
    def origin(self) -> int:
        return 0 if self._origin is None else self._origin

    def too_short(self, source: str, seconds: float) -> str:
        """The one-line error for a stream that ended before its first step."""
        import math

        sr = self.sample_rate_hz
        shown = math.floor(seconds * 100) / 100
        if self.min_chunk_samples:  # the project-wide floor, worded as the windowed path's
            return (f"{source}: {shown:.2f} s of audio is too short to score: a score needs at "
                    f"least {self.min_samples / sr:g} s (a streaming model scores what follows its "
                    f"last whole {self.hop_samples / sr:g} s chunk as one partial chunk)")
        return (f"{source}: {shown:.2f} s of audio is too short to score: a streaming model "
                f"needs {self.min_samples / sr:.3f} s ({self.tail_samples / sr:.3f} s of "
                f"context and one whole chunk of {self.hop_samples / sr:g} s)")

    def _start_segment(self, at: int) -> None:
        self._ring = RingBuffer(self._capacity, start_sample=at)
        self._segment = at
        self._clock = at
        self._next_end = at + self.tail_samples + self.hop_samples
        self._gaps.clear()
        self._first = True
        self.segments += 1

    def push(self, chunk: AudioChunk) -> list[Step]:
        """Add a chunk; return the steps it completed, oldest first."""
        if self._origin is None:
            self._origin = chunk.start_sample
            self._start_segment(chunk.start_sample)
        samples = chunk.samples
        start = chunk.start_sample
        n_new = int(samples.shape[0])
        self._last_arrival = chunk.arrival
        if start == self._clock and start + n_new < self._next_end and not chunk.nonfinite:
            self._held.append(samples)  # the common case: keep a reference, copy later
            self._held_n += n_new
            self._clock += n_new
            return []
        self._write_held()
        if chunk.nonfinite:
            g0, g1 = chunk.nonfinite_span or (0, n_new)
            bad = (start + g0, start + g1)
        if start < self._ring.end:  # overlap: drop what we already have
            samples = samples[self._ring.end - start:]
            start = self._ring.end
        steps: list[Step] = []
        if start > self._ring.end:
            if start - self._ring.end >= self.reset_gap_samples:
                self._start_segment(start)  # nothing before the hole would stay in the window
                self._after_gap = True
            else:
                self._gaps.append((self._ring.end, start))
                steps += self._silence(start - self._ring.end, chunk.arrival)
        if chunk.nonfinite:
            self._gaps.append(bad)
        steps += self._write(samples, chunk.arrival)
        self._clock = self._ring.end
        return steps

    def _emit(self, arrival: float, partial: int = 0) -> Step:
        """The step ending at the ring's end (a whole chunk), or, with ``partial``, the final
        partial chunk of that many samples after the last step."""
        chunk = partial or self.hop_samples
        end = self._next_end - self.hop_samples + partial if partial else self._ring.end
        # the score's window: the left context (window - chunk) plus this chunk
        start = max(self._segment, end - (self.window_samples - self.hop_samples) - chunk)
        feed_start = max(self._segment, end - chunk - self.tail_samples)
        while self._gaps and self._gaps[0][1] <= min(start, feed_start):
            self._gaps.popleft()
        gap = self._after_gap or any(g0 < end and g1 > start for g0, g1 in self._gaps)
        view = self._scratch[: end - start]
        self._ring.read(start, end - start, out=view)
        step = Step(
            index=self._next_index,
            start_sample=start,
            end_sample=end,
            feed_start=feed_start,
            feed=self._ring.read(feed_start, end - feed_start),
            first=self._first,
            arrival=arrival,
            gap=gap,
            analysis=self._analyze(start, view),
            partial=bool(partial),
        )
        self._first = self._after_gap = False
        self._next_index += 1
        self._next_end += self.hop_samples
        return step

    def flush(self) -> Step | None:
        """End of stream: the final partial chunk's step, or ``None`` (a model that takes whole
        chunks only, a stream shorter than ``min_samples``, or less than ``min_chunk_samples``
        after the last whole chunk). Nothing may be pushed after it."""
        self._write_held()
        m = self.min_chunk_samples
        if not m or self._origin is None or self._ring.end - self._origin < self.min_samples:
            return None
        rest = self._ring.end - (self._next_end - self.hop_samples)  # after the last step
        n = min(rest, self.hop_samples - 1) // m * m
        if n <= 0:
            return None
        return self._emit(self._last_arrival, partial=n)
