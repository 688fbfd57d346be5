"""Interval network figures from cumulative receiver counters (and aiortc stats reports)."""

from __future__ import annotations

import datetime

import pytest

from livesqa.webrtc.emodel import estimate_mos
from livesqa.webrtc.netstats import InboundSample, NetStatsTracker, read_inbound


def test_first_sample_is_a_baseline_then_intervals_are_differences() -> None:
    tracker = NetStatsTracker()
    assert tracker.update(InboundSample(0.0, 100, 0, 2.0)) is None
    iv = tracker.update(InboundSample(1.0, 145, 5, 3.0))
    assert iv is not None
    assert (iv.packets_received, iv.packets_lost) == (45, 5)
    assert iv.loss_percent == pytest.approx(10.0)
    assert iv.jitter_ms == 3.0
    assert iv.emodel_mos == pytest.approx(estimate_mos(10.0, 3.0))
    clean = tracker.update(InboundSample(2.0, 195, 5, 3.0))
    assert clean is not None and clean.loss_percent == 0.0 and clean.emodel_mos > iv.emodel_mos


def test_bursts_from_the_media_raise_the_burst_ratio() -> None:
    random_loss, bursty_loss = NetStatsTracker(), NetStatsTracker()
    for tracker in (random_loss, bursty_loss):
        tracker.update(InboundSample(0.0, 0, 0, 1.0))
    bursty_loss.note_bursts(lost_packets=5, bursts=1)  # one 100 ms hole
    random_loss.note_bursts(lost_packets=5, bursts=5)
    a = random_loss.update(InboundSample(1.0, 45, 5, 1.0))
    b = bursty_loss.update(InboundSample(1.0, 45, 5, 1.0))
    assert a is not None and b is not None
    assert b.burst_ratio > a.burst_ratio == 1.0
    assert b.emodel_mos < a.emodel_mos


def test_counter_reset_restarts_the_baseline() -> None:
    tracker = NetStatsTracker()
    tracker.update(InboundSample(0.0, 500, 3, 1.0))
    assert tracker.update(InboundSample(1.0, 10, 0, 1.0)) is None  # new SSRC: counters restarted
    iv = tracker.update(InboundSample(2.0, 60, 0, 1.0))
    assert iv is not None and iv.packets_received == 50


def test_read_inbound_converts_aiortc_units() -> None:
    from aiortc.stats import (
        RTCInboundRtpStreamStats,
        RTCRemoteInboundRtpStreamStats,
        RTCStatsReport,
    )

    now = datetime.datetime.now(datetime.UTC)
    report = RTCStatsReport()
    assert read_inbound(report, 0.0) is None
    report.add(RTCInboundRtpStreamStats(timestamp=now, type="inbound-rtp", id="in", ssrc=1,
                                        kind="audio", transportId="t", packetsReceived=90,
                                        packetsLost=10, jitter=480))
    report.add(RTCRemoteInboundRtpStreamStats(timestamp=now, type="remote-inbound-rtp", id="ri",
                                              ssrc=2, kind="audio", transportId="t",
                                              packetsReceived=1, packetsLost=0, jitter=0,
                                              roundTripTime=0.04, fractionLost=0))
    sample = read_inbound(report, 5.0)
    assert sample is not None
    assert (sample.packets_received, sample.packets_lost) == (90, 10)
    assert sample.jitter_ms == pytest.approx(10.0)  # 480 ticks of the 48 kHz RTP clock
    assert sample.rtt_ms == pytest.approx(40.0)
