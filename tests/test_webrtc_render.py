"""The room dashboard renders participants, network figures and events as plain text."""

from __future__ import annotations

from rich.console import Console

from livesqa.aggregate import Aggregator
from livesqa.types import StreamInfo, WindowScores
from livesqa.webrtc.netstats import NetInterval
from livesqa.webrtc.render import ParticipantRow, render_room
from livesqa.webrtc.room import ParticipantInfo, RoomEvent


def snapshot(name: str, mos: float) -> object:
    stream = StreamInfo(f"webrtc:r/{name}", room="r", participant=name)
    agg = Aggregator(stream, "tiny", 1.0)
    agg.add(WindowScores(stream, 0, 0.0, 1.5, "t", (mos, 4.0, 4.0, 2.0, 4.0), 0.6, -20.0, False,
                         2, True, 10.0, 1.0, "tiny", "1"))
    agg.status = "live"
    return agg.snapshot()


def text_of(renderable: object) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_rows_show_scores_network_and_events() -> None:
    net = NetInterval(0.0, 1.0, 45, 5, 10.0, 12.5, None, 1.0, 3.38)
    rows = [
        ParticipantRow("r", "ab12", "ann", snapshot("ann", 3.25), net, 4, False),  # type: ignore[arg-type]
        ParticipantRow("r", "cd34", "bob", snapshot("bob", 4.5), None, 0, True),  # type: ignore[arg-type]
    ]
    info = ParticipantInfo("r", "cd34", "bob", 0.0)
    events = [RoomEvent("join", info, 0.0), RoomEvent("leave", info, 10.0, "timeout")]
    text = text_of(render_room(rows, events))
    ann = next(line for line in text.splitlines() if "ann (ab12)" in line)
    assert "3.25" in ann and "10.0" in ann and "12.5" in ann and "3.38" in ann and "live" in ann
    bob = next(line for line in text.splitlines() if "bob (cd34)" in line)
    assert "4.50" in bob and "–" in bob  # no network figures yet
    assert "r/bob (cd34) joined" in text and "left (timeout)" in text
    for title in ("MOS", "Discontinuity", "loss %", "jitter ms", "E-model"):
        assert title in text


def test_empty_room_says_how_to_join() -> None:
    assert "open the room URL" in text_of(render_room([], []))
