"""The room dashboard as a pure function: one row per participant, then the join/leave log.

Why separate from the runtime's single-stream render: a room needs the five dimensions of
many participants side by side with their network figures; the pieces (colour bands,
sparklines, score formatting) are the runtime's (:mod:`livesqa.sinks.render`), so a score
looks the same on both dashboards.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from livesqa.aggregate import format_score
from livesqa.sinks.render import band, sparkline
from livesqa.spec import DIMENSION_TITLES
from livesqa.types import Snapshot
from livesqa.webrtc.netstats import NetInterval
from livesqa.webrtc.room import RoomEvent


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
    text = Text(f"{format_score(current):>4} ", style=band(current)[0])
    text.append_text(sparkline(history, width))
    return text


def render_room(
    rows: Sequence[ParticipantRow],
    events: Sequence[RoomEvent],
    title: str = "livesqa webrtc",
    history_width: int = 12,
    max_events: int = 6,
) -> RenderableType:
    """Participants (live first, then recently left, dimmed) and the newest events."""
    table = Table(title=title, title_justify="left", pad_edge=False, expand=False)
    table.add_column("room", no_wrap=True)
    table.add_column("participant", no_wrap=True)
    dims = rows[0].snapshot.dimensions if rows else ()
    names = [d.name for d in dims] or ["mos", "noi", "col", "dis", "loud"]
    for name in names:
        table.add_column(DIMENSION_TITLES.get(name, name), no_wrap=True)
    table.add_column("loss %", justify="right", no_wrap=True)
    table.add_column("jitter ms", justify="right", no_wrap=True)
    table.add_column("E-model", justify="right", no_wrap=True)
    table.add_column("gaps", justify="right", no_wrap=True)
    table.add_column("skipped", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for row in rows:
        snap = row.snapshot
        cells: list[Text | str] = [row.room, f"{row.name} ({row.id})"]
        cells += [_score_cell(d.current, d.history, history_width) for d in snap.dimensions]
        net = row.net
        cells += [
            _net_text(None if net is None else net.loss_percent, ".1f", 5.0, 1.0),
            _net_text(None if net is None else net.jitter_ms, ".1f", 50.0, 20.0),
            Text(format_score(None if net is None else net.emodel_mos),
                 style=band(None if net is None else net.emodel_mos)[0]),
            str(row.gaps),
            str(snap.skipped),
            snap.status,
        ]
        table.add_row(*cells, style="dim" if row.left else None)
    if not rows:
        table.caption = "nobody here yet: open the room URL in a browser"
    log = Text()
    for event in list(events)[-max_events:]:
        clock = time.strftime("%H:%M:%S", time.localtime(event.wall_time))
        p = event.participant
        what = "joined" if event.kind == "join" else f"left ({event.reason})"
        log.append(f"{clock}  {p.room}/{p.name} ({p.id}) {what}\n",
                   style="green" if event.kind == "join" else "yellow")
    return Group(table, log) if events else table
