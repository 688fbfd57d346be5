"""``livesqa file --resume``: continue an interrupted run after each file's last row.

Why: a run stopped by Ctrl-C, SIGTERM or a kill leaves complete rows for the
windows it scored (rows are written and flushed one at a time). Rerunning the
same command would score those windows again and append them a second time.
With ``--resume`` the rows already in the ``--csv``/``--jsonl`` outputs are read
back first; per file:

- a file with a summary record without error (``--summary`` or ``--jsonl``) is
  complete and is not scored again;
- otherwise the file is read from its start (decoding is cheap; windows land on
  the same sample grid as in the first run), windows up to the last one already
  written are dropped before the speech gate and the model, and only later
  windows are scored and written. Each output skips what it already holds, so a
  CSV and a JSONL that stopped one row apart both end complete and without
  duplicates. The per-file summary covers the old rows and the new ones.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livesqa.errors import SinkError
from livesqa.monitor import Sink
from livesqa.spec import DIMENSIONS
from livesqa.types import StreamInfo, Window, WindowScores
from livesqa.windowing import Windower

_EPS_S = 0.0005  # rows hold start_s rounded to 1 ms


@dataclass
class FileProgress:
    """What earlier runs wrote for one source."""

    rows: list[WindowScores] = field(default_factory=list)
    last_start_s: float = -math.inf
    complete: bool = False


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def row_to_scores(row: dict[str, Any]) -> WindowScores | None:
    """A CSV/JSONL window row back as :class:`WindowScores` (None if it is not one)."""
    start, end = _float(row.get("start_s")), _float(row.get("end_s"))
    if start is None or end is None or not row.get("source"):
        return None
    values = [_float(row.get(d)) for d in DIMENSIONS]
    scores = None if any(v is None for v in values) else tuple(v for v in values if v is not None)
    return WindowScores(
        stream=StreamInfo(str(row["source"]), str(row.get("room") or ""),
                          str(row.get("participant") or "")),
        index=0, start_s=start, end_s=end, wall_time=str(row.get("wall_time") or ""),
        scores=scores, speech_ratio=_float(row.get("speech_ratio")) or 0.0,
        level_dbfs=_float(row.get("level_dbfs")) or -120.0,
        clipping=str(row.get("clipping")) in ("1", "True", "true"),
        skipped=int(_float(row.get("skipped")) or 0),
        gap=str(row.get("gap")) in ("1", "True", "true"),
        latency_ms=_float(row.get("latency_ms")) or 0.0, compute_ms=0.0,
        model=str(row.get("model") or ""), model_version=str(row.get("model_version") or ""),
    )


def _records(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    """``(kind, record)`` of every complete line of a CSV (kind ``window``) or JSONL file."""
    if not path.is_file():  # a stream (/dev/null, a pipe) holds nothing to read back
        return
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if path.suffix.lower() == ".jsonl" or f.read(1) == "{":
                f.seek(0)
                for line in f:
                    if not line.endswith("\n"):
                        break  # a line cut by a kill: the sink cuts it when it reopens
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        yield str(record.get("kind", "")), record
                return
            f.seek(0)
            for record in csv.DictReader(f):
                yield ("summary" if "error" in record and "start_s" not in record
                       else "window"), record
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SinkError(f"{path}: cannot read it back for --resume ({e})") from e


def read_progress(path: Path) -> dict[str, FileProgress]:
    """Per source: the window rows ``path`` holds and whether a clean summary says it is done."""
    out: dict[str, FileProgress] = {}
    for kind, record in _records(path):
        source = str(record.get("source") or "")
        if not source:
            continue
        progress = out.setdefault(source, FileProgress())
        if kind == "window":
            scores = row_to_scores(record)
            if scores is not None:
                progress.rows.append(scores)
                progress.last_start_s = max(progress.last_start_s, scores.start_s)
        elif kind == "summary":
            progress.complete = (record.get("error") or "") == ""
    return out


class SkipWritten:
    """Wraps a sink: drops windows that sink already holds (``start_s`` up to its last row)."""

    def __init__(self, sink: Sink, last_start_s: dict[str, float]) -> None:
        self.sink = sink
        self._last = last_start_s

    def write(self, result: WindowScores) -> None:
        if result.start_s > self._last.get(result.stream.source, -math.inf) + _EPS_S:
            self.sink.write(result)

    def close(self) -> None:
        self.sink.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)


class SkipWindows:
    """Wraps a :class:`Windower`: windows starting at or before ``through_sample`` are dropped.

    They never reach the model; their samples go back to the pool. ``warm`` (the
    stream's speech gate) sees the dropped windows of the last window length before
    the resume point only, so a gate that carries state from frame to frame (Silero)
    enters the first new window as it did in the uninterrupted run.
    """

    def __init__(self, windower: Windower, through_sample: int,
                 warm: Callable[[Window], object] | None = None) -> None:
        self._inner = windower
        self._through = through_sample
        self._warm = warm
        self._warm_from = through_sample - 2 * windower.window_samples

    def _keep(self, windows: list[Window]) -> list[Window]:
        kept = []
        for w in windows:
            if w.start_sample > self._through:
                kept.append(w)
                continue
            if self._warm is not None and w.start_sample > self._warm_from:
                self._warm(w)
            self._inner.pool.give(w.samples)
        return kept

    def push(self, chunk: Any) -> list[Window]:
        return self._keep(self._inner.push(chunk))

    def flush(self) -> Window | None:
        tail = self._inner.flush()
        kept = [] if tail is None else self._keep([tail])
        return kept[0] if kept else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass
class ResumePlan:
    """Built from the outputs of the interrupted run; used per file by ``cmd_file``."""

    per_output: list[dict[str, FileProgress]]
    summaries: dict[str, FileProgress]

    def complete(self, source: str) -> bool:
        return self.summaries.get(source, FileProgress()).complete or any(
            p.get(source, FileProgress()).complete for p in self.per_output)

    def last_start_s(self, source: str) -> float:
        """The earliest stop over the outputs: windows after it are scored again."""
        starts = [p[source].last_start_s if source in p else -math.inf for p in self.per_output]
        return min(starts) if starts else -math.inf

    def rows(self, source: str) -> list[WindowScores]:
        """Old rows of ``source`` (from the output that holds most) up to :meth:`last_start_s`."""
        best: list[WindowScores] = []
        for p in self.per_output:
            if source in p and len(p[source].rows) > len(best):
                best = p[source].rows
        last = self.last_start_s(source)
        return [r for r in best if r.start_s <= last + _EPS_S]

    def wrap(self, sinks: list[Sink]) -> list[Sink]:
        """Each sink skips the windows it already holds."""
        out: list[Sink] = []
        for sink, progress in zip(sinks, self.per_output):
            out.append(SkipWritten(sink, {s: p.last_start_s for s, p in progress.items()}))
        return out


def plan_resume(outputs: list[Path], summary: Path | None) -> ResumePlan:
    """Read every output of the interrupted run (``outputs`` in the order of the sinks)."""
    per_output = [read_progress(p) for p in outputs]
    summaries = read_progress(summary) if summary is not None else {}
    return ResumePlan(per_output, summaries)
