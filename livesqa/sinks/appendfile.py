"""Opening a line-oriented output file for appending, safely.

Why: a monitor may be killed at any moment (Ctrl-C twice, OOM killer, power) and
restarted onto the same file. Rows are written and flushed one line at a time, so
a kill loses at most the line being written; on reopening we cut that partial last
line off, so appending keeps the file valid. The path is opened before capture
starts, so an unwritable path is refused before any audio is lost.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from livesqa.errors import SinkError

_TAIL_BLOCK = 4096


def _truncate_partial_line(path: Path) -> int:
    """Cut bytes after the last newline; returns how many bytes were removed."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos = size
        while pos > 0:
            start = max(0, pos - _TAIL_BLOCK)
            f.seek(start)
            block = f.read(pos - start)
            nl = block.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                f.truncate(keep)
                return size - keep
            pos = start
        f.truncate(0)
        return size


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.readline().rstrip("\r\n")


def open_for_append(path: str | Path, header: str | None) -> TextIO:
    """Open ``path`` to append lines; write ``header`` if the file is new or empty.

    An existing file must start with the same header (else :class:`SinkError`).
    Raises :class:`SinkError` naming the path if it cannot be opened for writing.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise SinkError(f"{p}: is a directory, not a file")
        if p.exists() and p.stat().st_size > 0:
            _truncate_partial_line(p)
            if header is not None and p.stat().st_size > 0:
                existing = _first_line(p)
                if existing != header:
                    raise SinkError(
                        f"{p}: exists with different columns; choose a new file or remove it"
                    )
        f = open(p, "a", encoding="utf-8", newline="")
        if header is not None and f.tell() == 0:
            f.write(header + "\n")
            f.flush()
        return f
    except SinkError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise SinkError(f"{p}: cannot open for writing ({e.__class__.__name__}: {e})") from e


def write_line(f: TextIO, line: str, fsync: bool = False) -> None:
    """Write one complete line and flush it to the OS (``fsync`` also to the disk)."""
    try:
        f.write(line + "\n")
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    except OSError as e:
        raise SinkError(f"{getattr(f, 'name', '?')}: write failed ({e})") from e
