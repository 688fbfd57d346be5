"""An advisory lock shared by every writer of a corpus manifest.

Why: the simulator appends rows while the labeller rewrites the same CSV (atomic replace).
Without a lock, a writer holding the old file open keeps appending to an unlinked inode and
rows vanish. Both take this lock (a sidecar ``<manifest>.lock``) around each write, and the
simulator reopens the path for every append, so it always writes to the current file.
"""

from __future__ import annotations

import csv
import fcntl
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def manifest_locked(manifest: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``manifest`` for the duration of the block (POSIX flock)."""
    lock_path = manifest.with_name(manifest.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def write_csv_atomic(path: Path, fields: Sequence[str], rows: Iterable[Mapping[str, object]]) -> None:
    """Write a CSV via temp file + rename, so a reader never sees half a manifest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
