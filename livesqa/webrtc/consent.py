"""ICE consent freshness (RFC 7675) that a busy host cannot mistake for a vanished peer.

Why: aioice checks consent every ~5 s with a single STUN request that must be answered within
0.5 s, and closes the connection after 6 such failures in a row. When the host is short of CPU,
the server's UDP receive queue holds seconds of media in front of the answers: every answer is
read "late", every check fails, and after ~30 s a participant who is still talking is dropped
(observed: answers processed 0.6 s, 3.9 s, then 9.2 s late, then ``leave ... "closed"``).

RFC 7675 says consent expires when no response has arrived for 30 s. This replacement keeps
that rule and nothing else changes: each check waits for its answer with the usual STUN
retransmissions (0.5 + 1 + 2 + 4 s), any authenticated answer refreshes consent, and consent
expires :data:`CONSENT_EXPIRY_S` after the last answer. A peer that is really gone is still
closed (after 30-38 s; the room's own media timeout removes it after 10 s anyway).

Installed process-wide by the server (:func:`install_patient_consent`), like the loopback
candidate patch; it relies on aioice's ``Connection`` internals (checked at install time:
if they are not there, aioice's own consent check stays).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

log = logging.getLogger(__name__)

CONSENT_INTERVAL_S = 5.0  # RFC 7675: checks every 4-6 s
CONSENT_EXPIRY_S = 30.0  # RFC 7675: no response for this long -> consent expired
CONSENT_RETRANSMISSIONS = 3  # STUN retries at 0.5, 1, 2, 4 s: an answer up to 7.5 s late counts

_original: Any = None


async def patient_query_consent(
    conn: Any,
    interval_s: float = CONSENT_INTERVAL_S,
    expiry_s: float = CONSENT_EXPIRY_S,
    retransmissions: int = CONSENT_RETRANSMISSIONS,
) -> None:
    """Check consent on every nominated pair until it expires, then close ``conn``."""
    from aioice import stun

    last_answer = time.monotonic()
    while True:
        await asyncio.sleep(interval_s * (0.8 + 0.4 * random.random()))
        for pair in list(conn._nominated.values()):
            request = conn.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request, pair.remote_addr,
                    integrity_key=conn.remote_password.encode("utf8"),
                    retransmissions=retransmissions,
                )
                last_answer = time.monotonic()
            except stun.TransactionError:
                pass
        if time.monotonic() - last_answer > expiry_s:
            log.info("ICE consent expired: no answer for %.0f s", time.monotonic() - last_answer)
            conn._query_consent_task = None
            await conn.close()
            return


def install_patient_consent() -> bool:
    """Replace aioice's consent check with :func:`patient_query_consent` (idempotent)."""
    global _original
    from aioice.ice import Connection

    if _original is not None:
        return True
    needed = ("query_consent", "build_request", "close")
    if not all(hasattr(Connection, name) for name in needed):
        log.warning("aioice has changed: keeping its own ICE consent check")
        return False
    _original = Connection.query_consent

    async def query_consent(self: Any) -> None:
        await patient_query_consent(self)

    Connection.query_consent = query_consent  # type: ignore[method-assign]
    return True


def uninstall_patient_consent() -> None:
    """Undo :func:`install_patient_consent` (tests)."""
    global _original
    from aioice.ice import Connection

    if _original is not None:
        Connection.query_consent = _original  # type: ignore[method-assign]
        _original = None
