"""Per-participant network figures per interval: packet loss %, jitter (ms), E-model MOS.

Why a separate pure core: aiortc's receiver keeps only cumulative RTP counters
(``packetsReceived``, ``packetsLost``) and an RFC 3550 smoothed jitter in RTP clock units; a
listener cares about *this* interval. :class:`NetStatsTracker` turns successive cumulative
samples into interval figures, and :func:`read_inbound` pulls the sample from an aiortc
``RTCStatsReport`` so the tracker itself needs no aiortc.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from livesqa.webrtc.emodel import EModelParams, burst_ratio, estimate_mos

OPUS_CLOCK_HZ = 48000  # RTP clock of Opus (RFC 7587), whatever the audio bandwidth
BURST_MEMORY = 16  # loss notes kept for the mean burst length


@dataclass(frozen=True)
class InboundSample:
    """Cumulative receiver counters at one instant (wall-clock seconds, monotonic)."""

    time_s: float
    packets_received: int
    packets_lost: int
    jitter_ms: float
    rtt_ms: float | None = None


@dataclass(frozen=True)
class NetInterval:
    """Network figures of one interval, ready for a CSV row, the dashboard and /metrics."""

    start_s: float
    end_s: float
    packets_received: int
    packets_lost: int
    loss_percent: float
    jitter_ms: float
    rtt_ms: float | None
    burst_ratio: float
    emodel_mos: float


def read_inbound(report: Any, time_s: float, clock_hz: int = OPUS_CLOCK_HZ) -> InboundSample | None:
    """The audio ``inbound-rtp`` entry of an aiortc ``RTCStatsReport`` as a sample.

    aiortc reports jitter in RTP timestamp units (browsers use seconds); ``clock_hz`` converts.
    Returns None while no packet has arrived (no inbound entry yet).
    """
    received = lost = 0
    jitter_units = 0.0
    found = False
    for stats in report.values():
        kind = getattr(stats, "type", "")
        if kind == "inbound-rtp" and getattr(stats, "kind", "audio") == "audio":
            found = True
            received += int(stats.packetsReceived)
            lost += int(stats.packetsLost)
            jitter_units = max(jitter_units, float(stats.jitter))
    if not found:
        return None
    return InboundSample(
        time_s=time_s,
        packets_received=received,
        packets_lost=max(lost, 0),
        jitter_ms=1000.0 * jitter_units / clock_hz,
        rtt_ms=read_rtt_ms(report),
    )


def read_rtt_ms(report: Any) -> float | None:
    """RTCP round-trip time (ms) from a report's ``remote-inbound-rtp`` entries, None if unmeasured.

    aiortc fills ``roundTripTime`` (seconds) on a *sender's* report once a receiver report
    echoes one of its sender reports; receivers alone never know the round trip.
    """
    rtts = [float(s.roundTripTime) for s in report.values()
            if getattr(s, "type", "") == "remote-inbound-rtp"
            and getattr(s, "roundTripTime", None) is not None]
    return 1000.0 * max(min(rtts), 0.0) if rtts else None


class NetStatsTracker:
    """Differences successive cumulative samples into :class:`NetInterval` figures.

    Loss bursts come from the ingest side (``note_bursts``): the receiver counters say how many
    packets were lost, the frame timestamps say whether they went missing together.
    """

    def __init__(self, params: EModelParams | None = None) -> None:
        self._params = params or EModelParams()
        self._last: InboundSample | None = None
        # recent (lost packets, bursts) notes: the media reveals a burst up to a jitter buffer
        # later than the counters count it, so burstiness is a rolling, not per-interval, figure
        self._burst_notes: deque[tuple[int, int]] = deque(maxlen=BURST_MEMORY)
        self.total_lost = 0
        self.total_received = 0

    def note_bursts(self, lost_packets: int, bursts: int) -> None:
        """Record loss bursts seen in the media (for BurstR; the last ``BURST_MEMORY`` notes count)."""
        if bursts > 0 and lost_packets > 0:
            self._burst_notes.append((lost_packets, bursts))

    def update(self, sample: InboundSample) -> NetInterval | None:
        """Feed the next cumulative sample; returns the interval since the previous one.

        The first sample only sets the baseline (None). A counter that goes backwards (a new
        SSRC after an ICE restart) also resets the baseline instead of reporting nonsense.
        """
        last, self._last = self._last, sample
        if last is None or sample.time_s <= last.time_s:
            return None
        d_received = sample.packets_received - last.packets_received
        d_lost = sample.packets_lost - last.packets_lost
        if d_received < 0:
            return None
        d_lost = max(d_lost, 0)  # late packets can make cumulative loss shrink
        expected = d_received + d_lost
        loss_fraction = d_lost / expected if expected else 0.0
        # no burst seen in the media (yet): assume random loss, BurstR = 1
        lost = sum(n for n, _ in self._burst_notes)
        bursts = sum(b for _, b in self._burst_notes)
        burst = burst_ratio(loss_fraction, lost / bursts) if bursts else 1.0
        self.total_lost += d_lost
        self.total_received += d_received
        loss_percent = 100.0 * loss_fraction
        return NetInterval(
            start_s=last.time_s,
            end_s=sample.time_s,
            packets_received=d_received,
            packets_lost=d_lost,
            loss_percent=loss_percent,
            jitter_ms=sample.jitter_ms,
            rtt_ms=sample.rtt_ms,
            burst_ratio=burst,
            emodel_mos=estimate_mos(loss_percent, sample.jitter_ms, sample.rtt_ms, burst, self._params),
        )
