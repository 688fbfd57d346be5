"""The row schema shared by the CSV and JSONL sinks (one row per window).

Why one schema: mic, file and WebRTC rows must fit the same files and the same
downstream scripts. ``room`` and ``participant`` are empty outside WebRTC. Scores
are empty (CSV) / null (JSONL) for windows without speech.
"""

from __future__ import annotations

from livesqa.spec import DIMENSIONS
from livesqa.types import WindowScores

#: Column order of the CSV (and key order of the JSONL objects).
COLUMNS: tuple[str, ...] = (
    "wall_time",  # ISO 8601 with UTC offset, when the score was produced
    "source",
    "room",
    "participant",
    "start_s",  # window start on the stream clock, seconds
    "end_s",
    *DIMENSIONS,  # 1..5, empty when no speech
    "speech_ratio",  # 0..1, fraction of 20 ms frames with active speech
    "level_dbfs",  # window RMS, dBFS (-120 = digital silence)
    "clipping",  # 1 if the window holds clipped samples
    "skipped",  # windows dropped before this one (live mode, scoring too slow)
    "gap",  # 1 if the window holds audio that never arrived (filled with silence)
    "latency_ms",  # audio arrival -> score available
    "model",
    "model_version",
)


def result_row(result: WindowScores) -> dict[str, str | float | int | None]:
    """One window as a flat dict in :data:`COLUMNS` order (values typed for JSON)."""
    row: dict[str, str | float | int | None] = {
        "wall_time": result.wall_time,
        "source": result.stream.source,
        "room": result.stream.room,
        "participant": result.stream.participant,
        "start_s": round(result.start_s, 3),
        "end_s": round(result.end_s, 3),
    }
    for k, name in enumerate(DIMENSIONS):
        row[name] = None if result.scores is None else round(result.scores[k], 4)
    row.update(
        speech_ratio=round(result.speech_ratio, 3),
        level_dbfs=round(result.level_dbfs, 2),
        clipping=int(result.clipping),
        skipped=result.skipped,
        gap=int(result.gap),
        latency_ms=round(result.latency_ms, 2),
        model=result.model,
        model_version=result.model_version,
    )
    return row
