"""The dashboard as a pure function of a :class:`Snapshot` (no I/O, no clock).

Why pure: the live dashboard, the end-of-call summary and the tests all call
:func:`render`; a test renders to a capture console at fixed width and checks
the text, no terminal needed.

Colour bands (1-5, higher is better): >= 4 good (green), >= 3 fair (yellow),
>= 2 poor (orange), below 2 bad (red). History: one character per window, newest
on the right, bar height = score; a dim dot = no speech.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from livesqa.aggregate import DimensionSummary, format_score
from livesqa.spec import DIMENSION_TITLES, DIMENSIONS
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
    text = Text()
    if s.windows and s.dimensions and s.dimensions[0].current is None:
        text.append("NO SPEECH: nobody talks in the newest window, so it is not scored · ",
                    style="bold yellow")
    text.append(" · ".join(parts))
    text.append(f"\n{s.stream.description or s.stream.source} · t={s.stream_s:.1f} s · "
                f"{s.windows} windows ({s.scored} with speech, {s.windows - s.scored} without) · "
                f"{s.model} · {s.status}",
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


def render_summary(title: str | Text, summary: tuple[DimensionSummary, ...], windows: int,
                   scored: int) -> RenderableType:
    """End-of-call / per-file summary: mean and worst window per dimension.

    A ``str`` title is Rich markup; pass a :class:`Text` for text people chose (names).
    """
    table = Table(title=title, title_justify="left", pad_edge=False)
    table.add_column("dimension", no_wrap=True)
    table.add_column("mean", justify="right")
    table.add_column("worst", justify="right")
    table.add_column("worst window", justify="right", no_wrap=True)
    for d in summary:
        where = "–" if d.worst_start_s is None else f"{d.worst_start_s:.1f}–{d.worst_end_s:.1f} s"
        table.add_row(DIMENSION_TITLES.get(d.name, d.name), _score_text(d.mean),
                      _score_text(d.worst), where)
    table.caption = f"{windows} windows, {scored} with speech, {windows - scored} without"
    return table


# --- per-file summary (``livesqa file``) ------------------------------------------------------

COUNT_HEADERS = ("windows", "scored", "no speech", "gaps")
SEP = 2  # spaces between columns of the per-file table
MIN_FILE_WIDTH = 8


@dataclass(frozen=True)
class FileSummary:
    """One file's counts and per-dimension summary, as the per-file table shows them."""

    name: str
    windows: int  # windows delivered
    scored: int  # windows with speech, scored by the model
    no_speech: int  # windows the speech detector said nobody talks in (not scored)
    gaps: int  # windows holding audio that never arrived or was not finite
    dims: tuple[DimensionSummary, ...]

    def counts(self) -> tuple[str, ...]:
        return (str(self.windows), str(self.scored), str(self.no_speech), str(self.gaps))


def shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, cut in the middle so the end (suffix) stays."""
    if len(name) <= width:
        return name
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 3  # the end (file name, suffix) tells files apart: keep more of it
    return name[:head] + "…" + name[len(name) - (width - 1 - head):]


def short_labels(paths: list[str]) -> list[str]:
    """The fewest trailing path parts that still tell every file apart (``a/x.wav``, ``b/x.wav``)."""
    from pathlib import PurePath

    parts = [PurePath(p).parts for p in paths]
    for k in range(1, max((len(p) for p in parts), default=1) + 1):
        labels = ["/".join(p[-k:]) if len(p) > k else str(PurePath(*p)) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return list(paths)


def _number_widths(rows: list[FileSummary]) -> list[int]:
    """Widths of the count, kind and dimension columns: their longest cell, never less."""
    widths = [max([len(h)] + [len(r.counts()[k]) for r in rows]) for k, h in enumerate(COUNT_HEADERS)]
    widths.append(len("worst"))
    widths += [max(4, len(d)) for d in DIMENSIONS]  # "3.94", "–"
    return widths


def file_summary(rows: list[FileSummary], width: int) -> RenderableType:
    """The per-file summary for a terminal ``width`` columns wide; numbers are never cut.

    Each file takes two lines (mean, then worst window) so the table fits 80 columns; the
    file column shrinks first (names are shortened in the middle). Too narrow for even
    an 8-character file column: one block per file instead of a table.
    """
    numbers = _number_widths(rows)
    fixed = sum(numbers) + SEP * len(numbers)  # each column: one space of its own + a divider
    longest = max([len("file")] + [len(r.name) for r in rows])
    file_width = min(longest, width - fixed)
    if file_width < MIN_FILE_WIDTH:
        return _file_blocks(rows, width)
    table = Table(title="per-file summary: mean and worst window (1-5, higher is better)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0),
                  show_edge=False, collapse_padding=True, expand=False)
    table.add_column("file", width=file_width, no_wrap=True, overflow="crop")
    for header, w in zip((*COUNT_HEADERS, "", *DIMENSIONS), numbers, strict=True):
        table.add_column(header, justify="right", no_wrap=True, width=w + SEP - 1,
                         overflow="crop")
    for r in rows:
        table.add_row(shorten(r.name, file_width), *r.counts(), "mean",
                      *(_score_text(d.mean) for d in r.dims))
        table.add_row("", "", "", "", "", "worst", *(_score_text(d.worst) for d in r.dims))
    return table


def _file_blocks(rows: list[FileSummary], width: int) -> RenderableType:
    """Narrow terminals: per file its name, counts, then one line per dimension."""
    lines = Text()
    for r in rows:
        lines.append(shorten(r.name, max(1, width)) + "\n", style="bold")
        lines.append(", ".join(f"{h} {v}" for h, v in zip(COUNT_HEADERS, r.counts(), strict=True))
                     + "\n")
        for d in r.dims:
            lines.append(f"{d.name} mean {format_score(d.mean)} worst {format_score(d.worst)}\n")
    return lines


def file_summary_tsv(rows: list[FileSummary]) -> str:
    """The per-file summary for a pipe or a log: tab-separated, a header line, nothing cut.

    Like the CSV files, a dimension with no scored window is an empty cell.
    """
    header = ["file", *(h.replace(" ", "_") for h in COUNT_HEADERS)]
    header += [f"{kind}_{d}" for d in DIMENSIONS for kind in ("mean", "worst")]
    out = ["\t".join(header)]
    for r in rows:
        cells = [r.name.replace("\t", " "), *r.counts()]
        for d in r.dims:
            cells += ["" if v is None else f"{v:.2f}" for v in (d.mean, d.worst)]
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"
