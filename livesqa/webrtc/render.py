"""The room dashboard as a pure function: one row per participant, then the join/leave log.

Why separate from the runtime's single-stream render: a room needs the five dimensions of
many participants side by side with their network figures; the pieces (colour bands,
sparklines, score formatting) are the runtime's (:mod:`livesqa.sinks.render`), so a score
looks the same on both dashboards.

Every string a participant chose (display name) or the network produced (status, reasons)
reaches Rich as :class:`rich.text.Text`, never as a ``str`` cell: Rich parses ``str`` as
console markup, and a name such as ``[/]`` would otherwise raise and stop the dashboard.
The table is sized to its content and to the terminal: the history sparklines shrink, then
the headers get short (``MOS NOI COL DIS LOUD``), before any name, id or status is cut; the
room column is shown only when there are several rooms.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from livesqa.aggregate import format_score
from livesqa.sinks.render import band, sparkline
from livesqa.spec import DIMENSION_TITLES, DIMENSIONS
from livesqa.types import Snapshot
from livesqa.webrtc.netstats import NetInterval
from livesqa.webrtc.room import RoomEvent

MAX_HISTORY = 12  # sparkline characters per dimension when the terminal is wide enough


@dataclass(frozen=True)
class ParticipantRow:
    """Everything one dashboard row shows (immutable, built from the live pipeline)."""

    room: str
    id: str
    name: str
    snapshot: Snapshot
    net: NetInterval | None
    gaps: int
    left: bool


def _net_text(value: float | None, fmt: str, bad: float, warn: float) -> Text:
    if value is None:
        return Text("–", style="dim")
    style = "red" if value >= bad else "yellow" if value >= warn else "green"
    return Text(format(value, fmt), style=style)


def _score_cell(current: float | None, history: tuple[float | None, ...], width: int) -> Text:
    text = Text(f"{format_score(current):>4}", style=band(current)[0])
    if width > 0:
        text.append(" ")
        text.append_text(sparkline(history, width))
    return text


NET_HEADERS = ("loss %", "jitter ms", "rtt ms", "E-model", "latency ms", "gaps", "skipped")
NET_HEADERS_SHORT = ("loss%", "jit ms", "rtt ms", "E-mos", "lat ms", "gaps", "skip")


def _table(rows: Sequence[ParticipantRow], title: str, history_width: int,
           short: bool = False) -> Table:
    show_room = len({r.room for r in rows}) > 1
    table = Table(title=Text(title), title_justify="left", pad_edge=False, expand=False,
                  box=box.SIMPLE_HEAD, padding=(0, 0))  # the box divides columns by one space
    if show_room:
        table.add_column("room", no_wrap=True)
    table.add_column("participant", no_wrap=True)
    table.add_column("id", no_wrap=True)
    dims = rows[0].snapshot.dimensions if rows else ()
    names = [d.name for d in dims] or list(DIMENSIONS)
    for name in names:
        table.add_column(name.upper() if short else DIMENSION_TITLES.get(name, name), no_wrap=True)
    for header in NET_HEADERS_SHORT if short else NET_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row in rows:
        snap = row.snapshot
        net = row.net
        cells: list[Text] = [Text(row.room)] if show_room else []
        cells += [Text(row.name), Text(row.id)]
        cells += [_score_cell(d.current, d.history, history_width) for d in snap.dimensions]
        cells += [
            _net_text(None if net is None else net.loss_percent, ".1f", 5.0, 1.0),
            _net_text(None if net is None else net.jitter_ms, ".1f", 50.0, 20.0),
            _net_text(None if net is None else net.rtt_ms, ".0f", 300.0, 150.0),
            Text(format_score(None if net is None else net.emodel_mos),
                 style=band(None if net is None else net.emodel_mos)[0]),
            _net_text(snap.latency_p50_ms, ".0f", 3000.0, 1500.0),
            Text(str(row.gaps)),
            Text(str(snap.skipped), style="yellow" if snap.skipped else ""),
            Text(snap.status),
        ]
        table.add_row(*cells, style="dim" if row.left else None)
    if not rows:
        table.caption = Text("nobody here yet: open the room URL in a browser")
    return table


def render_room(
    rows: Sequence[ParticipantRow],
    events: Sequence[RoomEvent],
    title: str = "livesqa webrtc",
    width: int | None = None,
    max_events: int = 6,
) -> RenderableType:
    """Participants (live first, then recently left, dimmed) and the newest events.

    ``width``: the terminal's columns; the history sparklines get what is left after every
    other column is shown whole (None: full history).
    """
    table = _table(rows, title, MAX_HISTORY)
    if width is not None and rows:
        console = Console(width=10_000, color_system=None, file=io.StringIO())  # measure unclamped
        # widest first: full headers with history, then short headers, history shrinking
        for short in (False, True):
            for history in range(MAX_HISTORY, -1, -1):
                table = _table(rows, title, history, short)
                if Measurement.get(console, console.options, table).maximum <= width:
                    break
            else:
                continue
            break
    log = Text()
    for event in list(events)[-max_events:]:
        clock = time.strftime("%H:%M:%S", time.localtime(event.wall_time))
        p = event.participant
        what = "joined" if event.kind == "join" else f"left ({event.reason})"
        log.append(f"{clock}  {p.room}/{p.name} ({p.id}) {what}\n",
                   style="green" if event.kind == "join" else "yellow")
    return Group(table, log) if events else table
