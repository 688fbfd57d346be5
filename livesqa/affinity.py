"""Pinning the process to one CPU core (``--cpu N``; Linux).

Why: livesqa's unit of deployment is one monitor process per core. Pinned, the
event loop and the scoring thread share that core and its caches, and several
processes on one server do not trample each other; ``livesqa bench`` measures
this way by default. Where the OS has no affinity API the option is refused.
"""

from __future__ import annotations

import os

from livesqa.errors import LivesqaError


def available() -> list[int]:
    """CPUs this process may run on (empty where the OS cannot say)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def pin(cpu: int | None = None) -> int:
    """Pin the whole process (threads started later included) to ``cpu``, default the first allowed."""
    cpus = available()
    if not cpus or not hasattr(os, "sched_setaffinity"):
        raise LivesqaError("--cpu needs an OS with CPU affinity (Linux); run without it")
    target = cpus[0] if cpu is None else cpu
    if target not in cpus:
        raise LivesqaError(f"CPU {target} is not available to this process (allowed: "
                           f"{', '.join(map(str, cpus))})")
    os.sched_setaffinity(0, {target})
    return target


def describe() -> str:
    """``pinned to CPU 3`` or ``on CPUs [0, 1]``, for benchmark reports."""
    cpus = available()
    if not cpus:
        return "CPU affinity unknown"
    return f"pinned to CPU {cpus[0]}" if len(cpus) == 1 else f"on CPUs {cpus}"
