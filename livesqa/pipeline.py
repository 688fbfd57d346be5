"""Wiring a source to a monitor, its sinks and (optionally) the dashboard.

source -> EdgeConverter (in the source) -> StreamMonitor (windower -> mailbox) ->
ScoringWorker thread -> aggregator -> sinks. This module only orchestrates: it
runs a source to its end (file), until a duration / Ctrl-C (live), or until the
device is lost, and in every case drains the scorer and leaves the sinks with
complete rows. It never prints; the CLI turns the returned :class:`RunResult`
into text.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livesqa.aggregate import Aggregator
from livesqa.config import RuntimeConfig
from livesqa.errors import AudioInputError, LivesqaError
from livesqa.monitor import Sink, StreamMonitor
from livesqa.scoring import ScoringWorker
from livesqa.sources import Source
from livesqa.sources.file import FileSource
from livesqa.types import StreamInfo, WindowScores
from livesqa.windowing import MIN_CLIP_S, Windower


@dataclass(frozen=True)
class ResumePoint:
    """Where an interrupted run stopped on one file: its last row's start and its rows."""

    last_start_s: float
    rows: tuple[WindowScores, ...] = ()


@dataclass
class RunResult:
    """How a stream ended: its aggregator (summary, counts) and the error that stopped it."""

    stream: StreamInfo
    aggregator: Aggregator
    error: LivesqaError | None = None
    interrupted: bool = False
    signal: int | None = None  # the signal that interrupted it (SIGINT, SIGTERM), if known


def make_monitor(
    worker: ScoringWorker, stream: StreamInfo, config: RuntimeConfig, live: bool,
    sinks: list[Sink] = (),  # type: ignore[assignment]
) -> StreamMonitor:
    from livesqa.streammonitor import hop_for, make_stream_monitor

    spec = worker.spec
    hop = hop_for(config, spec)  # a streaming model's hop is its chunk
    monitor = make_stream_monitor(
        worker, stream, live=live, hop_samples=hop, gate=config.gate,
        max_pending=config.max_pending,
        history_windows=config.history_windows(hop / spec.sample_rate_hz),
    )
    for sink in sinks:
        monitor.add_sink(sink)
    return monitor


async def feed(source: Source, monitor: StreamMonitor) -> None:
    """Push every chunk of ``source`` into ``monitor`` (live: never waits; offline: backpressure)."""
    push = monitor.push_nowait
    async for chunk in source.chunks():
        if push(chunk):  # offline and backlogged; most chunks make no coroutine
            await monitor.wait_for_space()


async def run_source(
    source: Source,
    monitor: StreamMonitor,
    duration_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> RunResult:
    """Run until the source ends, ``duration_s`` (wall clock) passes, ``stop`` is set, or an error.

    Always drains the monitor so every window already captured gets its row.
    """
    result = RunResult(monitor.stream, monitor.aggregator)
    task = asyncio.ensure_future(feed(source, monitor))
    waiters: set[asyncio.Future[object]] = {task}  # type: ignore[arg-type]
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if stopper is not None:
        waiters.add(stopper)  # type: ignore[arg-type]
    try:
        done, _ = await asyncio.wait(waiters, timeout=duration_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            result.interrupted = stopper is not None and stopper in done
            if result.interrupted:
                result.signal = getattr(stop, "signum", None)
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except LivesqaError as e:
        result.error = e
    finally:
        if stopper is not None:
            stopper.cancel()
    try:
        await monitor.finish()
    except LivesqaError as e:
        result.error = result.error or e
    received = monitor.windower.clock - monitor.windower.origin
    if received < monitor.windower.min_samples \
            and result.error is None and not result.interrupted and not monitor.live:
        explain = getattr(monitor.windower, "too_short", None)  # streaming: its own words
        result.error = AudioInputError(
            explain(monitor.stream.source, received / monitor.sample_rate_hz) if explain
            else too_short(monitor.stream.source, received / monitor.sample_rate_hz,
                           monitor.windower.window_samples / monitor.sample_rate_hz))
    if result.error is not None:
        monitor.aggregator.status = f"stopped: {result.error}"
    monitor.close()
    return result


def too_short(source: str, seconds: float, window_s: float) -> str:
    """The one-line error for audio too short to score (shared by file sources and streams)."""
    shown = math.floor(seconds * 100) / 100  # never rounded up onto the limit (0.999 s -> 0.99)
    return (f"{source}: {shown:.2f} s of audio is too short to score: a score needs at least "
            f"{MIN_CLIP_S:g} s (clips from {MIN_CLIP_S:g} s up to the model's {window_s:g} s window "
            "are scored as one window of their own length)")


def install_stop_on_sigint() -> asyncio.Event:
    """An event set by Ctrl-C (SIGINT) or SIGTERM, so the run ends cleanly with a summary."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        stop.signum = signum  # type: ignore[attr-defined]  # exit code 128 + signum
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal, int(sig))
    return stop


async def score_file(
    path: Path,
    worker: ScoringWorker,
    config: RuntimeConfig,
    sinks: list[Sink],
    realtime: bool = False,
    stop: asyncio.Event | None = None,
    on_monitor: Callable[[StreamMonitor], None] | None = None,
    resume: ResumePoint | None = None,
) -> RunResult:
    """Score one file (every window), or replay it in real time; errors come back in the result.

    ``resume`` (``livesqa file --resume``): the windows an interrupted run already
    wrote are dropped before the gate and the model, and counted from their rows.
    """
    stream = StreamInfo(source=str(path), description=f"{'replay' if realtime else 'file'}: {path.name}")
    monitor = make_monitor(worker, stream, config, live=realtime, sinks=sinks)
    if resume is not None and not isinstance(monitor.windower, Windower):
        monitor.close()  # a streaming model's state needs the file from its start
        return RunResult(stream, monitor.aggregator, error=LivesqaError(
            f"{path}: --resume needs a windowed model (a streaming model's state needs the "
            "whole file: rerun without --resume)"))
    if resume is not None:
        from livesqa.resume import SkipWindows

        through = int(round(resume.last_start_s * worker.spec.sample_rate_hz))
        gate = getattr(monitor, "_gate", None)  # a stateful gate is primed on what precedes
        warm = None if gate is None else (lambda w: gate.analyze(w.start_sample, w.samples))
        monitor.windower = SkipWindows(monitor.windower, through, warm)  # type: ignore[assignment]
        for row in resume.rows:
            monitor.aggregator.add(row)
    if on_monitor is not None:
        on_monitor(monitor)
    try:
        source = FileSource(path, worker.spec.sample_rate_hz, min_duration_s=MIN_CLIP_S,
                            block_s=config.block_s if realtime else 0.5, realtime=realtime)
    except LivesqaError as e:
        monitor.close()
        return RunResult(stream, monitor.aggregator, error=e)
    return await run_source(source, monitor, stop=stop)
