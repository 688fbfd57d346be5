"""Opening a line-oriented output file for appending, without ever damaging a file.

Why: a monitor may be killed at any moment (Ctrl-C twice, OOM killer, power) and
restarted onto the same file. Rows are written and flushed one line at a time, so
a kill loses at most the line being written; on reopening we cut that partial last
line off, so appending keeps the file valid. The path is opened before capture
starts, so an unwritable path is refused before any audio is lost.

Nothing is modified until the file is known to be ours: every check below only
reads. A CSV must start with exactly our header line; a JSON Lines file must start
with a JSON object that has a ``"kind"`` (what every livesqa JSONL line holds). A
CSV whose last row holds an unterminated quote (new rows would fold into it) and a
tail that is more than one partial line are refused, never cut. Character devices
(``/dev/null``, ``/dev/stdout``) and named pipes with a reader are written as
streams, without checks or repair.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path
from typing import TextIO

from livesqa.errors import SinkError

_BLOCK = 1 << 20
_TAIL_MAX = 1 << 20  # a partial row longer than this is not a row of ours
_FIRST_LINE_MAX = 1 << 16


def _reason(e: OSError) -> str:
    return e.strerror or e.__class__.__name__


def _first_line(data: bytes) -> str | None:
    """The first line as text, or None if it is not UTF-8 text."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    if b"\x00" in line:
        return None
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _is_jsonl_record(line: str) -> bool:
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and isinstance(value.get("kind"), str)


def _quote_count(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            n += block.count(b'"')
    return n


def _line_number(path: Path, offset: int) -> int:
    n = 1
    with open(path, "rb") as f:
        done = 0
        while done < offset and (block := f.read(min(_BLOCK, offset - done))):
            n += block.count(b"\n")
            done += len(block)
    return n


class Repair:
    """What reopening a file of ours needs: cut a partial last line, or end the last line."""

    def __init__(self, cut_to: int | None = None, add_newline: bool = False) -> None:
        self.cut_to = cut_to
        self.add_newline = add_newline


def _check_csv(p: Path, size: int, header: str) -> Repair:
    """Read-only: is ``p`` a CSV of ours, and where does its last complete row end?"""
    want = header.encode("utf-8")
    head = _read_at(p, 0, max(len(want) + 2, _FIRST_LINE_MAX))
    if not head.startswith((want + b"\n", want + b"\r\n")):
        first_column = want.split(b",", 1)[0] + b","
        if want.startswith(head) and size == len(head) and len(head) >= len(first_column):
            # a header cut by a killed process, nothing else there; a shorter stub (a file that
            # holds "w") could be anybody's, so it is refused like any foreign file
            return Repair(cut_to=0)
        if _first_line(head) is None:
            raise SinkError(f"{p}: exists and is not a text file; refusing to append to it "
                            "(nothing was changed): choose another output file")
        raise SinkError(f"{p}: exists with different columns (not a livesqa file of this kind); "
                        "nothing was changed: choose a new file or remove it")
    # Quote parity: a complete CSV record ends with a newline outside quotes.
    quotes = _quote_count(p)
    tail_start = max(0, size - _TAIL_MAX)
    tail = _read_at(p, tail_start, size - tail_start)
    if quotes % 2 == 0 and tail.endswith(b"\n"):
        return Repair()
    inside = (quotes - tail.count(b'"')) % 2 == 1
    keep = -1
    for i, byte in enumerate(tail):
        if byte == 0x22:
            inside = not inside
        elif byte == 0x0A and not inside:
            keep = i + 1
    if keep < 0:
        raise SinkError(f"{p}: its last row is longer than {_TAIL_MAX} bytes or damaged; "
                        "nothing was changed: choose a new file or repair it")
    partial = tail[keep:]
    if b"\n" in partial:
        line = _line_number(p, tail_start + keep)
        raise SinkError(f"{p}: line {line} opens a quote that is never closed, so new rows would "
                        "be folded into it; nothing was changed: repair that line or choose a new file")
    return Repair(cut_to=tail_start + keep)


def _check_jsonl(p: Path, size: int) -> Repair:
    """Read-only: is ``p`` a JSON Lines file of ours, and is its last line complete?"""
    head = _read_at(p, 0, min(size, _FIRST_LINE_MAX))
    first = _first_line(head)
    if first is None:
        raise SinkError(f"{p}: exists and is not a text file; refusing to append to it "
                        "(nothing was changed): choose another output file")
    if b"\n" not in head and size > len(head):
        raise SinkError(f"{p}: its first line is longer than {_FIRST_LINE_MAX} bytes: not a "
                        "livesqa JSON Lines file; nothing was changed: choose another output file")
    complete = b"\n" in head
    if not _is_jsonl_record(first):
        if not complete and first.startswith('{"kind": "'):
            return Repair(cut_to=0)  # our first line, cut by a killed process
        raise SinkError(f"{p}: exists and is not a livesqa JSON Lines file (its first line is not "
                        'a {"kind": ...} object); nothing was changed: choose another output file')
    tail_start = max(0, size - _TAIL_MAX)
    tail = _read_at(p, tail_start, size - tail_start)
    if tail.endswith(b"\n"):
        return Repair()
    nl = tail.rfind(b"\n")
    if nl < 0 and tail_start > 0:
        raise SinkError(f"{p}: its last line is longer than {_TAIL_MAX} bytes; nothing was "
                        "changed: choose a new file or repair it")
    last = tail[nl + 1:]
    text = _first_line(last)
    if text is not None and _is_jsonl_record(text):
        return Repair(add_newline=True)  # a complete record without its newline: keep it
    if last.startswith(b"{"):  # a record cut by a killed process (maybe inside a character)
        return Repair(cut_to=tail_start + nl + 1)
    line = _line_number(p, tail_start + nl + 1)
    raise SinkError(f"{p}: line {line} is not a JSON object; nothing was changed: "
                    "repair it or choose a new file")


def _read_at(p: Path, offset: int, n: int) -> bytes:
    with open(p, "rb") as f:
        f.seek(offset)
        return f.read(n)


def _open_stream(p: Path, fifo: bool) -> TextIO:
    """A character device or a named pipe; a pipe without a reader is refused, not waited on."""
    if fifo:
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK))  # fails at once without a reader
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise SinkError(f"{p}: is a named pipe with no reader; start the reader first "
                                "or choose a regular file") from e
            raise
    return open(p, "a", encoding="utf-8", newline="")


def _open_file(p: Path) -> TextIO:
    """Indirection for fault-injection tests (a file that fills up after N bytes)."""
    return open(p, "a", encoding="utf-8", newline="")


def open_for_append(path: str | Path, header: str | None) -> TextIO:
    """Open ``path`` to append lines; write ``header`` if the file is new or empty.

    ``header`` is the CSV header line; ``None`` means JSON Lines. An existing file
    must be ours (see the module docstring), else :class:`SinkError` and the file
    is untouched. Raises :class:`SinkError` naming the path if it cannot be opened.
    """
    p = Path(path)
    try:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise SinkError(f"{p}: is a directory, not a file")
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            f = _open_stream(p, fifo=stat.S_ISFIFO(st.st_mode))
            if header is not None:
                write_line(f, header)
            return f
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise SinkError(f"{p}: is not a regular file (a socket or block device); "
                            "choose a regular output file")
        repair = Repair()
        if st is not None and st.st_size > 0:
            if not os.access(p, os.W_OK):
                raise SinkError(f"{p}: cannot open for writing (Permission denied)")
            repair = (_check_jsonl(p, st.st_size) if header is None
                      else _check_csv(p, st.st_size, header))
        if repair.cut_to is not None:
            os.truncate(p, repair.cut_to)
        f = _open_file(p)
        if repair.add_newline:
            write_line(f, "")  # the newline the last record lacked
        elif header is not None and (st is None or st.st_size == 0 or repair.cut_to == 0):
            write_line(f, header)
        return f
    except SinkError:
        raise
    except OSError as e:
        raise SinkError(f"{p}: cannot open for writing ({_reason(e)})") from e


def write_line(f: TextIO, line: str, fsync: bool = False) -> None:
    """Write one complete line and flush it to the OS (``fsync`` also to the disk).

    A failed write leaves the unwritten text in the file object's buffer; it is
    dropped, so that closing the file later does not fail a second time.
    """
    if f.closed:
        raise SinkError(f"{getattr(f, 'name', '?')}: an earlier write failed; this row is not "
                        "in the file")
    start = _size(f)
    try:
        f.write(line + "\n")
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    except OSError as e:
        if start is not None:  # a full disk may have taken half the line: take it back
            with contextlib.suppress(OSError, ValueError):
                os.ftruncate(f.fileno(), start)
        _discard(f)
        raise SinkError(f"{getattr(f, 'name', '?')}: write failed ({_reason(e)}); "
                        "rows after this one are not in the file") from e


def _size(f: TextIO) -> int | None:
    """Bytes in ``f`` on disk (rows are flushed one by one); None for streams and devices."""
    try:
        st = os.fstat(f.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _discard(f: TextIO) -> None:
    """Close ``f``'s file descriptor, dropping what its buffers still hold (the disk refused it).

    Closing the raw file (not the text wrapper, whose close would flush and fail
    again) makes ``f.closed`` true, so later writes and closes are no-ops or clear errors.
    """
    raw = getattr(getattr(f, "buffer", None), "raw", None)
    if raw is None:
        return
    try:
        raw.close()
    except OSError:
        pass


def close_file(f: TextIO) -> None:
    """Close ``f``; a failure (e.g. a full disk on the last flush) is a :class:`SinkError`."""
    try:
        if not f.closed:
            f.close()
    except OSError as e:
        _discard(f)
        raise SinkError(f"{getattr(f, 'name', '?')}: closing failed ({_reason(e)}); "
                        "the last rows may be missing") from e
