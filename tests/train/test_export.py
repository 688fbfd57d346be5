"""Export: tiny model -> ONNX, torch/ORT parity, spec readable by the runtime, int8, CLI."""

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from livesqa.spec import DIMENSIONS, read_spec
from train.bench import measure_onnx
from train.checkpoint import save_checkpoint
from train.config import EncoderConfig, HeadConfig, ModelConfig
from train.export import build_spec, check_parity, export_onnx, main
from train.model import QualityModel


def tiny_model(seed: int = 0) -> QualityModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        encoder=EncoderConfig(n_layers=2, d_model=32, n_heads=4, conv_kernel=7, dropout=0.0),
        head=HeadConfig(pool_hidden=16),
    )
    model = QualityModel(cfg).eval()
    assert model.quality_head.level is not None
    with torch.no_grad():  # spread the scores so parity is tested away from sigmoid's middle
        model.quality_head.probe.readout.weight.mul_(20.0)
        model.quality_head.level.weight.normal_(0.0, 1.0)  # and exercise the level input
    return model


def spec_args(out: Path) -> Namespace:
    return Namespace(
        name="",
        out=str(out),
        version="9.9",
        licence="test-only",
        training_data="none",
        window_s=2.0,
        hop_s=0.5,
    )


def test_parity_spec_and_dynamic_axes(tmp_path: Path) -> None:
    model = tiny_model()
    out = tmp_path / "tiny.onnx"
    spec = build_spec(spec_args(out), model.cfg, {"stage": "quality", "step": 3}, model.n_params())
    export_onnx(model, out, spec)
    back = read_spec(out)
    assert back == spec
    assert (
        back.window_samples == 32000
        and back.hop_samples == 8000
        and back.output_names == DIMENSIONS
    )
    assert json.loads(back.extra["model_config"])["encoder"]["d_model"] == 32

    diffs = check_parity(model, out, lengths_s=(0.7, 2.0, 3.3))
    assert len(diffs) == 6 and max(diffs.values()) < 1e-4

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = (np.random.default_rng(1).standard_normal((3, 20000)) * 0.1).astype(np.float32)
    scores = session.run(["scores"], {"audio": x})[0]
    assert scores.shape == (3, 5)
    assert np.all((scores >= 1.0) & (scores <= 5.0))
    assert np.ptp(scores) > 0.1  # the widened readout really moves the scores


def test_cli_from_checkpoint_with_int8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(1)
    ckpt = save_checkpoint(
        tmp_path / "best.pt",
        model,
        model.cfg,
        stage="quality",
        extra={"training_data": "synthetic"},
    )
    out = tmp_path / "m.onnx"
    rc = main(
        [
            "--checkpoint",
            str(ckpt),
            "--out",
            str(out),
            "--window-s",
            "1.0",
            "--int8",
            "--bench-runs",
            "2",
            "--parity-s",
            "0.5",
            "1.3",
        ]
    )
    assert rc == 0, capsys.readouterr().out
    spec = read_spec(out)
    assert spec.training_data == "synthetic" and spec.name == "m"
    assert read_spec(tmp_path / "m.int8.onnx") == spec
    card = json.loads((tmp_path / "m.export.json").read_text())
    assert card["files"]["m.onnx"]["parity_ok"] is True
    assert card["files"]["m.int8.onnx"]["parity_max_abs"] < 0.15
    assert card["files"]["m.onnx"]["rtfx"] > 0


def test_cli_refuses_asr_checkpoint(tmp_path: Path) -> None:
    from livesqa.errors import ConfigError

    model = tiny_model()
    ckpt = save_checkpoint(tmp_path / "asr.pt", model, model.cfg, stage="asr")
    with pytest.raises(ConfigError, match="quality"):
        main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "x.onnx")])


def test_measure_onnx_reports_rtfx(tmp_path: Path) -> None:
    model = tiny_model()
    out = tmp_path / "t.onnx"
    export_onnx(model, out, build_spec(spec_args(out), model.cfg, {}, model.n_params()))
    s = measure_onnx(out, 16000, runs=3)
    assert s["p50_ms"] > 0 and s["p95_ms"] >= s["p50_ms"]
    assert s["rtfx"] == pytest.approx(1000.0 / s["p50_ms"])
