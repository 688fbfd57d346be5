"""Streaming scorer: one ONNX state per stream, each chunk of audio encoded once.

Why: a windowed model re-encodes its whole window (4 s) every hop (1 s). A streaming model
(spec ``extra.kind == "streaming"``, exported by ``python -m train export-streaming``) takes
one chunk plus the stream's state and returns the scores of the window ending with that
chunk plus the new state. This module keeps those states, cuts pushed audio into chunks,
resets a stream on a gap, and runs the due chunks of several streams in one ONNX Runtime
call (state tensors have a leading batch axis).

Use::

    scorer = StreamingScorer.load("model.onnx")
    scorer.push("call-1", samples)               # any number of samples, in order
    for stream, result in scorer.run_due().items():
        print(stream, result.end_sample, result.scores)  # DIMENSIONS order
    last = scorer.flush("call-1")  # end of stream: its remaining samples as a partial chunk

Partial chunks: a model whose spec has ``min_chunk_samples`` (exported with a dynamic audio
length) also scores a stream's final partial chunk, the whole multiples of that size after
its last whole chunk (:meth:`StreamingScorer.flush`); a partial chunk ends the stream (the
model's state after it must not be continued). Older files score whole chunks only.

Never imports torch. Not thread-safe: call it from one scoring thread.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livesqa.errors import ModelSpecError
from livesqa.spec import DIMENSIONS, INPUT_NAME, OUTPUT_NAME, ModelSpec, read_spec

STREAMING_KIND = "streaming"


def model_kind(spec: ModelSpec) -> str:
    """``"streaming"`` or ``"windowed"`` (models from before streaming carry no kind)."""
    return spec.extra.get("kind", "windowed")


@dataclass(frozen=True)
class StateTensor:
    name: str  # graph input
    output: str  # graph output holding its next value
    shape: tuple[int, ...]  # after the batch axis


@dataclass(frozen=True)
class StreamLayout:
    """What the spec's ``extra.streaming`` JSON promises about the graph's state."""

    chunk_samples: int
    tail_samples: int
    states: tuple[StateTensor, ...]
    min_chunk_samples: int = 0  # > 0: a final partial chunk of whole multiples of this is allowed

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> StreamLayout:
        if model_kind(spec) != STREAMING_KIND:
            raise ModelSpecError(f"model {spec.name} is windowed, not streaming")
        try:
            raw: Any = json.loads(spec.extra.get("streaming", ""))
            states = tuple(
                StateTensor(str(s["name"]), str(s["output"]), tuple(int(d) for d in s["shape"]))
                for s in raw["states"]
            )
            layout = cls(int(raw["chunk_samples"]), int(raw["tail_samples"]), states,
                         int(raw.get("min_chunk_samples", 0)))
        except (ValueError, KeyError, TypeError) as e:
            raise ModelSpecError(f"model {spec.name}: bad streaming state layout ({e})") from e
        names = [s.name for s in states]
        if "tail" not in names or layout.chunk_samples <= 0 or layout.tail_samples < 0:
            raise ModelSpecError(f"model {spec.name}: streaming layout lacks a tail or chunk size")
        m = layout.min_chunk_samples
        if m < 0 or (m and layout.chunk_samples % m):
            raise ModelSpecError(f"model {spec.name}: min_chunk_samples {m} does not divide the "
                                 f"chunk of {layout.chunk_samples}")
        return layout

    @property
    def partial_chunks(self) -> bool:
        """Whether the graph scores a stream's final partial chunk."""
        return self.min_chunk_samples > 0

    def partial_samples(self, remaining: int) -> int:
        """Samples of ``remaining`` (after the last whole chunk) a final partial chunk scores:
        whole multiples of ``min_chunk_samples``, below one chunk; 0 when none."""
        if not self.partial_chunks or remaining <= 0:
            return 0
        return min(remaining, self.chunk_samples - 1) // self.min_chunk_samples * self.min_chunk_samples


@dataclass
class ChunkResult:
    """Scores of the window that ends at ``end_sample`` (stream samples since its start)."""

    end_sample: int
    scores: np.ndarray  # [5] float32, DIMENSIONS order


@dataclass
class _Stream:
    state: dict[str, np.ndarray]
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    primed: bool = False
    next_sample: int = 0  # stream position of the next pushed sample
    consumed: int = 0  # stream samples handed to the model (tail + chunks)
    resets: int = 0


class StreamingScorer:
    """Per-stream state for a streaming ONNX model; batches due chunks across streams."""

    def __init__(self, spec: ModelSpec, session: Any, path: Path, max_batch: int = 64) -> None:
        self.spec = spec
        self.layout = StreamLayout.from_spec(spec)
        self.path = path
        self.max_batch = max(1, max_batch)
        self._session = session
        self._order = [spec.output_names.index(d) for d in DIMENSIONS]
        self._outputs = [OUTPUT_NAME] + [s.output for s in self.layout.states]
        self._streams: dict[Hashable, _Stream] = {}
        self.calls = 0

    @classmethod
    def load(cls, path: str | Path, max_batch: int = 64) -> StreamingScorer:
        import onnxruntime as ort

        from livesqa.scoring import session_options

        p = Path(path)
        spec = read_spec(p)
        missing = [d for d in DIMENSIONS if d not in spec.output_names]
        if missing:
            raise ModelSpecError(f"{p}: model spec lacks dimensions {missing}")
        session = ort.InferenceSession(str(p), session_options(), providers=["CPUExecutionProvider"])
        scorer = cls(spec, session, p, max_batch)
        have = {i.name for i in session.get_inputs()}
        want = {INPUT_NAME, *(s.name for s in scorer.layout.states)}
        if have != want:
            raise ModelSpecError(f"{p}: graph inputs {sorted(have)} disagree with the spec's "
                                 f"streaming layout {sorted(want)}")
        return scorer

    # --- streams ---------------------------------------------------------
    def _fresh(self) -> dict[str, np.ndarray]:
        return {s.name: np.zeros((1, *s.shape), np.float32) for s in self.layout.states}

    def reset(self, stream: Hashable) -> None:
        """Forget a stream's context: its next sample starts a new stream (new call, gap)."""
        old = self._streams.get(stream)
        self._streams[stream] = _Stream(self._fresh(), resets=0 if old is None else old.resets + 1)

    def close(self, stream: Hashable) -> None:
        self._streams.pop(stream, None)

    def streams(self) -> list[Hashable]:
        return list(self._streams)

    def resets(self, stream: Hashable) -> int:
        return self._streams[stream].resets

    def push(self, stream: Hashable, samples: np.ndarray, start_sample: int | None = None) -> None:
        """Append audio. ``start_sample``: the position of ``samples[0]`` in the stream; if it is
        not where the previous push ended (lost or repeated audio), the stream is reset first."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if stream not in self._streams:
            self.reset(stream)
        st = self._streams[stream]
        if start_sample is not None and start_sample != st.next_sample:
            self.reset(stream)
            st = self._streams[stream]
            st.next_sample = st.consumed = start_sample
        st.next_sample += x.size
        st.pending = np.concatenate([st.pending, x]) if st.pending.size else x.copy()
        if not st.primed and st.pending.size >= self.layout.tail_samples:
            t = self.layout.tail_samples
            st.state["tail"] = st.pending[None, :t].copy()
            st.pending = st.pending[t:]
            st.consumed += t
            st.primed = True

    def due(self) -> list[Hashable]:
        """Streams holding at least one whole chunk."""
        n = self.layout.chunk_samples
        return [k for k, s in self._streams.items() if s.primed and s.pending.size >= n]

    # --- scoring ---------------------------------------------------------
    def flush(self, stream: Hashable) -> ChunkResult | None:
        """End of stream: score its remaining samples as one final partial chunk and close it.

        ``None`` (and the stream is closed all the same) when the model takes whole chunks
        only (no ``min_chunk_samples`` in its spec), the stream never got past its tail, or
        fewer than ``min_chunk_samples`` samples remain. Samples beyond the last whole multiple
        are not scored. A stream with a whole chunk still due is an error: run it first.
        """
        st = self._streams.pop(stream, None)
        if st is None or not st.primed:
            return None
        if st.pending.size >= self.layout.chunk_samples:
            self._streams[stream] = st
            raise ValueError(f"stream {stream!r} has a whole chunk due: run it before flush")
        n = self.layout.partial_samples(st.pending.size)
        if n == 0:
            return None
        feeds = {INPUT_NAME: st.pending[None, :n]}
        feeds.update({t.name: st.state[t.name] for t in self.layout.states})
        try:
            got = self._session.run([OUTPUT_NAME], feeds)
        except Exception as e:  # onnxruntime raises several unrelated types
            raise ModelSpecError(f"{self.path}: the model failed on a partial chunk ({e})") from e
        self.calls += 1
        scores = self._checked(got[0], 1)
        return ChunkResult(st.consumed + n, scores[0, self._order])

    def _checked(self, raw: Any, batch: int) -> np.ndarray:
        from livesqa.models import check_scores

        scores = np.asarray(raw, dtype=np.float32)
        if scores.shape != (batch, len(self.spec.output_names)):
            raise ModelSpecError(f"model output has shape {scores.shape}, want [batch, names]")
        check_scores(self.spec, scores)
        return scores

    def run(self, streams: Iterable[Hashable]) -> dict[Hashable, ChunkResult]:
        """Score one chunk of each given (due) stream, ``max_batch`` streams per ORT call."""
        keys = list(streams)
        out: dict[Hashable, ChunkResult] = {}
        for i in range(0, len(keys), self.max_batch):
            out.update(self._run_batch(keys[i : i + self.max_batch]))
        return out

    def run_due(self) -> dict[Hashable, ChunkResult]:
        """Score one chunk of every due stream."""
        return self.run(self.due())

    def _run_batch(self, keys: list[Hashable]) -> dict[Hashable, ChunkResult]:
        if not keys:
            return {}
        n = self.layout.chunk_samples
        streams = [self._streams[k] for k in keys]
        for k, s in zip(keys, streams):
            if not s.primed or s.pending.size < n:
                raise ValueError(f"stream {k!r} has no whole chunk to score")
        feeds = {INPUT_NAME: np.stack([s.pending[:n] for s in streams])}
        for t in self.layout.states:
            parts = [s.state[t.name] for s in streams]
            feeds[t.name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        try:
            got = self._session.run(self._outputs, feeds)
        except Exception as e:  # onnxruntime raises several unrelated types
            raise ModelSpecError(f"{self.path}: the model failed on a chunk ({e})") from e
        self.calls += 1
        scores = self._checked(got[0], len(keys))
        result: dict[Hashable, ChunkResult] = {}
        for j, (k, s) in enumerate(zip(keys, streams)):
            for t, value in zip(self.layout.states, got[1:]):
                s.state[t.name] = value[j : j + 1]
            s.pending = s.pending[n:]
            s.consumed += n
            result[k] = ChunkResult(s.consumed, scores[j, self._order])
        return result
