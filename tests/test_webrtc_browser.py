"""A real browser joins: headless Debian chromium with a fake microphone playing a test WAV.

The page is opened with ``?autojoin=1&name=...`` (the kiosk path), so no click is needed. The
test reads the page over the DevTools protocol (aiohttp's websocket client, no extra package)
and checks what a participant sees: its own five dimensions and network figures (equal to the
server's CSV row for the same window), the others in the room, a live microphone meter, mute
(the server then receives digital silence), and "disconnected by the server (reason)" when the
server drops it. Skipped when no chromium binary is installed (``.ci/run`` installs Debian's
``chromium``); never downloads a browser.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiortc")
import aiohttp
import soundfile as sf

from livesqa.gating import GateConfig
from livesqa.spec import DIMENSIONS, read_spec
from livesqa.webrtc.client import RoomClient, SignalTrack, speechlike_tone
from livesqa.webrtc.loopback import disable_loopback_candidates
from livesqa.webrtc.participant import PipelineConfig
from livesqa.webrtc.room import RoomConfig
from livesqa.webrtc.rows import RoomCsvWriter
from livesqa.webrtc.scoreproc import ScoringConfig, ScoringProcess
from livesqa.webrtc.server import ServerConfig
from livesqa.webrtc.service import MonitorService

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")
TONE_GATE = GateConfig(**({"detector": "energy"} if "detector" in GateConfig.__dataclass_fields__
                          else {}))


def chromium_args(url: str, wav: Path, profile: Path, loop: bool = False) -> list[str]:
    assert CHROMIUM is not None
    return [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}{'' if loop else '%noloop'}",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        url,
    ]


class Page:
    """Just enough of the DevTools protocol to evaluate JavaScript in the page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._id = 0

    async def eval(self, expression: str) -> Any:
        self._id += 1
        await self._ws.send_json({"id": self._id, "method": "Runtime.evaluate",
                                  "params": {"expression": expression, "returnByValue": True}})
        while True:
            message = json.loads((await self._ws.receive()).data)
            if message.get("id") == self._id:
                return message["result"]["result"].get("value")


async def devtools_page(http: aiohttp.ClientSession, profile: Path, timeout_s: float = 20.0) -> Page:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while not port_file.exists() or not port_file.read_text().strip():
        assert time.monotonic() < deadline, "chromium never opened its DevTools port"
        await asyncio.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    while True:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
            pages = [t for t in await r.json() if t.get("type") == "page"]
        if pages:
            break
        assert time.monotonic() < deadline, "chromium has no page"
        await asyncio.sleep(0.1)
    ws = await http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
    return Page(ws)


async def wait_for(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


def csv_rows(path: Path, participant: str) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r["participant"] == participant]


async def start_chromium(url: str, wav: Path, profile: Path, loop: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *chromium_args(url, wav, profile, loop),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its helpers form one process group we can end together
    )


async def stop_chromium(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10.0)
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


PAGE_STATE = """(() => {
  const v = (id) => document.getElementById(id).dataset.value;
  return {
    end_s: document.getElementById("window").dataset.endS,
    scores: Object.fromEntries(DIMS.map((d) => [d, v("score-" + d)])),
    loss: v("net-loss"), emodel: v("net-emodel"), latency: v("net-latency"),
    meter_dbfs: document.getElementById("level").dataset.dbfs,
    status: document.getElementById("status").textContent,
    others: [...document.querySelectorAll("#others li:not(.none)")].map((li) => li.textContent),
    token_shown: getComputedStyle(document.getElementById("tokenLabel")).display !== "none",
  };
})()""".replace("DIMS", json.dumps(list(DIMENSIONS)))


async def test_headless_chromium_sees_its_own_scores(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as on a loopback-only host: the server's only ICE candidate is the 127.0.0.1 we add
    import aioice.ice

    disable_loopback_candidates()
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [])
    wav = tmp_path / "voice.wav"
    sf.write(wav, speechlike_tone(500.0, 10.0, rate_hz=48000), 48000, subtype="PCM_16")
    profile = tmp_path / "profile"
    profile.mkdir()
    csv_path = tmp_path / "rows.csv"
    scoring = ScoringProcess(ScoringConfig(str(tiny_model_path), 8000, TONE_GATE),
                             read_spec(tiny_model_path))
    await scoring.start()
    writer = RoomCsvWriter(csv_path)
    service = MonitorService(
        ServerConfig(port=0, room="kiosk", pin_room=True, rooms=RoomConfig(peer_timeout_s=5.0)),
        scoring, PipelineConfig(), [writer],
    )
    port = await service.start()
    url = f"http://127.0.0.1:{port}/room/kiosk?autojoin=1&name=chromey"
    proc = await start_chromium(url, wav, profile, loop=True)
    bot: RoomClient | None = None
    try:
        async with aiohttp.ClientSession() as http:
            page = await devtools_page(http, profile)

            async def state() -> dict[str, Any]:
                return dict(await page.eval(PAGE_STATE) or {})  # {}: the page is still loading

            async def scored_on_page() -> dict[str, Any] | None:
                s = await state()
                return s if s and s["end_s"] and s["scores"]["mos"] and s["emodel"] else None

            first = await wait_for(scored_on_page, 45.0, "the page to show scores")
            assert not first["token_shown"]  # no token needed: no token field (hidden wins)
            assert first["status"].startswith("connected as chromey"), first["status"]
            # the page shows the server's numbers for that window: the CSV row with its end
            shown = await state()
            rows = {round(float(r["end_s"]), 3): r for r in csv_rows(csv_path, "chromey")}
            row = rows[round(float(shown["end_s"]), 3)]
            for d in DIMENSIONS:
                assert abs(float(shown["scores"][d]) - float(row[d])) < 0.006, (d, shown, row)
            assert float(shown["scores"]["mos"]) > 1.5  # the tone arrived, not silence
            assert float(shown["loss"]) == 0.0 and 4.0 < float(shown["emodel"]) <= 4.5
            assert float(shown["latency"]) > 0.0
            assert float(shown["meter_dbfs"]) > -40.0  # the microphone meter moves
            # another participant joins: the page lists them
            bot = RoomClient(f"http://127.0.0.1:{port}", "kiosk", "[b]bot<i>", SignalTrack(
                speechlike_tone(900.0, 2.0)), slots=1)
            await bot.join()
            others = await wait_for(lambda: page_others(page), 10.0, "the others list")
            assert others == ["[b]boti"]  # as text: markup characters shown, HTML ones cleaned
            # mute: the server hears digital silence from now on
            await page.eval('document.getElementById("mute").click()')
            await wait_for(lambda: muted_rows(csv_path), 20.0, "silence after mute")
            assert "muted" in (await state())["status"]
            # the server drops the participant: the page says so, with the reason
            room = service.registry.rooms["kiosk"]
            pid = next(p.info.id for p in room.participants.values() if p.info.name == "chromey")
            await room.leave(pid, reason="timeout")
            status = await wait_for(lambda: page_status_if(page, "disconnected"), 10.0, "the drop")
            assert status == "disconnected by the server (timeout)", status
            await page._ws.close()
    finally:
        if bot is not None:
            await bot.close()
        await stop_chromium(proc)
        await service.stop()
        await scoring.stop()
        writer.close()
        disable_loopback_candidates()


async def page_others(page: Page) -> list[str]:
    return list(await page.eval(
        '[...document.querySelectorAll("#others li:not(.none)")].map((li) => li.textContent)'))


async def page_status_if(page: Page, prefix: str) -> str | None:
    status = str(await page.eval('document.getElementById("status").textContent'))
    return status if status.startswith(prefix) else None


async def muted_rows(csv_path: Path) -> bool:
    """The last two windows from chromey are digital silence (the tone plays on, unmuted)."""
    levels = [float(r["level_dbfs"]) for r in csv_rows(csv_path, "chromey")]
    return len(levels) >= 2 and levels[-1] <= -100.0 and levels[-2] <= -100.0
