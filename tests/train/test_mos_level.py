"""``python -m train mos-level``: the MOS output re-parameterised exactly, fitted on known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from livesqa.errors import ConfigError
from train import mos_level
from train.checkpoint import load_model, save_checkpoint
from train.config import EncoderConfig, HeadConfig, ModelConfig
from train.heads import LEVEL_SCALE
from train.model import QualityModel

MOS = mos_level.MOS


def tiny() -> ModelConfig:
    return ModelConfig(encoder=EncoderConfig(n_layers=2, d_model=32, n_heads=4, conv_kernel=7, dropout=0.0),
                       head=HeadConfig(pool_hidden=16))


def trained_like(cfg: ModelConfig) -> QualityModel:
    """Random weights, the level row included (as after training)."""
    torch.manual_seed(0)
    model = QualityModel(cfg).eval()
    with torch.no_grad():
        model.quality_head.level.weight.normal_(0.0, 0.3)
        model.quality_head.level.bias.normal_(0.0, 0.3)
    return model


def _parts(model, wav: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all logits, encoder-path MOS logit, broadband level) of a batch."""
    with torch.no_grad():
        _, _, level, blocks, lengths = model._run(wav, None)
        logits = model.quality_head.logits(blocks, lengths, level).numpy()
    levels = level.numpy()
    return logits, mos_level.encoder_logit(model, logits, levels), mos_level.broadband_level(levels)


def test_written_weights_give_exactly_a_enc_plus_w_lvl_plus_c_and_leave_other_outputs() -> None:
    model = trained_like(tiny())
    wav = torch.randn(3, 16000) * torch.tensor([[0.01], [0.1], [0.5]])
    logits, enc, lvl = _parts(model, wav)
    mos_level.write_mos_output(model, a=1.7, w=-0.4, c=0.25)
    new_logits, new_enc, _ = _parts(model, wav)
    np.testing.assert_allclose(new_logits[:, MOS], 1.7 * enc - 0.4 * lvl + 0.25, atol=1e-4)
    others = [k for k in range(logits.shape[1]) if k != MOS]
    np.testing.assert_allclose(new_logits[:, others], logits[:, others], atol=1e-6)
    level = model.quality_head.level
    assert torch.allclose(level.weight[MOS], torch.full_like(level.weight[MOS], -0.4 / level.weight.shape[1]))
    np.testing.assert_allclose(new_enc, 1.7 * enc, atol=1e-4)  # the level row is now only broadband


def test_broadband_level_is_the_channel_mean_in_head_units() -> None:
    levels = np.array([[10.0, 20.0, 30.0], [-10.0, -10.0, -10.0]])
    np.testing.assert_allclose(mos_level.broadband_level(levels), [20.0 / LEVEL_SCALE, -1.0])


def test_fit_recovers_known_parameters_and_no_level_keeps_w_zero() -> None:
    rng = np.random.default_rng(0)
    enc = [rng.normal(0, 1.5, 400), rng.normal(0, 1.5, 100)]
    lvl = [rng.normal(-1, 0.5, 400), rng.normal(-1, 0.5, 100)]
    target = [1 + 4 / (1 + np.exp(-(0.8 * e + 0.6 * v - 0.3))) for e, v in zip(enc, lvl, strict=True)]
    target[0][5] = np.nan  # an unlabelled row is left out, not fitted as 0
    fit = mos_level.fit_mos_output(tuple(enc), tuple(lvl), tuple(target), 1.0, 5.0, use_level=True, epochs=3000)
    assert fit["a"] == pytest.approx(0.8, abs=0.03)
    assert fit["w"] == pytest.approx(0.6, abs=0.05)
    assert fit["c"] == pytest.approx(-0.3, abs=0.05)
    assert fit["val_mse"] < 1e-3 < fit["val_mse_encoder_only"]
    blind = mos_level.fit_mos_output(tuple(enc), tuple(lvl), tuple(target), 1.0, 5.0, use_level=False, epochs=500)
    assert blind["w"] == 0.0 and blind["val_mse"] > fit["val_mse"]


def test_cli_writes_a_checkpoint_and_refuses_bad_inputs_by_name(tmp_path: Path) -> None:
    cfg = tiny()
    src = save_checkpoint(tmp_path / "src.pt", trained_like(cfg), cfg, stage="quality")
    clips = tmp_path / "clips"
    clips.mkdir()
    rows = ["db,con,filepath_deg,filename_deg,source,mos,noi,col,dis,loud,split,condition"]
    rng = np.random.default_rng(1)
    for i in range(12):
        gain = 10 ** (rng.uniform(-50, -5) / 20)
        sf.write(clips / f"c{i}.wav", (rng.standard_normal(16000) * gain).astype(np.float32), 16000)
        rows.append(f"sim,0,clips/c{i}.wav,c{i}.wav,s,{1 + 3 * gain:.3f},3,3,3,3,{'val' if i % 3 == 0 else 'train'},x")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "out.pt"
    assert mos_level.main(["--checkpoint", str(src), "--manifest", str(manifest), "--epochs", "20",
                           "--out", str(out)]) == 0
    old = load_model(src)[0].state_dict()
    new, _, ckpt = load_model(out)
    changed = {k for k, v in old.items() if not torch.equal(new.state_dict()[k], v)}
    assert changed <= {"quality_head.probe.readout.weight", "quality_head.probe.readout.bias",
                       "quality_head.level.weight", "quality_head.level.bias"}
    assert ckpt["extra"]["mos_level"]["level"] is True
    with pytest.raises(ConfigError, match="manifest not found"):
        mos_level.main(["--checkpoint", str(src), "--manifest", str(tmp_path / "none.csv"), "--out", str(out)])
    with pytest.raises(ConfigError, match="checkpoint not found"):
        mos_level.main(["--checkpoint", str(tmp_path / "none.pt"), "--manifest", str(manifest), "--out", str(out)])


def test_own_mos_is_the_models_score_from_its_logits() -> None:
    logits = np.zeros((2, 5))
    logits[:, MOS] = [0.0, np.log(3.0)]
    np.testing.assert_allclose(mos_level.own_mos(logits, 1.0, 5.0), [3.0, 4.0])


def test_cli_target_self_fits_the_models_own_scores_not_the_labels(tmp_path: Path) -> None:
    """With ``--target self`` the labels cannot matter: two manifests that differ only in MOS
    labels give the same fit, and the input model's own val MSE against its target is 0."""
    cfg = tiny()
    src = save_checkpoint(tmp_path / "src.pt", trained_like(cfg), cfg, stage="quality")
    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(2)
    header = "db,con,filepath_deg,filename_deg,source,mos,noi,col,dis,loud,split,condition"
    rows_a, rows_b = [header], [header]
    for i in range(12):
        gain = 10 ** (rng.uniform(-50, -5) / 20)
        sf.write(clips / f"c{i}.wav", (rng.standard_normal(16000) * gain).astype(np.float32), 16000)
        split = "val" if i % 3 == 0 else "train"
        rows_a.append(f"sim,0,clips/c{i}.wav,c{i}.wav,s,1.5,3,3,3,3,{split},x")
        rows_b.append(f"sim,0,clips/c{i}.wav,c{i}.wav,s,4.5,3,3,3,3,{split},x")
    fits = []
    for name, rows in (("a", rows_a), ("b", rows_b)):
        manifest = tmp_path / f"manifest-{name}.csv"
        manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
        out = tmp_path / f"out-{name}.pt"
        assert mos_level.main(["--checkpoint", str(src), "--manifest", str(manifest), "--epochs", "30",
                               "--no-level", "--target", "self", "--out", str(out)]) == 0
        fits.append(load_model(out)[2]["extra"]["mos_level"])
    assert fits[0]["target"] == "self" and fits[0]["val_mse_before"] == 0.0
    for key in ("a", "w", "c", "val_mse"):
        assert fits[0][key] == pytest.approx(fits[1][key], abs=1e-9)
    assert fits[0]["w"] == 0.0
