"""The bodies of ``livesqa mic | file | replay | bench`` (argparse lives in ``cli.py``).

Why split from cli.py: the parser must import nothing heavy (``livesqa --help`` is
instant, the webrtc command registers lazily); these functions load the model,
open the outputs *before* capture starts (an unwritable CSV is refused before any
audio is lost), run the pipeline and print the summary. They may print: they are
the CLI's entry points.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from livesqa.config import RuntimeConfig, load_config
from livesqa.errors import AudioInputError, LivesqaError, SinkError
from livesqa.models import find_model
from livesqa.monitor import Sink, StreamMonitor
from livesqa.pipeline import (
    ResumePoint,
    RunResult,
    install_stop_on_sigint,
    make_monitor,
    run_source,
    score_file,
)
from livesqa.scoring import OnnxScorer
from livesqa.sinks.csv import CsvRows, CsvSink
from livesqa.sinks.dashboard import Dashboard
from livesqa.sinks.jsonl import JsonlSink
from livesqa.sinks.render import render_summary
from livesqa.sources import Source
from livesqa.spec import DIMENSIONS
from livesqa.streammonitor import worker_for
from livesqa.types import StreamInfo

if TYPE_CHECKING:
    from livesqa.resume import ResumePlan


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    overrides = list(getattr(args, "overrides", []) or [])
    named = {}
    if getattr(args, "hop", None) is not None:
        named["hop_s"] = (args.hop, f"--hop {args.hop}")
    return load_config(getattr(args, "config", None), overrides, named)


def check_duration(args: argparse.Namespace) -> None:
    """``--duration`` must be a positive, finite number of seconds (else nothing is kept)."""
    import math

    d = getattr(args, "duration", None)
    if d is not None and not (math.isfinite(d) and d > 0):
        raise LivesqaError(f"--duration {d}: must be a positive number of seconds")


def load_scorer(args: argparse.Namespace) -> OnnxScorer:
    """The model's scorer: windowed, or streaming when its spec says so (``livesqa.streammonitor``)."""
    from livesqa.streammonitor import load_any

    return load_any(find_model(getattr(args, "model", None)))  # type: ignore[return-value]


def open_sinks(args: argparse.Namespace, config: RuntimeConfig,
               inputs: list[Path] | None = None) -> tuple[list[Sink], JsonlSink | None]:
    """Open --csv/--jsonl now, so a bad path fails before capture; returns (sinks, jsonl).

    First refuses two options naming one file and an output that is an input
    (``inputs``: the audio and the model), before any file is opened.
    """
    from livesqa.sinks.outputs import check_outputs

    check_outputs({"--csv": getattr(args, "csv", None), "--jsonl": getattr(args, "jsonl", None),
                   "--summary": getattr(args, "summary", None)}, inputs or [])
    sinks: list[Sink] = []
    jsonl: JsonlSink | None = None
    try:
        if getattr(args, "csv", None):
            sinks.append(CsvSink(args.csv, fsync=config.fsync))
        if getattr(args, "jsonl", None):
            jsonl = JsonlSink(args.jsonl, fsync=config.fsync)
            sinks.append(jsonl)
    except SinkError:
        close_sinks(sinks)
        raise
    return sinks, jsonl


def close_sinks(sinks: Sequence[Sink | CsvRows]) -> list[str]:
    """Close every sink, even after one fails; returns one error line per failure."""
    errors = []
    for sink in sinks:
        try:
            sink.close()
        except LivesqaError as e:
            errors.append(f"livesqa: error: {e}")
    return errors


def interrupted_text(result: RunResult) -> str:
    """What the summary says of a run stopped by Ctrl-C/SIGTERM before the end of its audio."""
    return f"interrupted at {result.aggregator.snapshot().stream_s:.1f} s: not complete"


def exit_code(signum: int | None) -> int:
    """128 + the signal number, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM."""
    import signal

    return 128 + int(signum if signum is not None else signal.SIGINT)


def summary_record(result: RunResult, stop_is_end: bool = False) -> dict[str, object]:
    """One summary row; ``stop_is_end``: Ctrl-C is the normal end (mic), not an interruption."""
    agg = result.aggregator
    record: dict[str, object] = {"source": result.stream.source, "windows": agg.windows,
                                 "scored": agg.scored, "no_speech": agg.windows - agg.scored,
                                 "gaps": agg.gaps, "skipped": agg.skipped}
    for d in agg.summary():
        record[f"mean_{d.name}"] = None if d.mean is None else round(d.mean, 4)
        record[f"worst_{d.name}"] = None if d.worst is None else round(d.worst, 4)
        record[f"worst_{d.name}_start_s"] = d.worst_start_s
    record["error"] = "" if result.error is None else str(result.error)
    if result.error is None and result.interrupted and not stop_is_end:
        record["error"] = interrupted_text(result)
    return record


# --- live: mic and replay ---------------------------------------------------------------------


async def _run_live(source: Source, stream: StreamInfo, scorer: OnnxScorer, config: RuntimeConfig,
                    sinks: list[Sink], headless: bool, duration_s: float | None,
                    console: Console) -> RunResult:
    stop = install_stop_on_sigint()
    async with worker_for(scorer) as worker:
        monitor = make_monitor(worker, stream, config, live=True, sinks=sinks)
        if headless:
            return await run_source(source, monitor, duration_s, stop)
        with Dashboard(lambda: [monitor.snapshot()], console, config.refresh_hz):
            return await run_source(source, monitor, duration_s, stop)


def _finish_live(result: RunResult, sinks: list[Sink], jsonl: JsonlSink | None,
                 console: Console, stop_is_end: bool = False) -> int:
    errors = []
    if jsonl is not None:
        try:
            jsonl.write_summary(summary_record(result, stop_is_end))
        except LivesqaError as e:
            errors.append(f"livesqa: error: {e}")
    errors += close_sinks(sinks)
    agg = result.aggregator
    console.line()  # a non-terminal Live display leaves its last line open
    console.print(render_summary(f"call summary · {result.stream.description}", agg.summary(),
                                 agg.windows, agg.scored))
    if agg.skipped:
        console.print(f"{agg.skipped} windows skipped (scoring slower than the hop)")
    for line in errors:
        print(line, file=sys.stderr)
    if result.error is not None:
        print(f"livesqa: error: {result.error}", file=sys.stderr)
        return 1
    if result.interrupted and not stop_is_end:
        print(f"livesqa: {result.stream.source}: {interrupted_text(result)}", file=sys.stderr)
        return exit_code(result.signal)
    return 1 if errors else 0


def _check_live_outputs(args: argparse.Namespace) -> None:
    if args.headless and not (args.csv or args.jsonl):
        raise LivesqaError("--headless needs --csv OUT or --jsonl OUT (nothing would be kept)")
    check_duration(args)


def cmd_mic(args: argparse.Namespace) -> int:
    from livesqa.sources.mic import MicSource

    config = runtime_config(args)
    _check_live_outputs(args)
    scorer = load_scorer(args)
    source = MicSource(scorer.spec.sample_rate_hz, args.device, config.block_s,
                       config.device_timeout_s)
    sinks, jsonl = open_sinks(args, config, [scorer.path])
    stream = StreamInfo(source=f"mic:{source.device.index}", description=source.description)
    console = Console()
    result = asyncio.run(_run_live(source, stream, scorer, config, sinks, args.headless,
                                   args.duration, console))
    return _finish_live(result, sinks, jsonl, console, stop_is_end=True)


def cmd_replay(args: argparse.Namespace) -> int:
    from livesqa.sources.file import FileSource, check_input
    from livesqa.windowing import MIN_CLIP_S

    config = runtime_config(args)
    _check_live_outputs(args)
    path = Path(args.path) if args.path else Path(__file__).resolve().parent / "assets" / "sample_call.flac"
    check_input(path)  # the same words as `livesqa file` for a missing or unreadable file
    scorer = load_scorer(args)
    source = FileSource(path, scorer.spec.sample_rate_hz, MIN_CLIP_S, config.block_s,
                        realtime=True)
    sinks, jsonl = open_sinks(args, config, [path, scorer.path])
    stream = StreamInfo(source=str(path), description=source.description)
    console = Console()
    result = asyncio.run(_run_live(source, stream, scorer, config, sinks, args.headless,
                                   args.duration, console))
    return _finish_live(result, sinks, jsonl, console)


# --- offline: files ---------------------------------------------------------------------------

SUMMARY_COLUMNS = ["source", "windows", "scored", "no_speech", "gaps", "skipped"] + [
    f"{kind}_{d}" for d in DIMENSIONS for kind in ("mean", "worst")
] + [f"worst_{d}_start_s" for d in DIMENSIONS] + ["error"]


def _file_duration_s(path: Path) -> float:
    import soundfile as sf

    from livesqa.sources.file import is_regular_file

    if not is_regular_file(path):  # a named pipe would block sf.info; the scorer reports it
        return 0.0
    try:
        info = sf.info(str(path))
        return float(info.frames) / float(info.samplerate)
    except Exception:  # unreadable files are reported when scored; only the bar is affected
        return 0.0


async def _score_files(paths: list[Path], scorer: OnnxScorer, config: RuntimeConfig,
                       sinks: list[Sink], realtime: bool, progress: Progress | None,
                       console: Console, on_result: Callable[[RunResult], None] | None = None,
                       resume: ResumePlan | None = None) -> tuple[list[RunResult], int | None]:
    """Score ``paths`` in order; returns the results and the signal that stopped the run (if any).

    ``on_result`` gets each file's result as soon as it is done (its summary row is
    written then, so a killed run keeps the summaries of the files it finished).
    """
    results: list[RunResult] = []
    stop = install_stop_on_sigint()
    async with worker_for(scorer) as worker:
        task = None
        if progress is not None:
            total = sum(_file_duration_s(p) for p in paths)
            task = progress.add_task("scoring", total=max(total, 1e-9))
        done_s = 0.0
        for path in paths:
            if stop.is_set():
                break
            point = None
            if resume is not None:
                last = resume.last_start_s(str(path))
                if last > float("-inf"):
                    point = ResumePoint(last, tuple(resume.rows(str(path))))

            def hook(monitor: StreamMonitor, base: float = done_s, name: str = path.name) -> None:
                if progress is not None and task is not None:
                    monitor.add_listener(
                        lambda r: progress.update(task, completed=base + r.end_s,
                                                  description=name))

            if realtime:
                hook_monitors: list[StreamMonitor] = []
                with Dashboard(lambda: [m.snapshot() for m in hook_monitors[-1:]], console,
                               config.refresh_hz):
                    result = await score_file(path, worker, config, sinks, True, stop,
                                              hook_monitors.append, resume=point)
            else:
                result = await score_file(path, worker, config, sinks, False, stop, hook,
                                          resume=point)
            done_s += _file_duration_s(path)
            if progress is not None and task is not None:
                progress.update(task, completed=done_s)
            if result.error is not None:
                console.print(f"livesqa: error: {result.error}", style="red", highlight=False,
                              markup=False, soft_wrap=True)
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results, getattr(stop, "signum", None) if stop.is_set() else None


def _print_summary(out: Console, results: list[RunResult]) -> None:
    """The per-file table on a terminal (fitted to its width); tab-separated text in a pipe."""
    from dataclasses import replace

    from livesqa.sinks.render import FileSummary, file_summary, file_summary_tsv, short_labels

    rows = [FileSummary(r.stream.source, r.aggregator.windows, r.aggregator.scored,
                        r.aggregator.windows - r.aggregator.scored, r.aggregator.gaps,
                        r.aggregator.summary())
            for r in results if r.error is None]
    if out.is_terminal:  # file names as short as still tells them apart; pipes get full paths
        labels = short_labels([r.name for r in rows])
        out.print(file_summary([replace(r, name=n) for r, n in zip(rows, labels, strict=True)],
                               out.width))
    else:
        sys.stdout.write(file_summary_tsv(rows))
        sys.stdout.flush()


def cmd_file(args: argparse.Namespace) -> int:
    from livesqa.sources.file import expand_paths

    config = runtime_config(args)
    problems: list[str] = []  # folders that could not be listed: each is a failure
    paths = expand_paths(args.paths, problems)
    if not paths and not problems:
        raise AudioInputError("no audio files found in " + " ".join(args.paths))
    resuming = bool(getattr(args, "resume", False))
    if resuming and not (args.csv or args.jsonl):
        raise LivesqaError("--resume needs the --csv or --jsonl file of the interrupted run "
                           "(its rows say where each file stopped)")
    if resuming and getattr(args, "jobs", 1) != 1:
        raise LivesqaError("--resume runs with --jobs 1 (the default)")
    scorer = load_scorer(args)
    if resuming and not isinstance(scorer, OnnxScorer):
        raise LivesqaError("--resume needs a windowed model (a streaming model's state needs "
                           "each file from its start: rerun without --resume)")
    sinks, jsonl = open_sinks(args, config, paths + [scorer.path])
    summary_file: CsvSummary | None = None
    output_errors: list[str] = []
    complete_before: list[Path] = []
    console = Console(stderr=True)
    out = Console()

    def report(e: LivesqaError) -> None:
        output_errors.append(f"livesqa: error: {e}")
        console.print(output_errors[-1], style="red", highlight=False, markup=False,
                      soft_wrap=True)

    def write_summary(r: RunResult) -> None:
        """The file's summary row in --jsonl and --summary; an output that fails is dropped."""
        nonlocal jsonl, summary_file
        record = summary_record(r)
        if jsonl is not None:
            try:
                jsonl.write_summary(record)
            except LivesqaError as e:
                report(e)
                jsonl = None
        if summary_file is not None:
            try:
                summary_file.write(record)
            except LivesqaError as e:
                report(e)
                summary_file = None

    results: list[RunResult] = []
    signum: int | None = None
    try:
        if args.summary:
            summary_file = CsvSummary(Path(args.summary))
        for line in problems:
            console.print(f"livesqa: error: {line}", style="red", highlight=False, markup=False,
                          soft_wrap=True)
        plan = None
        scoring_sinks = sinks
        if resuming:
            from livesqa.resume import plan_resume

            outputs = [Path(p) for p in (args.csv, args.jsonl) if p]
            plan = plan_resume(outputs, Path(args.summary) if args.summary else None)
            complete_before = [p for p in paths if plan.complete(str(p))]
            paths = [p for p in paths if not plan.complete(str(p))]
            scoring_sinks = plan.wrap(sinks)
        show = not args.no_progress and not args.realtime
        progress = Progress(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                            console=console, disable=not show, transient=True)
        with progress:
            if getattr(args, "jobs", 1) != 1:
                from livesqa.parallel import score_files_with_bar

                results, signum = score_files_with_bar(paths, scorer.path, config, sinks, args,
                                                       progress if show else None, console)
                for r in results:
                    write_summary(r)
            else:
                results, signum = asyncio.run(_score_files(
                    paths, scorer, config, scoring_sinks, args.realtime,
                    progress if show else None, console, write_summary, plan))
    finally:
        output_errors += close_sinks(sinks + ([summary_file] if summary_file is not None else []))
    if any(r.error is None for r in results):  # an empty table would only hide the error lines
        _print_summary(out, results)
    for line in output_errors[-1:]:
        print(line, file=sys.stderr)  # a close error after the table; earlier ones were shown
    if complete_before:
        print(f"livesqa: --resume: {len(complete_before)} files were already complete "
              "(not scored again)", file=sys.stderr)
    failed = sum(r.error is not None for r in results) + len(problems)
    cut = [r for r in results if r.error is None and r.interrupted]
    not_scored = len(paths) - len(results)
    total = len(paths) + len(problems)
    if cut or not_scored:  # a signal after the last file changed nothing: the run is complete
        print(f"livesqa: interrupted: {len(results) - len(cut) - (failed - len(problems))} of "
              f"{total} files complete, {len(cut)} cut short, {not_scored} not scored; rerun "
              "the same command with --resume to continue after the last row", file=sys.stderr)
        return exit_code(signum)
    if failed:
        print(f"livesqa: {failed} of {total} files failed", file=sys.stderr)
        return 1
    return 1 if output_errors else 0


class CsvSummary(CsvRows):
    """Per-file summary rows (``--summary OUT``): mean and worst window per dimension."""

    def __init__(self, path: Path, fsync: bool = False) -> None:
        super().__init__(path, SUMMARY_COLUMNS, fsync)

    def write(self, record: dict[str, object]) -> None:
        self.write_record(record)


# --- bench ------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from livesqa import affinity, bench

    import math

    config = runtime_config(args)
    if args.windows < 1:
        raise LivesqaError(f"--windows {args.windows}: must be at least 1")
    for option, value in (("--minutes", args.minutes), ("--live-seconds", args.live_seconds)):
        if not (math.isfinite(value) and value > 0):
            raise LivesqaError(f"{option} {value}: must be a positive number")
    if args.json_out and Path(args.json_out).is_dir():
        raise LivesqaError(f"--json {args.json_out}: is a directory, not a file")
    model = find_model(args.model)
    if not args.all_cores and args.cpu is None:
        affinity.pin()  # one core, as deployed (main() already pinned an explicit --cpu)
    if args.streaming:
        from livesqa import streambench

        streaming = find_model(args.streaming)
        report = streambench.compare(model, streaming, rounds=args.windows)
        print(streambench.format_compare(report))
    else:
        if args.pipeline:
            report = bench.bench_pipeline(model, config, minutes=args.minutes,
                                          live_s=args.live_seconds)
        else:
            report = bench.bench_model(model, config, windows=args.windows)
        print(bench.format_report(report))
    if args.json_out:
        try:
            bench.write_json(report, Path(args.json_out))
        except OSError as e:
            raise LivesqaError(f"--json {args.json_out}: cannot write it ({e.strerror or e})") from e
    return 0

