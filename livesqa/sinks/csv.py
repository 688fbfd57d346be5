"""CSV sink: one row per window, written and flushed row by row.

Columns are :data:`livesqa.sinks.schema.COLUMNS`; a window without speech has
empty score cells. Appending to an existing file with the same header continues
it (a partial last row from a killed process is cut first; see ``appendfile``).

Every record is one :func:`csv_line`: fields holding a comma, a quote, ``\\r`` or
``\\n`` (a file name may hold any of them) are quoted, so each record keeps its
column count whatever the names are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from livesqa.sinks.appendfile import close_file, open_for_append, write_line
from livesqa.sinks.schema import COLUMNS, result_row
from livesqa.types import WindowScores


def csv_line(values: Sequence[object]) -> str:
    """One CSV record without its line end; ``None`` becomes an empty cell."""
    buffer = io.StringIO()
    # "\r\n" as terminator makes the writer quote fields holding \r or \n (it quotes
    # any field containing a terminator character); we write our own "\n" after it.
    csv.writer(buffer, lineterminator="\r\n").writerow(
        ["" if v is None else v for v in values])
    return buffer.getvalue()[:-2]


class CsvRows:
    """An appendable CSV with a fixed header, written and flushed one record at a time."""

    def __init__(self, path: str | Path, columns: Sequence[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self._fsync = fsync
        self._file = open_for_append(self.path, csv_line(self.columns))
        self.rows = 0

    def write_values(self, values: Sequence[object]) -> None:
        write_line(self._file, csv_line(values), self._fsync)
        self.rows += 1

    def write_record(self, record: dict[str, object]) -> None:
        self.write_values([record.get(c) for c in self.columns])

    def close(self) -> None:
        close_file(self._file)


class CsvSink(CsvRows):
    """Appends window rows to a CSV file; opened (and checked) at construction."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        super().__init__(path, COLUMNS, fsync)

    def write(self, result: WindowScores) -> None:
        row = result_row(result)
        self.write_values([row[c] for c in COLUMNS])
