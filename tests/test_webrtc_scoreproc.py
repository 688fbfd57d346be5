"""The scoring child process: scores like the in-process monitor, degrades by skipping.

The media loop must never wait for scoring: when the child is stopped (as a starved process
is), the parent drops audio beyond its bound, counts it as skipped windows (not network gaps)
and the latency of the next results shows the lag. A dead child stops the scores, nothing else.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from livesqa.gating import GateConfig
from livesqa.spec import read_spec
from livesqa.types import AudioChunk, StreamInfo, WindowScores
from livesqa.webrtc.scoreproc import ScoringConfig, ScoringProcess

RATE = 16000
TONE_GATE = GateConfig(**({"detector": "energy"} if "detector" in GateConfig.__dataclass_fields__
                          else {}))


def syllables(seconds: float, level: float = 0.2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    on = ((t * 3.0) % 1.0) < 0.6
    return (level * on * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


async def started(model: Path) -> ScoringProcess:
    process = ScoringProcess(ScoringConfig(str(model), RATE // 2, TONE_GATE), read_spec(model))
    await process.start()
    return process


def push(stream: object, audio: np.ndarray, start: int, chunk: int = 320) -> int:
    for pos in range(0, audio.size, chunk):
        stream.push(AudioChunk(start + pos, audio[pos:pos + chunk], time.perf_counter()))  # type: ignore[attr-defined]
    return start + audio.size


async def test_scores_come_back_as_the_model_says(
    tiny_model_path: Path, tiny_expected: Callable[[np.ndarray], np.ndarray]
) -> None:
    process = await started(tiny_model_path)
    try:
        results: list[WindowScores] = []
        stream = process.open("a", StreamInfo("webrtc:r/a", room="r", participant="ann"), results.append)
        audio = syllables(4.0)
        for start in range(0, audio.size, RATE // 2):  # a hop at a time, as a live source does
            push(stream, audio[start:start + RATE // 2], start)
            await asyncio.sleep(0.1)
        assert await stream.close()
        scored = [r for r in results if r.scores is not None]
        # every window is either delivered or counted as skipped (a busy host may skip some)
        assert len(results) + sum(r.skipped for r in results) >= 6
        assert scored and not any(r.gap for r in results)
        for r in scored:
            window = audio[int(r.start_s * RATE):int(r.end_s * RATE)]
            if window.size == 24000:
                np.testing.assert_allclose(r.scores, tiny_expected(window)[0], atol=1e-4)
        assert results[0].stream.participant == "ann"
    finally:
        await process.stop()


async def test_a_stalled_scorer_costs_skipped_windows_not_the_caller(tiny_model_path: Path) -> None:
    process = await started(tiny_model_path)
    pid = process.pid
    assert pid is not None
    try:
        results: list[WindowScores] = []
        stream = process.open("a", StreamInfo("webrtc:r/a"), results.append)
        clock = push(stream, syllables(2.0), 0)
        await asyncio.sleep(1.0)
        os.kill(pid, signal.SIGSTOP)  # as a process the CPU never reaches
        try:
            t0 = time.perf_counter()
            for _ in range(20):  # 20 s of audio handed over while the child is frozen
                clock = push(stream, syllables(1.0), clock)
                await asyncio.sleep(0)  # the loop keeps turning: nothing blocks on the child
            assert time.perf_counter() - t0 < 2.0
            assert process.dropped_chunks > 0 and stream.dropped_total > 0  # type: ignore[attr-defined]
            await asyncio.sleep(1.5)
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(1.0)  # the child catches up on what was queued
        clock = push(stream, syllables(2.0), clock)
        assert await stream.close()
        assert sum(r.skipped for r in results) >= 5  # dropped audio counted as skipped windows
        assert not any(r.gap for r in results)  # ... not as audio lost on the network
        assert max(r.latency_ms for r in results) > 1000.0  # and the lag shows
    finally:
        await process.stop()


async def test_a_dead_scorer_stops_scores_only(tiny_model_path: Path) -> None:
    process = await started(tiny_model_path)
    assert process.pid is not None
    stream = process.open("a", StreamInfo("webrtc:r/a"), lambda r: None)
    os.kill(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while process.alive and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not process.alive and process.error
    push(stream, syllables(1.0), 0)  # no exception, nothing queued
    assert not await stream.close()
    await process.stop()


async def test_a_model_that_does_not_load_is_a_clear_error(tmp_path: Path,
                                                           tiny_model_path: Path) -> None:
    from livesqa.errors import LivesqaError

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    process = ScoringProcess(ScoringConfig(str(broken)), read_spec(tiny_model_path))
    with pytest.raises(LivesqaError, match="scoring process did not start"):
        await process.start()
