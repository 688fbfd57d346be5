"""The assembled WebRTC monitor: server + rooms + per-participant pipelines + writers + metrics.

Why a class apart from the command: the CLI, the in-process tests and the load test must run
exactly the same wiring; only the front (terminal dashboard or not) differs. Lifecycle:
``await service.start()`` (returns the bound port), ``await service.stop()``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from livesqa.scoring import ScoringWorker
from livesqa.webrtc.loopback import enable_loopback_candidates, is_loopback_host
from livesqa.webrtc.metrics import RoomMetrics
from livesqa.webrtc.participant import ParticipantPipeline, PipelineConfig
from livesqa.webrtc.room import ParticipantInfo, RoomEvent
from livesqa.webrtc.rows import RoomWriter
from livesqa.webrtc.server import RoomRegistry, ServerConfig, create_app

log = logging.getLogger(__name__)

EVENT_LOG_LEN = 50


@dataclass(frozen=True)
class ParticipantView:
    """What the dashboard shows of one participant (live or recently left)."""

    info: ParticipantInfo
    pipeline: ParticipantPipeline
    left_wall: float | None = None


class MonitorService:
    """Runs the signalling server and monitors every participant of every room."""

    def __init__(
        self,
        config: ServerConfig,
        worker: ScoringWorker,
        pipeline: PipelineConfig | None = None,
        writers: Sequence[RoomWriter] = (),
        metrics: RoomMetrics | None = None,
        keep_left: int = 8,
    ) -> None:
        self.config = config
        self.worker = worker
        self.pipeline_config = pipeline or PipelineConfig()
        self.writers = list(writers)
        self.metrics = metrics if metrics is not None else RoomMetrics()
        self.registry = RoomRegistry(config, self._make_pipeline, self._on_event)
        self.live: dict[str, ParticipantPipeline] = {}  # by participant id
        self.left: deque[ParticipantView] = deque(maxlen=keep_left)
        self.events: deque[RoomEvent] = deque(maxlen=EVENT_LOG_LEN)
        self.all_pipelines: list[ParticipantPipeline] = []  # tests/bench: every one ever made
        self._runner: object | None = None
        self.port: int | None = None

    def _make_pipeline(self, info: ParticipantInfo) -> ParticipantPipeline:
        pipeline = ParticipantPipeline(info, self.worker, self.pipeline_config, self.writers,
                                       self.metrics)
        self.live[info.id] = pipeline
        self.all_pipelines.append(pipeline)
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
            self.metrics.joined(info, self._room_size(info.room))
        else:
            pipeline = self.live.pop(info.id, None)
            self.metrics.left(info, self._room_size(info.room))
            if pipeline is not None:
                self.left.append(ParticipantView(info, pipeline, event.wall_time))

    def views(self) -> list[ParticipantView]:
        """Live participants (join order), then those who left most recently."""
        live = [ParticipantView(p.info, p) for p in self.live.values()]
        return live + list(reversed(self.left))

    async def start(self) -> int:
        from aiohttp import web

        if is_loopback_host(self.config.host):
            enable_loopback_candidates()
        app = create_app(self.config, self.registry, self.metrics.render)
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
