"""The room dashboard renders participants, network figures and events as plain text.

Display names are hostile input: any string must render as itself, never as Rich markup, in
every renderer a name reaches (dashboard, event log, exit summary, CSV, JSONL, /metrics).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from livesqa.aggregate import Aggregator
from livesqa.sinks.render import render_summary
from livesqa.types import StreamInfo, WindowScores
from livesqa.webrtc.netstats import NetInterval
from livesqa.webrtc.render import ParticipantRow, render_room
from livesqa.webrtc.room import NAME_MAX_CHARS, ParticipantInfo, RoomEvent, clean_name
from livesqa.webrtc.rows import RoomCsvWriter, RoomJsonlWriter

HOSTILE = ["[bold red]evil[/] [/]", "[/]", "[link=http://x]x[/link]", "=HYPERLINK(\"x\")",
           "+1-2", "@SUM(A1)", "-3", "\x1b[2J", "\u202eevil", "[[/]]", "name\\", ":smile:"]


def result_for(stream: StreamInfo, mos: float, end_s: float = 1.5) -> WindowScores:
    return WindowScores(stream, 0, end_s - 1.5, end_s, "t", (mos, 4.0, 4.0, 2.0, 4.0), 0.6, -20.0,
                        False, 2, True, 10.0, 1.0, "tiny", "1")


def snapshot(name: str, mos: float, room: str = "r", status: str = "live") -> object:
    stream = StreamInfo(f"webrtc:{room}/{name}", room=room, participant=name)
    agg = Aggregator(stream, "tiny", 1.0)
    agg.add(result_for(stream, mos))
    agg.status = status
    return agg.snapshot()


def text_of(renderable: object, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_rows_show_scores_network_and_events() -> None:
    net = NetInterval(0.0, 1.0, 45, 5, 10.0, 12.5, 31.0, 1.0, 3.38)
    rows = [
        ParticipantRow("r", "ab12", "ann", snapshot("ann", 3.25), net, 4, False),  # type: ignore[arg-type]
        ParticipantRow("r", "cd34", "bob", snapshot("bob", 4.5), None, 0, True),  # type: ignore[arg-type]
    ]
    info = ParticipantInfo("r", "cd34", "bob", 0.0)
    events = [RoomEvent("join", info, 0.0), RoomEvent("leave", info, 10.0, "timeout")]
    text = text_of(render_room(rows, events, width=200))
    ann = next(line for line in text.splitlines() if line.strip().startswith("ann "))
    for value in ("ab12", "3.25", "10.0", "12.5", "31", "3.38", "live"):
        assert value in ann, (value, ann)
    bob = next(line for line in text.splitlines() if line.strip().startswith("bob "))
    assert "4.50" in bob and "–" in bob  # no network figures yet
    assert "r/bob (cd34) joined" in text and "left (timeout)" in text
    for title in ("MOS", "Discontinuity", "loss %", "jitter ms", "rtt ms", "E-model", "latency ms"):
        assert title in text
    assert "room" not in text.splitlines()[1]  # one room: no room column


def test_empty_room_says_how_to_join() -> None:
    assert "open the room URL" in text_of(render_room([], []))


def fit_rows(names: list[str], statuses: list[str], rooms: tuple[str, ...]) -> list[ParticipantRow]:
    return [
        ParticipantRow(room, f"{i:08x}", name, snapshot(name, 3.0 + i / 2, room, status),  # type: ignore[arg-type]
                       NetInterval(0, 1, 50, 0, 0.0, 3.0, 12.0, 1.0, 4.4), 0, False)
        for i, (room, name, status) in enumerate(zip(rooms, names, statuses))
    ]


def assert_whole(rows: list[ParticipantRow], width: int) -> str:
    text = text_of(render_room(rows, [], title="t", width=width), width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    for row in rows:
        assert row.name in text and row.id in text and row.snapshot.status in text, (width, text)  # type: ignore[attr-defined]
        if len({r.room for r in rows}) > 1:
            assert f" {row.room} " in text or f"{row.room} " in text
    header = lines[1] + lines[2]
    for title in ("participant", "id", "gaps", "status"):
        assert title in header, (width, title, lines[:3])
    assert ("MOS" in header and "LOUD" in header) or ("Loudness" in header)
    return text


def test_columns_fit_the_terminal_and_nothing_is_cut() -> None:
    # the longest name, a long status, two rooms: whole at 180 columns (the terminal)
    extreme = fit_rows(["x" * NAME_MAX_CHARS, "Ünïcödé name with spaces", "z"],
                       ["live", "left (timeout)", "error: disk full (calls.csv)"], ("a", "b", "b"))
    assert_whole(extreme, 180)
    # everyday names in one room: whole at 110 columns, with full headers and history at 180
    usual = fit_rows(["ann", "bob the builder", "kiosk-3"], ["live", "live", "left (bye)"],
                     ("r", "r", "r"))
    narrow = assert_whole(usual, 110)
    wide = assert_whole(usual, 180)
    assert "Discontinuity" in wide and "room" not in wide.splitlines()[1]
    bars = "▁▂▃▄▅▆▇█"
    assert sum(wide.count(b) for b in bars) > sum(narrow.count(b) for b in bars)


def render_everywhere(raw: str, tmp: Path) -> None:
    """One name through every renderer it reaches; each must show the name as plain text."""
    name = clean_name(raw, "guest")
    info = ParticipantInfo("r", "ab12cd34", name, 0.0)
    row = ParticipantRow("r", info.id, name, snapshot(name, 3.0, status=raw),  # type: ignore[arg-type]
                         None, 0, False)
    events = [RoomEvent("join", info, 0.0), RoomEvent("leave", info, 1.0, raw)]
    for width in (60, 200):
        text = text_of(render_room([row], events, title=raw, width=width), width)
        if width == 200 and name.isascii():
            assert name in text
    # the raw, uncleaned string too: the renderers must not rely on clean_name
    text_of(render_room([ParticipantRow("r", raw, raw, row.snapshot, None, 0, True)], events, raw))
    title = f"r/{name} ({info.id}) · left ({raw})"
    summary_text = text_of(render_summary(Text(title), (), 1, 1))  # as the command prints it
    if name.isascii() and name.isprintable():
        assert name in summary_text
    stream = StreamInfo(f"webrtc:r/{info.id}", room="r", participant=name)
    csv_path, jsonl_path = tmp / "rows.csv", tmp / "rows.jsonl"
    csv_path.unlink(missing_ok=True)
    jsonl_path.unlink(missing_ok=True)
    for writer in (RoomCsvWriter(csv_path), RoomJsonlWriter(jsonl_path)):
        writer.write(result_for(stream, 3.0), None, 0)
        writer.close()
    with open(csv_path, newline="") as f:
        cell = next(csv.DictReader(f))["participant"]
    assert cell == name or (cell == "'" + name and name[0] in "=+-@")
    assert not cell.startswith(("=", "+", "-", "@"))
    assert json.loads(jsonl_path.read_text())["participant"] == name


def test_hostile_names_render_as_text(tmp_path: Path) -> None:
    for raw in HOSTILE:
        render_everywhere(raw, tmp_path)
    assert clean_name("=1+1", "g") == "=1+1"  # kept as typed; only the CSV neutralises it
    assert clean_name("[/]", "g") == "[/]"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=60) | st.from_regex(r"[\[\]/a-z =@+\-:\\]{0,40}", fullmatch=True))
def test_any_name_renders_everywhere(tmp_path: Path, raw: str) -> None:
    render_everywhere(raw, tmp_path)


def test_metrics_accept_any_name() -> None:
    from livesqa.webrtc.metrics import RoomMetrics

    metrics = RoomMetrics()
    for raw in HOSTILE + ['a"b\nc', "}{"]:
        info = ParticipantInfo("r", "ab12cd34", clean_name(raw, "g"), 0.0)
        metrics.joined(info, 1)
        metrics.observe(info, result_for(StreamInfo("s"), 3.0))
        body, _ = metrics.render()
        assert b"livesqa_score" in body
        metrics.left(info, 0)
