"""RSS of a running `livesqa webrtc` server over many joins and leaves (issue 16, goal 3).

Starts the real command (`livesqa webrtc --headless`, the shipped model unless --model), then
N times: one aiortc participant joins, sends a speech-like tone for --talk seconds, leaves;
after each leave, waits until the room is empty and reads the RSS of the server process and
of its scoring child from /proc. The participants run in this process, the server in its
own, so the server's memory is its own. Writes JSON lines and a summary to --out.

    python results/webrtc/rss_churn.py --joins 50 --out results/webrtc/rss_churn.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


async def room_size(http: object, url: str) -> int:
    async with http.get(url) as r:  # type: ignore[attr-defined]
        return int((await r.json()).get("participants", -1))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--joins", type=int, default=50)
    parser.add_argument("--talk", type=float, default=3.0, help="seconds each participant sends")
    parser.add_argument("--model", help="ONNX model (default: the shipped one)")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--out", type=Path, default=Path("results/webrtc/rss_churn.json"))
    args = parser.parse_args()

    import aiohttp

    from livesqa.webrtc.client import RoomClient, SignalTrack, speechlike_tone
    from livesqa.webrtc.loopback import enable_loopback_candidates

    enable_loopback_candidates()
    cmd = [sys.executable, "-m", "livesqa.cli", "webrtc", "--headless", "--room", "churn",
           "--port", str(args.port), "--csv", "/dev/null"]
    if args.model:
        cmd += ["--model", args.model]
    server_log = Path(f"{args.out}.server.log")
    with open(server_log, "w") as log_file:  # noqa: ASYNC230 - a file, never a pipe nobody drains
        server = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    base = f"http://127.0.0.1:{args.port}"
    samples: list[dict[str, float]] = []
    try:
        deadline = time.monotonic() + 120
        while "open http" not in server_log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: see {server_log}")
            await asyncio.sleep(0.2)
        kids = children(server.pid)
        async with aiohttp.ClientSession() as http:
            for i in range(args.joins):
                client = RoomClient(base, "churn", f"p{i}",
                                    SignalTrack(speechlike_tone(300.0 + 7 * i, 2.0)), slots=9)
                await client.join()
                await asyncio.sleep(args.talk)
                await client.leave()
                deadline = time.monotonic() + 10
                while await room_size(http, f"{base}/api/room/churn") != 0:
                    if time.monotonic() > deadline:
                        raise SystemExit("room never emptied")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.0)  # let the leave's tail (last windows, closes) settle
                sample = {"join": i + 1, "server_rss_mib": round(rss_mib(server.pid), 2),
                          "scorer_rss_mib": round(sum(rss_mib(k) for k in kids), 2)}
                samples.append(sample)
                print(json.dumps(sample), flush=True)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    first, last = samples[0], samples[-1]
    summary = {
        "joins": len(samples), "talk_s": args.talk,
        "server_rss_after_first_mib": first["server_rss_mib"],
        "server_rss_after_last_mib": last["server_rss_mib"],
        "server_growth_mib": round(last["server_rss_mib"] - first["server_rss_mib"], 2),
        "server_max_mib": max(s["server_rss_mib"] for s in samples),
        "scorer_growth_mib": round(last["scorer_rss_mib"] - first["scorer_rss_mib"], 2),
        "goal": "server RSS after the last leave within 5 MiB of its value after the first",
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, shared with a model-training job",
        "load_average_at_end": os.getloadavg(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    summary["goal_met"] = abs(summary["server_growth_mib"]) <= 5.0
    args.out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0 if summary["goal_met"] else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
