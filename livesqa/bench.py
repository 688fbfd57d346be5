"""Benchmarks anyone can rerun: the model on one thread, and the whole pipeline's overhead.

``livesqa bench`` (model): p50/p95 per-window latency on one intra-op thread, RTFX
(window audio seconds per compute second) and how many real-time streams one
core sustains at the configured hop (``hop_s / mean latency``; a stream needs one
window per hop).

``livesqa bench --pipeline --minutes 60`` (pipeline): replays the bundled sample
call (real speech) in 20 ms chunks (a WebRTC frame) through source conversion,
windower, gate, the scoring thread, aggregator and a CSV sink, as fast as
possible, then a short real-time live segment. Reports

- overhead ratio = (process CPU time - model time) / model time;
- RSS sampled every few audio minutes (flat means no growth with call length);
- p95 latency from a window's last chunk arriving to its score on the event loop
  (live segment), plus the dashboard refresh period that may add to it.

Not a timed test: numbers depend on the machine; the report says which.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from livesqa import affinity
from livesqa.config import RuntimeConfig
from livesqa.pipeline import make_monitor, run_source
from livesqa.scoring import OnnxScorer, Scorer, ScoringWorker
from livesqa.sinks.csv import CsvSink
from livesqa.spec import ModelSpec
from livesqa.types import AudioChunk, FloatArray, StreamInfo

CHUNK_S = 0.02


def speechlike(seconds: float, sample_rate_hz: int, seed: int = 0) -> FloatArray:
    """Noise with a 4 Hz syllable envelope and pauses: passes the speech gate, seeded."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate_hz)
    t = np.arange(n) / sample_rate_hz
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.5)
    return (0.2 * envelope * rng.standard_normal(n)).astype(np.float32)


class TimedScorer:
    """Wraps a scorer, summing the CPU time of ``score`` (the model's compute).

    Thread CPU time, not wall time: on a busy machine the scoring thread can be
    preempted inside ``score``, and wall time would then count other processes'
    work as model compute (and make the pipeline's overhead look negative).
    """

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self.spec: ModelSpec = inner.spec
        self.model_s = 0.0
        self.calls = 0

    def score(self, batch: FloatArray) -> np.ndarray:
        t0 = time.thread_time()
        out = self.inner.score(batch)
        self.model_s += time.thread_time() - t0
        self.calls += 1
        return out

    @property
    def has_speech(self) -> bool:
        """Whether the wrapped model has a speech output (the "model" speech gate)."""
        return bool(getattr(self.inner, "has_speech", False))

    def score_with_speech(self, batch: FloatArray) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.thread_time()
        out = self.inner.score_with_speech(batch)  # type: ignore[attr-defined]
        self.model_s += time.thread_time() - t0
        self.calls += 1
        return out


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "affinity": affinity.describe(),
            "python": platform.python_version(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_model(model: Path, config: RuntimeConfig, windows: int = 50) -> dict[str, Any]:
    """Per-window latency of the model alone on one thread."""
    scorer = OnnxScorer.load(model)
    spec = scorer.spec
    audio = speechlike(spec.window_s, spec.sample_rate_hz)[np.newaxis, :]
    for _ in range(3):
        scorer.score(audio)
    lat = []
    for _ in range(max(1, windows)):
        t0 = time.perf_counter()
        scorer.score(audio)
        lat.append(time.perf_counter() - t0)
    arr = np.asarray(lat)
    hop_s = config.hop_samples(spec.sample_rate_hz, spec.hop_samples) / spec.sample_rate_hz
    mean = float(arr.mean())
    return {
        "kind": "model", "model": str(model), "spec": f"{spec.name} {spec.version}",
        "window_s": spec.window_s, "hop_s": hop_s, "windows": len(lat),
        "latency_p50_ms": float(np.percentile(arr, 50) * 1000),
        "latency_p95_ms": float(np.percentile(arr, 95) * 1000),
        "latency_mean_ms": mean * 1000,
        "rtfx": spec.window_s / mean,
        "streams_per_core": hop_s / mean,
        "machine": _machine(),
    }


def sample_call(sample_rate_hz: int) -> FloatArray:
    """The bundled sample call (real speech: the speech gate passes it) at ``sample_rate_hz``."""
    import soundfile as sf
    import soxr

    path = Path(__file__).resolve().parent / "assets" / "sample_call.flac"
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != sample_rate_hz:
        mono = soxr.resample(mono, rate, sample_rate_hz)
    return np.ascontiguousarray(mono, dtype=np.float32)


class LoopSource:
    """The bundled sample call in 20 ms chunks, looped (precomputed: generation costs nothing).

    Real speech, not a synthetic signal: the Silero speech gate rightly calls modulated
    noise "no speech", and the model would then never run.
    """

    def __init__(self, seconds: float, sample_rate_hz: int, realtime: bool,
                 on_minute: Any = None) -> None:
        self.seconds = seconds
        self.sample_rate_hz = sample_rate_hz
        self.live = realtime
        self.description = "bundled sample call, looped"
        self._loop = sample_call(sample_rate_hz)
        self._on_minute = on_minute

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        chunk = int(CHUNK_S * self.sample_rate_hz)
        total = int(self.seconds * self.sample_rate_hz)
        n_loop = self._loop.size
        t0 = time.perf_counter()
        minute = self.sample_rate_hz * 60
        for pos in range(0, total - chunk + 1, chunk):
            if self.live:
                delay = t0 + (pos + chunk) / self.sample_rate_hz - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            start = pos % n_loop
            samples = self._loop[start:start + chunk]
            if samples.size < chunk:
                samples = np.concatenate([samples, self._loop[: chunk - samples.size]])
            yield AudioChunk(pos, samples, time.perf_counter())
            if self._on_minute is not None and (pos + chunk) % minute < chunk:
                self._on_minute((pos + chunk) / minute)


async def _pipeline_run(scorer: TimedScorer, config: RuntimeConfig, seconds: float,
                        realtime: bool, csv_path: Path) -> dict[str, Any]:
    rss: list[tuple[float, float]] = [(0.0, _rss_mb())]
    sink = CsvSink(csv_path)
    latencies: list[float] = []
    async with ScoringWorker(scorer) as worker:
        monitor = make_monitor(worker, StreamInfo("bench"), config, live=realtime, sinks=[sink])
        monitor.add_listener(lambda r: latencies.append(r.latency_ms))
        source = LoopSource(seconds, scorer.spec.sample_rate_hz, realtime,
                            on_minute=lambda m: rss.append((m, _rss_mb())))
        cpu0, wall0, model0 = time.process_time(), time.perf_counter(), scorer.model_s
        result = await run_source(source, monitor)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    sink.close()
    if result.error is not None:
        raise result.error
    model_s = scorer.model_s - model0
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return {
        "audio_s": seconds, "wall_s": wall, "cpu_s": cpu, "model_s": model_s,
        "windows": result.aggregator.windows, "skipped": result.aggregator.skipped,
        "overhead_ratio": (cpu - model_s) / model_s if model_s > 0 else None,
        "overhead_ms_per_window": (cpu - model_s) * 1000.0 / max(1, result.aggregator.windows),
        "rtfx_pipeline": seconds / wall if wall > 0 else None,
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p95_ms": float(np.percentile(lat, 95)),
        "rss_mb": [(round(m, 2), round(r, 1)) for m, r in rss],
    }


def bench_pipeline(model: Path, config: RuntimeConfig, minutes: float = 10.0,
                   live_s: float = 20.0) -> dict[str, Any]:
    """Offline replay of ``minutes`` of audio as fast as possible, then ``live_s`` in real time."""
    scorer = TimedScorer(OnnxScorer.load(model))
    spec = scorer.spec
    with tempfile.TemporaryDirectory() as tmp:
        fast = asyncio.run(_pipeline_run(scorer, config, minutes * 60.0, False,
                                         Path(tmp) / "fast.csv"))
        live = asyncio.run(_pipeline_run(scorer, config, live_s, True, Path(tmp) / "live.csv"))
    return {
        "kind": "pipeline", "model": str(model), "spec": f"{spec.name} {spec.version}",
        "hop_s": config.hop_samples(spec.sample_rate_hz, spec.hop_samples) / spec.sample_rate_hz,
        "chunk_s": CHUNK_S, "fast": fast, "live": live,
        "dashboard_refresh_ms": 1000.0 / config.refresh_hz, "machine": _machine(),
    }


def format_report(report: dict[str, Any]) -> str:
    m = report["machine"]
    head = (f"{report['spec']} ({report['model']})\nmachine: {m['cpu']}, {m['cores']} cores, "
            f"{m.get('affinity', '')}, {m['date']}")
    if report["kind"] == "model":
        return (
            f"{head}\nwindow {report['window_s']:g} s, hop {report['hop_s']:g} s, "
            f"{report['windows']} windows, 1 intra-op thread\n"
            f"latency p50 {report['latency_p50_ms']:.2f} ms, p95 {report['latency_p95_ms']:.2f} ms, "
            f"mean {report['latency_mean_ms']:.2f} ms\n"
            f"RTFX {report['rtfx']:.1f} (window audio s per compute s)\n"
            f"real-time streams per core at hop {report['hop_s']:g} s: "
            f"{report['streams_per_core']:.1f}"
        )
    f, live = report["fast"], report["live"]
    ratio = "n/a" if f["overhead_ratio"] is None else f"{f['overhead_ratio'] * 100:.1f}%"
    step = max(1, len(f["rss_mb"]) // 6)
    samples = f["rss_mb"][::step] + ([f["rss_mb"][-1]] if (len(f["rss_mb"]) - 1) % step else [])
    rss = ", ".join(f"{mm:g} min: {r:.0f} MB" for mm, r in samples)
    return (
        f"{head}\nfast replay: {f['audio_s'] / 60:g} min audio in {f['wall_s']:.1f} s "
        f"(RTFX {f['rtfx_pipeline']:.0f}), {f['windows']} windows, "
        f"hop {report['hop_s']:g} s, {report['chunk_s'] * 1000:g} ms chunks\n"
        f"model compute {f['model_s']:.2f} s, process CPU {f['cpu_s']:.2f} s, "
        f"pipeline overhead {ratio} of model compute "
        f"({f['overhead_ms_per_window']:.2f} ms CPU per window)\n"
        f"RSS: {rss}\n"
        f"live ({live['audio_s']:g} s real time): arrival->score p50 "
        f"{live['latency_p50_ms']:.1f} ms, p95 {live['latency_p95_ms']:.1f} ms, "
        f"skipped {live['skipped']}; dashboard refresh adds <= "
        f"{report['dashboard_refresh_ms']:.0f} ms"
    )


def write_json(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m livesqa.bench [args]`` is ``livesqa bench [args]``."""
    from livesqa.cli import main as cli_main

    return cli_main(["bench", *(argv or [])])


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
