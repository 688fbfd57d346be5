"""The assembled WebRTC monitor: server + rooms + per-participant pipelines + writers + metrics.

Why a class apart from the command: the CLI, the in-process tests and the load test must run
exactly the same wiring; only the front (terminal dashboard or not) differs. Lifecycle:
``await service.start()`` (returns the bound port), ``await service.stop()``.

Memory is bounded by who is here now, not by who ever came: a participant's pipeline is kept
only while live and among the last ``keep_left`` who left (dimmed on the dashboard); what
remains of everyone else is a small summary for the exit report (the last ``keep_summaries``)
and their reason for leaving (the last :data:`DEPARTED_KEPT`, so their page can say why).
"""

from __future__ import annotations

import ctypes
import hmac
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livesqa.aggregate import DimensionSummary
from livesqa.webrtc.consent import install_patient_consent
from livesqa.webrtc.loopback import enable_loopback_candidates, is_loopback_host
from livesqa.webrtc.metrics import RoomMetrics
from livesqa.webrtc.overload import install_overload_shedding
from livesqa.webrtc.participant import ParticipantPipeline, PipelineConfig, Scoring
from livesqa.webrtc.room import ParticipantInfo, RoomEvent
from livesqa.webrtc.rows import RoomWriter
from livesqa.webrtc.server import RoomRegistry, ServerConfig, create_app

log = logging.getLogger(__name__)

EVENT_LOG_LEN = 50
DEPARTED_KEPT = 256  # recently departed participants whose page may still ask why


@dataclass(frozen=True)
class ParticipantView:
    """What the dashboard shows of one participant (live or recently left)."""

    info: ParticipantInfo
    pipeline: ParticipantPipeline
    left_wall: float | None = None


@dataclass(frozen=True)
class ParticipantSummary:
    """What the exit report prints of a participant: a few numbers, not its pipeline."""

    info: ParticipantInfo
    summary: tuple[DimensionSummary, ...]
    windows: int
    scored: int
    skipped: int
    reason: str


def release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise): RSS follows the rooms."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class MonitorService:
    """Runs the signalling server and monitors every participant of every room."""

    def __init__(
        self,
        config: ServerConfig,
        scoring: Scoring,
        pipeline: PipelineConfig | None = None,
        writers: Sequence[RoomWriter] = (),
        metrics: RoomMetrics | None = None,
        keep_left: int = 8,
        keep_summaries: int = 100,
    ) -> None:
        self.config = config
        self.scoring = scoring
        self.pipeline_config = pipeline or PipelineConfig()
        self.writers = list(writers)
        self.metrics = metrics if metrics is not None else RoomMetrics()
        self.registry = RoomRegistry(config, self._make_pipeline, self._on_event)
        self.live: dict[str, ParticipantPipeline] = {}  # by participant id
        self.left: deque[ParticipantView] = deque(maxlen=keep_left)
        self.events: deque[RoomEvent] = deque(maxlen=EVENT_LOG_LEN)
        self.summaries: deque[ParticipantSummary] = deque(maxlen=keep_summaries)
        self.participants_total = 0
        self._secrets: dict[str, str] = {}  # live participants' secrets, by id
        self.departed: OrderedDict[str, tuple[str, str, str]] = OrderedDict()  # id -> room, secret, reason
        self._runner: object | None = None
        self.port: int | None = None

    def _make_pipeline(self, info: ParticipantInfo) -> ParticipantPipeline:
        pipeline = ParticipantPipeline(info, self.scoring, self.pipeline_config, self.writers,
                                       self.metrics)
        self.live[info.id] = pipeline
        self.participants_total += 1
        return pipeline

    def _room_size(self, room: str) -> int:
        r = self.registry.rooms.get(room)
        return len(r) if r is not None else 0

    def _on_event(self, event: RoomEvent) -> None:
        info = event.participant
        self.events.append(event)
        for writer in self.writers:
            writer.event(event)
        if event.kind == "join":
            room = self.registry.rooms.get(info.room)
            part = room.participants.get(info.id) if room is not None else None
            if part is not None:
                self._secrets[info.id] = part.secret
            self.metrics.joined(info, self._room_size(info.room))
            return
        secret = self._secrets.pop(info.id, None)
        if secret is not None:
            self.departed[info.id] = (info.room, secret, event.reason)
            while len(self.departed) > DEPARTED_KEPT:
                self.departed.popitem(last=False)
        pipeline = self.live.pop(info.id, None)
        self.metrics.left(info, self._room_size(info.room))
        if pipeline is not None:
            self.left.append(ParticipantView(info, pipeline, event.wall_time))
            agg = pipeline.aggregator
            self.summaries.append(ParticipantSummary(info, agg.summary(), agg.windows, agg.scored,
                                                     agg.skipped, event.reason))
        self.registry.drop_if_empty(info.room)
        if not self.live:
            release_free_memory()

    def views(self) -> list[ParticipantView]:
        """Live participants (join order), then those who left most recently."""
        live = [ParticipantView(p.info, p) for p in self.live.values()]
        return live + list(reversed(self.left))

    def me_view(self, room: str, pid: str, secret: str) -> dict[str, Any] | None:
        """A participant's page data (its scores, its network, the others), or why it was dropped."""
        pipeline = self.live.get(pid)
        expected = self._secrets.get(pid)
        if pipeline is not None and expected is not None and pipeline.info.room == room:
            if not hmac.compare_digest(secret.encode(), expected.encode()):
                return None
            r = self.registry.rooms.get(room)
            others = [] if r is None else [
                {"id": p.info.id, "name": p.info.name} for p in r.participants.values()
                if p.info.id != pid
            ]
            return {**pipeline.page_view(), "others": others, "left": None}
        gone = self.departed.get(pid)
        if gone is None or gone[0] != room or not hmac.compare_digest(secret.encode(), gone[1].encode()):
            return None
        return {"id": pid, "left": gone[2], "by_server": gone[2] != "bye"}

    async def start(self) -> int:
        from aiohttp import web

        if is_loopback_host(self.config.host):
            enable_loopback_candidates()
        install_patient_consent()  # a busy host reads ICE answers late; that is not a gone peer
        install_overload_shedding()  # ... and should read them at once, shedding stale media
        app = create_app(self.config, self.registry, self.metrics.render, self.me_view)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.config.port
        log.info("serving %s", self.config.room_url(self.port))
        return self.port

    def room_url(self) -> str:
        return self.config.room_url(self.port)

    async def stop(self) -> None:
        """Leave everyone (their rows are closed), stop the server; writers stay the caller's."""
        t0 = time.monotonic()
        await self.registry.close()
        if self._runner is not None:
            await self._runner.cleanup()  # type: ignore[attr-defined]
            self._runner = None
        log.info("stopped in %.1f s", time.monotonic() - t0)
