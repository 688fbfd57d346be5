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
import csv
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from livesqa.aggregate import format_score
from livesqa.config import RuntimeConfig, load_config
from livesqa.errors import AudioInputError, LivesqaError, SinkError
from livesqa.models import find_model
from livesqa.monitor import Sink, StreamMonitor
from livesqa.pipeline import RunResult, install_stop_on_sigint, make_monitor, run_source, score_file
from livesqa.scoring import OnnxScorer, ScoringWorker
from livesqa.sinks.csv import CsvSink
from livesqa.sinks.dashboard import Dashboard
from livesqa.sinks.jsonl import JsonlSink
from livesqa.sinks.render import render_summary
from livesqa.sources import Source
from livesqa.spec import DIMENSIONS
from livesqa.types import StreamInfo


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    overrides = list(getattr(args, "overrides", []) or [])
    if getattr(args, "hop", None) is not None:
        overrides.append(f"hop_s={args.hop}")
    return load_config(getattr(args, "config", None), overrides)


def load_scorer(args: argparse.Namespace) -> OnnxScorer:
    return OnnxScorer.load(find_model(getattr(args, "model", None)))


def open_sinks(args: argparse.Namespace, config: RuntimeConfig) -> tuple[list[Sink], JsonlSink | None]:
    """Open --csv/--jsonl now, so a bad path fails before capture; returns (sinks, jsonl)."""
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


def close_sinks(sinks: list[Sink]) -> None:
    for sink in sinks:
        sink.close()


def summary_record(result: RunResult) -> dict[str, object]:
    agg = result.aggregator
    record: dict[str, object] = {"source": result.stream.source, "windows": agg.windows,
                                 "scored": agg.scored, "skipped": agg.skipped}
    for d in agg.summary():
        record[f"mean_{d.name}"] = None if d.mean is None else round(d.mean, 4)
        record[f"worst_{d.name}"] = None if d.worst is None else round(d.worst, 4)
        record[f"worst_{d.name}_start_s"] = d.worst_start_s
    record["error"] = "" if result.error is None else str(result.error)
    return record


# --- live: mic and replay ---------------------------------------------------------------------


async def _run_live(source: Source, stream: StreamInfo, scorer: OnnxScorer, config: RuntimeConfig,
                    sinks: list[Sink], headless: bool, duration_s: float | None,
                    console: Console) -> RunResult:
    stop = install_stop_on_sigint()
    async with ScoringWorker(scorer) as worker:
        monitor = make_monitor(worker, stream, config, live=True, sinks=sinks)
        if headless:
            return await run_source(source, monitor, duration_s, stop)
        with Dashboard(lambda: [monitor.snapshot()], console, config.refresh_hz):
            return await run_source(source, monitor, duration_s, stop)


def _finish_live(result: RunResult, sinks: list[Sink], jsonl: JsonlSink | None,
                 console: Console) -> int:
    if jsonl is not None:
        jsonl.write_summary(summary_record(result))
    close_sinks(sinks)
    agg = result.aggregator
    console.line()  # a non-terminal Live display leaves its last line open
    console.print(render_summary(f"call summary · {result.stream.description}", agg.summary(),
                                 agg.windows, agg.scored))
    if agg.skipped:
        console.print(f"{agg.skipped} windows skipped (scoring slower than the hop)")
    if result.error is not None:
        print(f"livesqa: error: {result.error}", file=sys.stderr)
        return 1
    return 0


def cmd_mic(args: argparse.Namespace) -> int:
    from livesqa.sources.mic import MicSource

    config = runtime_config(args)
    if args.headless and not (args.csv or args.jsonl):
        raise LivesqaError("--headless needs --csv OUT or --jsonl OUT (nothing would be kept)")
    scorer = load_scorer(args)
    source = MicSource(scorer.spec.sample_rate_hz, args.device, config.block_s,
                       config.device_timeout_s)
    sinks, jsonl = open_sinks(args, config)
    stream = StreamInfo(source=f"mic:{source.device.index}", description=source.description)
    console = Console()
    result = asyncio.run(_run_live(source, stream, scorer, config, sinks, args.headless,
                                   args.duration, console))
    return _finish_live(result, sinks, jsonl, console)


def cmd_replay(args: argparse.Namespace) -> int:
    from livesqa.sources.file import FileSource

    config = runtime_config(args)
    path = Path(args.path) if args.path else Path(__file__).resolve().parent / "assets" / "sample_call.flac"
    if not path.exists():
        raise AudioInputError(f"{path}: no such file")
    scorer = load_scorer(args)
    source = FileSource(path, scorer.spec.sample_rate_hz, scorer.spec.window_s, config.block_s,
                        realtime=True)
    sinks, jsonl = open_sinks(args, config)
    stream = StreamInfo(source=str(path), description=source.description)
    console = Console()
    result = asyncio.run(_run_live(source, stream, scorer, config, sinks, args.headless,
                                   args.duration, console))
    return _finish_live(result, sinks, jsonl, console)


# --- offline: files ---------------------------------------------------------------------------

SUMMARY_COLUMNS = ["source", "windows", "scored", "skipped"] + [
    f"{kind}_{d}" for d in DIMENSIONS for kind in ("mean", "worst")
] + [f"worst_{d}_start_s" for d in DIMENSIONS] + ["error"]


def _file_duration_s(path: Path) -> float:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return float(info.frames) / float(info.samplerate)
    except Exception:  # unreadable files are reported when scored; only the bar is affected
        return 0.0


async def _score_files(paths: list[Path], scorer: OnnxScorer, config: RuntimeConfig,
                       sinks: list[Sink], realtime: bool, progress: Progress | None,
                       console: Console) -> list[RunResult]:
    results: list[RunResult] = []
    stop = install_stop_on_sigint()
    async with ScoringWorker(scorer) as worker:
        task = None
        if progress is not None:
            total = sum(_file_duration_s(p) for p in paths)
            task = progress.add_task("scoring", total=max(total, 1e-9))
        done_s = 0.0
        for path in paths:
            if stop.is_set():
                break

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
                                              hook_monitors.append)
            else:
                result = await score_file(path, worker, config, sinks, False, stop, hook)
            done_s += _file_duration_s(path)
            if progress is not None and task is not None:
                progress.update(task, completed=done_s)
            if result.error is not None:
                console.print(f"livesqa: error: {result.error}", style="red", highlight=False,
                              markup=False, soft_wrap=True)
            results.append(result)
    return results


def _summary_table(results: list[RunResult]) -> Table:
    table = Table(title="per-file summary: mean / worst window", title_justify="left")
    table.add_column("file", min_width=12, overflow="ellipsis", no_wrap=True)
    table.add_column("speech/win", justify="right", no_wrap=True)
    for d in DIMENSIONS:
        table.add_column(d, justify="right", no_wrap=True)
    for r in results:
        if r.error is not None:
            continue
        row = [Path(r.stream.source).name, f"{r.aggregator.scored}/{r.aggregator.windows}"]
        for s in r.aggregator.summary():
            row.append(f"{format_score(s.mean)}/{format_score(s.worst)}")
        table.add_row(*row)
    return table


def cmd_file(args: argparse.Namespace) -> int:
    from livesqa.sources.file import expand_paths

    config = runtime_config(args)
    paths = expand_paths(args.paths)
    if not paths:
        raise AudioInputError("no audio files found in " + " ".join(args.paths))
    scorer = load_scorer(args)
    sinks, jsonl = open_sinks(args, config)
    summary_file = None
    try:
        if args.summary:
            summary_file = CsvSummary(Path(args.summary))
        console = Console(stderr=True)
        out = Console()
        show = not args.no_progress and not args.realtime
        progress = Progress(TextColumn("{task.description}"), BarColumn(),
                            TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                            console=console, disable=not show, transient=True)
        with progress:
            if getattr(args, "jobs", 1) != 1:
                from livesqa.parallel import score_files_with_bar

                results = score_files_with_bar(paths, scorer.path, config, sinks, args,
                                               progress if show else None, console)
            else:
                results = asyncio.run(_score_files(paths, scorer, config, sinks, args.realtime,
                                                   progress if show else None, console))
        for r in results:
            record = summary_record(r)
            if jsonl is not None:
                jsonl.write_summary(record)
            if summary_file is not None:
                summary_file.write(record)
    finally:
        close_sinks(sinks)
        if summary_file is not None:
            summary_file.close()
    if any(r.error is None for r in results):  # an empty table would only hide the error lines
        out.print(_summary_table(results))
    failed = sum(r.error is not None for r in results)
    skipped = len(paths) - len(results)
    if failed or skipped:
        print(f"livesqa: {failed} of {len(paths)} files failed"
              + (f", {skipped} not scored (interrupted)" if skipped else ""), file=sys.stderr)
        return 1
    return 0


class CsvSummary:
    """Per-file summary rows (``--summary OUT``): mean and worst window per dimension."""

    def __init__(self, path: Path) -> None:
        from livesqa.sinks.appendfile import open_for_append

        self._file = open_for_append(path, ",".join(SUMMARY_COLUMNS))
        self._writer = csv.writer(self._file, lineterminator="\n")

    def write(self, record: dict[str, object]) -> None:
        self._writer.writerow(["" if record.get(c) is None else record.get(c)
                               for c in SUMMARY_COLUMNS])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# --- bench ------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from livesqa import affinity, bench

    config = runtime_config(args)
    model = find_model(args.model)
    if not args.all_cores and args.cpu is None:
        affinity.pin()  # one core, as deployed (main() already pinned an explicit --cpu)
    if args.pipeline:
        report = bench.bench_pipeline(model, config, minutes=args.minutes,
                                      live_s=args.live_seconds)
    else:
        report = bench.bench_model(model, config, windows=args.windows)
    print(bench.format_report(report))
    if args.json_out:
        bench.write_json(report, Path(args.json_out))
    return 0

