"""The dashboard as a pure function of a :class:`Snapshot` (no I/O, no clock).

Why pure: the live dashboard, the end-of-call summary and the tests all call
:func:`render`; a test renders to a capture console at fixed width and checks
the text, no terminal needed.

Colour bands (1-5, higher is better): >= 4 good (green), >= 3 fair (yellow),
>= 2 poor (orange), below 2 bad (red). History: one character per window, newest
on the right, bar height = score; a dim dot = no speech.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from livesqa.aggregate import DimensionSummary, format_score
from livesqa.spec import DIMENSION_TITLES
from livesqa.types import Snapshot

BARS = "▁▂▃▄▅▆▇█"
BANDS: tuple[tuple[float, str, str], ...] = (
    (4.0, "green", "good"),
    (3.0, "yellow", "fair"),
    (2.0, "dark_orange", "poor"),
    (float("-inf"), "red", "bad"),
)


def band(value: float | None) -> tuple[str, str]:
    """(style, label) of a score; ``("dim", "no speech")`` for None."""
    if value is None:
        return "dim", "no speech"
    for lower, style, label in BANDS:
        if value >= lower:
            return style, label
    return BANDS[-1][1], BANDS[-1][2]


def sparkline(history: tuple[float | None, ...], width: int, lo: float = 1.0,
              hi: float = 5.0) -> Text:
    """Last ``width`` values as coloured bars; None as a dim dot."""
    text = Text()
    values = history[-width:] if width > 0 else ()
    text.append(" " * (width - len(values)))
    for v in values:
        if v is None:
            text.append("·", style="dim")
            continue
        frac = min(1.0, max(0.0, (v - lo) / (hi - lo)))
        text.append(BARS[min(len(BARS) - 1, int(frac * len(BARS)))], style=band(v)[0])
    return text


def _score_text(value: float | None) -> Text:
    return Text(format_score(value), style=band(value)[0])


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{unit}"


def status_line(s: Snapshot) -> Text:
    """Input level, speech activity, latency, RTF, skipped windows, gaps and the source."""
    level = s.level_dbfs
    speech = None if s.speech_ratio is None else s.speech_ratio * 100.0
    parts = [
        f"level {_fmt(level, '.0f', ' dBFS')}",
        f"speech {_fmt(speech, '.0f', '%')}",
        f"latency p50 {_fmt(s.latency_p50_ms, '.0f', ' ms')} p95 {_fmt(s.latency_p95_ms, '.0f', ' ms')}",
        f"RTF {_fmt(s.rtf, '.3f')}",
        f"skipped {s.skipped}",
        f"gaps {s.gaps}",
        f"clipped {s.clipped}",
    ]
    text = Text(" · ".join(parts))
    text.append(f"\n{s.stream.description or s.stream.source} · t={s.stream_s:.1f} s · "
                f"{s.windows} windows ({s.scored} with speech) · {s.model} · {s.status}",
                style="dim")
    return text


def render(s: Snapshot, history_width: int = 48) -> RenderableType:
    """Dashboard for one stream: a row per dimension plus the status line."""
    table = Table(title=f"livesqa · {s.stream.description or s.stream.source}",
                  title_justify="left", expand=False, pad_edge=False)
    table.add_column("dimension", no_wrap=True)
    table.add_column("now", justify="right", no_wrap=True, min_width=4)
    table.add_column(f"history ({history_width} × {s.hop_s:g} s)", no_wrap=True)
    table.add_column("mean", justify="right", no_wrap=True, min_width=4)
    table.add_column("worst", justify="right", no_wrap=True, min_width=5)
    table.add_column("at", justify="right", no_wrap=True, min_width=7)
    for d in s.dimensions:
        table.add_row(
            DIMENSION_TITLES.get(d.name, d.name),
            _score_text(d.current),
            sparkline(d.history, history_width),
            _score_text(d.mean),
            _score_text(d.worst),
            "–" if d.worst_at_s is None else f"{d.worst_at_s:.1f} s",
        )
    return Group(table, status_line(s))


def render_summary(title: str, summary: tuple[DimensionSummary, ...], windows: int,
                   scored: int) -> RenderableType:
    """End-of-call / per-file summary: mean and worst window per dimension."""
    table = Table(title=title, title_justify="left", pad_edge=False)
    table.add_column("dimension", no_wrap=True)
    table.add_column("mean", justify="right")
    table.add_column("worst", justify="right")
    table.add_column("worst window", justify="right", no_wrap=True)
    for d in summary:
        where = "–" if d.worst_start_s is None else f"{d.worst_start_s:.1f}–{d.worst_end_s:.1f} s"
        table.add_row(DIMENSION_TITLES.get(d.name, d.name), _score_text(d.mean),
                      _score_text(d.worst), where)
    table.caption = f"{windows} windows, {scored} with speech"
    return table
