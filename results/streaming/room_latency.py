"""Arrival-to-score latency in a WebRTC room of N aiortc peers, windowed vs streaming model.

The harness of tests/test_webrtc_load.py (server, scoring child, `livesqa.webrtc.client`
peers in their own process, loopback), run once per model and round, models alternating
(A B A B ...) so machine load hits both alike. Reads every participant's rows from the room
CSV: `latency_ms` runs from when the audio should have arrived (stream clock) to the score.
The peers send speech-like tones, so the gate is the energy detector (as in the load test):
both models score every window/chunk.

    python results/streaming/room_latency.py --model exported/livesqa-small.onnx \
        --streaming /tmp/small-stream.onnx --clients 8 --seconds 30 --rounds 1 \
        --out results/streaming/room8
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from livesqa.gating import GateConfig
from livesqa.spec import read_spec
from livesqa.webrtc.participant import PipelineConfig
from livesqa.webrtc.room import RoomConfig
from livesqa.webrtc.rows import RoomCsvWriter
from livesqa.webrtc.scoreproc import ScoringConfig, ScoringProcess
from livesqa.webrtc.server import ServerConfig
from livesqa.webrtc.service import MonitorService


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


async def room(model: str, clients: int, seconds: float, csv_path: Path, nice: int) -> dict:
    from livesqa.webrtc import scoreproc

    scoreproc.START_TIMEOUT_S = 900.0  # a starved host (nice 19 under training) loads slowly
    spec = read_spec(model)
    scoring = ScoringProcess(ScoringConfig(model, spec.hop_samples, GateConfig(detector="energy"),
                                           nice), spec)
    await scoring.start()
    writer = RoomCsvWriter(csv_path)
    service = MonitorService(ServerConfig(port=0, rooms=RoomConfig(max_participants=clients)),
                             scoring, PipelineConfig(), [writer])
    port = await service.start()
    load0 = os.getloadavg()
    t0 = time.monotonic()
    peers = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "livesqa.webrtc.client", f"http://127.0.0.1:{port}", "bench",
        "--clients", str(clients), "--seconds", str(seconds), "--slots", str(clients - 1),
        stdout=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(peers.communicate(), seconds + 120)
    finally:
        if peers.returncode is None:
            peers.kill()
            await peers.wait()
        await service.stop()
        await scoring.stop()
        writer.close()
    wall = time.monotonic() - t0
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    lat = np.array([float(r["latency_ms"]) for r in rows if r.get("latency_ms")])
    per: dict[str, list[float]] = {}
    for r in rows:
        if r.get("latency_ms"):
            per.setdefault(r["source"], []).append(float(r["latency_ms"]))
    return {
        "model": model, "kind": spec.extra.get("kind", "windowed"), "clients": clients,
        "seconds": seconds, "wall_s": round(wall, 1), "participants_scored": len(per),
        "rows": len(rows), "scored": sum(1 for r in rows if r.get("mos")),
        "skipped": sum(int(r["skipped"] or 0) for r in rows),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "latency_ms_max": round(float(lat.max()), 1) if lat.size else None,
        "per_participant_p95_ms": {k: round(float(np.percentile(v, 95)), 1)
                                   for k, v in sorted(per.items())},
        "load_before": [round(v, 2) for v in load0],
        "load_after": [round(v, 2) for v in os.getloadavg()],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="windowed model")
    p.add_argument("--streaming", required=True, help="streaming model")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--scoring-nice", type=int, default=10)
    p.add_argument("--out", required=True, help="path prefix: writes PREFIX.json")
    args = p.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    for k in range(args.rounds):
        for label, model in (("windowed", args.model), ("streaming", args.streaming)):
            csv_path = out.parent / f"{out.name}-{label}-{k}.csv"
            r = asyncio.run(room(model, args.clients, args.seconds, csv_path, args.scoring_nice))
            r["case"], r["round"] = label, k
            runs.append(r)
            print(json.dumps({x: r[x] for x in ("case", "round", "rows", "scored", "skipped",
                                                "latency_ms_p50", "latency_ms_p95",
                                                "load_before")}), flush=True)
            csv_path.unlink()  # the rows are summarised above; the CSV itself is large
    report = {"machine": f"{cpu_model()}, {os.cpu_count()} cores", "nice": os.nice(0),
              "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "runs": runs}
    Path(f"{out}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
