"""One monitored stream: chunks in, window scores out, on a shared scoring worker.

This is the API the sources and the WebRTC rooms use::

    async with ScoringWorker(OnnxScorer.load(path)) as worker:
        mon = StreamMonitor(worker, StreamInfo("alice", room="r1", participant="alice"),
                            live=True, hop_samples=16000)
        mon.add_sink(csv_sink)                    # anything with write(WindowScores)/close()
        mon.push_nowait(AudioChunk(start_sample, samples, arrival=time.perf_counter()))
        ...
        snap = mon.snapshot()                     # immutable, for a dashboard
        await mon.finish()                        # end of stream: score the tail, drain
        mon.close()                               # unregister (sinks stay the caller's)

Chunks are mono float32 at ``worker.spec.sample_rate_hz`` (use ``livesqa.audio`` /
``livesqa.sources.convert`` at the edge). ``start_sample`` is the stream's sample
clock: a jump forward is a gap, flagged on the windows it touches.

Live mode (``live=True``) never falls behind: the mailbox keeps only the newest
pending window and counts the dropped ones (``WindowScores.skipped``); pushing
never blocks. Offline mode (files) scores every window; ``await push()`` waits
while ``max_pending`` windows are queued, until half of them are scored
(backpressure keeps memory flat).

Results are delivered on the event loop, in order, to the aggregator and then
to each sink. A sink error stops the stream: ``push``/``finish`` re-raise it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from livesqa.aggregate import Aggregator
from livesqa.errors import ConfigError, LivesqaError
from livesqa.gating import GateConfig, StreamGate, WindowAnalysis
from livesqa.scoring import Job, Scorer, ScoringWorker
from livesqa.types import AudioChunk, Snapshot, StreamInfo, Window, WindowScores
from livesqa.windowing import MIN_CLIP_S, Windower


class Sink(Protocol):
    """Receives every result of a stream, in order, on the event loop."""

    def write(self, result: WindowScores) -> None: ...

    def close(self) -> None: ...


class StreamMonitor:
    """Windows one stream, queues its windows on a shared worker, fans results out to sinks."""

    def __init__(
        self,
        worker: ScoringWorker,
        stream: StreamInfo,
        *,
        live: bool,
        hop_samples: int | None = None,
        gate: GateConfig | None = None,
        max_pending: int = 4,
        history_windows: int = 180,
    ) -> None:
        spec = worker.spec
        self.worker = worker
        self.stream = stream
        self.live = live
        self._offline = not live  # read for every chunk (backlogged)
        self.sample_rate_hz = spec.sample_rate_hz
        self._model_name, self._model_version = spec.name, spec.version
        self.hop_samples = hop_samples or spec.hop_samples
        self.gate = gate or GateConfig()
        self._gate = StreamGate(self.gate, spec.sample_rate_hz)  # per stream: Silero keeps state
        if self._gate.uses_model and not getattr(worker.scorer, "has_speech", False):
            raise ConfigError(f"gate.detector = 'model' needs a model with a speech output; "
                              f"{spec.name} {spec.version} has none (use 'silero')")
        self.max_pending = max(1, max_pending)
        self._resume_at = self.max_pending // 2  # producer resumes at this queue length
        self.windower = Windower(spec.window_samples, self.hop_samples,
                                 min_samples=int(round(MIN_CLIP_S * spec.sample_rate_hz)))
        self.aggregator = Aggregator(
            stream, f"{spec.name} {spec.version}", self.hop_samples / spec.sample_rate_hz,
            history_windows,
        )
        self._loop = asyncio.get_running_loop()
        self._pending: deque[Window] = deque()
        self._skipped_since_last = 0
        self._in_flight = 0  # windows queued or being scored, not yet delivered
        self._idle = asyncio.Event()
        self._idle.set()
        self._space = asyncio.Event()
        self._space.set()
        self._sinks: list[Sink] = []
        self._listeners: list[Callable[[WindowScores], None]] = []
        self.error: BaseException | None = None
        self._closed = False
        worker.register(self)

    # --- consumers -------------------------------------------------------
    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def add_listener(self, callback: Callable[[WindowScores], None]) -> None:
        """Called with each result after the sinks (e.g. to push to a browser)."""
        self._listeners.append(callback)

    def snapshot(self) -> Snapshot:
        return self.aggregator.snapshot()

    # --- producers -------------------------------------------------------
    def push_nowait(self, chunk: AudioChunk) -> bool:
        """Add audio without waiting (live sources; offline mode may queue past max_pending).

        Returns :attr:`backlogged` (offline: the producer should ``await wait_for_space()``),
        so a producer's per-chunk loop needs no second call.
        """
        if self.error is not None:
            raise self.error
        if chunk.arrival == 0.0:
            chunk = dataclasses.replace(chunk, arrival=time.perf_counter())
        windows = self.windower.push(chunk)
        if windows:
            # gate here, on the loop, right after the copy: the samples are hot in this
            # core's cache (on the scoring thread, just after the model, they were cold
            # and the gate cost 3x more); the worker then runs the model only
            windows = [self._analyzed(w) for w in windows]
            self._enqueue(windows)
            return self.backlogged
        return False

    async def push(self, chunk: AudioChunk) -> None:
        """Add audio; offline mode waits while ``max_pending`` windows await scoring."""
        self.push_nowait(chunk)
        await self.wait_for_space()

    @property
    def backlogged(self) -> bool:
        """Offline mode has ``max_pending`` windows waiting: the producer should wait."""
        return self._offline and len(self._pending) >= self.max_pending

    async def wait_for_space(self) -> None:
        """Offline mode, when backlogged: wait until the queue is down to half of ``max_pending``.

        Why half, not one below: resuming at the low-water mark lets the producer
        push several windows per wake-up instead of one, and each wake-up of the
        loop costs more CPU than pushing a window's worth of chunks.
        """
        if not self.backlogged:
            return
        while len(self._pending) > self._resume_at and not self._closed:
            self._raise_error()
            self._space.clear()
            await self._space.wait()
        self._raise_error()

    async def finish(self) -> None:
        """End of stream: score a final window covering the tail, wait for all results."""
        self._raise_error()
        tail = self.windower.flush()
        if tail is not None:
            self._enqueue([self._analyzed(tail)])
        await self.drain()
        self.aggregator.status = "finished"

    async def drain(self) -> None:
        """Wait until every queued window has been delivered (or dropped)."""
        while self._in_flight:
            self._idle.clear()
            await self._idle.wait()
        self._raise_error()

    def close(self) -> None:
        """Unregister from the worker and drop pending windows (idempotent).

        Sinks are not closed: several streams may share one file; their owner closes them.
        """
        if self._closed:
            return
        self._closed = True
        self.worker.unregister(self)
        with self.worker.lock:
            self._in_flight -= len(self._pending)
            self._recycle(self._pending)
            self._pending.clear()
        self._wake()

    def _analyzed(self, window: Window) -> Window:
        """The window with the speech gate's verdict; every queued window passes through here."""
        info = self._gate.analyze(window.start_sample, window.samples)
        return Window(window.index, window.start_sample, window.samples, window.arrival,
                      window.gap, info)

    # --- mailbox side (worker thread) -------------------------------------
    def _enqueue(self, windows: list[Window]) -> None:
        with self.worker.lock:
            if self.live:
                dropped = len(self._pending) + len(windows) - 1
                self._skipped_since_last += dropped
                self._in_flight -= len(self._pending)
                self._recycle(self._pending)
                self._recycle(windows[:-1])
                self._pending.clear()
                self._pending.append(windows[-1])
                self._in_flight += 1
            else:
                self._pending.extend(windows)
                self._in_flight += len(windows)
            self.worker.lock.notify()
        if self._in_flight == 0:
            self._idle.set()

    def _recycle(self, windows: deque[Window] | list[Window]) -> None:
        """Hand the samples of windows nobody will read again back to the windower's pool."""
        for window in windows:
            self.windower.pool.give(window.samples)

    def take_job(self) -> Job | None:
        if not self._pending:
            return None
        window = self._pending.popleft()
        skipped, self._skipped_since_last = self._skipped_since_last, 0
        return lambda scorer: self._score(scorer, window, skipped)

    def _score(self, scorer: Scorer, window: Window, skipped: int) -> None:
        """Worker thread: the model only (the gate ran on the loop, the row is built there)."""
        t0 = time.perf_counter()
        scores: tuple[float, ...] | None = None
        info = window.analysis
        assert info is not None  # queued windows come from _analyzed
        try:
            if self._gate.uses_model:  # the model is the detector: run it, then decide
                rows, probs = scorer.score_with_speech(  # type: ignore[attr-defined]
                    window.samples[np.newaxis, :])
                info = self._gate.with_model_speech(info, probs[0])
                if info.is_speech:
                    scores = tuple(float(v) for v in rows[0])
            elif info.is_speech:
                row = scorer.score(window.samples[np.newaxis, :])[0]
                scores = tuple(float(v) for v in row)
        except BaseException as e:
            self._loop.call_soon_threadsafe(self._fail, e)
            return
        finally:
            self.windower.pool.give(window.samples)  # the model has returned; nobody reads them
        compute_ms = (time.perf_counter() - t0) * 1000.0
        self._loop.call_soon_threadsafe(self._deliver, window, scores, skipped, compute_ms, info)

    # --- delivery (event loop) --------------------------------------------
    def _deliver(self, window: Window, scores: tuple[float, ...] | None, skipped: int,
                 compute_ms: float, info: WindowAnalysis | None = None) -> None:
        """``info``: the gate's final verdict (the model detector's, made on the worker)."""
        now = time.perf_counter()
        info = info or window.analysis
        assert info is not None  # set by push_nowait before the window is queued
        sr = self.sample_rate_hz
        result = WindowScores(
            stream=self.stream,
            index=window.index,
            start_s=window.start_sample / sr,
            end_s=window.end_sample / sr,
            wall_time=datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds"),
            scores=scores,
            speech_ratio=info.speech_ratio,
            level_dbfs=info.level_dbfs,
            clipping=info.clipping,
            skipped=skipped,
            gap=window.gap,
            latency_ms=(now - window.arrival) * 1000.0,
            compute_ms=compute_ms,
            model=self._model_name,
            model_version=self._model_version,
        )
        self._publish(result)

    def _publish(self, result: WindowScores) -> None:
        """Hand a scored row to the aggregator, sinks and listeners (windowed and streaming)."""
        self._in_flight -= 1
        try:
            if not self._closed:
                self.aggregator.add(result)
                for sink in self._sinks:
                    sink.write(result)
                for listener in self._listeners:
                    listener(result)
        except LivesqaError as e:
            self._fail(e, counted=True)
            return
        self._wake()

    def _fail(self, error: BaseException, counted: bool = False) -> None:
        if self.error is None:
            self.error = error
        if not counted:
            self._in_flight -= 1
        self.aggregator.status = f"error: {error}"
        self._wake()

    def _wake(self) -> None:
        if len(self._pending) <= self._resume_at or self.error is not None or self._closed:
            self._space.set()
        if self._in_flight <= 0:
            self._idle.set()

    def _raise_error(self) -> None:
        if self.error is not None:
            raise self.error
