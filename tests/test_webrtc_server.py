"""Signalling server hardening: every bad request is a 4xx with a message and changes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("aiortc")
from aiohttp.test_utils import TestClient, TestServer

from livesqa.errors import WebRTCError
from livesqa.webrtc.metrics import RoomMetrics
from livesqa.webrtc.room import RoomConfig
from livesqa.webrtc.server import (
    RoomRegistry,
    ServerConfig,
    create_app,
    normalize_origin,
    origin_allowed,
)


async def make_offer(send: bool = True, slots: int = 1, video: bool = False) -> str:
    from aiortc import RTCConfiguration, RTCPeerConnection

    from livesqa.webrtc.client import SignalTrack, speechlike_tone

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if send:
        pc.addTransceiver(SignalTrack(speechlike_tone(440, 0.5)), direction="sendonly")
    for _ in range(slots):
        pc.addTransceiver("audio", direction="recvonly")
    if video:
        pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def client_for(config: ServerConfig) -> tuple[TestClient, RoomRegistry]:
    registry = RoomRegistry(config)
    metrics = RoomMetrics()
    client = TestClient(TestServer(create_app(config, registry, metrics.render)))
    await client.start_server()
    return client, registry


@pytest.fixture
async def open_server() -> AsyncIterator[tuple[TestClient, RoomRegistry]]:
    client, registry = await client_for(ServerConfig(rooms=RoomConfig(max_participants=2)))
    yield client, registry
    await client.close()


async def test_page_and_room_info(open_server: tuple[TestClient, RoomRegistry]) -> None:
    client, _ = open_server
    r = await client.get("/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/room/main"
    page = await client.get("/room/other")
    assert page.status == 200 and "room.js" in await page.text()
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    info = await (await client.get("/api/room/other")).json()
    assert info == {"room": "other", "max_participants": 2, "needs_token": False, "participants": 0}
    js = await client.get("/static/room.js")
    assert js.status == 200 and "autojoin" in await js.text()


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "answer", "sdp": "v=0"}', '"type": "offer"'),
        (b'{"type": "offer", "sdp": "this is not sdp"}', "offer"),
        (b'{"type": "offer", "sdp": 42}', "sdp"),
        (b"\xff\xfe\x00", "UTF-8"),
    ],
)
async def test_malformed_join_is_400_and_changes_nothing(
    open_server: tuple[TestClient, RoomRegistry], body: bytes, message: str
) -> None:
    client, registry = open_server
    r = await client.post("/api/room/main/join", data=body, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert message in (await r.json())["error"]
    assert all(len(room) == 0 for room in registry.rooms.values())
    assert (await client.get("/healthz")).status == 200  # still serving


async def test_offers_without_a_microphone_or_with_video_are_refused(
    open_server: tuple[TestClient, RoomRegistry],
) -> None:
    client, registry = open_server
    for sdp, message in ((await make_offer(send=False), "exactly one audio"),
                         (await make_offer(video=True), "only audio")):
        r = await client.post("/api/room/main/join", json={"type": "offer", "sdp": sdp})
        assert r.status == 400 and message in (await r.json())["error"]
    assert all(len(room) == 0 for room in registry.rooms.values())


async def test_body_limit_bad_names_and_room_limit(open_server: tuple[TestClient, RoomRegistry]) -> None:
    client, registry = open_server
    big = b'{"type": "offer", "sdp": "' + b"a" * 100_000 + b'"}'
    r = await client.post("/api/room/main/join", data=big, headers={"Content-Type": "application/json"})
    assert r.status == 413
    assert (await client.get("/api/room/..%2Fetc")).status in (400, 404)
    assert (await client.post("/api/room/bad%20name/join", json={})).status == 400
    offer = await make_offer()
    for _ in range(2):
        r = await client.post("/api/room/main/join", json={"type": "offer", "sdp": offer, "name": "<b>x</b>"})
        assert r.status == 200
        joined = await r.json()
        assert joined["name"] == "bx/b" and joined["slots"] == 1
    full = await client.post("/api/room/main/join", json={"type": "offer", "sdp": offer})
    assert full.status == 409 and "full" in (await full.json())["error"]
    assert len(registry.rooms["main"]) == 2


async def test_leave_needs_the_participant_secret(open_server: tuple[TestClient, RoomRegistry]) -> None:
    client, registry = open_server
    joined = await (await client.post("/api/room/main/join",
                                      json={"type": "offer", "sdp": await make_offer()})).json()
    wrong = await client.post("/api/room/main/leave", json={"id": joined["id"], "secret": "guess"})
    unknown = await client.post("/api/room/main/leave", json={"id": "feedbeef", "secret": "guess"})
    # a wrong secret and an unknown id answer alike: ids cannot be enumerated
    assert (wrong.status, await wrong.json()) == (unknown.status, await unknown.json()) == (
        200, {"left": False})
    assert len(registry.rooms["main"]) == 1
    roster = await (await client.get("/api/room/main/roster")).json()
    assert roster["participants"][0]["id"] == joined["id"]
    ok = await client.post("/api/room/main/leave", json={"id": joined["id"], "secret": joined["secret"]})
    assert (await ok.json()) == {"left": True} and len(registry.rooms.get("main", [])) == 0
    again = await client.post("/api/room/main/leave", json={"id": joined["id"], "secret": joined["secret"]})
    assert (await again.json()) == {"left": False}


async def test_token_and_pinned_room() -> None:
    client, registry = await client_for(ServerConfig(room="ops", pin_room=True, token="s3cret"))
    try:
        offer = await make_offer()
        assert (await client.get("/room/other")).status == 404
        assert (await client.post("/api/room/other/join", json={"type": "offer", "sdp": offer})).status == 404
        no_token = await client.post("/api/room/ops/join", json={"type": "offer", "sdp": offer})
        assert no_token.status == 403 and not registry.rooms.get("ops")
        assert (await client.get("/api/room/ops/roster")).status == 403
        ok = await client.post("/api/room/ops/join", json={"type": "offer", "sdp": offer, "token": "s3cret"})
        assert ok.status == 200
        roster = await client.get("/api/room/ops/roster", headers={"X-Livesqa-Token": "s3cret"})
        assert len((await roster.json())["participants"]) == 1
        assert (await (await client.get("/api/room/ops")).json())["needs_token"] is True
    finally:
        await client.close()


async def test_metrics_endpoint_serves_prometheus_text(open_server: tuple[TestClient, RoomRegistry]) -> None:
    client, _ = open_server
    r = await client.get("/metrics")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert "livesqa_room_participants" in await r.text()


async def test_metrics_and_counts_need_the_token_when_one_is_set() -> None:
    client, _ = await client_for(ServerConfig(token="s3cret"))
    try:
        assert (await client.get("/metrics")).status == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200 and "livesqa_room_participants" in await ok.text()
        info = await (await client.get("/api/room/main")).json()
        assert "participants" not in info and info["needs_token"] is True
        info = await (await client.get("/api/room/main", headers={"X-Livesqa-Token": "s3cret"})).json()
        assert info["participants"] == 0
        assert await (await client.get("/healthz")).json() == {"ok": True}
    finally:
        await client.close()
    client, _ = await client_for(ServerConfig(token="join", metrics_token="scrape"))
    try:
        assert (await client.get("/metrics", headers={"Authorization": "Bearer join"})).status == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer scrape"})).status == 200
    finally:
        await client.close()


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Content-Type": "text/plain"}, 415),  # a "simple" cross-site form/fetch body
        ({"Content-Type": "application/json", "Origin": "https://evil.example"}, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, 403),
        ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, 403),  # other port
        ({"Content-Type": "application/json", "Origin": "SAME"}, 200),
        ({"Content-Type": "application/json", "Origin": "https://calls.example.com"}, 200),
        ({"Content-Type": "application/json; charset=utf-8"}, 200),  # not a browser: no Origin
    ],
)
async def test_join_needs_json_and_an_allowed_origin(headers: dict[str, str], status: int) -> None:
    client, registry = await client_for(
        ServerConfig(allowed_origins=("https://calls.example.com",)))
    try:
        if headers.get("Origin") == "SAME":
            headers = {**headers, "Origin": f"http://{client.host}:{client.port}"}
        body = json.dumps({"type": "offer", "sdp": await make_offer()})
        r = await client.post("/api/room/main/join", data=body, headers=headers)
        assert r.status == status, await r.text()
        assert (len(registry.rooms.get("main", [])) == 1) == (status == 200)
        if status != 200:
            assert "error" in await r.json()
        leave = await client.post("/api/room/main/leave", data=json.dumps({"id": "x", "secret": "y"}),
                                  headers=headers)
        assert leave.status == (status if status != 200 else 200)
    finally:
        await client.close()


async def test_a_client_gone_mid_body_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp import web

    caplog.set_level(logging.INFO)
    config = ServerConfig()
    runner = web.AppRunner(create_app(config, RoomRegistry(config)), access_log=None)  # as served
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        _reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /api/room/main/join HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"type\": ")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await asyncio.sleep(0.3)
        assert "went away mid-request" in caplog.text  # it was seen, as INFO
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    finally:
        await runner.cleanup()


def test_origin_rules() -> None:
    assert normalize_origin("HTTPS://Calls.Example.com") == "https://calls.example.com:443"
    assert normalize_origin("null") is None and normalize_origin("https://x/path") is None
    assert origin_allowed("http://localhost:8080", "localhost:8080", "http", ())
    assert origin_allowed("https://calls.example.com", "calls.example.com", "http", ())  # TLS proxy
    assert not origin_allowed("http://localhost:8081", "localhost:8080", "http", ())
    assert not origin_allowed("http://evil", None, "http", ())
    with pytest.raises(WebRTCError, match="allowed origin"):
        ServerConfig(allowed_origins=("calls.example.com",))
