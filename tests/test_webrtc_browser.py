"""A real browser joins: headless Debian chromium with a fake microphone playing a test WAV.

The page is opened with ``?autojoin=1&name=...`` (the kiosk path), so no click is needed.
Skipped when no chromium binary is installed (``.ci/run`` installs Debian's ``chromium``);
never downloads a browser.
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiortc")
import soundfile as sf

from livesqa.gating import GateConfig
from livesqa.spec import read_spec
from livesqa.webrtc.client import speechlike_tone
from livesqa.webrtc.loopback import disable_loopback_candidates
from livesqa.webrtc.participant import PipelineConfig
from livesqa.webrtc.room import RoomConfig
from livesqa.webrtc.rows import RoomCsvWriter
from livesqa.webrtc.scoreproc import ScoringConfig, ScoringProcess
from livesqa.webrtc.server import ServerConfig
from livesqa.webrtc.service import MonitorService

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")


def chromium_args(url: str, wav: Path, profile: Path) -> list[str]:
    assert CHROMIUM is not None
    return [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        url,
    ]


def scored_rows(path: Path, participant: str) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["participant"] == participant and r["mos"]]


async def test_headless_chromium_joins_and_is_scored(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as on a loopback-only host: the server's only ICE candidate is the 127.0.0.1 we add
    import aioice.ice

    disable_loopback_candidates()
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])
    wav = tmp_path / "voice.wav"
    sf.write(wav, speechlike_tone(500.0, 12.0, rate_hz=48000), 48000, subtype="PCM_16")
    profile = tmp_path / "profile"
    profile.mkdir()
    csv_path = tmp_path / "rows.csv"
    tone_gate = GateConfig(**({"detector": "energy"}
                              if "detector" in GateConfig.__dataclass_fields__ else {}))
    scoring = ScoringProcess(ScoringConfig(str(tiny_model_path), 8000, tone_gate),
                             read_spec(tiny_model_path))
    await scoring.start()
    writer = RoomCsvWriter(csv_path)
    service = MonitorService(
        ServerConfig(port=0, room="kiosk", pin_room=True, rooms=RoomConfig(peer_timeout_s=5.0)),
        scoring, PipelineConfig(), [writer],
    )
    port = await service.start()
    url = f"http://127.0.0.1:{port}/room/kiosk?autojoin=1&name=chromey"
    proc = await asyncio.create_subprocess_exec(
        *chromium_args(url, wav, profile),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its helpers form one process group we can end together
    )
    try:
        deadline = time.monotonic() + 45.0
        while time.monotonic() < deadline and len(scored_rows(csv_path, "chromey")) < 3:
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.25)
        rows = scored_rows(csv_path, "chromey")
        assert len(rows) >= 3, "chromium never got scored"
        assert {r["room"] for r in rows} == {"kiosk"}
        pipeline = next(iter(service.live.values()))
        assert pipeline.info.name == "chromey" and pipeline.frames > 50
        levels = [float(r["level_dbfs"]) for r in rows]
        assert max(levels) > -40.0  # the WAV's tone arrived, not silence
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10.0)
            except TimeoutError:
                os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        await service.stop()
        await scoring.stop()
        writer.close()
        disable_loopback_candidates()
    assert np.isfinite(levels).all()
