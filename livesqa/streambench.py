"""Windowed vs streaming model, side by side on one thread: CPU per stream-second, streams per
core at the hop, p95 latency, and batching across streams.

Why interleaved: on a shared machine the load changes minute to minute; running the
candidates in rotation within each round makes every one see the same load, so their
ratios hold even when absolute numbers drift. CPU is thread CPU time of the call
(what the model costs), latency is wall time of the call (what a stream waits).

A stream needs one windowed call (the whole window) or one streaming chunk per hop, so
``streams per core = hop_s / CPU per stream per hop``. Batched rows divide a call's CPU by
its batch.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from livesqa.bench import _machine, speechlike
from livesqa.scoring import OnnxScorer
from livesqa.streaming import StreamingScorer


def _windowed_case(scorer: OnnxScorer, batch: int) -> Any:
    spec = scorer.spec
    x = np.repeat(speechlike(spec.window_s, spec.sample_rate_hz)[None], batch, axis=0)

    def call() -> None:
        scorer.score(x)

    return call


def _streaming_case(scorer: StreamingScorer, batch: int, tag: str) -> Any:
    lay = scorer.layout
    streams = [f"{tag}-{i}" for i in range(batch)]
    audio = speechlike(60.0, scorer.spec.sample_rate_hz, seed=1)
    pos = {s: 0 for s in streams}

    def feed(s: str, n: int) -> None:
        a = pos[s] % (audio.size - n)
        scorer.push(s, audio[a : a + n])
        pos[s] += n

    for s in streams:  # prime the tail and fill the left context (steady state)
        feed(s, lay.tail_samples)
        for _ in range(4):
            feed(s, lay.chunk_samples)
            scorer.run([s])

    def call() -> None:
        for s in streams:
            feed(s, lay.chunk_samples)
        out = scorer.run(streams)
        assert len(out) == batch

    return call


def compare(windowed: Path, streaming: Path, rounds: int = 40,
            windowed_batches: tuple[int, ...] = (1, 8),
            streaming_batches: tuple[int, ...] = (1, 8, 32)) -> dict[str, Any]:
    """Time every case once per round, in rotation; report per case and the ratios."""
    w = OnnxScorer.load(windowed)
    s = StreamingScorer.load(streaming, max_batch=max(streaming_batches))
    hop_s = s.spec.hop_s
    cases: dict[str, tuple[Any, int, int]] = {}  # name -> (call, streams, hops of audio per call)
    for b in windowed_batches:
        cases[f"windowed b={b}"] = (_windowed_case(w, b), b, 1)
    for b in streaming_batches:
        cases[f"streaming b={b}"] = (_streaming_case(s, b, f"b{b}"), b, 1)
    load0 = os.getloadavg()
    names = list(cases)
    for name in names:  # warm-up
        cases[name][0]()
    cpu: dict[str, list[float]] = {n: [] for n in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            c0, w0 = time.thread_time(), time.perf_counter()
            cases[name][0]()
            cpu[name].append(time.thread_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    load1 = os.getloadavg()
    state_bytes = sum(4 * int(np.prod(t.shape)) for t in s.layout.states)
    rows: dict[str, Any] = {}
    for name in names:
        _, streams, _ = cases[name]
        c, wl = np.asarray(cpu[name]), np.asarray(wall[name])
        per_stream = float(np.median(c)) / streams  # CPU s per stream per hop
        rows[name] = {
            "streams_per_call": streams,
            "cpu_ms_per_call_p50": float(np.median(c) * 1000),
            "cpu_ms_per_call_p95": float(np.percentile(c, 95) * 1000),
            "cpu_ms_per_stream_second": per_stream / hop_s * 1000,
            "streams_per_core": hop_s / per_stream,
            "latency_ms_p50": float(np.percentile(wl, 50) * 1000),
            "latency_ms_p95": float(np.percentile(wl, 95) * 1000),
        }
    base = rows[f"windowed b={windowed_batches[0]}"]["cpu_ms_per_stream_second"]
    for row in rows.values():
        row["speedup_vs_windowed_b1"] = base / row["cpu_ms_per_stream_second"]
    return {
        "kind": "streaming-compare", "windowed": str(windowed), "streaming": str(streaming),
        "windowed_spec": f"{w.spec.name} {w.spec.version}",
        "streaming_spec": f"{s.spec.name} {s.spec.version}",
        "hop_s": hop_s, "window_s": s.spec.window_s, "rounds": rounds, "threads": 1,
        "state_bytes_per_stream": state_bytes, "load_avg_before": load0, "load_avg_after": load1,
        "rows": rows, "machine": _machine(),
    }


def format_compare(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"windowed {report['windowed_spec']} vs streaming {report['streaming_spec']}",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['date']}; one ORT thread; load average "
        f"{report['load_avg_before'][0]:.2f} before, {report['load_avg_after'][0]:.2f} after",
        f"hop {report['hop_s']:g} s, window {report['window_s']:g} s, {report['rounds']} rounds "
        f"interleaved; streaming state {report['state_bytes_per_stream'] / 1e6:.2f} MB per stream",
        "latency = wall time of the call (a batch's streams all wait for it); on a loaded machine "
        "it includes time preempted by other processes, CPU p95 does not",
        f"{'case':<16} {'CPU ms/call':>11} {'CPU p95':>8} {'CPU ms per stream-s':>19} "
        f"{'streams/core':>12} {'vs windowed':>11} {'wall p50':>8} {'wall p95':>8}",
    ]
    for name, r in report["rows"].items():
        lines.append(
            f"{name:<16} {r['cpu_ms_per_call_p50']:>11.2f} {r['cpu_ms_per_call_p95']:>8.2f} "
            f"{r['cpu_ms_per_stream_second']:>19.2f} {r['streams_per_core']:>12.0f} "
            f"{r['speedup_vs_windowed_b1']:>10.2f}x {r['latency_ms_p50']:>8.1f} "
            f"{r['latency_ms_p95']:>8.1f}"
        )
    return "\n".join(lines)
