"""In-process calls: aiortc peers sending tones join rooms over HTTP; the monitor scores each.

Every peer sends a tone of its own frequency (switched at a syllable rate so the speech gate
opens), so "who hears whom" is checked by frequency: everyone hears every other participant
of their room, nobody hears themselves, and no audio crosses rooms.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiortc")

from livesqa.gating import GateConfig
from livesqa.spec import read_spec
from livesqa.webrtc.client import RoomClient, SignalTrack, speechlike_tone
from livesqa.webrtc.participant import PipelineConfig
from livesqa.webrtc.room import RoomConfig
from livesqa.webrtc.rows import RoomCsvWriter, RoomJsonlWriter
from livesqa.webrtc.scoreproc import ScoringConfig, ScoringProcess
from livesqa.webrtc.server import ServerConfig
from livesqa.webrtc.service import MonitorService

# test tones must count as speech: the energy detector where a choice exists
TONE_GATE = GateConfig(**({"detector": "energy"} if "detector" in GateConfig.__dataclass_fields__
                          else {}))


@dataclass
class Harness:
    service: MonitorService
    url: str
    csv_path: Path
    jsonl_path: Path
    clients: list[RoomClient]

    async def join(self, room: str, name: str, freq: float, slots: int = 3) -> RoomClient:
        client = RoomClient(self.url, room, name, SignalTrack(speechlike_tone(freq, 2.0)), slots=slots)
        await client.join()
        self.clients.append(client)
        return client

    def rows(self) -> list[dict[str, str]]:
        with open(self.csv_path, newline="") as f:
            return list(csv.DictReader(f))


async def wait_until(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return predicate()


def close_to(values: list[float], expected: list[float], tol: float = 15.0) -> bool:
    return len(values) == len(expected) and all(
        abs(v - e) < tol for v, e in zip(sorted(values), sorted(expected))
    )


@pytest.fixture
async def harness(tiny_model_path: Path, tmp_path: Path) -> AsyncIterator[Harness]:
    scoring = ScoringProcess(ScoringConfig(str(tiny_model_path), 8000, TONE_GATE),
                             read_spec(tiny_model_path))
    await scoring.start()
    csv_writer = RoomCsvWriter(tmp_path / "rows.csv")
    jsonl_writer = RoomJsonlWriter(tmp_path / "rows.jsonl")
    config = ServerConfig(
        port=0,
        rooms=RoomConfig(max_participants=4, stats_interval_s=0.25, peer_timeout_s=1.5),
    )
    service = MonitorService(config, scoring, PipelineConfig(),
                             [csv_writer, jsonl_writer])
    port = await service.start()
    h = Harness(service, f"http://127.0.0.1:{port}", tmp_path / "rows.csv", tmp_path / "rows.jsonl", [])
    yield h
    for client in h.clients:
        await client.close()
    await service.stop()
    await scoring.stop()
    csv_writer.close()
    jsonl_writer.close()


async def test_everyone_hears_the_others_and_is_scored(harness: Harness) -> None:
    freqs = {"ann": 400.0, "bob": 700.0, "cy": 1000.0}
    a = [await harness.join("alpha", name, f) for name, f in freqs.items()]
    lonely = await harness.join("beta", "dee", 1300.0)

    def all_hear() -> bool:
        return all(close_to(c.heard_frequencies(), [f for n, f in freqs.items() if n != c.name]) for c in a)

    assert await wait_until(all_hear, 15.0), [c.heard_frequencies() for c in a]
    assert lonely.heard_frequencies() == []  # alone in beta: no audio from alpha leaks in
    assert all(h.frames == 0 for h in lonely.heard.values())

    def scored() -> set[str]:
        return {r["participant"] for r in harness.rows() if r["mos"]}

    assert await wait_until(lambda: scored() >= {"ann", "bob", "cy", "dee"}, 15.0), scored()
    rows = harness.rows()
    assert {r["room"] for r in rows if r["participant"] in freqs} == {"alpha"}
    assert {r["room"] for r in rows if r["participant"] == "dee"} == {"beta"}
    assert all(r["source"].startswith(f"webrtc:{r['room']}/") for r in rows)
    assert all(r["gap"] == "0" for r in rows)  # loopback loses nothing
    with_net = [r for r in rows if r["loss_pct"]]
    assert with_net and all(float(r["loss_pct"]) == 0.0 for r in with_net)
    from livesqa.webrtc.emodel import estimate_mos

    for r in with_net:  # no loss: the E-model prices the delay only (jitter grows on a busy host)
        rtt = float(r["rtt_ms"]) if r["rtt_ms"] else None
        assert float(r["emodel_mos"]) == pytest.approx(
            estimate_mos(0.0, float(r["jitter_ms"]), rtt), abs=0.02)
        assert float(r["emodel_mos"]) <= 4.5
    body, _ = harness.service.metrics.render()
    text = body.decode()
    assert 'livesqa_room_participants{room="alpha"} 3.0' in text
    assert text.count('livesqa_score{dimension="mos"') == 4


async def test_leave_and_rejoin(harness: Harness) -> None:
    ann = await harness.join("alpha", "ann", 400.0)
    bob = await harness.join("alpha", "bob", 700.0)
    assert await wait_until(lambda: close_to(ann.heard_frequencies(), [700.0]), 10.0)
    await bob.leave()
    harness.clients.remove(bob)
    assert await wait_until(lambda: len(harness.service.live) == 1, 5.0)
    leave = [e for e in harness.service.events if e.kind == "leave"]
    assert [(e.participant.name, e.reason) for e in leave] == [("bob", "bye")]
    assert "bob" not in harness.service.metrics.render()[0].decode()
    bob2 = await harness.join("alpha", "bob", 900.0)

    def ann_hears_new_bob() -> bool:
        recent = [h for h in ann.heard.values() if h.frames]
        from livesqa.webrtc.client import dominant_frequency

        return any(abs(dominant_frequency(h.recent(), 48000) - 900.0) < 15 for h in recent)

    assert await wait_until(ann_hears_new_bob, 10.0)
    assert await wait_until(lambda: close_to(bob2.heard_frequencies(), [400.0]), 10.0)
    kinds = [line for line in harness.jsonl_path.read_text().splitlines() if '"kind": "leave"' in line]
    assert len(kinds) == 1 and '"reason": "bye"' in kinds[0]


async def test_vanished_peer_is_removed_after_the_timeout(harness: Harness) -> None:
    ann = await harness.join("alpha", "ann", 400.0)
    ghost = await harness.join("alpha", "ghost", 700.0)
    assert await wait_until(lambda: close_to(ann.heard_frequencies(), [700.0]), 10.0)
    await ghost.vanish()
    assert await wait_until(lambda: len(harness.service.live) == 1, 8.0)
    event = next(e for e in harness.service.events if e.kind == "leave")
    assert event.participant.name == "ghost" and event.reason in ("timeout", "failed", "closed")
    room = harness.service.registry.rooms["alpha"]
    ann_server = next(iter(room.participants.values()))
    assert ann_server.slot_of == {}  # ghost's slot was freed
    gone = harness.service.left[0].pipeline
    assert gone.closed_reason == event.reason and gone.aggregator.status.startswith("left")
    newcomer = await harness.join("alpha", "eve", 1000.0)  # the server still serves
    assert await wait_until(lambda: close_to(newcomer.heard_frequencies(), [400.0]), 10.0)


async def test_packet_loss_is_flagged_counted_and_priced(harness: Harness) -> None:
    ann = await harness.join("alpha", "ann", 400.0)
    room = harness.service.registry.rooms["alpha"]
    part = room.participants[ann.id]
    receiver = part.pc.getTransceivers()[0].receiver
    original = receiver._handle_rtp_packet
    seen = {"n": 0}

    async def lossy(packet: Any, arrival_time_ms: int) -> None:
        seen["n"] += 1
        if seen["n"] % 25 < 4:  # bursts of 4 packets (80 ms) every 0.5 s: 16 % loss
            return
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = lossy
    pipeline = harness.service.live[ann.id]
    assert await wait_until(lambda: pipeline.ingest.stats.gaps >= 4 and pipeline.net is not None
                            and pipeline.net.loss_percent > 5.0, 10.0)
    net = pipeline.net
    assert net is not None and net.burst_ratio > 1.5 and net.emodel_mos < 3.5
    assert await wait_until(lambda: any(r["gap"] == "1" for r in harness.rows()), 5.0)

    def lossy_rows() -> list[dict[str, str]]:
        return [r for r in harness.rows() if r["loss_pct"] and float(r["loss_pct"]) > 5.0]

    # a row carries the newest 0.25 s interval; bursts come every 0.5 s, so wait for one
    assert await wait_until(lambda: bool(lossy_rows()), 10.0)
    assert all(r["participant"] == "ann" for r in lossy_rows())
    snap = pipeline.snapshot()
    assert snap.gaps >= 1


async def test_rtt_is_measured_from_rtcp_and_absent_until_then(harness: Harness) -> None:
    ann = await harness.join("alpha", "ann", 400.0)
    pipeline = harness.service.live[ann.id]
    assert await wait_until(lambda: pipeline.net is not None, 5.0)
    assert "livesqa_rtt_ms{" not in harness.service.metrics.render()[0].decode()  # not yet: no 0.0
    await harness.join("alpha", "bob", 700.0)  # ann now hears bob: the server sends to ann

    def rtt_rows() -> list[float]:
        return [float(r["rtt_ms"]) for r in harness.rows() if r["participant"] == "ann" and r["rtt_ms"]]

    assert await wait_until(lambda: bool(rtt_rows()), 12.0), "no rtt from RTCP"
    assert all(0.0 <= v < 200.0 for v in rtt_rows())  # loopback: a few ms
    assert 'livesqa_rtt_ms{name="ann"' in harness.service.metrics.render()[0].decode()


async def me(url: str, room: str, client: RoomClient, secret: str | None = None) -> tuple[int, dict]:
    import aiohttp

    body = {"id": client.id, "secret": client.secret if secret is None else secret}
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/room/{room}/me", json=body) as r:
        return r.status, await r.json()


async def test_a_participant_reads_its_own_scores_and_why_it_was_dropped(harness: Harness) -> None:
    ann = await harness.join("alpha", "ann", 400.0)
    bob = await harness.join("alpha", "bob", 700.0)

    async def ann_scored() -> dict | None:
        status, view = await me(harness.url, "alpha", ann)
        return view if status == 200 and view["window"] and view["window"]["scores"] else None

    deadline = time.monotonic() + 15.0
    view = None
    while view is None and time.monotonic() < deadline:
        view = await ann_scored()
        await asyncio.sleep(0.2)
    assert view is not None
    assert view["name"] == "ann" and view["left"] is None
    assert [o["name"] for o in view["others"]] == ["bob"]
    row = next(r for r in harness.rows() if r["participant"] == "ann"
               and float(r["end_s"]) == view["window"]["end_s"])
    assert view["window"]["scores"]["mos"] == pytest.approx(float(row["mos"]), abs=0.006)
    assert (await me(harness.url, "alpha", ann, secret="wrong"))[0] == 403
    assert (await me(harness.url, "beta", ann))[0] == 403  # another room's URL
    room = harness.service.registry.rooms["alpha"]
    await room.leave(ann.id, reason="timeout")
    assert await me(harness.url, "alpha", ann) == (200, {"id": ann.id, "left": "timeout",
                                                         "by_server": True})
    await bob.leave()
    harness.clients.remove(bob)
    assert (await me(harness.url, "alpha", bob))[1]["by_server"] is False


async def test_a_frozen_scorer_never_drops_a_call(harness: Harness) -> None:
    """Scoring that gets no CPU at all (the child stopped) leaves media and ICE untouched."""
    import os
    import signal

    ann = await harness.join("alpha", "ann", 400.0)
    bob = await harness.join("alpha", "bob", 700.0)
    assert await wait_until(lambda: close_to(ann.heard_frequencies(), [700.0])
                            and close_to(bob.heard_frequencies(), [400.0]), 10.0)
    pid = harness.service.scoring.pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGSTOP)
    try:
        ann_frames = next(iter(h.frames for h in ann.heard.values() if h.frames))
        await asyncio.sleep(4.0)  # > peer_timeout (1.5 s) of the harness
        assert len(harness.service.live) == 2  # nobody was dropped
        assert not [e for e in harness.service.events if e.kind == "leave"]
        # audio kept flowing (200 frames in real time; fewer on a host busy with other work)
        assert next(iter(h.frames for h in ann.heard.values() if h.frames)) > ann_frames + 25
    finally:
        os.kill(pid, signal.SIGCONT)
    pipeline = harness.service.live[ann.id]
    before = pipeline.results
    assert await wait_until(lambda: pipeline.results > before + 2, 10.0)  # scoring resumes
    assert pipeline.aggregator.skipped > 0 or max(pipeline.aggregator._latency) > 1000.0


async def test_memory_is_held_by_who_is_here(harness: Harness) -> None:
    """Pipelines, rooms and scoring streams go when people leave; only bounded summaries stay."""
    for i in range(12):
        client = await harness.join("gamma", f"p{i}", 400.0 + 50 * i)
        await client.leave()
        harness.clients.remove(client)
    service = harness.service
    assert await wait_until(lambda: not service.live and not service.registry.rooms, 5.0)
    assert len(service.left) <= 8 and len(service.summaries) == 12 and service.participants_total == 12
    assert service.scoring._streams == {}  # type: ignore[attr-defined]
    assert len(service.departed) == 12
