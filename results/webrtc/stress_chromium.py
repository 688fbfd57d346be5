"""Real Chromium participants on a host whose cores are saturated by CPU hogs (issue 16, goal 2).

Starts ``--hogs`` busy-loop processes (default: one per core), the real ``livesqa webrtc
--headless`` server (shipped model unless --model), then ``--participants`` headless Chromium
pages ``--stagger`` seconds apart, each with a fake microphone looping the bundled sample call
(real speech). Holds the call ``--seconds``, then reports, from the server's own JSONL and CSV:

- who was dropped while sending (a leave with any reason but "shutdown": the browsers send
  the whole time, so every such leave is a dropped call);
- per participant: windows, scored, skipped windows, latency p50/p95/max (ms);
- the largest UDP receive queue of the server's sockets (/proc/net/udp), sampled every second;
- the hogs' share of the CPU, the load average and the machine;
- the server's own log at INFO (ICE, consent, joins and leaves) beside the JSON (``.server.log``).

``--checkout DIR`` runs the server from another source tree (e.g. ``git archive`` of an older
commit) for a before/after comparison. Needs Debian ``chromium``.

    python results/webrtc/stress_chromium.py --seconds 180 --out results/webrtc/stress_after
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "?"


def socket_inodes(pids: list[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def udp_rx_queue_max(pids: list[int]) -> int:
    """Largest receive queue (bytes) among the UDP sockets of these processes."""
    inodes = socket_inodes(pids)
    worst = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                worst = max(worst, int(parts[4].split(":")[1], 16))
    return worst


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def speech_wav(path: Path) -> None:
    import soundfile as sf
    import soxr

    audio, rate = sf.read(REPO / "livesqa" / "assets" / "sample_call.flac", dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    sf.write(path, soxr.resample(audio, rate, 48000), 48000, subtype="PCM_16")


def at_nice(nice: int) -> Any:
    """A preexec_fn setting the child's niceness (absolute), or None for "as we are"."""
    if nice == os.getpriority(os.PRIO_PROCESS, 0):
        return None
    return lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)


def chromium(url: str, wav: Path, profile: Path, nice: int = 0) -> subprocess.Popen[bytes]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("needs Debian chromium (apt-get install chromium)")
    return subprocess.Popen(
        [exe, "--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}",
         "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
         "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=at_nice(nice))  # noqa: PLW1509 - this script starts no threads


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=180.0, help="call length after the last join")
    parser.add_argument("--stagger", type=float, default=2.0, help="seconds between joins")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--model", help="ONNX model (default: the shipped one)")
    parser.add_argument("--checkout", type=Path, help="run the server from this source tree")
    parser.add_argument("--port", type=int, default=8792)
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of every process of the test (server, browsers, hogs); "
                             "below 0 (root only) puts them level with jobs that already run "
                             "at a higher priority on a shared host")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "webrtc" / "stress_after")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="livesqa-stress-"))
    wav = work / "speech.wav"
    speech_wav(wav)
    csv_path, jsonl_path = work / "rows.csv", work / "rows.jsonl"
    env = dict(os.environ)
    if args.checkout:
        env["PYTHONPATH"] = str(args.checkout.resolve())
    cli = ["webrtc", "--headless", "--room", "stress", "--port", str(args.port),
           "--csv", str(csv_path), "--jsonl", str(jsonl_path)]
    if args.model:
        cli += ["--model", args.model]
    # the command with INFO logging (ICE, consent, joins/leaves) into the server log
    boot = ("import logging, sys; logging.basicConfig(level=logging.INFO, "
            "format='%(asctime)s %(name)s %(levelname)s %(message)s'); "
            "from livesqa.cli import main; sys.exit(main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", boot, *cli]
    server_log = Path(f"{args.out}.server.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"],
                             preexec_fn=at_nice(args.nice))  # noqa: PLW1509
            for _ in range(args.hogs)]
    with open(server_log, "w") as log_file:  # a file, never a pipe nobody drains (it would block)
        server = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                  env=env, cwd=args.checkout or REPO,
                                  preexec_fn=at_nice(args.nice))  # noqa: PLW1509
    browsers: list[subprocess.Popen[bytes]] = []
    samples: list[dict[str, float]] = []
    try:
        deadline = time.monotonic() + 120
        while "open http" not in server_log.read_text():
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: see {server_log}")
            time.sleep(0.2)
        time.sleep(3.0)  # the hogs have the cores before anyone joins
        hog_cpu0 = sum(cpu_seconds(h.pid) for h in hogs)
        t0 = time.monotonic()
        for i in range(args.participants):
            url = f"http://127.0.0.1:{args.port}/room/stress?autojoin=1&name=p{i}"
            profile = work / f"profile{i}"
            profile.mkdir()
            browsers.append(chromium(url, wav, profile, args.nice))
            time.sleep(args.stagger)
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            pids = [server.pid, *children(server.pid)]
            samples.append({"t": round(time.monotonic() - t0, 1),
                            "udp_rx_queue_max": udp_rx_queue_max([server.pid]),
                            "server_cpu_s": round(cpu_seconds(server.pid), 2),
                            "scorer_cpu_s": round(sum(cpu_seconds(p) for p in pids[1:]), 2)})
            time.sleep(1.0)
        wall = time.monotonic() - t0
        hog_share = (sum(cpu_seconds(h.pid) for h in hogs) - hog_cpu0) / wall / (os.cpu_count() or 1)
        load_during = os.getloadavg()
        browsers_alive = sum(b.poll() is None for b in browsers)
    finally:
        for b in browsers:
            stop_group(b)
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        for h in hogs:
            h.kill()
            h.wait()

    events = [json.loads(line) for line in jsonl_path.read_text().splitlines()
              if line.strip() and '"kind": "window"' not in line]
    dropped = [e for e in events if e["kind"] == "leave" and e["reason"] != "shutdown"]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    per: dict[str, dict[str, float | int]] = {}
    for name in sorted({r["participant"] for r in rows}):
        mine = [r for r in rows if r["participant"] == name]
        lat = np.asarray([float(r["latency_ms"]) for r in mine])
        per[name] = {
            "windows": len(mine), "scored": sum(1 for r in mine if r["mos"]),
            "skipped": sum(int(r["skipped"]) for r in mine),
            "latency_p50_ms": round(float(np.percentile(lat, 50))),
            "latency_p95_ms": round(float(np.percentile(lat, 95))),
            "latency_max_ms": round(float(lat.max())),
        }
    summary = {
        "server": str(args.checkout or "this checkout"),
        "participants": args.participants, "joined": sum(e["kind"] == "join" for e in events),
        "browsers_still_running_at_end": browsers_alive,
        "dropped_while_sending": [(e["participant"], e["reason"], e["wall_time"]) for e in dropped],
        "call_seconds_after_last_join": args.seconds, "wall_s": round(wall, 1),
        "per_participant": per,
        "udp_rx_queue_max_bytes": max(s["udp_rx_queue_max"] for s in samples),
        "server_cpu_core_share": round((samples[-1]["server_cpu_s"] - samples[0]["server_cpu_s"])
                                       / max(samples[-1]["t"] - samples[0]["t"], 1e-9), 3),
        "scorer_cpu_core_share": round((samples[-1]["scorer_cpu_s"] - samples[0]["scorer_cpu_s"])
                                       / max(samples[-1]["t"] - samples[0]["t"], 1e-9), 3),
        "server_log_errors": sum(" ERROR " in line or "Traceback" in line
                                 for line in server_log.read_text().splitlines()),
        "consent_expired_in_log": sum("onsent" in line and "expired" in line
                                      for line in server_log.read_text().splitlines()),
        "hogs": args.hogs, "nice_of_test_processes": args.nice, "hog_cpu_share_of_all_cores": round(hog_share, 3),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_during": [round(x, 2) for x in load_during],
        "machine": f"{cpu_model()}, {os.cpu_count()} cores; shared with other sessions' jobs "
                   "(model training/evaluation, test suites): see the load averages",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps({"summary": summary, "samples": samples},
                                                   indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if not dropped else 1


if __name__ == "__main__":
    raise SystemExit(main())
