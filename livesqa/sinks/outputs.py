"""Checks across all outputs of one run, before any of them is opened.

Why: each sink checks its own file, but only the command knows every path of
the run. Two options naming the same file would interleave two formats in it
(``--csv o.csv --jsonl o.csv``), and an output that is also an input (the audio
being scored, the model) would be overwritten by the run that reads it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from livesqa.errors import SinkError


def _identity(path: Path) -> tuple[object, ...] | None:
    """The same value for two names of one file; None for streams (/dev/null may repeat)."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.abspath(path))
    if stat.S_ISCHR(st.st_mode):
        return None
    return ("inode", st.st_dev, st.st_ino)


def check_outputs(outputs: dict[str, str | Path | None], inputs: Iterable[Path]) -> None:
    """Refuse two options naming one file, and an output that is one of ``inputs``.

    ``outputs`` maps an option (``--csv``) to its path (None: not given).
    """
    given = {opt: Path(p) for opt, p in outputs.items() if p is not None and str(p) != ""}
    for opt, value in outputs.items():
        if value is not None and str(value) == "":
            raise SinkError(f"{opt} is empty; give a file name or leave the option out")
    seen: dict[tuple[object, ...], str] = {}
    for opt, path in given.items():
        ident = _identity(path)
        if ident is None:
            continue
        if ident in seen:
            raise SinkError(f"{seen[ident]} and {opt} name the same file {path}; one file holds "
                            "one format: give each option its own file")
        seen[ident] = opt
    for source in inputs:
        ident = _identity(source)
        if ident is not None and ident in seen:
            raise SinkError(f"{seen[ident]} {given[seen[ident]]} is also an input of this run "
                            f"({source}); refusing to write to it: choose another output file")
