"""Rolling aggregation of window results into an immutable :class:`Snapshot`.

Why separate from the monitor: aggregation is pure bookkeeping (no threads, no
I/O), so the dashboard, the end-of-call summary and the file summary all read the
same numbers, and tests can feed it results directly.

Means and worst values use only windows with speech: a silent window is "no
speech", never a low score. Memory is bounded: the history keeps the last
``history_windows`` entries and latency percentiles use the last 256 results.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from livesqa.spec import DIMENSIONS
from livesqa.types import DimensionState, Snapshot, StreamInfo, WindowScores

LATENCY_SAMPLES = 256


@dataclass(frozen=True)
class DimensionSummary:
    """Per-dimension summary of a call or file: mean and worst window."""

    name: str
    mean: float | None
    worst: float | None
    worst_start_s: float | None
    worst_end_s: float | None


class Aggregator:
    """Accumulates :class:`WindowScores` of one stream; ``snapshot()`` is cheap and immutable."""

    def __init__(
        self, stream: StreamInfo, model: str, hop_s: float, history_windows: int = 180
    ) -> None:
        self.stream = stream
        self.model = model
        self.hop_s = hop_s
        self._history: deque[tuple[float, ...] | None] = deque(maxlen=max(1, history_windows))
        self._sums = np.zeros(len(DIMENSIONS))
        self._worst: list[tuple[float, float, float] | None] = [None] * len(DIMENSIONS)
        self._latency: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._compute_s = 0.0
        self._last: WindowScores | None = None
        self._last_scored: WindowScores | None = None
        self.windows = 0
        self.scored = 0
        self.skipped = 0
        self.gaps = 0
        self.clipped = 0
        self.status = "waiting for audio"

    def add(self, result: WindowScores) -> None:
        self.windows += 1
        self.skipped += result.skipped
        self.gaps += int(result.gap)
        self.clipped += int(result.clipping)
        self._latency.append(result.latency_ms)
        self._compute_s += result.compute_ms / 1000.0
        self._history.append(result.scores)
        self._last = result
        self.status = "running"
        if result.scores is None:
            return
        self.scored += 1
        self._last_scored = result
        self._sums += np.asarray(result.scores, dtype=np.float64)
        for k, value in enumerate(result.scores):
            worst = self._worst[k]
            if worst is None or value < worst[0]:
                self._worst[k] = (value, result.start_s, result.end_s)

    def summary(self) -> tuple[DimensionSummary, ...]:
        """Mean and worst window per dimension over windows with speech."""
        out = []
        for k, name in enumerate(DIMENSIONS):
            worst = self._worst[k]
            out.append(
                DimensionSummary(
                    name=name,
                    mean=float(self._sums[k] / self.scored) if self.scored else None,
                    worst=worst[0] if worst else None,
                    worst_start_s=worst[1] if worst else None,
                    worst_end_s=worst[2] if worst else None,
                )
            )
        return tuple(out)

    def snapshot(self) -> Snapshot:
        last = self._last
        history = tuple(self._history)
        dims = []
        for k, s in enumerate(self.summary()):
            current = None
            if last is not None and last.scores is not None:
                current = last.scores[k]
            dims.append(
                DimensionState(
                    name=s.name,
                    current=current,
                    mean=s.mean,
                    worst=s.worst,
                    worst_at_s=s.worst_end_s,
                    history=tuple(None if h is None else h[k] for h in history),
                )
            )
        lat = np.asarray(self._latency) if self._latency else None
        audio_s = self.windows * self.hop_s
        return Snapshot(
            stream=self.stream,
            model=self.model,
            dimensions=tuple(dims),
            windows=self.windows,
            scored=self.scored,
            skipped=self.skipped,
            gaps=self.gaps,
            clipped=self.clipped,
            level_dbfs=last.level_dbfs if last else None,
            speech_ratio=last.speech_ratio if last else None,
            latency_p50_ms=float(np.percentile(lat, 50)) if lat is not None else None,
            latency_p95_ms=float(np.percentile(lat, 95)) if lat is not None else None,
            rtf=(self._compute_s / audio_s) if audio_s > 0 else None,
            stream_s=last.end_s if last else 0.0,
            hop_s=self.hop_s,
            status=self.status,
        )


def format_score(value: float | None) -> str:
    """Two decimals, or an en dash for "no speech"/unknown (used by render and summaries)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f}"
