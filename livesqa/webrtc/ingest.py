"""Gap-aware ingest: aiortc audio frames -> mono float32 :class:`AudioChunk` s at the model's rate.

Why gap-aware: when packets are lost, aiortc's jitter buffer skips them and the next decoded
frame's ``pts`` jumps ahead; nothing is concealed. A listener on such a receiver hears a hole,
so the monitor must too. The ingest places every chunk on the stream clock derived from the
frame timestamps, so a jump becomes a jump in ``AudioChunk.start_sample``; the windower fills
that with silence and flags the windows (``livesqa.windowing``). Nothing is ever spliced: the
resampler is flushed before a gap and restarted after it, so no filter smears across the hole.

Why chunks carry a *due* time as ``arrival``: the wall time at which a chunk is read here
is after every queue in front of us (the socket's receive queue, the jitter buffer, the event
loop). When the host is short of CPU those queues grow and a "now" stamp would hide the lag.
The due time is when the chunk's last sample should have arrived if the sender's clock and the
path were as fast as at the best moment seen so far: the stream clock anchored at the smallest
(read time - stream time) offset. A backlog then shows as ``latency_ms``. The anchor may rise
by :data:`ANCHOR_DRIFT` (sender clock drift allowance, far below any real backlog's growth).

Input frames are what aiortc's Opus decoder emits: 48 kHz, stereo, packed s16, 960 samples
(20 ms), ``pts`` in ``time_base`` 1/48000. Other formats/rates are accepted (planar, float,
mono, any rate) since a relayed or test track may differ.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

from livesqa.audio import PCM16_FULL_SCALE, StreamingResampler, sanitize
from livesqa.errors import AudioInputError
from livesqa.types import AudioChunk, FloatArray

GAP_TOLERANCE_S = 0.0025  # timestamp slack before a jump counts as lost audio (an eighth of a frame)
ANCHOR_DRIFT = 5e-4  # s/s the due-time anchor may rise (clock drift); a backlog grows ~1 s/s

_INT_SCALE = {"s16": PCM16_FULL_SCALE, "s16p": PCM16_FULL_SCALE, "s32": 2.0**31, "s32p": 2.0**31}
_FLOAT_FORMATS = {"flt", "fltp", "dbl", "dblp"}


class AudioFrameLike(Protocol):
    """The part of ``av.AudioFrame`` the ingest reads."""

    pts: int | None
    time_base: Fraction | None
    sample_rate: int
    samples: int

    def to_ndarray(self) -> np.ndarray: ...


@dataclass(frozen=True)
class IngestStats:
    """Counters of one participant's ingest, for the CSV/metrics (all cumulative)."""

    frames: int
    gaps: int  # timestamp jumps (one per loss burst)
    gap_s: float  # audio time missing in those jumps
    lost_frames: int  # missing audio expressed in frames of the last frame size
    late_frames: int  # frames wholly in the past (duplicates, reordering) that were dropped
    resets: int  # sample-rate changes


def frame_to_mono(frame: Any) -> FloatArray:
    """One ``av.AudioFrame`` -> mono float32 ``[samples]`` (channel mean, full scale 1.0)."""
    fmt = frame.format.name
    channels = len(frame.layout.channels)
    data = frame.to_ndarray()
    if fmt in _INT_SCALE:
        scale = np.float32(1.0 / _INT_SCALE[fmt])
    elif fmt in _FLOAT_FORMATS:
        scale = np.float32(1.0)
    else:
        raise AudioInputError(f"unsupported audio frame format {fmt!r}")
    if frame.format.is_planar:  # [channels, samples]
        mono = data.astype(np.float32).mean(axis=0)
    else:  # packed: [1, samples * channels], interleaved
        mono = data.reshape(-1, channels).astype(np.float32).mean(axis=1)
    return np.ascontiguousarray(mono * scale, dtype=np.float32)


class FrameIngest:
    """Converts one participant's frames into chunks on the model-rate sample clock.

    ``push`` returns zero or more chunks; ``take_loss_bursts`` hands the losses seen since the
    last call to the network statistics (mean burst length feeds the E-model's BurstR).
    """

    def __init__(self, model_rate_hz: int) -> None:
        self.model_rate_hz = model_rate_hz
        self._in_rate: int | None = None
        self._resampler: StreamingResampler | None = None
        self._next_in: int | None = None  # expected input-rate sample index of the next frame
        self._out_clock = 0  # model-rate index of the next sample we emit
        self._frames = self._gaps = self._lost_frames = self._late = self._resets = 0
        self._gap_in_s = 0.0
        self._burst_lost = self._bursts = 0
        self._anchor: float | None = None  # smallest (read time - stream time) seen, drift-aged
        self._anchor_at = 0.0

    def due(self, now: float, end_sample: int) -> float:
        """When stream sample ``end_sample`` should have arrived (perf_counter seconds)."""
        stream_s = end_sample / self.model_rate_hz
        offset = now - stream_s
        if self._anchor is None or offset < self._anchor:
            self._anchor = offset
        else:
            self._anchor = min(offset, self._anchor + ANCHOR_DRIFT * max(now - self._anchor_at, 0.0))
        self._anchor_at = now
        return self._anchor + stream_s

    @property
    def stats(self) -> IngestStats:
        return IngestStats(
            frames=self._frames,
            gaps=self._gaps,
            gap_s=self._gap_in_s,
            lost_frames=self._lost_frames,
            late_frames=self._late,
            resets=self._resets,
        )

    def take_loss_bursts(self) -> tuple[int, int]:
        """(lost frames, bursts) since the previous call."""
        out = (self._burst_lost, self._bursts)
        self._burst_lost = self._bursts = 0
        return out

    def _in_position(self, frame: AudioFrameLike, rate: int) -> int | None:
        if frame.pts is None or frame.time_base is None:
            return None
        return round(Fraction(frame.pts) * frame.time_base * rate)

    def _to_out(self, in_samples: int) -> int:
        assert self._in_rate is not None
        return round(in_samples * self.model_rate_hz / self._in_rate)

    def _start_segment(self, rate: int, in_pos: int) -> None:
        self._in_rate = rate
        self._resampler = StreamingResampler(rate, self.model_rate_hz)
        self._next_in = in_pos

    def _flush(self, now: float) -> list[AudioChunk]:
        if self._resampler is None:
            return []
        tail = self._resampler.process(np.zeros(0, dtype=np.float32), last=True)
        self._resampler = None
        return self._emit(tail, now)

    def _emit(self, samples: FloatArray, now: float, nonfinite: int = 0) -> list[AudioChunk]:
        if samples.shape[0] == 0:
            return []
        arrival = self.due(now, self._out_clock + int(samples.shape[0]))
        chunk = AudioChunk(self._out_clock, samples, arrival=arrival, nonfinite=nonfinite)
        self._out_clock += int(samples.shape[0])
        return [chunk]

    def push(self, frame: AudioFrameLike, arrival: float | None = None) -> list[AudioChunk]:
        """Add one decoded frame; returns the chunks it completes (usually one).

        ``arrival`` is when the frame was read (default: now); chunks carry their due time.
        """
        now = time.perf_counter() if arrival is None else arrival
        rate = int(frame.sample_rate)
        mono, nonfinite = sanitize(frame_to_mono(frame))
        n_in = int(mono.shape[0])
        self._frames += 1
        pos = self._in_position(frame, rate)
        out: list[AudioChunk] = []
        if self._in_rate is None:
            self._start_segment(rate, 0 if pos is None else pos)
        elif rate != self._in_rate:
            # a new rate has a new clock: flush, then continue the model-rate clock seamlessly
            out += self._flush(now)
            self._resets += 1
            self._start_segment(rate, 0 if pos is None else pos)
        assert self._next_in is not None
        if pos is None:
            pos = self._next_in
        jump = pos - self._next_in
        tolerance = int(GAP_TOLERANCE_S * rate)
        if jump > tolerance:
            out += self._flush(now)
            self._gaps += 1
            self._gap_in_s += jump / rate
            lost = max(1, round(jump / max(n_in, 1)))
            self._lost_frames += lost
            self._burst_lost += lost
            self._bursts += 1
            self._out_clock += self._to_out(jump)  # the hole: the windower fills and flags it
            self._start_segment(rate, pos)
        elif jump < -tolerance:
            overlap = -jump
            if overlap >= n_in:
                self._late += 1
                return out
            mono = mono[overlap:]  # keep only the part we have not had
            pos = self._next_in
        else:
            pos = self._next_in  # absorb sub-tolerance timestamp wobble
        self._next_in = pos + int(mono.shape[0])
        assert self._resampler is not None
        out += self._emit(self._resampler.process(mono), now, nonfinite)
        return out

    def close(self) -> list[AudioChunk]:
        """End of stream: flush the resampler's tail."""
        return self._flush(time.perf_counter())
