"""A streaming model in the monitor pipeline (livesqa/streammonitor.py, livesqa/stepping.py):
`livesqa file`, the monitors and the WebRTC scoring process give the scores of calling
livesqa/streaming.py step by step; due chunks of several streams go in one ONNX call; a long
gap starts a new state, a short one is heard as silence; a windowed model keeps its rows; a
stream's final partial chunk is scored (a file from 1 s, the end of a long one), except with a
file exported before partial chunks.

Here (tests/train) because the random-weight streaming export needs torch; the runtime under
test never imports it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from livesqa.config import RuntimeConfig
from livesqa.pipeline import make_monitor
from livesqa.scoring import OnnxScorer, ScoringWorker
from livesqa.spec import read_spec
from livesqa.streaming import ChunkResult, StreamingScorer
from livesqa.streammonitor import (
    LIVE_BACKLOG,
    StreamingMonitor,
    StreamingWorker,
    load_any,
    worker_for,
)
from livesqa.types import AudioChunk, StreamInfo, WindowScores
from tests.realspeech import speech
from tests.train.test_streaming import model_with_level, streaming_cfg
from train import export_streaming
from train.streaming import StreamingStep

RATE = 16000
K, LEFT = 25, 75  # 1 s chunks and 4 s windows (the shipped layout) on a 2-block d=32 encoder
CHUNK, WINDOW = 640 * K, 640 * (K + LEFT)


@pytest.fixture(scope="module")
def stream_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = model_with_level(streaming_cfg(chunk_frames=K, left_frames=LEFT))
    step = StreamingStep(model, K)
    out = tmp_path_factory.mktemp("stream") / "s.onnx"
    args = export_streaming.parse_args(["--random-init", "x", "--out", str(out)])
    spec = export_streaming.build_spec(args, step, model.cfg, {"stage": "quality"},
                                       model.n_params())
    export_streaming.export_streaming_onnx(step, out, spec)
    return out


def direct(path: Path, x: np.ndarray, start: int = 0, flush: bool = True) -> list[ChunkResult]:
    """The reference: livesqa/streaming.py fed the whole audio, one chunk per call, then (at the
    end of a stream, ``flush``) its final partial chunk."""
    scorer = StreamingScorer.load(path)
    scorer.push("s", x, start_sample=start)
    out = []
    while scorer.due():
        out.append(scorer.run_due()["s"])
    last = scorer.flush("s") if flush else None
    return out if last is None else [*out, last]


def window_starts(ref: list[ChunkResult], context_start: int = 0) -> list[int]:
    """Where each row's window starts: the left context (window - chunk) before its chunk,
    whole or the final partial one, and never before the state's start."""
    starts, prev = [], context_start + 720
    for c in ref:
        starts.append(max(context_start, c.end_sample - (WINDOW - CHUNK) - (c.end_sample - prev)))
        prev = c.end_sample
    return starts


def chunks(x: np.ndarray, start: int = 0, size: int = 320) -> list[AudioChunk]:
    return [AudioChunk(start + a, x[a: a + size], time.perf_counter())
            for a in range(0, x.size, size)]


class Rows:
    def __init__(self) -> None:
        self.rows: list[WindowScores] = []

    def write(self, r: WindowScores) -> None:
        self.rows.append(r)

    def close(self) -> None:
        pass


def check_rows(rows: list[WindowScores], ref: list[ChunkResult], context_start: int = 0,
               gap_rows: set[int] | None = None) -> None:
    assert [round(r.end_s * RATE) for r in rows] == [c.end_sample for c in ref]
    for r, c, start in zip(rows, ref, window_starts(ref, context_start), strict=True):
        assert round(r.start_s * RATE) == start
        if r.scores is not None:
            np.testing.assert_allclose(r.scores, c.scores, atol=1e-5)
    assert sum(r.scores is not None for r in rows) >= len(rows) - 1  # real speech: scored
    if gap_rows is not None:
        assert {i for i, r in enumerate(rows) if r.gap} == gap_rows


async def run_streams(path: Path, streams: dict[str, list[AudioChunk]], live: bool = False
                      ) -> tuple[dict[str, list[WindowScores]], StreamingWorker]:
    """Every stream's audio is queued while the worker waits, then scored and drained."""
    rows = {k: Rows() for k in streams}
    async with worker_for(load_any(path)) as worker:
        assert isinstance(worker, StreamingWorker)
        monitors = {k: StreamingMonitor(worker, StreamInfo(k), live=live, max_pending=10**6)
                    for k in streams}
        for k, m in monitors.items():
            m.add_sink(rows[k])
        with worker.lock:  # the worker cannot take a step until every stream's are queued
            for k, cs in streams.items():
                for c in cs:
                    monitors[k].push_nowait(c)
        for m in monitors.values():
            await m.finish()
            m.close()
    return {k: r.rows for k, r in rows.items()}, worker


def _file_records(model: Path, x: np.ndarray, tmp_path: Path) -> list[dict]:
    """``livesqa file X --jsonl``'s records (window rows and the summary) for the signal ``x``."""
    import soundfile as sf

    from livesqa.cli import main

    wav = tmp_path / "call.wav"
    sf.write(wav, x, RATE, subtype="FLOAT")
    out = tmp_path / "rows.jsonl"
    assert main(["file", str(wav), "--model", str(model), "--jsonl", str(out), "--no-progress"]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_file_command_equals_streaming_step_by_step(stream_model: Path, tmp_path: Path) -> None:
    x = speech(9.5)
    records = _file_records(stream_model, x, tmp_path)
    rows = [r for r in records if r["kind"] == "window"]
    ref = direct(stream_model, x)
    # (9.5 s - 45 ms of context) // 1 s whole chunks, then the last 0.44 s (11 frames of 40 ms)
    assert len(ref) == 10 and ref[-1].end_sample == 720 + 9 * CHUNK + 11 * 640
    assert [r["end_s"] for r in rows] == [round(c.end_sample / RATE, 3) for c in ref]
    assert [r["start_s"] for r in rows] == [round(s / RATE, 3) for s in window_starts(ref)]
    assert rows[0]["start_s"] == 0.0 and rows[-2]["end_s"] - rows[-2]["start_s"] == 4.0
    assert round(rows[-1]["end_s"] - rows[-1]["start_s"], 3) == 3.44  # left context + partial
    scored = [(r, c) for r, c in zip(rows, ref, strict=True) if r["mos"] is not None]
    assert len(scored) >= 9
    for r, c in scored:
        np.testing.assert_allclose([r[d] for d in ("mos", "noi", "col", "dis", "loud")],
                                   c.scores, atol=1e-4)  # rows hold 4 decimals
    assert rows[0]["model"] == read_spec(stream_model).name
    summary = [r for r in records if r["kind"] == "summary"]
    assert summary[0]["windows"] == 10 and summary[0]["error"] == ""


@pytest.fixture(scope="module")
def legacy_model(stream_model: Path) -> Path:
    """The same graph with the spec of a file exported before partial chunks."""
    import dataclasses
    import shutil

    from train.export import write_metadata

    old = stream_model.with_name("legacy.onnx")
    shutil.copy(stream_model, old)
    spec = read_spec(stream_model)
    raw = json.loads(spec.extra["streaming"])
    del raw["min_chunk_samples"]
    write_metadata(old, dataclasses.replace(spec, extra={**spec.extra, "streaming": json.dumps(raw)}))
    return old


def test_a_file_exported_before_partial_chunks_keeps_whole_chunks(
        legacy_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import soundfile as sf

    from livesqa.cli import main

    x = speech(9.5)
    rows = [r for r in _file_records(legacy_model, x, tmp_path) if r["kind"] == "window"]
    ref = direct(legacy_model, x)
    assert len(ref) == 9  # the partial last chunk is not scored
    assert [r["end_s"] for r in rows] == [
        round(c.end_sample / RATE, 3) for c in ref]
    short = tmp_path / "short.wav"
    sf.write(short, speech(1.02), RATE)
    assert main(["file", str(short), "--model", str(legacy_model)]) == 1
    captured = capsys.readouterr()
    assert "a streaming model needs 1.045 s" in captured.out + captured.err


def test_short_files_get_their_partial_chunk_and_under_1_s_a_clear_line(
        stream_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1.02 s (no whole chunk) and 2.9 s files are scored to their last whole 40 ms frame; under
    1 s gets the windowed path's one-line floor, not a traceback."""
    import soundfile as sf

    from livesqa.cli import main

    for seconds, n_rows in ((1.02, 1), (2.9, 3)):
        x = speech(seconds)
        wav = tmp_path / f"{seconds}.wav"
        sf.write(wav, x, RATE, subtype="FLOAT")
        out = tmp_path / f"{seconds}.jsonl"
        assert main(["file", str(wav), "--model", str(stream_model), "--jsonl", str(out),
                     "--no-progress"]) == 0
        rows = [r for r in map(json.loads, out.read_text().splitlines()) if r["kind"] == "window"]
        ref = direct(stream_model, x)
        assert len(rows) == len(ref) == n_rows
        end = 720 + (x.size - 720) // 640 * 640  # every whole 40 ms frame after the context
        assert ref[-1].end_sample == end and rows[-1]["end_s"] == round(end / RATE, 3)
        assert rows[-1]["start_s"] == 0.0  # shorter than a window: the score covers the clip
        for r, c in zip(rows, ref, strict=True):
            if r["mos"] is not None:
                np.testing.assert_allclose([r[d] for d in ("mos", "noi", "col", "dis", "loud")],
                                           c.scores, atol=1e-4)
    short = tmp_path / "short.wav"
    sf.write(short, speech(0.95), RATE)
    assert main(["file", str(short), "--model", str(stream_model)]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "0.95 s" in text and "is too short to score: a score needs at least 1 s" in text
    assert "Traceback" not in text


def test_due_streams_share_one_call_and_equal_one_by_one(stream_model: Path) -> None:
    audio = {f"p{i}": speech(6.0, offset_s=1.3 * i) for i in range(3)}
    rows, worker = asyncio.run(run_streams(stream_model, {k: chunks(x) for k, x in audio.items()}))
    for k, x in audio.items():
        check_rows(rows[k], direct(stream_model, x), gap_rows=set())
    steps = len(direct(stream_model, audio["p0"]))  # whole chunks and the final partial one
    assert worker.largest_batch == 3  # three streams per ORT call for the whole chunks
    # ... and each stream's final partial chunk alone (its own length), as each stream ends
    assert worker.batches == worker.streaming.calls == (steps - 1) + 3


def test_a_long_gap_starts_a_new_state(stream_model: Path) -> None:
    before, after = speech(5.0), speech(6.0, offset_s=2.0)
    resume_at = before.size + 5 * RATE  # 5 s lost: longer than the 4 s window
    rows, _ = asyncio.run(run_streams(stream_model, {"s": chunks(before) + chunks(after, resume_at)}))
    first = direct(stream_model, before, flush=False)  # a gap ends a state, not the stream
    second = direct(stream_model, after, start=resume_at)
    got = rows["s"]
    check_rows(got[: len(first)], first, gap_rows=set())
    check_rows(got[len(first):], second, context_start=resume_at, gap_rows={0})
    # the state was not carried: a continued state would have scored differently
    filled = np.concatenate([before, np.zeros(resume_at - before.size, np.float32), after])
    carried = direct(stream_model, filled)
    at = next(c for c in carried if c.end_sample == second[0].end_sample)
    assert not np.allclose(at.scores, second[0].scores, atol=1e-3)


def test_a_short_gap_is_heard_as_silence_and_flagged(stream_model: Path) -> None:
    before, after = speech(5.0), speech(5.0, offset_s=2.0)
    resume_at = before.size + 4800  # 0.3 s lost (a burst of packets)
    rows, _ = asyncio.run(run_streams(stream_model, {"s": chunks(before) + chunks(after, resume_at)}))
    filled = np.concatenate([before, np.zeros(4800, np.float32), after])
    ref = direct(stream_model, filled)
    hole = (before.size, resume_at)
    flagged = {i for i, c in enumerate(ref)
               if max(0, c.end_sample - WINDOW) < hole[1] and c.end_sample > hole[0]}
    assert 3 <= len(flagged) <= 5
    check_rows(rows["s"], ref, gap_rows=flagged)


def test_live_backlog_drops_old_steps_and_restarts_the_state(stream_model: Path) -> None:
    x = speech(7.0)
    rows, _ = asyncio.run(run_streams(stream_model, {"s": chunks(x)}, live=True))
    got = rows["s"]
    ref = direct(stream_model, x)  # 6 whole chunks and the final partial one
    # the backlog kept the last LIVE_BACKLOG whole steps; the final partial one came at the
    # end, after the worker took them or in place of the older (the worker thread decides)
    assert len(got) in (LIVE_BACKLOG, LIVE_BACKLOG + 1)
    assert got[0].skipped + len(got) == len(ref) and sum(r.skipped for r in got[1:]) == 0
    # the first kept step starts a fresh state from its own context (tail + chunk)
    restart = round(got[0].end_s * RATE) - CHUNK - 720
    fresh = direct(stream_model, x[restart:], start=restart)
    check_rows(got, fresh, context_start=restart)
    assert round(got[0].start_s * RATE) == restart


def test_windowed_model_keeps_its_windows(tiny_model_path: Path) -> None:
    x = speech(7.0)

    async def run() -> tuple[list[WindowScores], object, object]:
        rows = Rows()
        async with worker_for(load_any(tiny_model_path)) as worker:
            monitor = make_monitor(worker, StreamInfo("w"), RuntimeConfig(), live=False,
                                   sinks=[rows])
            for c in chunks(x):
                await monitor.push(c)
            await monitor.finish()
            monitor.close()
        return rows.rows, worker, monitor

    rows, worker, monitor = asyncio.run(run())
    assert type(worker) is ScoringWorker and not isinstance(monitor, StreamingMonitor)
    scorer = OnnxScorer.load(tiny_model_path)
    w = scorer.spec.window_samples
    starts = list(range(0, x.size - w + 1, RATE))
    if x.size - (starts[-1] + w) >= RATE // 2:  # the windower's last window, aligned to the end
        starts.append(x.size - w)
    assert [round(r.start_s * RATE) for r in rows] == starts
    for r, s in zip(rows, starts, strict=True):
        if r.scores is not None:
            np.testing.assert_allclose(r.scores, scorer.score(x[None, s: s + w])[0], atol=1e-6)


def test_cli_refuses_a_hop_or_resume_a_streaming_model_cannot_do(
        stream_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import soundfile as sf

    from livesqa.cli import main

    wav = tmp_path / "c.wav"
    sf.write(wav, speech(3.0), RATE)
    assert main(["file", str(wav), "--model", str(stream_model), "--hop", "0.5"]) != 0
    err = capsys.readouterr().err
    assert "scores every chunk of 1 s" in err and "Traceback" not in err
    csv = tmp_path / "o.csv"
    assert main(["file", str(wav), "--model", str(stream_model), "--csv", str(csv),
                 "--resume"]) != 0
    err = capsys.readouterr().err
    assert "--resume needs a windowed model" in err and "Traceback" not in err


async def test_webrtc_scoring_process_runs_a_streaming_model(stream_model: Path) -> None:
    from livesqa.gating import GateConfig
    from livesqa.webrtc.scoreproc import ScoringConfig, ScoringProcess

    process = ScoringProcess(ScoringConfig(str(stream_model), CHUNK, GateConfig()),
                             read_spec(stream_model))
    await process.start()
    audio = {k: speech(5.0, offset_s=o) for k, o in (("a", 0.0), ("b", 3.0))}
    results: dict[str, list[WindowScores]] = {k: [] for k in audio}
    try:
        streams = {k: process.open(k, StreamInfo(f"webrtc:r/{k}", room="r", participant=k),
                                   results[k].append) for k in audio}
        for a in range(0, 5 * RATE, RATE // 2):  # half a second at a time, both participants
            for k, x in audio.items():
                for c in chunks(x[a: a + RATE // 2], a):
                    streams[k].push(c)
            await asyncio.sleep(0.1)
        for s in streams.values():
            assert await s.close()
    finally:
        await process.stop()
    for k, x in audio.items():
        ref = direct(stream_model, x)
        got = results[k]
        assert got and len(got) + sum(r.skipped for r in got) >= len(ref) - 1
        continuous = got[: next((i for i, r in enumerate(got) if r.skipped), len(got))]
        assert continuous  # rows before any skip (a starved host may skip) equal the reference
        check_rows(continuous, ref[: len(continuous)])


def test_replay_runs_a_streaming_model_live(stream_model: Path, tmp_path: Path) -> None:
    """`livesqa replay` (the live path `mic` shares) with a streaming model, headless."""
    import csv

    import soundfile as sf

    from livesqa.cli import main

    x = speech(3.2)
    wav = tmp_path / "r.wav"
    sf.write(wav, x, RATE, subtype="FLOAT")
    out = tmp_path / "r.csv"
    assert main(["replay", str(wav), "--model", str(stream_model), "--headless",
                 "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    ref = direct(stream_model, x)  # 3 whole chunks and the last 0.12 s (3 frames)
    assert len(rows) + sum(int(r["skipped"]) for r in rows) == len(ref) == 4
    if not any(int(r["skipped"]) for r in rows):  # a starved host may drop a step (live)
        assert [float(r["end_s"]) for r in rows] == [round(c.end_sample / RATE, 3) for c in ref]
        for r, c in zip(rows, ref, strict=True):
            if r["mos"]:
                np.testing.assert_allclose([float(r[d]) for d in ("mos", "noi", "col", "dis",
                                                                  "loud")], c.scores, atol=1e-4)


def test_file_jobs_workers_run_a_streaming_model(stream_model: Path, tmp_path: Path) -> None:
    """`livesqa file --jobs 2`: each worker process loads the streaming scorer and its rows
    equal livesqa/streaming.py step by step."""
    import soundfile as sf

    from livesqa.cli import main

    audio = {tmp_path / f"{i}.wav": speech(3.5 + i, offset_s=i) for i in range(2)}
    for path, x in audio.items():
        sf.write(path, x, RATE, subtype="FLOAT")
    out = tmp_path / "rows.jsonl"
    assert main(["file", *map(str, audio), "--model", str(stream_model), "--jsonl", str(out),
                 "--no-progress", "--jobs", "2"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for path, x in audio.items():
        rows = [r for r in records if r["kind"] == "window" and r["source"] == str(path)]
        ref = direct(stream_model, x)
        assert [r["end_s"] for r in rows] == [round(c.end_sample / RATE, 3) for c in ref]
        for r, c in zip(rows, ref, strict=True):
            if r["mos"] is not None:
                np.testing.assert_allclose([r[d] for d in ("mos", "noi", "col", "dis", "loud")],
                                           c.scores, atol=1e-4)
