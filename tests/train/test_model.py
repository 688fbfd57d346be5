"""QualityModel: shapes, parameter counts, padding masks, head overfit, checkpoints."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from livesqa.errors import ConfigError
from train.checkpoint import init_encoder_from_asr, load_model, save_checkpoint
from train.config import EncoderConfig, HeadConfig, ModelConfig, load_toml
from train.heads import Probe
from train.losses import UncertaintyLoss
from train.model import QualityModel

ROOT = Path(__file__).resolve().parents[2]


def tiny(layer_attention: bool = True, n_layers: int = 2, level_input: bool = True) -> ModelConfig:
    return ModelConfig(
        encoder=EncoderConfig(n_layers=n_layers, d_model=32, n_heads=4, conv_kernel=7, dropout=0.0),
        head=HeadConfig(layer_attention=layer_attention, level_input=level_input, pool_hidden=16),
    )


def with_level_weights(model: QualityModel) -> QualityModel:
    """The level unit starts at zero; give it weights so tests can see it."""
    assert model.quality_head.level is not None
    with torch.no_grad():
        model.quality_head.level.weight.normal_(0.0, 1.0)
    return model


@pytest.mark.parametrize("name", ["small", "paper"])
def test_config_files_build_and_shapes(name: str) -> None:
    cfg = ModelConfig.from_dict(load_toml(ROOT / "configs" / "train" / f"{name}.toml")["model"])
    model = QualityModel(cfg).eval()
    with torch.no_grad():
        out = model.encode(torch.randn(2, 8000) * 0.1, torch.tensor([8000, 6000]))
        scores = model(torch.randn(1, 8000) * 0.1)
    n = cfg.encoder.n_layers
    assert len(out.layers) == len(out.lengths) == n + 1
    assert out.layers[0].shape == (2, 48, 80)  # (8000 - 400) // 160 + 1 frames at 10 ms
    assert out.lengths[0].tolist() == [48, 36]
    assert out.layers[n].shape == (2, 11, cfg.encoder.d_model)  # 48 -> 23 -> 11 at 40 ms
    assert out.lengths[n].tolist() == [11, 8]
    assert scores.shape == (1, 5)


def test_paper_parameter_count() -> None:
    """Paper: ~39.8M. Counted: every trainable tensor (subsampling convs + projection, 15
    blocks, CTC head, quality head); the front end's DFT/mel bases are fixed buffers. We use
    absolute sinusoidal positions, so no relative-position projections: 38.6M, within 10%."""
    cfg = ModelConfig.from_dict(load_toml(ROOT / "configs" / "train" / "paper.toml")["model"])
    n = QualityModel(cfg).n_params()
    assert abs(n - 39.8e6) / 39.8e6 < 0.10, n


def test_ctc_log_probs_normalised() -> None:
    model = QualityModel(tiny()).eval()
    lp, lengths = model.ctc_log_probs(torch.randn(2, 6000) * 0.1, torch.tensor([6000, 4000]))
    assert lp.shape == (2, 8, 29)
    assert lengths.tolist() == [8, 5]
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, 8))


@pytest.mark.parametrize("layer_attention", [True, False])
def test_padding_does_not_change_a_sample(layer_attention: bool) -> None:
    torch.manual_seed(0)
    model = with_level_weights(QualityModel(tiny(layer_attention))).eval()
    x = torch.randn(1, 7000) * 0.1
    batch = torch.cat([torch.cat([x, torch.randn(1, 5000)], dim=1), torch.randn(1, 12000) * 0.1])
    with torch.no_grad():
        alone = model(x)
        alone_len = model(x, torch.tensor([7000]))
        both = model(batch, torch.tensor([7000, 12000]))
    torch.testing.assert_close(both[0], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alone_len, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(both[0], both[1])  # sanity: the other row differs
    assert torch.all((alone >= 1.0) & (alone <= 5.0))


def test_head_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = QualityModel(tiny()).train()
    loss_fn = UncertaintyLoss(5)
    wav = torch.randn(4, 6000) * torch.tensor([[0.02], [0.1], [0.3], [0.05]])
    target = torch.tensor(
        [
            [1.5, 2.0, 4.5, 3.0, 1.2],
            [4.5, 4.0, 1.5, 2.0, 4.8],
            [3.0, 1.2, 3.0, 4.5, 2.5],
            [2.0, 3.5, 2.5, 1.0, 3.5],
        ]
    )
    opt = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only spin on a loaded machine
    try:
        losses = overfit_steps(model, loss_fn, opt, wav, target, steps=50)
    finally:
        torch.set_num_threads(threads)
    first, last = losses[0], losses[-1]
    assert last < 0.2 * first, (first, last)


def overfit_steps(
    model: QualityModel,
    loss_fn: UncertaintyLoss,
    opt: torch.optim.Optimizer,
    wav: torch.Tensor,
    target: torch.Tensor,
    steps: int,
) -> list[float]:
    """Mean per-task MSE before each of ``steps`` Adam steps on one batch."""
    out = []
    for _ in range(steps):
        loss, mse = loss_fn(model(wav), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(float(mse.mean()))
    return out


def test_probe_shapes_and_mask() -> None:
    torch.manual_seed(0)
    probe = Probe(12, hidden=8).eval()
    x = torch.randn(2, 20, 12)
    x2 = x.clone()
    x2[0, 15:] = 100.0  # padding beyond length 15 must not matter
    a = probe(x, torch.tensor([15, 20]))
    b = probe(x2, torch.tensor([15, 20]))
    c = probe(x[:1, :15], torch.tensor([15]))
    assert a.shape == (2, 5)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[:1], c, atol=1e-6, rtol=1e-6)


def test_checkpoint_round_trip_and_asr_init(tmp_path: Path) -> None:
    torch.manual_seed(0)
    asr = QualityModel(tiny())
    path = save_checkpoint(
        tmp_path / "asr" / "last.pt", asr, asr.cfg, stage="asr", extra={"cer": 0.5}, step=7
    )
    assert not list(path.parent.glob("*.tmp"))
    loaded, cfg, ckpt = load_model(path)
    assert cfg == asr.cfg and ckpt["step"] == 7 and ckpt["extra"] == {"cer": 0.5}
    wav = torch.randn(1, 6000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(loaded(wav), asr.eval()(wav))

    quality = QualityModel(tiny())
    n = init_encoder_from_asr(quality, path)
    assert n > 0
    state = quality.state_dict()
    for key, value in asr.state_dict().items():
        if key.startswith(("encoder.", "frontend.")):
            assert torch.equal(state[key], value), key
    assert not torch.equal(
        state["quality_head.probe.fc.0.weight"], asr.state_dict()["quality_head.probe.fc.0.weight"]
    )

    with pytest.raises(ConfigError):
        init_encoder_from_asr(QualityModel(tiny(n_layers=3)), path)
    with pytest.raises(ConfigError):
        save_checkpoint(tmp_path / "x.pt", asr, asr.cfg, stage="bogus")
    with pytest.raises(ConfigError):
        load_model(tmp_path / "missing.pt")


def test_level_input_sees_gain_that_cms_hides() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 8000) * 0.05
    paper = QualityModel(tiny(level_input=False)).eval()
    assert paper.quality_head.level is None
    ours = with_level_weights(QualityModel(tiny(level_input=True))).eval()
    with torch.no_grad():
        # CMS: a pure gain shifts every log-mel by a constant, removed by the mean
        torch.testing.assert_close(paper(x * 8.0), paper(x), atol=1e-4, rtol=0)
        assert float((ours(x * 8.0) - ours(x)).abs().max()) > 0.05
    fresh = QualityModel(tiny(level_input=True)).eval()  # zero-initialised: starts as the paper's
    with torch.no_grad():
        torch.testing.assert_close(fresh(x * 8.0), fresh(x), atol=1e-4, rtol=0)


def test_checkpoint_without_level_input_key_loads(tmp_path: Path) -> None:
    model = QualityModel(tiny(level_input=False))
    path = save_checkpoint(tmp_path / "old.pt", model, model.cfg, stage="quality")
    ckpt = torch.load(path, weights_only=True)
    del ckpt["model_config"]["head"]["level_input"]  # as written before the key existed
    torch.save(ckpt, path)
    loaded, cfg, _ = load_model(path)
    assert cfg.head.level_input is False and loaded.quality_head.level is None


def test_digital_silence_and_full_scale_stay_finite() -> None:
    torch.manual_seed(0)
    model = with_level_weights(QualityModel(tiny())).train()
    wav = torch.zeros(2, 8000)
    wav[1] = torch.sign(torch.randn(8000))  # full-scale square noise
    scores = model(wav, torch.tensor([8000, 5000]))
    assert torch.isfinite(scores).all()
    scores.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
