"""``livesqa batch``: score a call archive on a Ray cluster (or a local Ray on this machine).

Built on Ray actors and tasks, not Ray Data. Why: the unit of work is a whole call
(a file of minutes, scored window by window with the same code as ``livesqa file``),
and the output contract is per file: a file's rows are complete or absent, a retry
replaces them, a rerun skips finished files. Ray Data writes shards per block,
not per input file, so "this call's rows are complete" has no place to live there, and
it would hold decoded audio in the object store where a file read on the actor stays
in that actor's memory, one block at a time. With one actor call per file, Ray already
gives what the pipeline needs: files read and resampled on the workers, long-lived
actors that load the model once (one ONNX intra-op thread each, ``num_cpus=1``),
actors restarted and their calls retried when a node or worker dies.

Flow: the driver lists the inputs (local paths on a shared filesystem, or any URI
pyarrow reads: s3://, gs://, hdfs://, file://), skips the files whose summary shard
already exists (resume), and keeps two calls queued per actor (so an actor never
waits on a round trip). Each call reads its file (remote files are copied to the
actor's temporary folder first), scores it, writes ``rows/<key>`` and then
``summary/<key>`` (see :mod:`livesqa.batchstore`), and returns the summary record.
A file the actor cannot read gets an ``errors/<key>`` shard instead (and is tried
again on a rerun).

Ray and pyarrow are the ``[ray]`` extra; nothing else in livesqa imports this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livesqa.batchstore import Output, is_local, list_sources, resolve, shard_key
from livesqa.config import RuntimeConfig
from livesqa.errors import AudioInputError, LivesqaError

RAY_HINT = "livesqa batch needs Ray and pyarrow: pip install 'livesqa[ray]'"
#: Calls queued per actor: one running, one waiting, so no actor idles on a round trip.
IN_FLIGHT_PER_ACTOR = 2
#: A file whose actor dies is tried this many times in all before it is reported failed.
MAX_ATTEMPTS = 3
#: Seconds to wait for a TCP connection to ``--ray ADDRESS`` before calling it unreachable.
CONNECT_TIMEOUT_S = 3.0
#: The port of a ``ray://HOST`` address without one (Ray Client's default).
RAY_CLIENT_PORT = 10001


class FileScorer:
    """What one actor does: score one file (path or URI), write its shards, return a record.

    Plain Python (no Ray): the actor wraps it, and tests run it in-process.
    """

    def __init__(self, model_path: str | Path, config: RuntimeConfig, output: Output,
                 resolver: Callable[[str], tuple[Any, str]] = resolve) -> None:
        from livesqa.parallel import warm_up
        from livesqa.scoring import OnnxScorer

        self.scorer = OnnxScorer.load(model_path)  # once per actor
        warm_up(self.scorer, config)
        import livesqa.commands  # noqa: F401  (imported now, not during the first file)

        if output.fmt == "parquet":
            import pyarrow.parquet  # noqa: F401
        self.config = config
        self.output = output
        self.resolver = resolver
        self._tmp = Path(tempfile.mkdtemp(prefix="livesqa-batch-"))

    def score(self, source: str) -> dict[str, Any]:
        """Score ``source``; rows and summary land in the output. Never raises for bad audio."""
        from livesqa.commands import summary_record
        from livesqa.parallel import score_one
        from livesqa.sinks.schema import result_row

        t0, c0 = time.perf_counter(), time.process_time()
        key = shard_key(source)
        local: Path | None = None
        copied = False
        error: str | None = None
        rows: list[dict[str, Any]] = []
        record: dict[str, Any] = {"source": source}
        try:
            local, copied = self._fetch(source)
            result, windows = score_one(self.scorer, self.config, local)
            record = summary_record(result)
            record["source"] = source
            if result.error is not None:
                error = str(result.error)
            else:
                rows = [result_row(w) for w in windows]
                for r in rows:
                    r["source"] = source
        except LivesqaError as e:
            error = str(e)
        finally:
            if copied and local is not None:
                local.unlink(missing_ok=True)
        if error is not None and local is not None and copied:
            error = error.replace(str(local), source)  # name the URI, not the actor's copy
        if error is not None:
            record["error"] = error
            self.output.write("errors", key, [record])
        else:
            self.output.write("rows", key, rows)
            self.output.write("summary", key, [record])  # last: marks the file complete
        audio_s = float(rows[-1]["end_s"]) if rows else 0.0
        return {"source": source, "key": key, "error": error, "rows": len(rows),
                "audio_s": audio_s, "busy_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0, "pid": os.getpid(),
                "record": record}

    def _fetch(self, source: str) -> tuple[Path, bool]:
        """A local path for ``source``: itself on a local/shared disk, else a temporary copy."""
        filesystem, path = self.resolver(source)
        if is_local(filesystem):
            return Path(path), False
        target = self._tmp / f"{shard_key(source)}{Path(path).suffix}"
        try:
            with filesystem.open_input_stream(path) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except OSError as e:
            target.unlink(missing_ok=True)
            raise AudioInputError(f"{source}: cannot fetch ({e})") from e
        return target, True


class ScoringActor:
    """The Ray actor: a FileScorer whose model comes from the object store (nodes need no copy).

    The model ref arrives with every call, wrapped in a list so Ray passes the ref and
    not the bytes: a restarted actor (its worker died) loads the model again on its
    first call, and constructor arguments stay small (Ray can always restart it).
    """

    def __init__(self, model_name: str, config: RuntimeConfig, output: Output) -> None:
        self.model_name = model_name
        self.config = config
        self.output = output
        self.scorer: FileScorer | None = None

    def load(self, model: list[Any]) -> int:
        """Load the model once per actor process; returns the process id."""
        import ray

        if self.scorer is None:
            path = Path(tempfile.mkdtemp(prefix="livesqa-model-")) / self.model_name
            path.write_bytes(ray.get(model[0]))
            self.scorer = FileScorer(path, self.config, self.output)
        return os.getpid()

    def score(self, model: list[Any], source: str) -> dict[str, Any]:
        self.load(model)
        assert self.scorer is not None
        return self.scorer.score(source)


@dataclass
class BatchReport:
    """What a batch run did, for the CLI and the benchmark."""

    listed: int = 0
    already_done: int = 0
    scored: int = 0
    failed: int = 0
    not_scored: int = 0  # interrupted before they finished
    rows: int = 0
    audio_s: float = 0.0
    busy_s: float = 0.0  # sum of per-file time inside the actors
    wall_s: float = 0.0  # first call submitted to last result
    startup_s: float = 0.0  # ray.init and actors loading the model
    actors: int = 0
    interrupted: bool = False
    signum: int = 2  # which signal interrupted it (SIGINT unless SIGTERM came)
    errors: list[str] = field(default_factory=list)


def ray_available() -> bool:
    try:
        import pyarrow  # noqa: F401
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def init_ray(address: str | None, num_cpus: int | None) -> bool:
    """Join ``address`` (``auto``: the cluster ``ray start`` made), else start one on this machine.

    Returns False when this process was already connected (then nothing is started).
    """
    import logging

    import ray

    if address:
        check_reachable(address)  # Ray itself retries an unreachable address for minutes
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.ERROR)  # its start-up notices are not ours to print
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            # Ray starts workers at niceness 15, below everything else on the machine; a
            # local instance is this user's job, so its actors run at the priority of
            # `livesqa file` (RAY_worker_niceness in the environment still wins)
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
    except Exception as e:  # Ray raises bare Exception too (e.g. a raylet slow to register)
        ray.shutdown()  # whatever half-started is stopped again
        where = address or "a local Ray instance"
        raise LivesqaError(f"cannot start or join {where} ({_first_line(e)})") from e
    return True


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout_s``, naming ``address``, when nothing accepts a connection there.

    Why: ``ray.init`` retries the connection to an address nobody listens at for minutes
    (its GCS and client timeouts), so a typo in ``--ray`` looked like a hang. A TCP connect
    to the cluster's port is what Ray would try first; ``auto`` is resolved as Ray resolves
    it (``RAY_ADDRESS``, then the cluster ``ray start`` recorded on this machine).
    """
    target = _resolve_auto() if address == "auto" else address
    if target is None or target == "local":
        return  # Ray's own lookup decides (it fails fast when there is nothing to find)
    scheme, _, hostport = target.rpartition("://")
    host, sep, port = hostport.rstrip("/").rpartition(":")
    if not sep and scheme == "ray":
        host, port = hostport.rstrip("/"), str(RAY_CLIENT_PORT)
    if not host or not port.isdigit():
        raise LivesqaError(f"--ray {address}: not a Ray address (use auto, HOST:PORT or "
                           f"ray://HOST:{RAY_CLIENT_PORT})")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        where = address if target == address else f"{address} ({target})"
        raise LivesqaError(f"cannot reach the Ray cluster at {where}: {reason} after at most "
                           f"{timeout_s:g} s; check the address and that the cluster is up"
                           ) from e


def _resolve_auto() -> str | None:
    """The address ``ray.init(address="auto")`` would join, or None to leave it to Ray."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # a Ray without this helper: its own lookup decides
        return None
    try:
        return canonicalize_bootstrap_address("auto")
    except ConnectionError as e:  # no running cluster recorded on this machine
        raise LivesqaError(f"--ray auto: {_first_line(e)}") from e
    except Exception:  # noqa: BLE001  (a private helper: anything else, leave it to Ray)
        return None


def run_batch(
    inputs: Sequence[str],
    output: Output,
    model_path: Path,
    config: RuntimeConfig,
    address: str | None = None,
    num_cpus: int | None = None,
    actors: int | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    shutdown: bool = True,
    on_ready: Callable[[list[int]], None] | None = None,
) -> BatchReport:
    """Score every file under ``inputs`` on Ray; finished files of an earlier run are skipped."""
    import ray
    from ray.exceptions import RayError

    report = BatchReport()
    sources = list_sources(inputs)
    if not sources:
        raise AudioInputError("no audio files found in " + " ".join(inputs))
    output.check()  # nothing is created before Ray is up and there is work to do
    done = output.completed()
    todo = [s for s in sources if shard_key(s) not in done]
    report.listed, report.already_done = len(sources), len(sources) - len(todo)
    if on_start is not None:
        on_start(len(todo))
    if not todo:
        return report
    t0 = time.perf_counter()
    started = init_ray(address, num_cpus)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        report.signum = signum
        raise KeyboardInterrupt

    if main_thread:  # SIGTERM ends the run like Ctrl-C: finished files stay, a rerun resumes
        signal.signal(signal.SIGTERM, on_term)
    try:
        output.prepare()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(actors or cpus, len(todo)))
        remote = ray.remote(num_cpus=1, max_restarts=-1,
                            max_task_retries=MAX_ATTEMPTS - 1)(ScoringActor)
        model_ref = ray.put(Path(model_path).read_bytes())
        pool = [remote.remote(Path(model_path).name, config, output)  # type: ignore[attr-defined]
                for _ in range(n)]
        try:  # every actor has loaded the model before the clock starts
            pids = ray.get([a.load.remote([model_ref]) for a in pool])  # type: ignore[attr-defined]
        except RayError as e:
            raise LivesqaError(f"the scoring actors failed to start: {_first_line(e)}") from e
        report.actors = n
        report.startup_s = time.perf_counter() - t0
        if on_ready is not None:
            on_ready(pids)  # the actors' process ids (benchmarks read their CPU time)
        _dispatch(todo, pool, [model_ref], output, report, on_result, ray, RayError)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        report.not_scored = len(todo) - report.scored - report.failed
        if shutdown and started:  # a Ray this call did not start is left as it was
            ray.shutdown()
    return report


def _dispatch(todo: list[str], pool: list[Any], model: list[Any], output: Output,
              report: BatchReport,
              on_result: Callable[[dict[str, Any]], None] | None, ray: Any,
              ray_error: type[BaseException]) -> None:
    queue = list(reversed(todo))  # pop() takes them in listing order
    pending: dict[Any, tuple[Any, str]] = {}
    load = {id(a): 0 for a in pool}
    t0 = time.perf_counter()

    def submit() -> None:
        for actor in pool:
            while queue and load[id(actor)] < IN_FLIGHT_PER_ACTOR:
                source = queue.pop()
                pending[actor.score.remote(model, source)] = (actor, source)
                load[id(actor)] += 1

    try:
        submit()
        while pending:
            # a timeout, so Ctrl-C is seen within a second (a blocking wait ignores it)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in ready:
                actor, source = pending.pop(ref)
                load[id(actor)] -= 1
                try:
                    result = ray.get(ref)
                except ray_error as e:  # the actor died MAX_ATTEMPTS times on this file
                    message = (f"{source}: the Ray worker died {MAX_ATTEMPTS} times while scoring it "
                               f"({e.__class__.__name__})")
                    record = {"source": source, "error": message}
                    output.write("errors", shard_key(source), [record])
                    result = {"source": source, "key": shard_key(source), "error": message,
                              "rows": 0, "audio_s": 0.0, "busy_s": 0.0, "cpu_s": 0.0,
                              "pid": None,
                              "record": record}
                if result["error"] is None:
                    report.scored += 1
                    report.rows += result["rows"]
                    report.audio_s += result["audio_s"]
                else:
                    report.failed += 1
                    report.errors.append(result["error"])
                report.busy_s += result["busy_s"]
                if on_result is not None:
                    on_result(result)
            submit()
    finally:
        report.wall_s = time.perf_counter() - t0


def cmd_batch(args: Any) -> int:
    """``livesqa batch``: list, score on Ray, print failures as they come and a one-line report."""
    import sys

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from livesqa.commands import runtime_config
    from livesqa.models import find_model

    if not ray_available():
        raise LivesqaError(RAY_HINT)
    if args.ray and args.num_cpus is not None:
        raise LivesqaError("--num-cpus sizes a local Ray; a cluster joined with --ray has its own")
    for name in ("num_cpus", "actors"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise LivesqaError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    config = runtime_config(args)
    model = find_model(args.model)
    from livesqa.scoring import OnnxScorer

    OnnxScorer.load(model)  # a bad model is one line here, not an error in every actor
    output = Output(args.out, args.format)
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=console, disable=args.no_progress,
                        transient=True)
    task: list[Any] = []

    def on_start(todo: int) -> None:
        task.append(progress.add_task("scoring on Ray", total=max(todo, 1)))

    def on_result(result: dict[str, Any]) -> None:
        if result["error"] is not None:
            console.print(f"livesqa: error: {result['error']}", style="red", highlight=False,
                          markup=False, soft_wrap=True)
        if task:
            progress.advance(task[0])

    with progress:
        report = run_batch(args.paths, output, model, config, args.ray, args.num_cpus,
                           args.actors, on_result, on_start)
    hours = report.audio_s / 3600.0
    rate = report.scored / report.wall_s if report.wall_s > 0 else 0.0
    print(f"{report.scored} files scored ({hours:.2f} h of audio, {report.rows} rows) in "
          f"{report.wall_s:.1f} s on {report.actors} actors ({rate:.2f} files/s; start-up "
          f"{report.startup_s:.1f} s); {report.already_done} already complete; "
          f"{report.failed} failed; rows in {args.out.rstrip('/')}/rows, "
          f"summaries in {args.out.rstrip('/')}/summary")
    if report.failed or report.not_scored:
        print(f"livesqa: {report.failed} of {report.listed} files failed"
              + (f", {report.not_scored} not scored (interrupted; rerun the same command to "
                 "finish them)" if report.not_scored else ""), file=sys.stderr)
    if report.interrupted:
        return 128 + report.signum  # as a shell reports it: 130 Ctrl-C, 143 SIGTERM
    return 1 if report.failed or report.not_scored else 0


def _first_line(error: BaseException) -> str:
    """Ray errors carry whole remote tracebacks; the user needs the cause, on one line."""
    lines = [x.strip() for x in str(error).splitlines() if x.strip()]
    causes = [x for x in lines if "Error:" in x and not x.startswith("File ")]
    return (causes[-1] if causes else lines[-1] if lines else error.__class__.__name__)[:300]

