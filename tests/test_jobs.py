"""``livesqa file --jobs N``: the same rows as one process, failures as today, dead workers retried."""

from __future__ import annotations

import csv
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import build_tiny_model
from realspeech import speech

from livesqa import cli
from livesqa.config import RuntimeConfig
from livesqa.parallel import job_count, score_files_in_processes
from livesqa.sinks.csv import CsvSink

DIMS = ("mos", "noi", "col", "dis", "loud")


def make_calls(folder: Path, count: int = 6, seconds: float = 5.0) -> list[Path]:
    """Real speech at several rates, lengths and levels, with a silent second (no-speech rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        rate = (16000, 8000, 44100)[i % 3]
        x = speech(seconds + i, rate, offset_s=1.7 * i) * (0.5 + 0.25 * i)
        x[: 2 * rate] = 0.0
        path = folder / f"call{i}.{'flac' if i % 2 else 'wav'}"
        sf.write(path, x, rate)
        out.append(path)
    return out


def rows_by_window(path: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    table = {(Path(r["source"]).name, r["start_s"]): tuple(r[d] for d in DIMS) for r in rows}
    assert len(table) == len(rows), "a window was written twice"
    return table


def as_floats(cells: tuple[str, ...]) -> np.ndarray:
    """CSV score cells as floats; an empty cell (no speech) is NaN."""
    return np.array([float(c) if c else np.nan for c in cells])


def summaries(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {Path(r["source"]).name: r for r in csv.DictReader(f)}


def test_jobs_2_writes_the_same_rows_and_summaries_as_one_process(tmp_path, tiny_model_path,
                                                                 capsys):
    folder = tmp_path / "calls"
    make_calls(folder)
    (folder / "corrupt.flac").write_bytes(b"fLaC" + b"\x00garbage" * 10)
    outs = {}
    for jobs in (1, 2):
        csv_out, summary = tmp_path / f"w{jobs}.csv", tmp_path / f"s{jobs}.csv"
        rc = cli.main(["file", str(folder), "--model", str(tiny_model_path), "--csv",
                       str(csv_out), "--summary", str(summary), "--jobs", str(jobs),
                       "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 1  # the corrupt file
        errors = [line for line in err.splitlines() if line.startswith("livesqa: error:")]
        assert len(errors) == 1 and "corrupt.flac: cannot read audio" in errors[0]
        assert "1 of 7 files failed" in err
        outs[jobs] = (rows_by_window(csv_out), summaries(summary))
    one_rows, one_summary = outs[1]
    two_rows, two_summary = outs[2]
    scored = [k for k, v in one_rows.items() if v[0]]
    assert len(one_rows) > 30 and len(one_rows) > len(scored) > len(one_rows) // 2
    assert two_rows.keys() == one_rows.keys()
    for key, scores in one_rows.items():
        np.testing.assert_allclose(as_floats(two_rows[key]), as_floats(scores), atol=1e-6,
                                   equal_nan=True, err_msg=str(key))
    assert two_summary.keys() == one_summary.keys()
    for name, row in one_summary.items():
        assert {k: v for k, v in two_summary[name].items()} == row, name


def test_jobs_0_means_one_process_per_core():
    assert job_count(0) == len(os.sched_getaffinity(0))
    assert job_count(3) == 3


@pytest.mark.parametrize("extra, words", [
    (["--jobs", "-1"], "--jobs -1"),
    (["--jobs", "2", "--realtime"], "--realtime"),
    (["--jobs", "2", "--cpu", "0"], "--cpu"),
])
def test_jobs_refuses_what_it_cannot_honour_before_opening_outputs(extra, words, tmp_path,
                                                                   tiny_model_path, capsys):
    make_calls(tmp_path / "calls", count=1)
    out = tmp_path / "w.csv"
    rc = cli.main(["file", str(tmp_path / "calls"), "--model", str(tiny_model_path), "--csv",
                   str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and words in err and "Traceback" not in err
    assert not out.exists()


def test_a_worker_killed_mid_file_loses_and_duplicates_nothing(tmp_path):
    """SIGKILL one worker while it scores: its file is scored again by a fresh worker, once."""
    model = build_tiny_model(tmp_path / "slow.onnx", work_layers=6)  # same scores, real compute
    paths = make_calls(tmp_path / "calls", count=4, seconds=40.0)
    expected = tmp_path / "expected.csv"
    sink = CsvSink(expected)
    config = RuntimeConfig(hop_s=0.1)  # many windows per file: the kill lands mid-file
    score_files_in_processes(paths, model, config, [sink], jobs=1)
    sink.close()

    killed: list[int] = []

    def kill_one(seconds: float) -> None:
        if not killed and seconds > 1.0:
            victim = multiprocessing.active_children()[0]
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    out = tmp_path / "w.csv"
    sink = CsvSink(out)
    results = score_files_in_processes(paths, model, config, [sink], jobs=2,
                                       on_progress=kill_one)
    sink.close()
    assert killed, "the run ended before a worker could be killed"
    assert [r.error for r in results] == [None] * len(paths)
    assert [r.stream.source for r in results] == [str(p) for p in paths]  # input order
    assert rows_by_window(out) == rows_by_window(expected)  # nothing lost, nothing twice


def test_sigterm_stops_jobs_2_with_exit_143_and_keeps_whole_files(tmp_path):
    """A real `livesqa file --jobs 2` process gets SIGTERM once a file is written: exit 143,
    no traceback, and the CSV holds only whole files' rows (every row parseable)."""
    model = build_tiny_model(tmp_path / "slow.onnx", work_layers=6)  # real compute per window
    folder = tmp_path / "calls"
    paths = make_calls(folder, count=6, seconds=40.0)
    out = tmp_path / "w.csv"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "livesqa.cli", "file", str(folder), "--model", str(model),
         "--csv", str(out), "--jobs", "2", "--hop", "0.1", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 600.0
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") > 1:  # a header and a file's rows
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "livesqa: interrupted:" in err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(None not in r and None not in r.values() for r in rows)  # no cut lines
    by_file: dict[str, list[float]] = {}
    for r in rows:
        by_file.setdefault(Path(r["source"]).name, []).append(float(r["start_s"]))
    assert 1 <= len(by_file) < len(paths)  # stopped mid-run
    for name, starts in by_file.items():  # each written file is whole: 0, 0.1, ... to its end
        np.testing.assert_allclose(starts, np.arange(len(starts)) * 0.1, atol=1e-6, err_msg=name)
        seconds = sf.info(str(folder / name)).duration
        assert starts[-1] + 1.5 >= seconds - 0.1, name  # the last window reaches the end
