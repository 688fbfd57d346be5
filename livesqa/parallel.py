"""``livesqa file --jobs N``: score files in N worker processes, one per core.

Why processes, not threads: the product runs ONNX Runtime with one intra-op thread
per process (``livesqa.scoring``), and the event loop, resampler and speech gate
are Python; N pinned processes scale with cores where threads would share one GIL.
Each worker loads the model once, pins itself to its own core (as ``--cpu`` does),
and scores whole files with the same code as the single-process path
(:func:`livesqa.pipeline.score_file`), so rows and summaries are the same.

The parent owns every output: workers send a file's rows when the file is done and
the parent writes them to the CSV/JSONL sinks, so one file's rows are contiguous
and a file cut short by a dead worker leaves no partial rows. A worker that dies
(OOM killer, signal) gets its file retried once in a fresh worker; a second death
reports that file as failed, like an unreadable file. Files are dispatched longest
first, so the last file to finish is a short one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from livesqa.aggregate import Aggregator
from livesqa.config import RuntimeConfig
from livesqa.errors import AudioInputError, LivesqaError
from livesqa.pipeline import RunResult, score_file
from livesqa.scoring import OnnxScorer
from livesqa.streaming import StreamingScorer
from livesqa.streammonitor import load_any, worker_for
from livesqa.types import StreamInfo, WindowScores

#: Seconds between progress messages from a worker (the bar needs no more).
PROGRESS_EVERY_S = 0.25
#: How often a file is tried when its worker process dies while scoring it.
ATTEMPTS = 2


def job_count(jobs: int) -> int:
    """``--jobs`` as a process count: 0 means one per core this process may use."""
    if jobs < 0:
        raise LivesqaError(f"--jobs {jobs}: must be 0 (one per core) or a positive count")
    if jobs == 0:
        return max(1, len(_cores()))
    return jobs


def _cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class RowCollector:
    """A sink that keeps a file's rows in memory (a worker sends them when the file is done)."""

    def __init__(self) -> None:
        self.rows: list[WindowScores] = []

    def write(self, result: WindowScores) -> None:
        self.rows.append(result)

    def close(self) -> None:
        pass


def score_one(scorer: OnnxScorer | StreamingScorer, config: RuntimeConfig, path: Path,
              on_progress: Callable[[float], None] | None = None,
              ) -> tuple[RunResult, list[WindowScores]]:
    """Score one file with the single-process code path; returns its result and its rows."""
    rows = RowCollector()

    def hook(monitor: Any) -> None:
        if on_progress is not None:
            last = [0.0]

            def listen(r: WindowScores) -> None:
                now = time.monotonic()
                if now - last[0] >= PROGRESS_EVERY_S:
                    last[0] = now
                    on_progress(r.end_s)

            monitor.add_listener(listen)

    async def run() -> RunResult:
        async with worker_for(scorer) as worker:
            return await score_file(path, worker, config, [rows], False, None, hook)

    return asyncio.run(run()), rows.rows


def warm_up(scorer: OnnxScorer | StreamingScorer, config: RuntimeConfig) -> None:
    """Run one synthetic file through the whole path, so no real file pays the first-call costs.

    Why: ONNX Runtime plans memory on its first run, the speech detector loads on first
    use, and decoders and resamplers initialise lazily; a worker's first file was
    several times slower than the next one. Its rows are thrown away.
    """
    import tempfile

    import numpy as np
    import soundfile as sf

    spec = scorer.spec
    rng = np.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(spec.window_samples + spec.hop_samples)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="livesqa-warm-") as tmp:
        path = Path(tmp) / "warm.wav"
        sf.write(path, audio, spec.sample_rate_hz)
        score_one(scorer, config, path)
    if isinstance(scorer, OnnxScorer):  # a streaming model ran on every chunk, speech or not
        scorer.score(audio[np.newaxis, : spec.window_samples])  # the gate may have skipped it


# --- the worker process -------------------------------------------------------------------------


def _worker_main(conn: Connection, cpu: int | None, model_path: str, config: RuntimeConfig) -> None:
    """Load the model once, then score the files the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    try:
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})
        scorer = load_any(model_path)
        warm_up(scorer, config)
        conn.send(("ready", os.getpid()))
        while True:
            job = conn.recv()
            if job is None:
                return
            index, path = job

            def progress(seconds: float, index: int = index) -> None:
                conn.send(("progress", index, seconds))

            result, rows = score_one(scorer, config, Path(path), progress)
            conn.send(("done", index, result, rows))
    except LivesqaError as e:
        conn.send(("fatal", str(e)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the parent is gone or gave up: nothing to report to


@dataclass
class _Worker:
    slot: int
    cpu: int | None
    process: Any
    conn: Connection
    ready: bool = False
    job: int | None = None  # index of the file it is scoring
    progress_s: float = 0.0


@dataclass
class _Plan:
    paths: list[Path]
    durations: list[float]
    todo: list[int] = field(default_factory=list)  # file indices, next to dispatch last
    attempts: dict[int, int] = field(default_factory=dict)


class ProcessPool:
    """N pinned worker processes, each holding the model; the parent dispatches files."""

    def __init__(self, jobs: int, model_path: Path, config: RuntimeConfig) -> None:
        self.jobs = jobs
        self.model_path = str(model_path)
        self.config = config
        self._ctx = get_context("spawn")  # no fork: the parent may run threads (progress bar)
        cores = _cores()
        pin = jobs <= len(cores)  # more jobs than cores: let the OS place them
        self._cpus = [cores[i % len(cores)] if pin else None for i in range(jobs)]
        self.workers: list[_Worker] = []

    def start(self) -> None:
        for slot in range(self.jobs):
            self.workers.append(self._spawn(slot))

    def _spawn(self, slot: int) -> _Worker:
        parent, child = self._ctx.Pipe()
        cpu = self._cpus[slot]
        proc = self._ctx.Process(target=_worker_main, args=(child, cpu, self.model_path,
                                                            self.config),
                                 name=f"livesqa-job{slot}", daemon=True)
        proc.start()
        child.close()
        return _Worker(slot, cpu, proc, parent)

    def replace(self, worker: _Worker) -> _Worker:
        """A dead worker's slot gets a fresh process."""
        worker.conn.close()
        worker.process.join(timeout=1.0)
        fresh = self._spawn(worker.slot)
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def close(self, terminate: bool = False) -> None:
        for w in self.workers:
            if terminate:
                w.process.terminate()
            else:
                try:
                    w.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        for w in self.workers:
            w.process.join(timeout=5.0)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5.0)
            w.conn.close()
        self.workers = []


def _died(path: Path, exitcode: int | None) -> RunResult:
    stream = StreamInfo(source=str(path), description=f"file: {path.name}")
    how = (f"signal {-exitcode}" if exitcode is not None and exitcode < 0
           else f"exit code {exitcode}")
    error = AudioInputError(f"{path}: the worker process died ({how}) while scoring it, "
                            f"{ATTEMPTS} times")
    return RunResult(stream, Aggregator(stream, "", 1.0), error=error)


def score_files_in_processes(
    paths: Sequence[Path],
    model_path: Path,
    config: RuntimeConfig,
    sinks: Sequence[Any],
    jobs: int,
    on_result: Callable[[RunResult], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
    durations: Sequence[float] | None = None,
    stats: dict[str, float] | None = None,
    on_stop: Callable[[int], None] | None = None,
) -> list[RunResult]:
    """Score ``paths`` in ``jobs`` processes; rows go to ``sinks`` file by file, in the parent.

    ``stats`` (optional) gets ``ready_s``, seconds until every worker had loaded the model,
    and ``ready_cpu_s``, the CPU time the workers had used by then (Linux; for benchmarks).

    Returns one result per finished file, in input order. Ctrl-C or SIGTERM stops the
    workers: files in progress get no rows and no result (the caller counts them as not
    scored); ``on_stop`` (optional) gets the signal's number. ``on_progress`` gets the
    audio seconds scored so far, over all files.

    Why the signal handlers only set a flag (and wake the wait through a pipe) instead of
    raising: an exception raised between two ``sink.write`` calls would leave a file's
    rows half written; the loop checks the flag between files' rows instead.
    """
    plan = _Plan(list(paths), list(durations) if durations is not None else [0.0] * len(paths))
    plan.todo = sorted(range(len(paths)), key=lambda i: plan.durations[i])  # pop() = longest
    jobs = max(1, min(jobs, len(paths)))
    pool = ProcessPool(jobs, model_path, config)
    results: dict[int, RunResult] = {}
    start_retried: set[int] = set()  # slots whose worker was killed while loading and restarted
    done_s = 0.0
    import threading

    main_thread = threading.current_thread() is threading.main_thread()
    stop = _StopFlag()
    previous = {}
    if main_thread:  # Ctrl-C and SIGTERM stop the run (signals reach the main thread only)
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop.handler)
    clean = False
    t0 = time.perf_counter()
    try:
        pool.start()
        while plan.todo or any(w.job is not None for w in pool.workers):
            if stop.signum is not None:
                break
            for w in pool.workers:
                if w.ready and w.job is None and plan.todo:
                    w.job = plan.todo.pop()
                    w.progress_s = 0.0
                    try:
                        w.conn.send((w.job, str(plan.paths[w.job])))
                    except (BrokenPipeError, OSError):
                        pass  # it died: its sentinel fires below and the file is retried
            by_handle: dict[Any, _Worker] = {}
            for w in pool.workers:
                by_handle[w.conn] = w
                by_handle[w.process.sentinel] = w
            for handle in wait([*by_handle, stop.read_fd]):
                if stop.signum is not None:
                    break  # workers a group-wide SIGTERM killed are not retried
                if handle == stop.read_fd:
                    continue
                w = by_handle[handle]
                if w not in pool.workers:
                    continue  # replaced earlier in this round
                if handle is w.conn:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is not None:
                        kind = msg[0]
                        if kind == "ready":
                            w.ready = True
                            if stats is not None:  # it has had no file yet: start-up only
                                stats["ready_cpu_s"] = (stats.get("ready_cpu_s", 0.0)
                                                        + process_cpu_s(w.process.pid))
                                if all(x.ready for x in pool.workers):
                                    stats.setdefault("ready_s", time.perf_counter() - t0)
                        elif kind == "progress":
                            w.progress_s = float(msg[2])
                        elif kind == "done":
                            _, index, result, rows = msg
                            for row in rows:
                                for sink in sinks:
                                    sink.write(row)
                            results[index] = result
                            done_s += plan.durations[index]
                            w.job, w.progress_s = None, 0.0
                            if on_result is not None:
                                on_result(result)
                        elif kind == "fatal":
                            raise LivesqaError(f"worker process: {msg[1]}")
                        continue
                # the process ended (or its pipe broke) without saying "done"
                w.process.join(timeout=5.0)
                if w.job is not None:
                    index = w.job
                    plan.attempts[index] = plan.attempts.get(index, 0) + 1
                    if plan.attempts[index] < ATTEMPTS:
                        plan.todo.append(index)  # retried next, by a fresh worker
                    else:
                        result = _died(plan.paths[index], w.process.exitcode)
                        results[index] = result
                        done_s += plan.durations[index]
                        if on_result is not None:
                            on_result(result)
                elif not w.ready:
                    # killed by a signal while loading (the OOM killer, an operator): start it
                    # again, once per slot; a worker that exits by itself cannot load the model
                    code = w.process.exitcode
                    if code is None or code >= 0 or w.slot in start_retried:
                        raise LivesqaError(f"worker process {w.slot} failed to start (exit code {code})")
                    start_retried.add(w.slot)
                pool.replace(w)
            if on_progress is not None:
                on_progress(done_s + sum(w.progress_s for w in pool.workers if w.job is not None))
        clean = stop.signum is None
    except KeyboardInterrupt:  # raised outside the main thread's handlers (not installed)
        stop.signum = stop.signum or signal.SIGINT
    finally:
        pool.close(terminate=not clean)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop.close()
    if stop.signum is not None and on_stop is not None:
        on_stop(int(stop.signum))
    return [results[i] for i in sorted(results)]


class _StopFlag:
    """The signal that asked the run to stop, and a pipe that wakes the dispatch loop's wait."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)

    def handler(self, signum: int, frame: object) -> None:
        if self.signum is None:
            self.signum = signum
        try:
            os.write(self._write_fd, b"x")
        except OSError:
            pass  # the pipe is full: the loop is awake already

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self._write_fd)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc; 0.0 where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def check_args(args: Any) -> None:
    """Refuse option combinations ``--jobs`` cannot honour, before any output is opened."""
    jobs = getattr(args, "jobs", 1)
    if jobs == 1:
        return
    job_count(jobs)
    if getattr(args, "realtime", False):
        raise LivesqaError("--jobs scores as fast as possible; --realtime replays one file "
                           "at a time: use one of them")
    if getattr(args, "cpu", None) is not None:
        raise LivesqaError("--jobs pins each worker to its own core; --cpu pins one process: "
                           "use one of them")


def score_files_with_bar(paths: Sequence[Path], model_path: Path, config: RuntimeConfig,
                         sinks: Sequence[Any], args: Any, progress: Any, console: Any,
                         ) -> tuple[list[RunResult], int | None]:
    """``livesqa file --jobs N``: one progress bar over all workers; failures printed as they come.

    Returns the finished files' results and the signal that stopped the run (None: it ran
    to the end), so a SIGTERM exits 143 like the single-process path.
    """
    from livesqa.commands import _file_duration_s

    durations = [_file_duration_s(p) for p in paths]
    task = None
    if progress is not None:
        task = progress.add_task(f"scoring ({job_count(args.jobs)} processes)",
                                 total=max(sum(durations), 1e-9))

    def on_result(result: RunResult) -> None:
        if result.error is not None:
            console.print(f"livesqa: error: {result.error}", style="red", highlight=False,
                          markup=False, soft_wrap=True)

    def on_progress(seconds: float) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=seconds)

    stopped: list[int] = []
    results = score_files_in_processes(paths, model_path, config, sinks, job_count(args.jobs),
                                       on_result, on_progress, durations, on_stop=stopped.append)
    return results, (stopped[0] if stopped else None)
