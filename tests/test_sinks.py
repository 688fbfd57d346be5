"""CSV/JSONL sinks: schema, row-by-row durability, safe append, refusal of bad paths."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from livesqa.errors import SinkError
from livesqa.sinks.csv import CsvSink
from livesqa.sinks.jsonl import JsonlSink
from livesqa.sinks.schema import COLUMNS
from livesqa.types import StreamInfo, WindowScores


def make_result(index: int = 0, scores=(4.5, 4.0, 3.5, 3.0, 2.5), room: str = "") -> WindowScores:
    return WindowScores(
        stream=StreamInfo("alice" if room else "mic:0", room=room, participant="alice" if room else ""),
        index=index, start_s=index * 1.0, end_s=index * 1.0 + 2.0,
        wall_time="2026-01-01T00:00:00.000+00:00", scores=scores, speech_ratio=0.5,
        level_dbfs=-23.456, clipping=True, skipped=2, gap=False, latency_ms=12.345,
        compute_ms=10.0, model="m", model_version="1",
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(COLUMNS)
    assert all(len(r) == len(COLUMNS) for r in rows[1:]), "a row has the wrong number of cells"
    return [dict(zip(rows[0], r)) for r in rows[1:]]


def test_csv_row_values_and_no_speech_cells(tmp_path):
    path = tmp_path / "call.csv"
    sink = CsvSink(path)
    sink.write(make_result(0))
    sink.write(make_result(1, scores=None, room="r1"))
    rows = read_csv(path)  # readable while the sink is still open: flushed row by row
    sink.close()
    assert rows[0]["mos"] == "4.5" and rows[0]["loud"] == "2.5"
    assert rows[0]["clipping"] == "1" and rows[0]["skipped"] == "2" and rows[0]["gap"] == "0"
    assert rows[0]["level_dbfs"] == "-23.46" and rows[0]["room"] == ""
    assert rows[1]["mos"] == "" and rows[1]["room"] == "r1" and rows[1]["participant"] == "alice"


def test_appending_continues_the_file_and_cuts_a_partial_row(tmp_path):
    path = tmp_path / "call.csv"
    sink = CsvSink(path)
    sink.write(make_result(0))
    sink.close()
    with open(path, "a") as f:
        f.write("2026-01-01T00:00:01,mic:0,,,1.0,3")  # a row cut by a killed process
    sink = CsvSink(path)
    sink.write(make_result(1))
    sink.close()
    rows = read_csv(path)
    assert [r["start_s"] for r in rows] == ["0.0", "1.0"]


def test_csv_survives_a_killed_process(tmp_path):
    path = tmp_path / "killed.csv"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_sinks import make_result
        from livesqa.sinks.csv import CsvSink
        sink = CsvSink({str(path)!r})
        i = 0
        while True:
            sink.write(make_result(i))
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 50_000):
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert path.stat().st_size >= 50_000
    sink = CsvSink(path)  # reopen after the kill: the partial last row (if any) is cut
    sink.write(make_result(10**6))
    sink.close()
    rows = read_csv(path)
    assert len(rows) > 100
    starts = [float(r["start_s"]) for r in rows[:-1]]
    assert starts == [float(i) for i in range(len(starts))]  # nothing lost but the cut row
    assert rows[-1]["start_s"] == "1000000.0"


def test_unwritable_paths_are_refused_with_one_line(tmp_path):
    with pytest.raises(SinkError, match="cannot open for writing"):
        CsvSink(tmp_path / "no" / "such" / "dir" / "x.csv")
    with pytest.raises(SinkError, match="is a directory"):
        CsvSink(tmp_path)
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(SinkError, match="different columns"):
        CsvSink(other)
    if os.geteuid() != 0:  # root ignores permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(SinkError):
            CsvSink(ro / "x.csv")


def test_jsonl_lines_and_summary(tmp_path):
    path = tmp_path / "call.jsonl"
    sink = JsonlSink(path)
    sink.write(make_result(0))
    sink.write(make_result(1, scores=None))
    sink.write_summary({"source": "mic:0", "mean_mos": 4.5, "level": float("-inf")})
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["window", "window", "summary"]
    assert list(lines[0])[1:] == list(COLUMNS)
    assert lines[0]["mos"] == 4.5 and lines[1]["mos"] is None and lines[2]["level"] is None
