"""When the host is short of CPU: answer ICE at once and shed stale media, never lose the call.

Why: asyncio reads one datagram per socket per loop turn. A server that gets less CPU than its
media needs (other processes hog the cores) therefore lets the kernel's receive queue grow to
its limit (~500 KB: 30 s of audio from four participants was measured), and the STUN answers
that keep ICE consent alive wait behind it until consent expires and the call is closed.

Two process-wide changes, installed by the server (:func:`install_overload_shedding`):

- each time a UDP socket is readable, read up to :data:`READS_PER_WAKEUP` datagrams instead
  of one: the kernel queue stays short, STUN (answered inline by aioice) is never late;
- aioice's per-connection queue of media datagrams (unbounded) keeps at most
  :data:`MAX_QUEUED_DATAGRAMS`; older ones are dropped. Dropping stale packets is what a jitter
  buffer does anyway: the listener and the monitor see a loss burst (``gap=1``, packet loss),
  and the call goes on;
- each connection notes when its last media datagram arrived (:func:`last_datagram_s`), so
  the room's "no media for 10 s" check does not take a late server for a vanished peer.

Both rely on internals (asyncio's selector datagram transport, aioice's ``Connection``),
checked at install time; if they are missing, nothing is changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

READS_PER_WAKEUP = 64
MAX_QUEUED_DATAGRAMS = 150  # per ICE connection: ~3 s of one participant's audio and RTCP
REPORT_EVERY_S = 10.0

_installed: dict[str, Any] = {}
shed = {"datagrams": 0}  # dropped since start (for logs and tests)
_last_report = [0.0]


def _read_ready_many(self: Any) -> None:
    """asyncio's ``_SelectorDatagramTransport._read_ready``, reading until empty (bounded)."""
    for _ in range(READS_PER_WAKEUP):
        if self._conn_lost:
            return
        try:
            data, addr = self._sock.recvfrom(self.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - as asyncio does: the transport fails
            self._fatal_error(exc, "Fatal read error on datagram transport")
            return
        else:
            self._protocol.datagram_received(data, addr)


def _data_received_bounded(self: Any, data: bytes, component: int) -> None:
    """aioice ``Connection.data_received`` with a bounded queue that drops the oldest."""
    self.livesqa_last_datagram = time.monotonic()  # the peer is there, however late we are
    queue: asyncio.Queue[tuple[bytes, int]] = self._queue
    while queue.qsize() >= MAX_QUEUED_DATAGRAMS:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        shed["datagrams"] += 1
        now = time.monotonic()
        if now - _last_report[0] > REPORT_EVERY_S:
            _last_report[0] = now
            log.warning("host short of CPU: %d stale media packets dropped so far (calls kept)",
                        shed["datagrams"])
    queue.put_nowait((data, component))


def last_datagram_s(receiver: Any) -> float | None:
    """``time.monotonic()`` when the peer of this aiortc receiver last sent us DTLS/RTP/RTCP.

    Why: the room's liveness check counts RTP packets that aiortc has *processed*; on a starved
    host those lag far behind what arrived, and a talking peer would look gone. STUN (consent)
    is not counted here: a peer whose media stopped is still removed. None if not installed.
    """
    try:
        connection = receiver.transport.transport._connection
    except AttributeError:
        return None
    value = getattr(connection, "livesqa_last_datagram", None)
    return float(value) if value is not None else None


def install_overload_shedding() -> bool:
    """Install both changes (idempotent); False if an internal they need is not there."""
    from asyncio import selector_events

    from aioice.ice import Connection

    if _installed:
        return True
    transport = getattr(selector_events, "_SelectorDatagramTransport", None)
    if transport is None or not hasattr(transport, "_read_ready") or not hasattr(
            Connection, "data_received"):
        log.warning("asyncio or aioice has changed: no overload shedding")
        return False
    _installed["read_ready"] = transport._read_ready
    _installed["data_received"] = Connection.data_received
    transport._read_ready = _read_ready_many
    Connection.data_received = _data_received_bounded  # type: ignore[method-assign]
    return True


def uninstall_overload_shedding() -> None:
    """Undo :func:`install_overload_shedding` (tests)."""
    from asyncio import selector_events

    from aioice.ice import Connection

    if _installed:
        selector_events._SelectorDatagramTransport._read_ready = _installed.pop("read_ready")  # type: ignore[attr-defined]
        Connection.data_received = _installed.pop("data_received")  # type: ignore[method-assign]
