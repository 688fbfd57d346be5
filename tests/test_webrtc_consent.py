"""ICE consent: late answers keep a call; no answer for the expiry closes it (RFC 7675)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("aioice")
from aioice import stun

from livesqa.webrtc.consent import (
    install_patient_consent,
    patient_query_consent,
    uninstall_patient_consent,
)


class FakeProtocol:
    def __init__(self, answer_after_s: float | None) -> None:
        self.answer_after_s = answer_after_s
        self.retransmissions: list[int] = []

    async def request(self, request: Any, addr: Any, integrity_key: bytes,
                      retransmissions: int) -> None:
        self.retransmissions.append(retransmissions)
        if self.answer_after_s is None:
            await asyncio.sleep(0.01)
            raise stun.TransactionTimeout()
        await asyncio.sleep(self.answer_after_s)  # the answer sat in a receive queue this long


class FakePair:
    def __init__(self, protocol: FakeProtocol) -> None:
        self.protocol = protocol
        self.remote_addr = ("127.0.0.1", 9)


class FakeConnection:
    remote_password = "pw"

    def __init__(self, answer_after_s: float | None) -> None:
        self.protocol = FakeProtocol(answer_after_s)
        self._nominated = {1: FakePair(self.protocol)}
        self._query_consent_task: object = "running"
        self.closed_at: float | None = None

    def build_request(self, pair: Any, nominate: bool) -> object:
        return object()

    async def close(self) -> None:
        self.closed_at = time.monotonic()


async def test_late_answers_keep_consent() -> None:
    conn = FakeConnection(answer_after_s=0.15)  # far later than aioice's 0.5 s at this scale
    task = asyncio.ensure_future(patient_query_consent(conn, interval_s=0.05, expiry_s=0.4))
    await asyncio.sleep(1.5)
    assert conn.closed_at is None and not task.done()
    assert set(conn.protocol.retransmissions) == {3}
    task.cancel()


async def test_no_answer_expires_consent() -> None:
    conn = FakeConnection(answer_after_s=None)
    t0 = time.monotonic()
    await asyncio.wait_for(patient_query_consent(conn, interval_s=0.05, expiry_s=0.4), 5.0)
    assert conn.closed_at is not None and 0.4 <= conn.closed_at - t0 < 1.0
    assert conn._query_consent_task is None  # close() must not cancel the task closing it


def test_installs_on_aioice_and_uninstalls() -> None:
    from aioice.ice import Connection

    uninstall_patient_consent()  # a server started by an earlier test installed it
    original = Connection.query_consent
    try:
        assert install_patient_consent() and install_patient_consent()  # idempotent
        assert Connection.query_consent is not original
    finally:
        uninstall_patient_consent()
    assert Connection.query_consent is original
