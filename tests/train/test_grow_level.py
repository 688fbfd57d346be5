"""`train grow` (a deeper copy of a trained student) and `train level-head` (a level MLP on a
frozen student): what each promises about the model it writes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from livesqa.errors import ConfigError
from train import grow, level_head
from train.checkpoint import load_model, save_checkpoint
from train.config import EncoderConfig, HeadConfig, ModelConfig
from train.model import QualityModel


def tiny(n_layers: int = 3, level_hidden: int = 0) -> ModelConfig:
    return ModelConfig(
        encoder=EncoderConfig(n_layers=n_layers, d_model=32, n_heads=4, conv_kernel=7, dropout=0.0),
        head=HeadConfig(pool_hidden=16, level_hidden=level_hidden),
    )


def trained_like(cfg: ModelConfig, seed: int = 0) -> QualityModel:
    """Random weights everywhere, layer biases and level unit included (as after training)."""
    torch.manual_seed(seed)
    model = QualityModel(cfg).eval()
    with torch.no_grad():
        model.quality_head.layer_attention.layer_bias.normal_(0.0, 1.0)
        model.quality_head.level.weight.normal_(0.0, 0.3)
    return model


@pytest.fixture()
def src(tmp_path: Path) -> Path:
    cfg = tiny()
    return save_checkpoint(tmp_path / "src.pt", trained_like(cfg), cfg, stage="quality", extra={"licence": "x"})


def test_grown_blocks_are_copies_and_layer_biases_keep_each_blocks_share(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "grown.pt"
    assert grow.main(["--checkpoint", str(src), "--plan", "0,1,1,2,2", "--out", str(out)]) == 0
    old, _, _ = load_model(src)
    new, cfg, ckpt = load_model(out)
    assert cfg.encoder.n_layers == 5
    assert ckpt["extra"]["grown_from"]["plan"] == [0, 1, 1, 2, 2] and ckpt["extra"]["licence"] == "x"
    o, n = old.state_dict(), new.state_dict()
    for new_i, old_i in enumerate([0, 1, 1, 2, 2]):
        assert torch.equal(n[f"encoder.blocks.{new_i}.attn.qkv.weight"], o[f"encoder.blocks.{old_i}.attn.qkv.weight"])
    b_old = o["quality_head.layer_attention.layer_bias"]
    b_new = n["quality_head.layer_attention.layer_bias"]
    assert torch.allclose(b_new[1], b_old[1] - math.log(2)) and torch.allclose(b_new[0], b_old[0])
    # softmax mass of block 1's two copies = block 1's old mass, for equal layer vectors
    assert torch.allclose(torch.softmax(b_new, 0)[1:3].sum(), torch.softmax(b_old, 0)[1])
    assert torch.equal(n["quality_head.probe.readout.weight"], o["quality_head.probe.readout.weight"])


def test_zero_residual_copies_start_with_silent_branches(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "grown.pt"
    assert grow.main(["--checkpoint", str(src), "--plan", "0,0,1,2", "--zero-residual", "--out", str(out)]) == 0
    n = load_model(out)[0].state_dict()
    for name in grow.RESIDUAL_OUTPUTS:
        assert torch.count_nonzero(n[f"encoder.blocks.1.{name}.weight"]) == 0  # the repeat
        assert torch.count_nonzero(n[f"encoder.blocks.0.{name}.weight"]) > 0  # the original


@pytest.mark.parametrize("plan", ["0,2,1", "0,1", "0,1,x", ""])
def test_bad_plans_are_refused_by_name(src: Path, tmp_path: Path, plan: str, capsys: pytest.CaptureFixture[str]) -> None:
    from train.__main__ import main as train_main

    out = tmp_path / "g.pt"
    assert train_main(["grow", "--checkpoint", str(src), "--plan", plan, "--out", str(out)]) == 2
    assert "plan" in capsys.readouterr().err and not out.exists()


def test_level_mlp_starts_at_the_model_without_it_and_logits_match_forward() -> None:
    base = trained_like(tiny())
    with_mlp = QualityModel(tiny(level_hidden=4)).eval()
    missing, unexpected = with_mlp.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("quality_head.level_mlp.") for k in missing)
    wav = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        assert torch.allclose(with_mlp(wav), base(wav))
        _, _, level, blocks, lengths = base._run(wav, None)
        logits = base.quality_head.logits(blocks, lengths, level)
        assert torch.allclose(1.0 + 4.0 * torch.sigmoid(logits), base(wav), atol=1e-6)


def test_level_mlp_learns_an_inverted_u_the_linear_term_cannot() -> None:
    """Synthetic rows: the target score peaks at mid level and falls on both sides."""
    rng = np.random.default_rng(0)
    n, dims = 400, 80
    lv = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    levels = (lv[:, None] * 10.0 * np.ones((1, dims), np.float32)).astype(np.float32)  # / LEVEL_SCALE -> lv
    targets = np.repeat((4.5 - 3.0 * lv**2)[:, None], 5, axis=1).astype(np.float32)
    logits = np.zeros((n, 5), np.float32)
    rows = (logits, levels, targets)
    head = QualityModel(tiny(level_hidden=8)).quality_head
    mlp = head.level_mlp
    assert mlp is not None
    epoch, start, best = level_head.fit_level_mlp(mlp, head.probe.readout.scale, rows, rows, 800, 1e-2, 0)
    assert epoch > 0 and best < 0.1 * start


def test_level_head_cli_writes_a_checkpoint_whose_other_weights_are_untouched(src: Path, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    import soundfile as sf

    rows = ["db,con,filepath_deg,filename_deg,source,mos,noi,col,dis,loud,split,condition"]
    rng = np.random.default_rng(1)
    for i in range(12):
        gain = 10 ** (rng.uniform(-50, -5) / 20)
        sf.write(clips / f"c{i}.wav", (rng.standard_normal(16000) * gain).astype(np.float32), 16000)
        split = "val" if i % 3 == 0 else "train"
        rows.append(f"sim,0,clips/c{i}.wav,c{i}.wav,s,3,3,3,3,{1 + 3 * gain:.3f},{split},level")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "level.pt"
    argv = ["--checkpoint", str(src), "--manifest", str(manifest), "--hidden", "4", "--epochs", "50",
            "--cache", str(tmp_path / "c.npz"), "--out", str(out)]
    assert level_head.main(argv) == 0
    old = load_model(src)[0].state_dict()
    new, cfg, ckpt = load_model(out)
    assert cfg.head.level_hidden == 4 and ckpt["extra"]["level_head"]["hidden"] == 4
    for k, v in old.items():
        assert torch.equal(new.state_dict()[k], v), k
    assert (tmp_path / "c.npz").is_file()
    with pytest.raises(ConfigError, match="already has a level MLP"):
        level_head.main(["--checkpoint", str(out), "--manifest", str(manifest), "--out", str(tmp_path / "x.pt")])


def test_level_hidden_needs_level_input() -> None:
    with pytest.raises(ValueError, match="level_hidden"):
        dataclasses.replace(HeadConfig(), level_input=False, level_hidden=4)
