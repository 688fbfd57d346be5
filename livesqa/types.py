"""The values that flow through the pipeline, all immutable.

Why frozen: a chunk, a window or a result is handed between the audio thread, the
event loop and the scoring thread; immutability means nobody can change a value
another component is still reading. Time is the stream's sample clock; wall-clock
time appears only as ``wall_time`` (for the CSV) and ``latency_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from livesqa.spec import DIMENSIONS

if TYPE_CHECKING:
    from livesqa.gating import WindowAnalysis

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """A block of mono float32 audio at the model's rate, placed on the stream's sample clock.

    ``start_sample`` is the index of ``samples[0]`` on the stream clock: a chunk whose
    start is after the previous chunk's end marks a gap (lost audio), which the
    windower fills with silence and flags. ``arrival`` is ``time.perf_counter()`` when
    the audio reached the process (for end-to-end latency); 0.0 means "unknown/now".
    ``samples`` is held by reference until its window completes: a source must hand
    over a fresh (or never again written) array, never a buffer it reuses.
    """

    start_sample: int
    samples: FloatArray  # [n] float32, full scale 1.0
    arrival: float = 0.0
    nonfinite: int = 0  # samples replaced by silence at the edge (NaN/inf)
    #: [start, end) offsets in ``samples`` of the replaced samples; None: the whole chunk.
    #: Why: a resampler delays its output, so the chunk made from a bad input block
    #: starts before the bad samples (flagging all of it would flag an earlier window).
    nonfinite_span: tuple[int, int] | None = None

    @property
    def end_sample(self) -> int:
        return self.start_sample + int(self.samples.shape[0])


@dataclass(frozen=True, eq=False)
class Window:
    """One model input: ``window_samples`` consecutive samples ending at ``end_sample``."""

    index: int  # 0, 1, 2... in hop order on this stream
    start_sample: int
    samples: FloatArray  # [window_samples] float32 (a copy: the ring buffer moves on)
    arrival: float  # perf_counter when the last sample of the window arrived
    gap: bool = False  # the window holds samples that never arrived (filled with silence)
    analysis: WindowAnalysis | None = None  # the speech gate's verdict, once measured

    @property
    def end_sample(self) -> int:
        return self.start_sample + int(self.samples.shape[0])


@dataclass(frozen=True)
class StreamInfo:
    """Who a stream is: ``source`` is a stable id; ``room``/``participant`` are WebRTC-only."""

    source: str
    room: str = ""
    participant: str = ""
    description: str = ""  # for humans: "mic: USB Audio (48 kHz)", "file: call.flac"


@dataclass(frozen=True)
class WindowScores:
    """The result for one window, as written to every sink.

    ``scores`` is ``None`` when the speech gate found too little speech (never a low
    score); otherwise one value per name in :data:`livesqa.spec.DIMENSIONS` order.
    ``skipped`` counts windows dropped (live mode, scoring too slow) since the
    previous scored window of this stream.
    """

    stream: StreamInfo
    index: int
    start_s: float
    end_s: float
    wall_time: str  # ISO 8601 with timezone, when the score was produced
    scores: tuple[float, ...] | None
    speech_ratio: float  # fraction of 20 ms frames judged active speech, 0..1
    level_dbfs: float  # window RMS in dBFS (-inf for digital silence -> reported as -120)
    clipping: bool
    skipped: int
    gap: bool
    latency_ms: float  # audio arrival -> result available on the event loop
    compute_ms: float  # model time on the scoring thread (0-ish when the gate said no speech)
    model: str
    model_version: str

    @property
    def has_speech(self) -> bool:
        return self.scores is not None

    def score(self, dimension: str) -> float | None:
        if self.scores is None:
            return None
        return self.scores[DIMENSIONS.index(dimension)]


@dataclass(frozen=True)
class DimensionState:
    """Rolling view of one dimension for the dashboard and the call summary."""

    name: str
    current: float | None
    mean: float | None
    worst: float | None
    worst_at_s: float | None  # stream time (end of the worst window)
    history: tuple[float | None, ...]  # oldest first, one entry per window; None = no speech


@dataclass(frozen=True)
class Snapshot:
    """Everything the dashboard shows, as one immutable value (render is a pure function)."""

    stream: StreamInfo
    model: str
    dimensions: tuple[DimensionState, ...]
    windows: int  # results received
    scored: int  # results with speech
    skipped: int  # windows dropped because scoring was slower than the hop
    gaps: int  # windows with missing audio
    clipped: int
    level_dbfs: float | None
    speech_ratio: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    rtf: float | None  # compute time / audio time of the scored windows' hops (<1: keeps up)
    stream_s: float  # stream time of the newest result
    hop_s: float
    status: str = ""  # e.g. "running", "device lost", "finished"
    extra: dict[str, str] = field(default_factory=dict)
