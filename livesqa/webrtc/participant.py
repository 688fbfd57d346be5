"""One participant's pipeline: relay proxy -> gap-aware ingest -> scoring process -> rows/metrics.

Why a thin adapter: windowing, the speech gate and the model run in the scoring child process
(:mod:`livesqa.webrtc.scoreproc`, newest-window mailboxes, skip counts), so the media loop only
converts frames (``FrameIngest``) and hands chunks over. This class adds what only WebRTC has:
receiver statistics (``NetStatsTracker``), room-wide writers and metrics, the participant's
own view for the page, and the aggregation (on the loop: a few additions per second).
It implements :class:`livesqa.webrtc.room.ParticipantMonitor`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from livesqa.aggregate import Aggregator
from livesqa.errors import LivesqaError
from livesqa.spec import DIMENSIONS, ModelSpec
from livesqa.types import AudioChunk, Snapshot, StreamInfo, WindowScores
from livesqa.webrtc.emodel import EModelParams
from livesqa.webrtc.ingest import FrameIngest
from livesqa.webrtc.metrics import RoomMetrics
from livesqa.webrtc.netstats import InboundSample, NetInterval, NetStatsTracker
from livesqa.webrtc.room import ParticipantInfo
from livesqa.webrtc.rows import RoomWriter
from livesqa.webrtc.scoreproc import ResultHandler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """What each participant's pipeline needs besides the scorer (hop and gate are its)."""

    history_windows: int = 180
    emodel: EModelParams = field(default_factory=EModelParams)


class StreamHandle(Protocol):
    """One stream in the scorer (:class:`livesqa.webrtc.scoreproc.ScoredStream`)."""

    def push(self, chunk: AudioChunk) -> None: ...

    async def close(self) -> bool: ...


class Scoring(Protocol):
    """Where streams are scored (:class:`livesqa.webrtc.scoreproc.ScoringProcess`)."""

    spec: ModelSpec
    hop_samples: int  # the hop the scorer windows with

    def open(self, key: str, stream: StreamInfo, on_result: ResultHandler) -> StreamHandle: ...


def stream_info(info: ParticipantInfo) -> StreamInfo:
    """Rows say who: ``source`` holds the unique id, ``participant`` the display name."""
    return StreamInfo(
        source=f"webrtc:{info.room}/{info.id}",
        room=info.room,
        participant=info.name,
        description=f"webrtc room {info.room}: {info.name} ({info.id})",
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class ParticipantPipeline:
    """Scores one participant's incoming audio live; network figures ride along."""

    def __init__(
        self,
        info: ParticipantInfo,
        scoring: Scoring,
        config: PipelineConfig | None = None,
        writers: Sequence[RoomWriter] = (),
        metrics: RoomMetrics | None = None,
    ) -> None:
        config = config or PipelineConfig()
        spec = scoring.spec
        hop = scoring.hop_samples
        self.info = info
        self.aggregator = Aggregator(stream_info(info), f"{spec.name} {spec.version}",
                                     hop / spec.sample_rate_hz, config.history_windows)
        self.aggregator.status = "connecting"
        self.ingest = FrameIngest(spec.sample_rate_hz)
        self.net_tracker = NetStatsTracker(config.emodel)
        self.net: NetInterval | None = None
        self.last: WindowScores | None = None
        self._writers = list(writers)
        self._metrics = metrics
        self.results = 0
        self.frames = 0
        self.closed_reason: str | None = None
        self.sink_error: str | None = None
        self.stream = scoring.open(info.id, stream_info(info), self._on_result)

    def _on_result(self, result: WindowScores) -> None:
        self.results += 1
        self.last = result
        self.aggregator.add(result)
        if self.closed_reason is not None:
            self.aggregator.status = f"left ({self.closed_reason})"
        gaps = self.ingest.stats.gaps
        if self.sink_error is None:
            try:
                for writer in self._writers:
                    writer.write(result, self.net, gaps)
            except LivesqaError as e:  # a sink failed: stop writing this participant, keep the call
                self.sink_error = str(e)
                log.error("participant %s: %s", self.info.id, e)
        if self.sink_error is not None:
            self.aggregator.status = f"error: {self.sink_error}"
        if self._metrics is not None and self.closed_reason is None:
            self._metrics.observe(self.info, result)

    async def consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                if self.frames == 1:
                    self.aggregator.status = "live"
                for chunk in self.ingest.push(frame):
                    self.stream.push(chunk)
        except MediaStreamError:
            pass  # the track ended: the participant left or the connection closed
        finally:
            track.stop()

    def on_inbound(self, sample: InboundSample) -> None:
        self.net_tracker.note_bursts(*self.ingest.take_loss_bursts())
        interval = self.net_tracker.update(sample)
        if interval is None:
            return
        self.net = interval
        if self._metrics is not None:
            self._metrics.network(self.info, interval)

    def snapshot(self) -> Snapshot:
        return self.aggregator.snapshot()

    def page_view(self) -> dict[str, Any]:
        """What the participant's own page shows: how the others hear them, live."""
        last = self.last
        agg = self.aggregator
        scores = None
        if last is not None and last.scores is not None:
            scores = {name: round(v, 2) for name, v in zip(DIMENSIONS, last.scores)}
        net = self.net
        return {
            "id": self.info.id,
            "name": self.info.name,
            "status": agg.status,
            "window": None if last is None else {
                "end_s": round(last.end_s, 3),
                "scores": scores,  # null: the window held too little speech
                "speech_ratio": round(last.speech_ratio, 2),
                "level_dbfs": round(last.level_dbfs, 1),
                "latency_ms": round(last.latency_ms),
                "gap": last.gap,
            },
            "windows": agg.windows,
            "skipped": agg.skipped,
            "net": None if net is None else {
                "loss_pct": round(net.loss_percent, 1),
                "jitter_ms": round(net.jitter_ms, 1),
                "rtt_ms": _rounded(net.rtt_ms, 1),
                "emodel_mos": round(net.emodel_mos, 2),
            },
            "gaps": self.ingest.stats.gaps,
        }

    async def close(self, reason: str) -> None:
        """Flush the resampler tail, let the scorer finish (bounded wait); rows stay open."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self.aggregator.status = f"left ({reason})"
        for chunk in self.ingest.close():
            self.stream.push(chunk)
        if not await self.stream.close():
            log.warning("participant %s: last windows not scored", self.info.id)
        self.aggregator.status = f"left ({reason})"
