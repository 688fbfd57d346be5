"""Room-wide CSV and JSONL writers: the shared window schema plus network columns and events.

Why not the plain sinks: a WebRTC row also carries the network figures of its participant's
latest interval, so a Discontinuity drop sits on the same line as the loss burst that caused
it. The columns are :data:`livesqa.sinks.schema.COLUMNS` (identical meaning, identical order)
followed by :data:`NET_COLUMNS`; every participant of every room writes to one file, told
apart by the ``room``/``participant``/``source`` columns. One writer outlives the participants,
so it is closed by its owner (the command), never by a participant leaving.

Display names are the participants' own text: in the CSV a cell that starts with ``= + - @``
(or a tab or carriage return) gets a leading ``'``, so a spreadsheet shows it as text instead
of running it as a formula (OWASP "CSV injection"); JSONL keeps the text as is (it is data).

Network figures are those of the newest interval when the window's score arrives (the
window ends about ``latency_ms`` earlier): close enough at 1 s stats and 1 s hops.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from livesqa.sinks.appendfile import close_file, open_for_append, write_line
from livesqa.sinks.csv import csv_line
from livesqa.sinks.schema import COLUMNS, result_row
from livesqa.types import WindowScores
from livesqa.webrtc.netstats import NetInterval
from livesqa.webrtc.room import RoomEvent

NET_COLUMNS: tuple[str, ...] = (
    "loss_pct",  # packets lost in the latest stats interval, % of expected
    "jitter_ms",  # RFC 3550 interarrival jitter, ms
    "rtt_ms",  # RTCP round trip to this participant (empty until known)
    "emodel_mos",  # ITU-T G.107 estimate from loss, burstiness and delay (1..4.5)
    "gaps_total",  # timestamp gaps (loss bursts) in this participant's audio so far
)
ROOM_COLUMNS: tuple[str, ...] = (*COLUMNS, *NET_COLUMNS)
TEXT_COLUMNS = frozenset({"source", "room", "participant"})  # text people chose (numbers may be < 0)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet will not evaluate: ``'`` before a leading formula character."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def iso_time(wall_s: float) -> str:
    """Epoch seconds -> ISO 8601 with the local UTC offset (the window rows' format)."""
    return datetime.fromtimestamp(wall_s, UTC).astimezone().isoformat(timespec="milliseconds")


def net_values(net: NetInterval | None, gaps_total: int) -> dict[str, float | int | None]:
    if net is None:
        return {"loss_pct": None, "jitter_ms": None, "rtt_ms": None, "emodel_mos": None,
                "gaps_total": gaps_total}
    return {
        "loss_pct": round(net.loss_percent, 2),
        "jitter_ms": round(net.jitter_ms, 2),
        "rtt_ms": None if net.rtt_ms is None else round(net.rtt_ms, 2),
        "emodel_mos": round(net.emodel_mos, 3),
        "gaps_total": gaps_total,
    }


class RoomWriter(Protocol):
    def write(self, result: WindowScores, net: NetInterval | None, gaps_total: int) -> None: ...

    def event(self, event: RoomEvent) -> None: ...

    def close(self) -> None: ...


class RoomCsvWriter:
    """One CSV for every participant: window rows only (events go to the log and JSONL)."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._file = open_for_append(self.path, csv_line(ROOM_COLUMNS))
        self.rows = 0

    def write(self, result: WindowScores, net: NetInterval | None, gaps_total: int) -> None:
        row: dict[str, Any] = {**result_row(result), **net_values(net, gaps_total)}
        cells = ["" if row[c] is None else
                 spreadsheet_safe(str(row[c])) if c in TEXT_COLUMNS else str(row[c])
                 for c in ROOM_COLUMNS]
        write_line(self._file, csv_line(cells), self._fsync)
        self.rows += 1

    def event(self, event: RoomEvent) -> None:
        return None

    def close(self) -> None:
        close_file(self._file)


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class RoomJsonlWriter:
    """``{"kind": "window", ...ROOM_COLUMNS}`` and ``{"kind": "join"|"leave", ...}`` lines."""

    def __init__(self, path: str | Path, fsync: bool = False) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._file = open_for_append(self.path, None)
        self.rows = 0

    def _write(self, record: dict[str, Any]) -> None:
        text = json.dumps({k: _clean(v) for k, v in record.items()}, ensure_ascii=False)
        write_line(self._file, text, self._fsync)

    def write(self, result: WindowScores, net: NetInterval | None, gaps_total: int) -> None:
        self._write({"kind": "window", **result_row(result), **net_values(net, gaps_total)})
        self.rows += 1

    def event(self, event: RoomEvent) -> None:
        p = event.participant
        self._write({"kind": event.kind, "room": p.room, "participant": p.name,
                     "participant_id": p.id, "wall_time": iso_time(event.wall_time), "reason": event.reason})

    def close(self) -> None:
        close_file(self._file)
