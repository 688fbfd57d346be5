"""Overload shedding: a readable UDP socket is drained, aioice's media queue keeps the newest."""

from __future__ import annotations

import asyncio
import socket

import pytest

pytest.importorskip("aioice")

from livesqa.webrtc import overload
from livesqa.webrtc.overload import (
    MAX_QUEUED_DATAGRAMS,
    install_overload_shedding,
    uninstall_overload_shedding,
)


class Counting(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.received.append(data)


async def reads_in_one_wakeup(n: int) -> int:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Counting, local_addr=("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(n):  # loopback UDP: queued at the receiver when sendto returns
            sender.sendto(b"x%d" % i, transport.get_extra_info("sockname"))
        transport._read_ready()  # type: ignore[attr-defined]  # one wake-up, before the loop runs
        return len(protocol.received)
    finally:
        sender.close()
        transport.close()


async def test_a_readable_socket_is_drained_not_read_once() -> None:
    uninstall_overload_shedding()
    try:
        assert install_overload_shedding()
        assert await reads_in_one_wakeup(40) == 40
    finally:
        uninstall_overload_shedding()
    assert await reads_in_one_wakeup(40) == 1  # asyncio's own: one per loop turn


async def test_media_queue_keeps_the_newest() -> None:
    from aioice.ice import Connection

    uninstall_overload_shedding()
    try:
        assert install_overload_shedding()

        class Fake:
            _queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()

        fake = Fake()
        before = overload.shed["datagrams"]
        for i in range(MAX_QUEUED_DATAGRAMS + 50):
            Connection.data_received(fake, b"%d" % i, 1)  # type: ignore[arg-type]
        assert fake.livesqa_last_datagram > 0  # type: ignore[attr-defined]
        assert fake._queue.qsize() == MAX_QUEUED_DATAGRAMS
        assert fake._queue.get_nowait() == (b"50", 1)  # the 50 oldest went
        assert overload.shed["datagrams"] - before == 50
    finally:
        uninstall_overload_shedding()


def test_last_datagram_is_read_through_aiortc_objects() -> None:
    from types import SimpleNamespace

    from livesqa.webrtc.overload import last_datagram_s

    connection = SimpleNamespace(livesqa_last_datagram=12.5)
    receiver = SimpleNamespace(transport=SimpleNamespace(transport=SimpleNamespace(
        _connection=connection)))
    assert last_datagram_s(receiver) == 12.5
    assert last_datagram_s(SimpleNamespace()) is None
    assert last_datagram_s(SimpleNamespace(transport=SimpleNamespace(transport=SimpleNamespace(
        _connection=SimpleNamespace())))) is None
