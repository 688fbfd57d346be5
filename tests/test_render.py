"""Dashboard render: a pure function of a snapshot, checked on a capture console."""

from __future__ import annotations

from rich.console import Console
from test_sinks import make_result

from livesqa.aggregate import Aggregator
from livesqa.sinks.render import band, render, render_summary, sparkline
from livesqa.types import StreamInfo


def _text(renderable, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None, force_terminal=False)
    with console.capture() as cap:
        console.print(renderable)
    return cap.get()


def _aggregator() -> Aggregator:
    agg = Aggregator(StreamInfo("mic:0", description="mic: Test Mic (48000 Hz)"), "m 1", hop_s=1.0)
    agg.add(make_result(0, scores=(4.5, 4.0, 3.5, 3.0, 2.5)))
    agg.add(make_result(1, scores=None))
    agg.add(make_result(2, scores=(1.5, 2.0, 4.5, 5.0, 3.0)))
    return agg


def test_dashboard_shows_current_mean_worst_and_status():
    text = _text(render(_aggregator().snapshot(), history_width=10))
    mos = next(line for line in text.splitlines() if "MOS" in line)
    # now 1.50, mean (4.5+1.5)/2 = 3.00, worst 1.50 at the end of window 2 (4.0 s)
    assert "1.50" in mos and "3.00" in mos and "4.0 s" in mos
    dis = next(line for line in text.splitlines() if "Discontinuity" in line)
    assert "5.00" in dis and "4.00" in dis and "3.00" in dis  # now, mean, worst
    assert "·" in mos  # the no-speech window in the history
    assert "mic: Test Mic (48000 Hz)" in text
    assert "skipped 6" in text  # 2 per result in make_result
    assert "level -23 dBFS" in text and "speech 50%" in text


def test_empty_snapshot_renders_dashes():
    agg = Aggregator(StreamInfo("x"), "m 1", hop_s=1.0)
    text = _text(render(agg.snapshot()))
    assert "waiting for audio" in text
    assert "–" in text


def test_sparkline_and_bands():
    line = sparkline((1.0, 3.0, None, 5.0), width=6)
    assert line.plain == "  ▁▅·█"
    assert band(4.2)[1] == "good" and band(3.0)[1] == "fair" and band(1.9)[1] == "bad"
    assert band(None)[1] == "no speech"


def test_summary_table_lists_worst_windows():
    agg = _aggregator()
    text = _text(render_summary("call summary", agg.summary(), agg.windows, agg.scored))
    assert "2.0–4.0 s" in text and "3 windows, 2 with speech" in text
