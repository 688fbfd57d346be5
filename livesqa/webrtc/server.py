"""The signalling server: aiohttp routes for the page, joining/leaving rooms, roster and /metrics.

Why thin: every request is validated here (size, JSON, token, origin, room name) and turned
into one call on a :class:`~livesqa.webrtc.room.Room`; a bad request gets a 4xx with a one-line
message and changes nothing. No trickle ICE: aiortc gathers before answering, the page
likewise, so one POST carries the whole negotiation.

Who may read what: with a token set, everything that names a participant (roster, /metrics,
the participant count of /api/room/X) needs it; /metrics may have its own token for scrapers.
A participant reads its own scores with its id and secret (``/api/room/X/me``). Every POST
must be ``application/json`` and, when a browser sent it, come from the page's own origin or
one of ``allowed_origins``: a web page elsewhere cannot join, leave or fill rooms.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import ClientPayloadError, web

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
_DUMMY_SECRET = "x" * 22  # compared against for unknown ids, so they take as long as real ones
MAX_SDP_CHARS = 32_000  # a 10-slot audio offer is ~6 kB; anything far larger is not an offer


@dataclass(frozen=True)
class ServerConfig:
    """How the server listens and what it admits; validated once."""

    host: str = "127.0.0.1"  # loopback unless the operator says otherwise
    port: int = 8080
    room: str = "main"  # the room the root URL leads to
    pin_room: bool = False  # only `room` exists (other /room/X answer 404)
    token: str | None = None  # the page must present it to join; protects every participant's name
    metrics_token: str | None = None  # for /metrics (default: token)
    allowed_origins: tuple[str, ...] = ()  # browser origins besides the page's own (reverse proxy)
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
        for origin in self.allowed_origins:
            if normalize_origin(origin) is None:
                raise WebRTCError(f"allowed origin {origin!r} must look like https://host[:port]")

    @property
    def scrape_token(self) -> str | None:
        return self.metrics_token or self.token

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

    def drop_if_empty(self, name: str) -> None:
        """Forget an emptied room at once (its relay and buffers go with it)."""
        room = self.rooms.get(name)
        if room is not None and len(room) == 0:
            del self.rooms[name]

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


DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(origin: str) -> str | None:
    """``scheme://host:port`` in lower case with the default port made explicit; None if malformed."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or DEFAULT_PORTS[parts.scheme]}"


def origin_allowed(origin: str | None, host_header: str | None, scheme: str,
                   allowed: tuple[str, ...]) -> bool:
    """A POST is acceptable from no browser (no Origin), the page's own origin, or the allow-list.

    Same origin means the Origin's host and port equal the request's Host; the scheme is not
    compared, because behind a TLS proxy the page is https and the hop to us is http.
    """
    if origin is None:
        return True  # not sent by a browser (curl, the aiortc client): Origin defends browsers
    normal = normalize_origin(origin)
    if normal is None:
        return False  # "null" (sandboxed frames, file://) or garbage
    if normal in {normalize_origin(a) for a in allowed}:
        return True
    if not host_header:
        return False
    own = normalize_origin(f"{urlsplit(normal).scheme}://{host_header}")
    return own is not None and own.split("://", 1)[1] == normal.split("://", 1)[1]


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
        response = _error(e.status, e.text or e.reason)
        response.headers.update({k: v for k, v in e.headers.items() if k == "WWW-Authenticate"})
        return response
    except ClientGone:
        log.info("request %s %s: the client went away mid-request", request.method, request.path)
        return _error(400, "incomplete request")
    except Exception:  # a bug: log it, answer 500, keep serving
        log.exception("request %s %s failed", request.method, request.path)
        return _error(500, "internal error")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


class ClientGone(Exception):
    """The client disconnected before its request was complete (not a server error)."""


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="body must be sent as Content-Type: application/json")
    try:
        text = await request.text()  # aiohttp answers 413 beyond client_max_size
        body = json.loads(text)
    except (ConnectionError, asyncio.IncompleteReadError, ClientPayloadError) as e:
        raise ClientGone from e
    except json.JSONDecodeError as e:
        raise web.HTTPBadRequest(text=f"body is not valid JSON: {e.msg} at char {e.pos}") from e
    except UnicodeDecodeError as e:
        raise web.HTTPBadRequest(text="body is not UTF-8") from e
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _same_secret(presented: object, expected: str) -> bool:
    return isinstance(presented, str) and hmac.compare_digest(presented.encode(), expected.encode())


MeView = Callable[[str, str, str], "dict[str, Any] | None"]


def create_app(
    config: ServerConfig,
    registry: RoomRegistry,
    metrics_text: Callable[[], tuple[bytes, str]] | None = None,
    me_view: MeView | None = None,
) -> web.Application:
    """The aiohttp application.

    ``metrics_text`` returns (body, content type) for /metrics; ``me_view(room, id, secret)``
    returns what a participant's page shows, or None for an unknown id or a wrong secret.
    """

    def token_ok(presented: object) -> bool:
        return config.token is None or _same_secret(presented, config.token)

    def check_token(presented: object) -> None:
        if not token_ok(presented):
            raise web.HTTPForbidden(text="missing or wrong token")

    def check_post(request: web.Request) -> None:
        if not origin_allowed(request.headers.get("Origin"), request.headers.get("Host"),
                              request.scheme, config.allowed_origins):
            raise web.HTTPForbidden(
                text=f"cross-origin request refused (Origin {request.headers.get('Origin')!r}; "
                     "the server's --allow-origin lists other allowed origins)")

    def bearer(request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.headers.get("X-Livesqa-Token")

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
        """What the page needs before joining; the head count only for token holders."""
        name = request.match_info["name"]
        room = registry.get(name, create=False)
        body: dict[str, Any] = {
            "room": name,
            "max_participants": config.rooms.max_participants,
            "needs_token": config.token is not None,
        }
        if token_ok(request.headers.get("X-Livesqa-Token")):
            body["participants"] = len(room) if room is not None else 0
        return web.json_response(body)

    async def roster(request: web.Request) -> web.Response:
        check_token(request.headers.get("X-Livesqa-Token"))
        room = registry.get(request.match_info["name"], create=False)
        return web.json_response({"participants": room.roster() if room is not None else []})

    async def join(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        registry.check_name(name)
        check_post(request)
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

    def id_and_secret(body: dict[str, Any]) -> tuple[str, str]:
        pid, secret = body.get("id"), body.get("secret")
        if not isinstance(pid, str) or not isinstance(secret, str):
            raise web.HTTPBadRequest(text='body needs "id" and "secret" strings')
        return pid, secret

    async def leave(request: web.Request) -> web.Response:
        """Unknown id and wrong secret answer alike (and take alike long): ids are not revealed."""
        name = request.match_info["name"]
        check_post(request)
        body = await _json_body(request)
        room = registry.get(name, create=False)
        pid, secret = id_and_secret(body)
        part = room.participants.get(pid) if room is not None else None
        expected = part.secret if part is not None else _DUMMY_SECRET
        if not _same_secret(secret, expected) or part is None or room is None:
            return web.json_response({"left": False})
        return web.json_response({"left": await room.leave(pid, reason="bye")})

    async def me(request: web.Request) -> web.Response:
        """A participant's own scores and network figures, and who else is in the room."""
        name = request.match_info["name"]
        registry.check_name(name)
        check_post(request)
        pid, secret = id_and_secret(await _json_body(request))
        view = me_view(name, pid, secret) if me_view is not None else None
        if view is None:
            raise web.HTTPForbidden(text="unknown participant or wrong secret")
        return web.json_response(view)

    async def metrics(request: web.Request) -> web.Response:
        if metrics_text is None:
            raise web.HTTPNotFound(text="metrics are not enabled")
        expected = config.scrape_token
        if expected is not None and not _same_secret(bearer(request), expected):
            raise web.HTTPUnauthorized(text="/metrics needs the token (Authorization: Bearer ...)",
                                       headers={"WWW-Authenticate": "Bearer"})
        body, content_type = metrics_text()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})  # says nothing about rooms or participants

    async def on_shutdown(app: web.Application) -> None:
        await registry.close()

    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[_errors_as_json])
    app.router.add_get("/", index)
    app.router.add_get("/room/{name}", page)
    app.router.add_get("/api/room/{name}", info)
    app.router.add_get("/api/room/{name}/roster", roster)
    app.router.add_post("/api/room/{name}/join", join)
    app.router.add_post("/api/room/{name}/leave", leave)
    app.router.add_post("/api/room/{name}/me", me)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    app.on_shutdown.append(on_shutdown)
    return app
