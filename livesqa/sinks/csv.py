"""CSV sink: one row per window, written and flushed row by row.

Columns are :data:`livesqa.sinks.schema.COLUMNS`; a window without speech has
empty score cells. Appending to an existing file with the same header continues
it (a partial last row from a killed process is cut first).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from livesqa.sinks.appendfile import open_for_append, write_line
from livesqa.sinks.schema import COLUMNS, result_row
from livesqa.types import WindowScores


def _format(value: str | float | None) -> str:
    return "" if value is None else str(value)


class CsvSink:
    """Appends window rows to a CSV file; opened (and checked) at construction."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="")
        self._file = open_for_append(self.path, self._line(COLUMNS))
        self.rows = 0

    def _line(self, values: tuple[str, ...] | list[str]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(values)
        return self._buffer.getvalue()

    def write(self, result: WindowScores) -> None:
        row = result_row(result)
        write_line(self._file, self._line([_format(row[c]) for c in COLUMNS]), self._fsync)
        self.rows += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
