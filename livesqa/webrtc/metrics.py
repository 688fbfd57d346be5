"""Prometheus metrics per room and participant: scores, network figures, counters.

Why a private registry: several servers (tests, or one per process) must not collide in
prometheus-client's global registry, and /metrics should show livesqa's series only.
Labels are ``room``, ``participant`` (the server's id, unique) and ``name`` (display name);
their number is bounded by the rooms and participant limits. A participant's series are
removed when it leaves ("its rows are closed"), so dashboards do not show ghosts. Gauges
appear only once measured (a participant whose round trip is unknown has no
``livesqa_rtt_ms`` series, rather than a 0 that looks real); counters start at 0 on join.
"""

from __future__ import annotations

from typing import Any

from livesqa.spec import DIMENSIONS
from livesqa.types import WindowScores
from livesqa.webrtc.netstats import NetInterval
from livesqa.webrtc.room import ParticipantInfo

LABELS = ("room", "participant", "name")


class RoomMetrics:
    """All livesqa WebRTC series in one registry; ``render()`` gives the /metrics body."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.score = Gauge("livesqa_score", "Latest window score (1..5) per dimension",
                           (*LABELS, "dimension"), registry=r)
        self.speech = Gauge("livesqa_speech_ratio", "Active-speech fraction of the latest window",
                            LABELS, registry=r)
        self.level = Gauge("livesqa_level_dbfs", "RMS level of the latest window, dBFS",
                           LABELS, registry=r)
        self.loss = Gauge("livesqa_packet_loss_percent", "Packet loss in the latest stats interval",
                          LABELS, registry=r)
        self.jitter = Gauge("livesqa_jitter_ms", "RFC 3550 interarrival jitter", LABELS, registry=r)
        self.rtt = Gauge("livesqa_rtt_ms", "RTCP round-trip time", LABELS, registry=r)
        self.emodel = Gauge("livesqa_emodel_mos", "ITU-T G.107 E-model MOS estimate",
                            LABELS, registry=r)
        self.windows = Counter("livesqa_windows", "Windows scored or gated", LABELS, registry=r)
        self.skipped = Counter("livesqa_windows_skipped", "Windows dropped: scoring too slow",
                               LABELS, registry=r)
        self.gap_windows = Counter("livesqa_gap_windows", "Windows holding audio that never arrived",
                                   LABELS, registry=r)
        self.lost = Counter("livesqa_packets_lost", "RTP packets lost", LABELS, registry=r)
        self.participants = Gauge("livesqa_room_participants", "Participants connected",
                                  ("room",), registry=r)
        self._counters: list[Any] = [self.windows, self.skipped, self.gap_windows, self.lost]
        self._per_participant: list[Any] = [
            self.speech, self.level, self.loss, self.jitter, self.rtt, self.emodel, *self._counters,
        ]

    @staticmethod
    def _labels(info: ParticipantInfo) -> tuple[str, str, str]:
        return (info.room, info.id, info.name)

    def joined(self, info: ParticipantInfo, room_size: int) -> None:
        labels = self._labels(info)
        for metric in self._counters:
            metric.labels(*labels)  # counters exist from the start, at 0
        self.participants.labels(info.room).set(room_size)

    def observe(self, info: ParticipantInfo, result: WindowScores) -> None:
        labels = self._labels(info)
        self.windows.labels(*labels).inc()
        self.skipped.labels(*labels).inc(result.skipped)
        if result.gap:
            self.gap_windows.labels(*labels).inc()
        self.speech.labels(*labels).set(result.speech_ratio)
        self.level.labels(*labels).set(result.level_dbfs)
        if result.scores is not None:
            for name, value in zip(DIMENSIONS, result.scores):
                self.score.labels(*labels, name).set(value)

    def network(self, info: ParticipantInfo, net: NetInterval) -> None:
        labels = self._labels(info)
        self.loss.labels(*labels).set(net.loss_percent)
        self.jitter.labels(*labels).set(net.jitter_ms)
        if net.rtt_ms is not None:
            self.rtt.labels(*labels).set(net.rtt_ms)
        self.emodel.labels(*labels).set(net.emodel_mos)
        self.lost.labels(*labels).inc(net.packets_lost)

    def left(self, info: ParticipantInfo, room_size: int) -> None:
        labels = self._labels(info)
        for metric in self._per_participant:
            try:
                metric.remove(*labels)
            except KeyError:
                pass
        for name in DIMENSIONS:
            try:
                self.score.remove(*labels, name)
            except KeyError:
                pass
        self.participants.labels(info.room).set(room_size)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
