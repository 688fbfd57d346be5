"""The signalling server: aiohttp routes for the page, joining/leaving rooms, roster and /metrics.

Why thin: every request is validated here (size, JSON, token, room name) and turned into one
call on a :class:`~livesqa.webrtc.room.Room`; a bad request gets a 4xx with a one-line message
and changes nothing. No trickle ICE: aiortc gathers before answering, the page likewise, so
one POST carries the whole negotiation.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from livesqa.errors import WebRTCError
from livesqa.webrtc.room import (
    ROOM_NAME_RE,
    MonitorFactory,
    OfferError,
    Room,
    RoomConfig,
    RoomEvent,
    RoomFullError,
)

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
MAX_SDP_CHARS = 32_000  # a 10-slot audio offer is ~6 kB; anything far larger is not an offer


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens and what it admits; validated once."""

    host: str = "127.0.0.1"  # loopback unless the operator says otherwise
    port: int = 8080
    room: str = "main"  # the room the root URL leads to
    pin_room: bool = False  # only `room` exists (other /room/X answer 404)
    token: str | None = None  # the page must present it to join
    max_body_bytes: int = 64 * 1024
    max_rooms: int = 16
    rooms: RoomConfig = field(default_factory=RoomConfig)

    def __post_init__(self) -> None:
        if not ROOM_NAME_RE.match(self.room):
            raise WebRTCError(f"room name {self.room!r} must match {ROOM_NAME_RE.pattern}")
        if not 0 <= self.port <= 65535:
            raise WebRTCError(f"port {self.port} outside 0..65535")
        if self.max_body_bytes < 4096 or self.max_rooms < 1:
            raise WebRTCError("max_body_bytes must be >= 4096 and max_rooms >= 1")

    def room_url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}/room/{self.room}"


class RoomRegistry:
    """Rooms by name, created on first join (bounded), dropped when empty."""

    def __init__(
        self,
        config: ServerConfig,
        monitor_factory: MonitorFactory | None = None,
        on_event: Callable[[RoomEvent], None] | None = None,
    ) -> None:
        self.config = config
        self._factory = monitor_factory
        self._on_event = on_event
        self.rooms: dict[str, Room] = {}

    def check_name(self, name: str) -> None:
        if not ROOM_NAME_RE.match(name):
            raise web.HTTPBadRequest(text=f"bad room name (must match {ROOM_NAME_RE.pattern})")
        if self.config.pin_room and name != self.config.room:
            raise web.HTTPNotFound(text=f"no room {name!r} here (this server serves one room)")

    def get(self, name: str, create: bool) -> Room | None:
        self.check_name(name)
        room = self.rooms.get(name)
        if room is None and create:
            for empty in [n for n, r in self.rooms.items() if len(r) == 0]:
                del self.rooms[empty]
            if len(self.rooms) >= self.config.max_rooms:
                raise web.HTTPServiceUnavailable(text="too many rooms open")
            room = Room(name, self.config.rooms, self._factory, self._on_event)
            self.rooms[name] = room
        return room

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            await room.close()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure answers one JSON line; the server keeps serving whatever happened."""
    try:
        response = await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _error(e.status, e.text or e.reason)
    except Exception:  # a bug: log it, answer 500, keep serving
        log.exception("request %s %s failed", request.method, request.path)
        return _error(500, "internal error")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        text = await request.text()  # aiohttp answers 413 beyond client_max_size
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise web.HTTPBadRequest(text=f"body is not valid JSON: {e.msg} at char {e.pos}") from e
    except UnicodeDecodeError as e:
        raise web.HTTPBadRequest(text="body is not UTF-8") from e
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def create_app(
    config: ServerConfig,
    registry: RoomRegistry,
    metrics_text: Callable[[], tuple[bytes, str]] | None = None,
) -> web.Application:
    """The aiohttp application; ``metrics_text`` returns (body, content type) for /metrics."""

    def check_token(presented: object) -> None:
        if config.token is None:
            return
        if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode(), config.token.encode()
        ):
            raise web.HTTPForbidden(text="missing or wrong token")

    async def index(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/room/{config.room}")

    async def page(request: web.Request) -> web.StreamResponse:
        registry.check_name(request.match_info["name"])
        response = web.FileResponse(STATIC_DIR / "index.html")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; media-src 'self' blob: mediastream:"
        )
        return response

    async def info(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        room = registry.get(name, create=False)
        return web.json_response(
            {
                "room": name,
                "max_participants": config.rooms.max_participants,
                "needs_token": config.token is not None,
                "participants": len(room) if room is not None else 0,
            }
        )

    async def roster(request: web.Request) -> web.Response:
        check_token(request.headers.get("X-Livesqa-Token"))
        room = registry.get(request.match_info["name"], create=False)
        return web.json_response({"participants": room.roster() if room is not None else []})

    async def join(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        registry.check_name(name)
        body = await _json_body(request)
        check_token(body.get("token"))
        sdp, kind = body.get("sdp"), body.get("type")
        if kind != "offer" or not isinstance(sdp, str) or not sdp.strip():
            raise web.HTTPBadRequest(text='body needs "type": "offer" and a non-empty "sdp" string')
        if len(sdp) > MAX_SDP_CHARS:
            raise web.HTTPBadRequest(text=f"sdp longer than {MAX_SDP_CHARS} characters")
        room = registry.get(name, create=True)
        assert room is not None
        try:
            part, answer = await room.join(sdp, body.get("name"))
        except OfferError as e:
            raise web.HTTPBadRequest(text=str(e)) from e
        except RoomFullError as e:
            raise web.HTTPConflict(text=str(e)) from e
        return web.json_response(
            {
                "type": "answer",
                "sdp": answer,
                "id": part.info.id,
                "name": part.info.name,
                "secret": part.secret,
                "slots": len(part.slots),
            }
        )

    async def leave(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _json_body(request)
        room = registry.get(name, create=False)
        pid, secret = body.get("id"), body.get("secret")
        if not isinstance(pid, str) or not isinstance(secret, str):
            raise web.HTTPBadRequest(text='body needs "id" and "secret" strings')
        part = room.participants.get(pid) if room is not None else None
        if part is None:
            return web.json_response({"left": False})
        if not hmac.compare_digest(secret.encode(), part.secret.encode()):
            raise web.HTTPForbidden(text="wrong secret for this participant")
        assert room is not None
        return web.json_response({"left": await room.leave(pid, reason="bye")})

    async def metrics(request: web.Request) -> web.Response:
        if metrics_text is None:
            raise web.HTTPNotFound(text="metrics are not enabled")
        body, content_type = metrics_text()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "rooms": {n: len(r) for n, r in registry.rooms.items()}})

    async def on_shutdown(app: web.Application) -> None:
        await registry.close()

    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_errors_as_json])
    app.router.add_get("/", index)
    app.router.add_get("/room/{name}", page)
    app.router.add_get("/api/room/{name}", info)
    app.router.add_get("/api/room/{name}/roster", roster)
    app.router.add_post("/api/room/{name}/join", join)
    app.router.add_post("/api/room/{name}/leave", leave)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    app.on_shutdown.append(on_shutdown)
    return app
