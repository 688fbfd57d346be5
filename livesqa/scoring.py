"""Scoring on exactly one CPU core: the ONNX scorer and the worker thread that owns it.

Why one thread: the product promise is "one CPU core per monitor host process", so
ONNX Runtime runs with one intra-op and one inter-op thread, sequentially, on a
single dedicated worker thread. The asyncio loop never runs the model (it would
stall the audio hand-off); it only posts windows and receives results.

Fairness: one :class:`ScoringWorker` serves many streams (one per WebRTC
participant). Each stream owns a mailbox (see ``livesqa.monitor``); the worker
visits mailboxes round-robin and takes one window per visit, so when the core
cannot keep up every stream still gets scored windows (live mailboxes keep only
their newest window and count the rest as skipped).

Use::

    scorer = OnnxScorer.load(model_path)          # or any Scorer (tests use fakes)
    async with ScoringWorker(scorer) as worker:   # starts the thread
        monitor = StreamMonitor(worker, StreamInfo("mic"), live=True)
        ...
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from pathlib import Path
from typing import Protocol

import numpy as np

from livesqa.errors import ModelSpecError
from livesqa.spec import (
    DIMENSIONS,
    INPUT_NAME,
    OUTPUT_NAME,
    SPEECH_OUTPUT_KEY,
    SPEECH_OUTPUT_NAME,
    ModelSpec,
    read_spec,
)
from livesqa.types import FloatArray


class Scorer(Protocol):
    """Anything that maps a batch of windows to scores; must be called from one thread only."""

    spec: ModelSpec

    def score(self, batch: FloatArray) -> np.ndarray:
        """``[batch, window_samples]`` float32 -> ``[batch, 5]`` float32 in DIMENSIONS order."""
        ...


def session_options() -> object:
    """ORT options for one core: 1 intra-op thread, 1 inter-op thread, sequential, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # spinning threads would burn a second core while idle
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class OnnxScorer:
    """An ONNX Runtime session honouring the livesqa contract (``livesqa/spec.py``)."""

    def __init__(self, spec: ModelSpec, session: object, path: Path) -> None:
        self.spec = spec
        self.path = path
        self._session = session
        self._order = [spec.output_names.index(d) for d in DIMENSIONS]
        outputs = {o.name for o in session.get_outputs()}  # type: ignore[attr-defined]
        # a speech head's output (issue #14): the "model" speech gate reads it
        self.has_speech = (spec.extra.get(SPEECH_OUTPUT_KEY) == SPEECH_OUTPUT_NAME
                           and SPEECH_OUTPUT_NAME in outputs)

    @classmethod
    def load(cls, path: str | Path) -> OnnxScorer:
        """Load a model; refuse (``ModelSpecError``) one without a valid spec or the 5 dimensions."""
        import onnxruntime as ort

        p = Path(path)
        spec = read_spec(p)
        missing = [d for d in DIMENSIONS if d not in spec.output_names]
        if missing:
            raise ModelSpecError(f"{p}: model spec lacks dimensions {missing}")
        try:
            session = ort.InferenceSession(
                str(p), session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises several unrelated types
            raise ModelSpecError(f"{p}: not a loadable ONNX model ({e})") from e
        from livesqa.models import check_session

        check_session(spec, session, p)
        return cls(spec, session, p)

    def score(self, batch: FloatArray) -> np.ndarray:
        """Scores in DIMENSIONS order; NaN or out-of-range outputs are a ModelSpecError, never rows."""
        return self._checked(self._run([OUTPUT_NAME], batch)[0], batch)

    def score_with_speech(self, batch: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        """Scores (as :meth:`score`) and frame speech probabilities ``[batch, frames]`` from
        one run; only for a model with the speech output (``has_speech``)."""
        if not self.has_speech:
            raise ModelSpecError(f"{self.path}: the model has no '{SPEECH_OUTPUT_NAME}' output")
        out, speech = self._run([OUTPUT_NAME, SPEECH_OUTPUT_NAME], batch)
        probs = np.asarray(speech, dtype=np.float32)
        if probs.ndim != 2 or probs.shape[0] != batch.shape[0] or not np.all(np.isfinite(probs)):
            raise ModelSpecError(f"{self.path}: speech output has shape {probs.shape} or is not "
                                 "finite, want [batch, frames]")
        return self._checked(out, batch), probs

    def _run(self, names: list[str], batch: FloatArray) -> list[np.ndarray]:
        try:
            return self._session.run(names, {INPUT_NAME: batch})  # type: ignore[attr-defined]
        except Exception as e:  # onnxruntime raises several unrelated types
            raise ModelSpecError(f"{self.path}: the model failed on a window ({e})") from e

    def _checked(self, out: np.ndarray, batch: FloatArray) -> np.ndarray:
        from livesqa.models import check_scores

        scores = np.asarray(out, dtype=np.float32)
        if scores.ndim != 2 or scores.shape != (batch.shape[0], len(self.spec.output_names)):
            raise ModelSpecError(f"model output has shape {scores.shape}, want [batch, names]")
        check_scores(self.spec, scores)
        return scores[:, self._order]


class Job(Protocol):
    """What a mailbox hands the worker: a callable run on the worker thread."""

    def __call__(self, scorer: Scorer) -> None: ...


class Mailbox(Protocol):
    """A stream's queue of pending work, as the worker sees it (implemented by StreamMonitor)."""

    def take_job(self) -> Job | None:
        """Pop the next job, or None if empty. Called on the worker thread under the worker lock."""
        ...


class ScoringWorker:
    """One thread, one scorer, many mailboxes served round-robin."""

    def __init__(self, scorer: Scorer, name: str = "livesqa-scorer") -> None:
        self.scorer = scorer
        self.spec = scorer.spec
        self._name = name
        self._mailboxes: deque[Mailbox] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.busy_s = 0.0  # total time spent running jobs (for RTF/bench)
        self.jobs_done = 0
        self.error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop after the job in progress; pending jobs are abandoned."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    async def __aenter__(self) -> ScoringWorker:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    # --- mailboxes -------------------------------------------------------
    def register(self, mailbox: Mailbox) -> None:
        with self._cond:
            self._mailboxes.append(mailbox)

    def unregister(self, mailbox: Mailbox) -> None:
        with self._cond:
            try:
                self._mailboxes.remove(mailbox)
            except ValueError:
                pass

    def notify(self) -> None:
        """A mailbox got work (called from the event loop; never blocks for long)."""
        with self._cond:
            self._cond.notify()

    @property
    def lock(self) -> threading.Condition:
        """Mailboxes mutate their queues under this lock so the worker sees a consistent state."""
        return self._cond

    # --- the thread ------------------------------------------------------
    def _next_job(self) -> Job | None:
        # one full round at most; rotate so the next search starts after the served mailbox
        for _ in range(len(self._mailboxes)):
            box = self._mailboxes[0]
            self._mailboxes.rotate(-1)
            job = box.take_job()
            if job is not None:
                return job
        return None

    def _run(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
                while job is None and not self._stop:
                    self._cond.wait(timeout=0.5)
                    job = self._next_job()
                if self._stop or job is None:
                    return
            t0 = time.perf_counter()
            try:
                job(self.scorer)
            except BaseException as e:  # keep the thread alive; the job reports its own errors
                self.error = e
            self.busy_s += time.perf_counter() - t0
            self.jobs_done += 1
