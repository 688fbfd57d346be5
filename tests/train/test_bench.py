"""bench: timing summary arithmetic, the CLI on a tiny exported model, NISQA's runner."""

import os
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from train.bench import main, nisqa_runner, speech_like, summarise
from train.config import EncoderConfig, HeadConfig, ModelConfig
from train.export import build_spec, export_onnx
from train.model import QualityModel

REPO = Path(__file__).resolve().parents[2]
DATA_ROOT = Path(os.environ.get("LIVESQA_DATA_ROOT", REPO.parent / "shared" / "data"))
NISQA_WEIGHTS = DATA_ROOT / "weights" / "nisqa" / "nisqa.tar"


def test_summarise_known_values() -> None:
    s = summarise(np.array([10.0, 20.0, 30.0, 40.0, 1000.0]), window_s=4.0)
    assert s["p50_ms"] == 30.0
    assert s["rtfx"] == pytest.approx(4000.0 / 30.0)
    assert 40.0 < s["p95_ms"] < 1000.0


def test_speech_like_is_bursty_and_in_range() -> None:
    x = speech_like(16000, 16000)
    assert x.dtype == np.float32 and np.max(np.abs(x)) < 1.0
    frames = x[: 16000 // 160 * 160].reshape(-1, 160)
    energy = (frames**2).mean(axis=1)
    assert energy.max() > 100 * np.median(energy[energy < np.percentile(energy, 20)])  # pauses


def test_cli_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(
        encoder=EncoderConfig(n_layers=1, d_model=16, n_heads=2, conv_kernel=3),
        head=HeadConfig(pool_hidden=8),
    )
    model = QualityModel(cfg)
    out = tmp_path / "tiny.onnx"
    args = Namespace(
        name="", out=str(out), version="1", licence="", training_data="", window_s=1.0, hop_s=0.5
    )
    export_onnx(model, out, build_spec(args, cfg, {}, model.n_params()))
    assert main(["--models", str(out), "--runs", "4", "--rounds", "2"]) == 0
    row = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny.onnx")
    )
    assert "1.0s" in row and float(row.split()[-1]) > 0


@pytest.mark.skipif(not NISQA_WEIGHTS.is_file(), reason="NISQA weights not in ../shared/data")
def test_nisqa_runner_scores_a_window() -> None:
    pytest.importorskip("nisqa")
    pytest.importorskip("librosa")
    out = nisqa_runner(NISQA_WEIGHTS, 2.0)()
    assert isinstance(out, torch.Tensor) and out.shape == (1, 5)
    assert torch.isfinite(out).all()
