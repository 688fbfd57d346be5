"""JSON Lines sink: one object per line, flushed line by line.

Window lines hold ``"kind": "window"`` then the :data:`~livesqa.sinks.schema.COLUMNS`
keys (scores are ``null`` without speech). ``write_summary`` adds
``"kind": "summary"`` lines (per file or per call: mean and worst per dimension).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from livesqa.sinks.appendfile import close_file, open_for_append, write_line
from livesqa.sinks.schema import result_row
from livesqa.types import WindowScores


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf
    return value


class JsonlSink:
    """Appends window (and summary) objects to a ``.jsonl`` file."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._file = open_for_append(self.path, None)
        self.rows = 0

    def write(self, result: WindowScores) -> None:
        record = {"kind": "window", **result_row(result)}
        self._write(record)
        self.rows += 1

    def write_summary(self, record: dict[str, Any]) -> None:
        self._write({"kind": "summary", **record})

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps({k: _clean(v) for k, v in record.items()}, ensure_ascii=False)
        write_line(self._file, line, self._fsync)

    def close(self) -> None:
        close_file(self._file)
