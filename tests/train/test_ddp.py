"""torchrun with 2 CPU processes (gloo) follows the single-process run with the same global batch."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
SR = 16000


def _corpus(folder: Path, n: int = 32) -> Path:
    """``n`` equal-length clips (no padding differences between shards) with five labels each."""
    rng = np.random.default_rng(0)
    (folder / "clips").mkdir(parents=True)
    rows = []
    for i in range(n):
        level = 0.01 + 0.2 * rng.random()
        wav = (level * rng.standard_normal(2 * SR)).astype(np.float32)
        sf.write(folder / "clips" / f"c{i}.flac", wav, SR)
        score = 1.0 + 4.0 * (level - 0.01) / 0.2
        rows.append({"filepath_deg": f"clips/c{i}.flac", "split": "val" if i < 4 else "train",
                     "duration_s": "2.0", **{d: f"{score:.3f}" for d in ("mos", "noi", "col", "dis", "loud")}})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


TINY_MODEL = {"model.encoder.n_layers": "2", "model.encoder.d_model": "32", "model.encoder.dropout": "0.0",
              "model.encoder.conv_kernel": "7", "model.head.pool_hidden": "16"}


def _stage_args(stage: str, sets: dict[str, str]) -> list[str]:
    out = [stage, "--config", str(ROOT / "configs/train/small.toml")]
    for k, v in {**sets, **TINY_MODEL}.items():
        out += ["--set", f"{k}={v}"]
    return out


def _one_and_two_processes(stage: str, sets: dict[str, str], runs: Path, section: str) -> tuple[Path, Path]:
    """The same run alone and as a 2-process torchrun job; returns their run folders."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launchers = {"one": [sys.executable, "-m", "train"],
                 "two": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                         "-m", "train"]}
    for run, launcher in launchers.items():
        done = subprocess.run([*launcher, *_stage_args(stage, {**sets, f"{section}.run": run,
                                                                f"{section}.runs_dir": str(runs)})],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
    return runs / "one", runs / "two"


def _losses(run: Path) -> dict[int, float]:
    with (run / "steps.csv").open() as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f)}


def test_two_process_ddp_matches_one_process(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path / "corpus")
    runs = tmp_path / "runs"
    sets = {"finetune.manifest": str(manifest), "finetune.init": "scratch", "finetune.batch_size": "8",
            "finetune.max_steps": "20", "finetune.log_every": "1", "finetune.threads": "1",
            "finetune.device": "cpu", "finetune.crop_s": "0", "finetune.val_minutes": "0",
            "finetune.max_minutes": "10"}
    _one_and_two_processes("finetune", sets, runs, "finetune")
    one, two = _losses(runs / "one"), _losses(runs / "two")
    assert sorted(one) == sorted(two) and max(one) == 20
    assert abs(one[20] - two[20]) < 1e-3, (one[20], two[20])
    assert max(abs(one[s] - two[s]) for s in one) < 1e-3
    assert (runs / "two" / "last.pt").is_file() and "2 processes (DDP)" in (runs / "two" / "train.log").read_text()


def test_shards_split_every_global_batch_without_overlap() -> None:
    from train.distributed import DistContext

    batch = list(range(10, 19))
    shards = [DistContext(rank=r, world_size=2).shard(batch) for r in (0, 1)]
    assert shards == [[10, 12, 14, 16, 18], [11, 13, 15, 17]]
    assert sorted(shards[0] + shards[1]) == batch
    one = DistContext()
    assert one.shard(batch) == batch and not one.enabled and one.agree(True) and one.mean(2.5) == 2.5
    assert not DistContext(rank=0, world_size=4).usable([1, 2, 3])


def _asr_corpus(folder: Path, n: int = 24) -> Path:
    """``n`` one-second utterances (equal lengths: every batch splits evenly across 2 ranks)."""
    rng = np.random.default_rng(1)
    (folder / "audio").mkdir(parents=True)
    rows = []
    for i in range(n):
        t = np.arange(SR) / SR
        wav = (0.1 * np.sin(2 * np.pi * (150 + 10 * i) * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)
        sf.write(folder / "audio" / f"u{i}.flac", wav, SR)
        rows.append({"path": f"audio/u{i}.flac", "text": ["HELLO", "WORLD", "CALL", "QUALITY"][i % 4],
                     "speaker": f"s{i % 3}", "split": "test" if i < 4 else "train", "duration_s": "1.0",
                     "source": "synthetic"})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_two_process_asr_pretraining_matches_one_process(tmp_path: Path) -> None:
    manifest = _asr_corpus(tmp_path / "asr")
    runs = tmp_path / "runs"
    sets = {"asr.manifest": str(manifest), "asr.epochs": "2", "asr.batch_s": "4.0", "asr.log_every": "1",
            "asr.threads": "1", "asr.device": "cpu", "asr.spec_augment": "false", "asr.eval_max_utts": "4",
            "asr.max_minutes": "10"}
    _one_and_two_processes("pretrain-asr", sets, runs, "asr")
    a, b = _losses(runs / "one"), _losses(runs / "two")
    assert sorted(a) == sorted(b) and max(a) == 10  # 20 training utterances, 4 a batch, 2 epochs
    assert max(abs(a[s] - b[s]) for s in a) < 1e-3
