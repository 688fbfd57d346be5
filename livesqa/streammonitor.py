"""Streaming models in the monitor pipeline: one model state per stream, due chunks batched.

Why: ``livesqa mic | file | replay | webrtc`` build their rows with
:class:`~livesqa.monitor.StreamMonitor` on a :class:`~livesqa.scoring.ScoringWorker`, which
re-scores a whole window every hop. A streaming model (spec ``extra.kind == "streaming"``,
``livesqa.streaming``) encodes each chunk once and carries a state, so the same commands
need (a) steps instead of windows (``livesqa.stepping``) and (b) a worker that owns the
states and scores the due chunks of all its streams in one ONNX Runtime call. This module
provides both with the same mailbox and row contract, so sources, sinks, the aggregator,
the dashboard and the WebRTC scoring process do not change; :func:`load_any`,
:func:`worker_for` and :func:`hop_for` pick the path by the model's spec.

Rows: one per chunk (the model's hop), from the first chunk of a stream; ``start_s`` /
``end_s`` are the window the score describes (the last ``window`` samples, or since the
state started); the speech gate runs on that window as for windowed models, and a row
without speech has empty scores. The model still runs on every chunk (its state must hear
all the audio), so a silent call costs what a talking one does.

Batching: the worker takes at most one step per stream per call (a stream's next chunk needs
the state its previous one returns) and every stream with a step waiting goes in that call.
An idle worker scores a step as soon as it arrives (no waiting to fill a batch, so no added
latency); when steps arrive faster than single calls clear them, they pile up across streams
and the next call takes them all, which is when batching pays (``results/streaming/``).

End of stream: a model whose spec allows partial chunks (``min_chunk_samples``) gets one
last row over the samples after the last whole chunk (``StepCutter.flush``,
``StreamingScorer.flush``), at the end of every source that ends, as a windowed model gets a
last window aligned to the end; its ``start_s``/``end_s`` are the left context plus those
samples. Older streaming files score whole chunks only.

Live mode: a live monitor keeps at most :data:`LIVE_BACKLOG` steps waiting; an older one is
dropped and counted in ``skipped``, and the stream's state starts again at the next step
(from its ``feed``; that row's window starts there).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from livesqa.config import RuntimeConfig
from livesqa.errors import ConfigError
from livesqa.gating import GateConfig
from livesqa.monitor import StreamMonitor
from livesqa.scoring import OnnxScorer, ScoringWorker
from livesqa.spec import ModelSpec, read_spec
from livesqa.stepping import Step, StepCutter
from livesqa.streaming import STREAMING_KIND, StreamingScorer, model_kind
from livesqa.types import AudioChunk, StreamInfo, WindowScores
from livesqa.windowing import MIN_CLIP_S

#: Steps a live stream may have waiting; more means the worker is behind: drop the oldest.
LIVE_BACKLOG = 2


def is_streaming(spec: ModelSpec) -> bool:
    return model_kind(spec) == STREAMING_KIND


def load_any(path: str | Path) -> OnnxScorer | StreamingScorer:
    """The scorer a model's spec asks for: windowed (:class:`OnnxScorer`) or streaming."""
    p = Path(path)
    if is_streaming(read_spec(p)):
        return StreamingScorer.load(p)
    return OnnxScorer.load(p)


def worker_for(scorer: Any, name: str = "livesqa-scorer") -> ScoringWorker:
    """A streaming scorer gets a :class:`StreamingWorker`; anything else the windowed one."""
    if isinstance(scorer, StreamingScorer):
        return StreamingWorker(scorer, name)
    return ScoringWorker(scorer, name)


def hop_for(config: RuntimeConfig, spec: ModelSpec) -> int:
    """Hop in samples: from the config for windowed models; the chunk for streaming ones.

    A streaming model's hop is fixed when it is exported (a chunk is encoded once, whole),
    so a configured hop that differs is an error rather than silently ignored.
    """
    if not is_streaming(spec):
        return config.hop_samples(spec.sample_rate_hz, spec.hop_samples)
    chunk = spec.hop_samples
    if config.hop_s is not None and config.hop_samples(spec.sample_rate_hz, chunk) != chunk:
        raise ConfigError(
            f"hop {config.hop_s:g} s: the streaming model {spec.name} scores every chunk of "
            f"{chunk / spec.sample_rate_hz:g} s it was exported with; use --hop "
            f"{chunk / spec.sample_rate_hz:g} or --set hop_s=model")
    return chunk


class StreamingWorker(ScoringWorker):
    """One thread and one :class:`StreamingScorer`; each call scores one step of every stream
    that has one waiting (its mailboxes are :class:`StreamingMonitor` s)."""

    def __init__(self, scorer: StreamingScorer, name: str = "livesqa-scorer") -> None:
        super().__init__(scorer, name)  # type: ignore[arg-type]
        self.streaming = scorer
        self._retired: list[Hashable] = []
        self._expect: dict[Hashable, int] = {}  # stream -> end of its last scored step
        self._context: dict[Hashable, int] = {}  # stream -> where its current state began
        self.batches = 0
        self.largest_batch = 0

    def unregister(self, mailbox: Any) -> None:
        super().unregister(mailbox)
        with self._cond:
            self._retired.append(mailbox)  # its state is dropped on the worker thread

    def _take_batch(self) -> list[tuple[StreamingMonitor, Step, int]]:
        batch = []
        for _ in range(len(self._mailboxes)):
            box = self._mailboxes[0]
            self._mailboxes.rotate(-1)
            got = box.take_step()  # type: ignore[attr-defined]
            if got is not None:
                batch.append((box, *got))
        return batch  # type: ignore[return-value]

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._take_batch()
                while not batch and not self._stop:
                    self._cond.wait(timeout=0.5)
                    batch = self._take_batch()
                retired, self._retired = self._retired, []
                stop = self._stop
            for key in retired:
                self.streaming.close(key)
                self._expect.pop(key, None)
                self._context.pop(key, None)
            if stop or not batch:
                return
            t0 = time.perf_counter()
            try:
                self._score(batch)
            except BaseException as e:  # noqa: BLE001 - keep the thread alive; monitors get it
                self.error = e
            self.busy_s += time.perf_counter() - t0
            self.jobs_done += len(batch)

    def _score(self, batch: list[tuple[StreamingMonitor, Step, int]]) -> None:
        scorer = self.streaming
        tail = scorer.layout.tail_samples
        t0 = time.perf_counter()
        for box, step, _ in batch:
            chunk = step.feed.shape[0] - tail  # the whole chunk, or a final partial one
            if step.first or self._expect.get(box) != step.end_sample - chunk:
                scorer.reset(box)  # a new segment, or a step was dropped: start the state here
                scorer.push(box, step.feed, start_sample=step.feed_start)
                self._context[box] = step.feed_start
            else:
                scorer.push(box, step.feed[-chunk:], start_sample=step.end_sample - chunk)
        try:
            results = scorer.run([box for box, step, _ in batch if not step.partial])
            for box, step, _ in batch:  # final partial chunks: one call each (their own length)
                if step.partial:
                    last = scorer.flush(box)  # ends the model's stream
                    if last is None:
                        raise ValueError(f"stream {box!r}: no partial chunk to score")
                    results[box] = last
        except BaseException as e:  # noqa: BLE001 - onnxruntime raises unrelated types
            for box, _, _ in batch:
                scorer.reset(box)
                self._expect.pop(box, None)
                box.failed(e)
            return
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        compute_ms = (time.perf_counter() - t0) * 1000.0 / len(batch)
        for box, step, skipped in batch:
            result = results[box]
            assert result.end_sample == step.end_sample, (result.end_sample, step.end_sample)
            if step.partial:
                self._expect.pop(box, None)  # nothing follows a partial chunk
            else:
                self._expect[box] = step.end_sample
            scores = tuple(float(v) for v in result.scores) if step.analysis.is_speech else None
            box.scored(step, scores, skipped, compute_ms, self._context[box])


class StreamingMonitor(StreamMonitor):
    """A :class:`StreamMonitor` for a streaming model: steps (one per chunk), not windows."""

    def __init__(self, worker: StreamingWorker, stream: StreamInfo, *, live: bool,
                 gate: GateConfig | None = None, max_pending: int = 4,
                 history_windows: int = 180) -> None:
        if not isinstance(worker, StreamingWorker):
            raise TypeError("a StreamingMonitor needs a StreamingWorker (see worker_for)")
        layout = worker.streaming.layout
        super().__init__(worker, stream, live=live, hop_samples=layout.chunk_samples, gate=gate,
                         max_pending=max_pending, history_windows=history_windows)
        spec = worker.spec
        self.windower = StepCutter(  # type: ignore[assignment]  # run_source reads its clock
            spec.window_samples, layout.chunk_samples, layout.tail_samples,
            self._gate.analyze, spec.sample_rate_hz,
            min_chunk_samples=layout.min_chunk_samples,
            min_samples=round(MIN_CLIP_S * spec.sample_rate_hz))

    # --- producer (event loop) -------------------------------------------
    def push_nowait(self, chunk: AudioChunk) -> bool:
        if self.error is not None:
            raise self.error
        if chunk.arrival == 0.0:
            import dataclasses

            chunk = dataclasses.replace(chunk, arrival=time.perf_counter())
        steps = self.windower.push(chunk)  # type: ignore[arg-type]
        if steps:
            self._enqueue(steps)  # type: ignore[arg-type]
            return self.backlogged
        return False

    async def finish(self) -> None:
        """End of stream: score the final partial chunk if the model allows it (else it is not
        scored), and wait for every step's row."""
        self._raise_error()
        last = self.windower.flush()  # type: ignore[attr-defined]
        if last is not None:
            self._enqueue([last])  # type: ignore[list-item]
        await self.drain()
        self.aggregator.status = "finished"

    def _enqueue(self, steps: list[Step]) -> None:  # type: ignore[override]
        with self.worker.lock:
            self._pending.extend(steps)  # type: ignore[arg-type]
            self._in_flight += len(steps)
            if self.live:
                while len(self._pending) > LIVE_BACKLOG:
                    self._pending.popleft()
                    self._in_flight -= 1
                    self._skipped_since_last += 1
            self.worker.lock.notify()
        if self._in_flight == 0:
            self._idle.set()

    def _recycle(self, windows: Any) -> None:
        pass  # steps own their arrays; nothing to hand back

    # --- worker thread ---------------------------------------------------
    def take_job(self) -> None:
        return None  # a StreamingWorker calls take_step

    def take_step(self) -> tuple[Step, int] | None:
        """Pop the oldest step and the skipped count to report with it (under the worker lock)."""
        if not self._pending:
            return None
        step = self._pending.popleft()
        skipped, self._skipped_since_last = self._skipped_since_last, 0
        return step, skipped  # type: ignore[return-value]

    def scored(self, step: Step, scores: tuple[float, ...] | None, skipped: int,
               compute_ms: float, context_start: int) -> None:
        self._loop.call_soon_threadsafe(self._deliver_step, step, scores, skipped, compute_ms,
                                        context_start)

    def failed(self, error: BaseException) -> None:
        self._loop.call_soon_threadsafe(self._fail, error)

    # --- delivery (event loop) --------------------------------------------
    def _deliver_step(self, step: Step, scores: tuple[float, ...] | None, skipped: int,
                      compute_ms: float, context_start: int) -> None:
        from datetime import UTC, datetime

        now = time.perf_counter()
        info = step.analysis
        sr = self.sample_rate_hz
        result = WindowScores(
            stream=self.stream,
            index=step.index,
            start_s=max(step.start_sample, context_start) / sr,
            end_s=step.end_sample / sr,
            wall_time=datetime.now(UTC).astimezone().isoformat(timespec="milliseconds"),
            scores=scores,
            speech_ratio=info.speech_ratio,
            level_dbfs=info.level_dbfs,
            clipping=info.clipping,
            skipped=skipped,
            gap=step.gap,
            latency_ms=(now - step.arrival) * 1000.0,
            compute_ms=compute_ms,
            model=self._model_name,
            model_version=self._model_version,
        )
        self._publish(result)


def make_stream_monitor(worker: ScoringWorker, stream: StreamInfo, *, live: bool,
                        hop_samples: int | None, gate: GateConfig, max_pending: int,
                        history_windows: int) -> StreamMonitor:
    """The monitor a worker's model needs (``hop_samples`` from :func:`hop_for`)."""
    if isinstance(worker, StreamingWorker):
        return StreamingMonitor(worker, stream, live=live, gate=gate, max_pending=max_pending,
                                history_windows=history_windows)
    return StreamMonitor(worker, stream, live=live, hop_samples=hop_samples, gate=gate,
                         max_pending=max_pending, history_windows=history_windows)


__all__ = ["LIVE_BACKLOG", "StreamingMonitor", "StreamingWorker", "hop_for", "is_streaming",
           "load_any", "make_stream_monitor", "worker_for"]
