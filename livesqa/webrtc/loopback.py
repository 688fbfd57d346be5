"""ICE on loopback: let aioice offer 127.0.0.1 as a host candidate.

Why: aioice deliberately leaves 127.0.0.1 out of its host candidates. On a machine whose
only interface is loopback (CI containers, an air-gapped monitor host) a server bound to
127.0.0.1 would then have no candidate at all and no call could connect. When the server is
meant for loopback use (it binds a loopback address), we add 127.0.0.1 to aioice's list,
process-wide (aioice reads the module-level function at gather time); other interfaces stay.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

LOOPBACK_V4 = "127.0.0.1"

_original: Callable[[bool, bool], list[str]] | None = None


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enable_loopback_candidates() -> None:
    """Make aioice include 127.0.0.1 in its host addresses (idempotent)."""
    global _original
    import aioice.ice

    if _original is not None:
        return
    original = aioice.ice.get_host_addresses

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = list(original(use_ipv4, use_ipv6))
        if use_ipv4 and LOOPBACK_V4 not in addresses:
            addresses.insert(0, LOOPBACK_V4)
        return addresses

    _original = original
    setattr(aioice.ice, "get_host_addresses", with_loopback)  # noqa: B010 - typed as aioice's own


def disable_loopback_candidates() -> None:
    """Undo :func:`enable_loopback_candidates` (tests)."""
    global _original
    import aioice.ice

    if _original is not None:
        setattr(aioice.ice, "get_host_addresses", _original)  # noqa: B010
        _original = None
