"""Files per second for 1 process, ``--jobs 2`` and Ray on 2 CPUs, same files, one run.

Usage (from the repository root; needs ``pip install -e '.[ray]'``)::

    python results/scale/bench_scale.py --files 120 --rounds 2 --out results/scale/bench_scale.md

The three modes run in rounds (order reversed every other round, so slow drift in the
machine's load hits them alike) on the same files: real device recordings of the AEC
challenge set (Opus, 16 kHz), scored with the shipped model and written to a CSV (1
process, ``--jobs``) or Parquet shards (Ray), as a user would. Every mode's scores are
compared with the single process's. Start-up (spawning workers / ``ray.init`` and
actors loading the model) is timed apart from scoring.

Load: this machine is shared (a training job may hold both cores). For each run the
script records the load average and the CPU time that *other* processes used
(``/proc/stat`` busy time minus this benchmark's own processes), so a speed-up measured
while the cores were shared can be read for what it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile as sf

from livesqa.batchstore import Output
from livesqa.config import load_config
from livesqa.models import find_model
from livesqa.parallel import process_cpu_s, score_files_in_processes
from livesqa.raybatch import run_batch
from livesqa.scoring import OnnxScorer
from livesqa.sinks.csv import CsvSink

DATA = Path(os.environ.get("LIVESQA_DATA_ROOT", "../shared/data"))
DEFAULT_FILES = DATA / "real" / "aec-challenge-baseline" / "noisy"
TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores, all processes)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def scores_of_csv(path: Path) -> dict[tuple[str, float], tuple[float, ...]]:
    import csv

    out = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["mos"]:
                out[(Path(r["source"]).name, float(r["start_s"]))] = tuple(
                    float(r[d]) for d in ("mos", "noi", "col", "dis", "loud"))
    return out


def run_one(paths: list[Path], model: Path, config: Any, work: Path) -> dict[str, Any]:
    """``livesqa file PATHS --csv OUT`` in this process (the CLI's own code path)."""
    import contextlib
    import io

    from livesqa import cli

    out = work / "one.csv"
    t0, c0 = time.perf_counter(), time.process_time()
    OnnxScorer.load(model)  # what the command spends loading the model, subtracted below
    startup, startup_cpu = time.perf_counter() - t0, time.process_time() - c0
    busy0, cpu0, la = machine_busy_s(), time.process_time(), loadavg()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["file", *map(str, paths), "--model", str(model), "--csv", str(out),
                       "--no-progress"])
    total = time.perf_counter() - t0
    cpu = time.process_time() - cpu0 - startup_cpu
    busy = machine_busy_s() - busy0
    assert rc == 0, rc
    return {"mode": "1 process", "cpus": 1, "wall_s": total - startup, "startup_s": startup,
            "cpu_s": cpu, "other_cores": max(0.0, busy - cpu) / total, "load": la,
            "scores": scores_of_csv(out)}


def run_jobs(paths: list[Path], model: Path, config: Any, work: Path, jobs: int,
             durations: list[float]) -> dict[str, Any]:
    out = work / f"jobs{jobs}.csv"
    sink = CsvSink(out)
    stats: dict[str, float] = {}
    busy0, cpu0, self0, la = machine_busy_s(), children_cpu_s(), time.process_time(), loadavg()
    t0 = time.perf_counter()
    results = score_files_in_processes(paths, model, config, [sink], jobs, durations=durations,
                                       stats=stats)
    total = time.perf_counter() - t0
    # workers' CPU after start-up (spawn, imports, model load are counted in start-up)
    cpu = children_cpu_s() - cpu0 - stats.get("ready_cpu_s", 0.0) + time.process_time() - self0
    busy = machine_busy_s() - busy0
    sink.close()
    assert len(results) == len(paths) and all(r.error is None for r in results)
    ready = stats.get("ready_s", 0.0)
    return {"mode": f"--jobs {jobs}", "cpus": jobs, "wall_s": total - ready, "startup_s": ready,
            "cpu_s": cpu, "other_cores": max(0.0, busy - cpu) / total, "load": la,
            "scores": scores_of_csv(out)}


def run_ray(paths: list[Path], model: Path, config: Any, work: Path, cpus: int) -> dict[str, Any]:
    out = Output(str(work / "ray"), "parquet")
    pids: dict[int, float] = {}
    busy_s = [0.0]

    def on_result(result: dict[str, Any]) -> None:
        pid = result["pid"]
        if pid is not None and pid not in pids:
            pids[pid] = 0.0
        busy_s[0] += result["busy_s"]

    busy0, self0, la = machine_busy_s(), time.process_time(), loadavg()
    t0 = time.perf_counter()
    cpu_at_end: dict[int, float] = {}

    def before_shutdown(report: Any) -> None:
        for pid in pids:
            cpu_at_end[pid] = process_cpu_s(pid)

    at_ready: dict[int, float] = {}

    def on_ready(actor_pids: list[int]) -> None:
        at_ready.update({pid: process_cpu_s(pid) for pid in actor_pids})

    report = run_batch([str(p) for p in paths], out, model, config, num_cpus=cpus,
                       on_result=on_result, shutdown=False, on_ready=on_ready)
    before_shutdown(report)
    import ray

    ray.shutdown()
    total = time.perf_counter() - t0
    busy = machine_busy_s() - busy0
    assert report.scored == len(paths) and report.failed == 0, report.errors
    # actors' CPU from model loaded to the last file (Ray's raylet/GCS are not counted)
    actor_cpu = sum(cpu_at_end[p] - at_ready.get(p, 0.0) for p in cpu_at_end)
    cpu = actor_cpu + time.process_time() - self0
    rows = out.read("rows")
    scores = {(Path(r["source"]).name, float(r["start_s"])): tuple(
        float(r[d]) for d in ("mos", "noi", "col", "dis", "loud")) for r in rows if r["mos"] is not None}
    return {"mode": f"Ray, {cpus} CPUs", "cpus": cpus, "wall_s": report.wall_s,
            "startup_s": report.startup_s, "cpu_s": cpu,
            "other_cores": max(0.0, busy - cpu) / total, "load": la, "scores": scores,
            "actor_busy_s": busy_s[0], "actors": report.actors}


def ray_call_overhead(cpus: int) -> dict[str, float]:
    """Round trip of an empty actor call: one at a time, and pipelined over ``cpus`` actors."""
    import ray

    from livesqa.raybatch import init_ray

    init_ray(None, cpus)

    @ray.remote(num_cpus=1)
    class Echo:
        def ping(self, x: int) -> int:
            return x

    actors = [Echo.remote() for _ in range(cpus)]  # type: ignore[attr-defined]
    ray.get([a.ping.remote(0) for a in actors])
    n = 300
    t0 = time.perf_counter()
    for i in range(n):
        ray.get(actors[0].ping.remote(i))
    sequential = (time.perf_counter() - t0) / n
    n = 2000
    t0 = time.perf_counter()
    ray.get([actors[i % cpus].ping.remote(i) for i in range(n)])
    pipelined = (time.perf_counter() - t0) / n
    ray.shutdown()
    return {"sequential_ms": sequential * 1000, "pipelined_ms": pipelined * 1000}


def max_diff(a: dict[Any, tuple[float, ...]], b: dict[Any, tuple[float, ...]]) -> float:
    assert a.keys() == b.keys(), (len(a), len(b))
    return max((abs(x - y) for k in a for x, y in zip(a[k], b[k])), default=0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_FILES, help="folder of audio files")
    ap.add_argument("--files", type=int, default=120, help="first N files (sorted)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("results/scale/bench_scale.md"))
    args = ap.parse_args(argv)

    paths = sorted(p for p in args.data.iterdir() if p.suffix in {".opus", ".wav", ".flac"})
    paths = paths[: args.files]
    durations = [sf.info(str(p)).duration for p in paths]
    hours = sum(durations) / 3600
    model = find_model(str(args.model) if args.model else None)
    config = load_config(None, [])
    cpu_name = next((line.split(":", 1)[1].strip() for line in subprocess.run(
        ["lscpu"], check=False, capture_output=True, text=True).stdout.splitlines()
        if line.startswith("Model name")), platform.processor())
    print(f"{len(paths)} files, {hours * 60:.1f} min of audio; {cpu_name}, {os.cpu_count()} CPUs",
          file=sys.stderr)

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="livesqa-scale-") as tmp:
        for r in range(args.rounds):
            order = ["one", "jobs", "ray"] if r % 2 == 0 else ["ray", "jobs", "one"]
            for mode in order:
                work = Path(tmp) / f"r{r}-{mode}"
                work.mkdir()
                if mode == "one":
                    run = run_one(paths, model, config, work)
                elif mode == "jobs":
                    run = run_jobs(paths, model, config, work, args.jobs, durations)
                else:
                    run = run_ray(paths, model, config, work, args.jobs)
                run["round"] = r
                runs.append(run)
                print(f"round {r} {run['mode']:>14}: {len(paths) / run['wall_s']:.2f} files/s, "
                      f"other load {run['other_cores']:.2f} cores", file=sys.stderr)
        overhead = ray_call_overhead(args.jobs)

    reference = runs[0]["scores"] if runs[0]["mode"] == "1 process" else next(
        x["scores"] for x in runs if x["mode"] == "1 process")
    for run in runs:
        run["max_abs_diff"] = max_diff(reference, run["scores"])
        run["windows"] = len(run.pop("scores"))
    report = {"files": len(paths), "audio_h": hours, "cpu": cpu_name, "cpus": os.cpu_count(),
              "model": str(model), "runs": runs, "ray_call": overhead,
              "uptime_end": loadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out.write_text(render(report))
    print(render(report))
    return 0


def render(rep: dict[str, Any]) -> str:
    files, hours = rep["files"], rep["audio_h"]
    by_mode: dict[str, list[dict[str, Any]]] = {}
    for run in rep["runs"]:
        by_mode.setdefault(run["mode"], []).append(run)
    one = min(r["wall_s"] for r in by_mode["1 process"])
    lines = [
        f"# Scaling out on one machine: {rep['date']}",
        "",
        (f"{files} files ({hours * 60:.1f} min of audio, real device recordings, Opus 16 kHz), "
        f"model `{Path(rep['model']).name}`; {rep['cpu']}, {rep['cpus']} CPUs. "
        "Made by `python results/scale/bench_scale.py`."),
        "",
        ("Every run, in the order run. *other load* = cores busy with processes that are not "
        "this benchmark's during the run (from /proc/stat; for Ray it includes Ray's own "
        "raylet/GCS). Speed-up = best 1-process wall time / this run's wall time. "
        "*per allocated CPU-hour* divides by wall time x CPUs given to the mode; *per used "
        "CPU-hour* by the CPU time its processes consumed."),
        "",
        ("| round | mode | load avg at start | other load (cores) | start-up s | scoring s | files/s | "
        "speed-up | audio h per allocated CPU-h | audio h per used CPU-h | max abs score diff vs 1 process |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in rep["runs"]:
        alloc = hours / (run["wall_s"] * run["cpus"] / 3600)
        used = hours / (run["cpu_s"] / 3600) if run["cpu_s"] > 0 else float("nan")
        lines.append(
            f"| {run['round']} | {run['mode']} | {run['load']} | {run['other_cores']:.2f} | "
            f"{run['startup_s']:.1f} | {run['wall_s']:.1f} | {files / run['wall_s']:.2f} | "
            f"{one / run['wall_s']:.2f}x | {alloc:.0f} | {used:.0f} | {run['max_abs_diff']:.1e} |")
    lines += ["", "Best run per mode (least disturbed):", "",
              "| mode | files/s | speed-up | scheduling overhead per file |", "| --- | --- | --- | --- |"]
    for mode, runs in by_mode.items():
        best = min(runs, key=lambda r: r["wall_s"])
        extra = (best["cpus"] * best["wall_s"] - one) / files * 1000
        note = f"{extra:+.0f} ms CPU-time vs 1 process"
        if "actor_busy_s" in best:
            idle = (best["actors"] * best["wall_s"] - best["actor_busy_s"]) / files * 1000
            note += f"; actors idle {idle:.0f} ms per file"
        lines.append(f"| {mode} | {files / best['wall_s']:.2f} | {one / best['wall_s']:.2f}x | "
                     f"{note} |")
    call = rep["ray_call"]
    lines += ["", (f"Ray empty actor call round trip: {call['sequential_ms']:.2f} ms one at a time, "
              f"{call['pipelined_ms']:.3f} ms each when pipelined over {rep['cpus']} actors "
              f"(livesqa batch keeps 2 calls queued per actor, so the round trip is hidden)."),
              f"Load average at the end: {rep['uptime_end']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
