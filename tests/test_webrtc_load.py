"""Bounded load on loopback: N aiortc peers (default 8) in one room for 60 s.

Checks that every participant is scored, that no queue grows (audio waiting for the scoring
process stays bounded; relay queues stay near empty) and that memory is flat; prints the
server's CPU use per participant (the media process; scoring runs in its child). The peers run
in a separate process so the server's CPU time is its own.
Skip with ``LIVESQA_SKIP_LOAD_TEST=1``; ``LIVESQA_LOAD_CLIENTS`` / ``LIVESQA_LOAD_SECONDS``
change the size. Loopback only: the server binds 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiortc")

from livesqa.gating import GateConfig
from livesqa.spec import read_spec
from livesqa.webrtc.participant import ParticipantPipeline, PipelineConfig
from livesqa.webrtc.room import RoomConfig
from livesqa.webrtc.rows import RoomCsvWriter
from livesqa.webrtc.scoreproc import ScoringConfig, ScoringProcess
from livesqa.webrtc.server import ServerConfig
from livesqa.webrtc.service import MonitorService

pytestmark = pytest.mark.skipif(os.environ.get("LIVESQA_SKIP_LOAD_TEST") == "1",
                                reason="LIVESQA_SKIP_LOAD_TEST=1")
CLIENTS = int(os.environ.get("LIVESQA_LOAD_CLIENTS", "8"))
SECONDS = float(os.environ.get("LIVESQA_LOAD_SECONDS", "60"))
SLOTS = int(os.environ.get("LIVESQA_LOAD_SLOTS", str(CLIENTS - 1)))  # 0: monitor only, no relay


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def relay_backlog(service: MonitorService, drops: dict[int, int]) -> int:
    """Packets waiting in listeners' slot queues (0-2 when keeping up)."""
    worst = 0
    for room in service.registry.rooms.values():
        for part in room.participants.values():
            for slot in part.slots:
                drops[id(slot)] = slot.frames_dropped
                worst = max(worst, slot.backlog)
    return worst


async def test_eight_peers_for_a_minute(tiny_model_path: Path, tmp_path: Path) -> None:
    model = os.environ.get("LIVESQA_LOAD_MODEL") or str(tiny_model_path)
    spec = read_spec(model)
    rate = spec.sample_rate_hz
    tone_gate = GateConfig(**({"detector": "energy"}
                              if "detector" in GateConfig.__dataclass_fields__ else {}))
    scoring = ScoringProcess(ScoringConfig(model, rate, tone_gate), spec)
    await scoring.start()
    writer = RoomCsvWriter(tmp_path / "load.csv")
    service = MonitorService(
        ServerConfig(port=0, rooms=RoomConfig(max_participants=max(CLIENTS, 2))),
        scoring, PipelineConfig(), [writer],
    )
    port = await service.start()
    peers = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livesqa.webrtc.client", f"http://127.0.0.1:{port}", "load",
        "--clients", str(CLIENTS), "--seconds", str(SECONDS), "--slots", str(SLOTS),
        stdout=asyncio.subprocess.PIPE,
    )
    drops: dict[int, int] = {}  # slot -> frames it skipped (listener behind)
    samples: list[tuple[float, float, int, int]] = []  # (t, rss MB, scoring backlog B, relay backlog)
    pipelines: dict[str, ParticipantPipeline] = {}
    t0 = time.monotonic()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        while peers.returncode is None and time.monotonic() - t0 < SECONDS + 60:
            pipelines.update({p.info.name: p for p in service.live.values()})
            samples.append((time.monotonic() - t0, rss_mb(), scoring.backlog_bytes(),
                             relay_backlog(service, drops)))
            try:
                await asyncio.wait_for(peers.wait(), 2.0)
            except TimeoutError:
                pass
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic() - t0
        out, _ = await peers.communicate()
        report = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        if peers.returncode is None:
            peers.kill()
            await peers.wait()
        await service.stop()
        await scoring.stop()
        writer.close()
    cpu_s = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    windows = {n: p.aggregator.windows for n, p in pipelines.items()}
    scored = {n: p.aggregator.scored for n, p in pipelines.items()}
    skipped = {n: p.aggregator.skipped for n, p in pipelines.items()}
    steady = [s for s in samples if s[0] > 15.0] or samples
    summary = {
        "clients": CLIENTS, "slots": SLOTS, "seconds": SECONDS, "wall_s": round(wall, 1),
        "server_cpu_s": round(cpu_s, 1), "server_cpu_per_participant": round(cpu_s / wall / CLIENTS, 4),
        "scoring_dropped_chunks": scoring.dropped_chunks,
        "windows": windows, "scored": scored, "skipped": skipped,
        "rss_mb_first_last": (round(steady[0][1], 1), round(steady[-1][1], 1)),
        "max_scoring_backlog_bytes": max(s[2] for s in samples),
        "max_relay_backlog": max(s[3] for s in samples),
        "heard": report["heard_streams"], "model": spec.name,
        "relay_frames_expected": sum(p.frames for p in pipelines.values()) * min(SLOTS, CLIENTS - 1),
        "relay_frames_dropped": sum(drops.values()),
    }
    print("\nLOAD", json.dumps(summary))
    print("SAMPLES", [(round(s[0]), round(s[1]), s[2], s[3]) for s in samples])
    assert len(pipelines) == CLIENTS
    # every participant scored, and scoring keeps pace with the audio that actually arrived
    # (a starved host delivers less audio: the windows produced are the fair yardstick)
    assert all(scored[n] >= max(1, 0.5 * windows[n]) for n in scored), (scored, windows)
    if sorted(windows.values())[len(windows) // 2] >= 0.5 * SECONDS:  # audio flowed normally
        assert all(n >= SECONDS * 0.3 for n in scored.values()), scored
    assert all(n == min(SLOTS, CLIENTS - 1) for n in report["heard_streams"].values()), report
    # audio waiting for the scoring process stays within its bound (2 s per participant)
    assert summary["max_scoring_backlog_bytes"] <= 2.0 * 4 * rate * CLIENTS + 65536
    assert summary["max_relay_backlog"] < 50  # < 1 s of audio waiting for any listener
    assert steady[-1][1] - steady[0][1] < 60.0, summary["rss_mb_first_last"]  # flat memory
