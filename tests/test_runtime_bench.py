"""``livesqa bench``: reports what it measured; the pipeline reuses its window buffers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from livesqa import bench
from livesqa.cli import main
from livesqa.config import RuntimeConfig


def test_pipeline_bench_counts_every_window_and_model_time(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--pipeline", "--minutes", "0.25", "--live-seconds", "2", "--all-cores", "--model",
               str(tiny_model_path), "--json", str(out)])
    assert rc == 0
    assert "pipeline overhead" in capsys.readouterr().out
    report = json.loads(out.read_text())
    fast = report["fast"]
    # 15 s of audio, hop 1 s (config default), window from the tiny spec: every window scored
    assert fast["windows"] >= 10 and fast["skipped"] == 0
    assert 0.0 < fast["model_s"] <= fast["cpu_s"]


def test_model_bench_reports_rtfx_and_streams(tiny_model_path):
    report = bench.bench_model(tiny_model_path, RuntimeConfig(), windows=5)
    assert report["rtfx"] > 0 and report["streams_per_core"] > 0
    assert report["latency_p95_ms"] >= report["latency_p50_ms"] > 0


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux-only affinity")
def test_pin_leaves_exactly_one_cpu_and_refuses_a_missing_one():
    code = ("import os; from livesqa import affinity; c = affinity.pin(); "
            "print(c, sorted(os.sched_getaffinity(0)), affinity.describe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cpu, rest = out.stdout.split(" ", 1)
    assert rest.startswith(f"[{cpu}] pinned to CPU {cpu}")
    code = "import sys; from livesqa.cli import main; sys.exit(main(['bench', '--cpu', '4096']))"
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert missing.returncode == 1
    assert "CPU 4096 is not available" in missing.stderr and "Traceback" not in missing.stderr
