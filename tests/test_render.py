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


def _file_rows():
    from livesqa.sinks.render import FileSummary

    agg = _aggregator()
    long_name = "/calls/2026-11-29/a-very-long-recording-name-from-the-call-archive-0042.flac"
    empty = Aggregator(StreamInfo("silent.wav"), "m 1", hop_s=1.0)
    return [FileSummary(long_name, 1234, 1000, 234, 12, agg.summary()),
            FileSummary("silent.wav", 3, 0, 3, 0, empty.summary())]


def test_per_file_summary_never_cuts_a_number_at_any_width():
    from livesqa.sinks.render import file_summary

    rows = _file_rows()
    numbers = ["1234", "1000", "234", "12", "3.00", "1.50", "2.00", "4.00", "3.50"]
    for width in (30, 40, 60, 79, 80, 100, 132, 200):
        text = _text(file_summary(rows, width), width=width)
        assert max(len(line) for line in text.splitlines()) <= width, width
        for n in numbers:
            assert n in text, (width, n)


def test_per_file_summary_shortens_the_file_column_first():
    from livesqa.sinks.render import file_summary

    rows = _file_rows()
    wide, narrow = _text(file_summary(rows, 200), 200), _text(file_summary(rows, 100), 100)
    assert rows[0].name in wide
    assert rows[0].name not in narrow and "0042.flac" in narrow  # cut in the middle, end kept
    header = next(line for line in narrow.splitlines() if "windows" in line)
    assert header.split()[1:] == ["windows", "scored", "no", "speech", "gaps", "mos", "noi",
                                  "col", "dis", "loud"]


def test_piped_summary_is_tab_separated_and_complete():
    from livesqa.sinks.render import file_summary_tsv

    lines = file_summary_tsv(_file_rows()).splitlines()
    header, first, silent = (line.split("\t") for line in lines)
    assert len(header) == len(first) == len(silent) == 15
    row = dict(zip(header, first))
    assert row["file"].endswith("0042.flac") and row["no_speech"] == "234" and row["gaps"] == "12"
    assert row["mean_mos"] == "3.00" and row["worst_mos"] == "1.50"
    assert dict(zip(header, silent))["mean_mos"] == ""  # no speech: empty, as in the CSV


def test_dashboard_says_when_nobody_talks():
    agg = _aggregator()
    assert "NO SPEECH" not in _text(render(agg.snapshot()))
    agg.add(make_result(3, scores=None))
    text = _text(render(agg.snapshot()))
    assert "NO SPEECH" in text and "4 windows (2 with speech, 2 without)" in text


def test_file_labels_are_as_short_as_still_tells_files_apart():
    from livesqa.sinks.render import shorten, short_labels

    assert short_labels(["/calls/a/x.wav", "/calls/b/x.wav", "/calls/b/y.wav"]) == [
        "a/x.wav", "b/x.wav", "b/y.wav"]
    assert short_labels(["/calls/one.flac"]) == ["one.flac"]
    assert shorten("abcdefghijklmnop.wav", 10) == "abc…op.wav" and shorten("x.wav", 10) == "x.wav"
