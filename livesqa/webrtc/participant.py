"""One participant's pipeline: relay proxy -> gap-aware ingest -> StreamMonitor -> rows/metrics.

Why a thin adapter: windowing, the shared scoring worker (round-robin across participants,
newest-window mailboxes, skip counts) and aggregation are the runtime's
(:class:`livesqa.monitor.StreamMonitor`); this class adds what only WebRTC has: frames with
timestamps (``FrameIngest``), receiver statistics (``NetStatsTracker``) and room-wide writers.
It implements :class:`livesqa.webrtc.room.ParticipantMonitor`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from livesqa.errors import LivesqaError
from livesqa.gating import GateConfig
from livesqa.monitor import StreamMonitor
from livesqa.scoring import ScoringWorker
from livesqa.types import Snapshot, StreamInfo, WindowScores
from livesqa.webrtc.emodel import EModelParams
from livesqa.webrtc.ingest import FrameIngest
from livesqa.webrtc.metrics import RoomMetrics
from livesqa.webrtc.netstats import InboundSample, NetInterval, NetStatsTracker
from livesqa.webrtc.room import ParticipantInfo
from livesqa.webrtc.rows import RoomWriter

log = logging.getLogger(__name__)

FINISH_TIMEOUT_S = 5.0  # a leaving participant's last windows get this long to be scored


@dataclass(frozen=True)
class PipelineConfig:
    """What each participant's monitor needs from the runtime configuration."""

    hop_samples: int | None = None  # None: the model's recommended hop
    history_windows: int = 180
    gate: GateConfig = field(default_factory=GateConfig)
    emodel: EModelParams = field(default_factory=EModelParams)


def stream_info(info: ParticipantInfo) -> StreamInfo:
    """Rows say who: ``source`` holds the unique id, ``participant`` the display name."""
    return StreamInfo(
        source=f"webrtc:{info.room}/{info.id}",
        room=info.room,
        participant=info.name,
        description=f"webrtc room {info.room}: {info.name} ({info.id})",
    )


class ParticipantPipeline:
    """Scores one participant's incoming audio live; network figures ride along."""

    def __init__(
        self,
        info: ParticipantInfo,
        worker: ScoringWorker,
        config: PipelineConfig | None = None,
        writers: Sequence[RoomWriter] = (),
        metrics: RoomMetrics | None = None,
    ) -> None:
        config = config or PipelineConfig()
        self.info = info
        self.monitor = StreamMonitor(
            worker,
            stream_info(info),
            live=True,
            hop_samples=config.hop_samples,
            gate=config.gate,
            history_windows=config.history_windows,
        )
        self.ingest = FrameIngest(worker.spec.sample_rate_hz)
        self.net_tracker = NetStatsTracker(config.emodel)
        self.net: NetInterval | None = None
        self.net_history: list[NetInterval] = []  # bounded below, for the dashboard
        self._history_len = config.history_windows
        self._writers = list(writers)
        self._metrics = metrics
        self.results = 0
        self.frames = 0
        self.closed_reason: str | None = None
        self.monitor.add_listener(self._on_result)
        self.monitor.aggregator.status = "connecting"

    def _on_result(self, result: WindowScores) -> None:
        self.results += 1
        gaps = self.ingest.stats.gaps
        for writer in self._writers:
            writer.write(result, self.net, gaps)
        if self._metrics is not None:
            self._metrics.observe(self.info, result)

    async def consume(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                self.frames += 1
                if self.frames == 1:
                    self.monitor.aggregator.status = "live"
                for chunk in self.ingest.push(frame):
                    self.monitor.push_nowait(chunk)
        except MediaStreamError:
            pass  # the track ended: the participant left or the connection closed
        except LivesqaError as e:  # a sink failed: stop scoring this participant, keep the call
            log.error("participant %s: %s", self.info.id, e)
            self.monitor.aggregator.status = f"error: {e}"
        finally:
            track.stop()

    def on_inbound(self, sample: InboundSample) -> None:
        self.net_tracker.note_bursts(*self.ingest.take_loss_bursts())
        interval = self.net_tracker.update(sample)
        if interval is None:
            return
        self.net = interval
        self.net_history.append(interval)
        del self.net_history[: max(len(self.net_history) - self._history_len, 0)]
        if self._metrics is not None:
            self._metrics.network(self.info, interval)

    def snapshot(self) -> Snapshot:
        return self.monitor.snapshot()

    async def close(self, reason: str) -> None:
        """Flush the resampler tail, score what is queued (bounded wait), close the rows."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        try:
            for chunk in self.ingest.close():
                self.monitor.push_nowait(chunk)
            await asyncio.wait_for(self.monitor.finish(), FINISH_TIMEOUT_S)
        except (asyncio.TimeoutError, LivesqaError) as e:
            log.warning("participant %s: last windows not scored (%s)", self.info.id, e)
        self.monitor.close()
        self.monitor.aggregator.status = f"left ({reason})"
