"""The level hinge: a known level measure, exact no-op inside its knots, fitted on known answers,
exported and imported with the same scores."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.train.test_export import spec_args, tiny_model
from train import level_hinge
from train.config import ModelConfig
from train.export import build_spec, check_parity, export_onnx
from train.frontend import power_weighted_level_db
from train.model import QualityModel
from train.onnx_import import state_dict_from_onnx

SR = 16000


def sine(amplitude: float, seconds: float = 2.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return (amplitude * torch.sin(2 * torch.pi * 440.0 * t))[None]


def test_level_of_a_sine_is_its_rms_and_a_gain_shifts_it_exactly() -> None:
    assert float(power_weighted_level_db(sine(0.5), None, 160)) == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.01)
    quiet = float(power_weighted_level_db(sine(0.5 * 10 ** (-30 / 20)), None, 160))
    assert quiet == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)) - 30.0, abs=0.01)


def test_pauses_zeroed_packets_and_padding_do_not_read_as_quiet() -> None:
    x = sine(0.1)
    ref = float(power_weighted_level_db(x, None, 160))
    chopped = x.clone()
    chopped[:, ::3200][:, :] = 0.0
    chopped = chopped.reshape(1, -1, 320)
    chopped[:, ::5] = 0.0  # 20 % of 20 ms packets lost as zeros
    assert float(power_weighted_level_db(chopped.reshape(1, -1), None, 160)) == pytest.approx(ref, abs=0.01)
    padded = torch.cat([x, torch.zeros(1, SR)], dim=1)
    assert float(power_weighted_level_db(padded, None, 160)) == pytest.approx(ref, abs=1e-4)
    noisy_tail = torch.cat([x, torch.randn(1, SR)], dim=1)  # beyond the row's length: ignored
    assert float(power_weighted_level_db(noisy_tail, torch.tensor([x.shape[1]]), 160)) == pytest.approx(ref, abs=1e-4)
    assert float(power_weighted_level_db(torch.zeros(1, SR), None, 160)) == pytest.approx(-100.0)


def hinged(model: QualityModel, quiet: float = -40.0, hot: float = -14.0, weight: float = 0.0) -> QualityModel:
    cfg: ModelConfig = dataclasses.replace(model.cfg, head=dataclasses.replace(
        model.cfg.head, level_hinge=True, hinge_quiet_db=quiet, hinge_hot_db=hot))
    out = QualityModel(cfg).eval()
    missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
    assert missing == ["quality_head.hinge.weight"] and not unexpected
    with torch.no_grad():
        out.quality_head.hinge.weight.fill_(weight)
    return out


def test_scores_are_exactly_the_input_model_inside_the_knots_and_move_outside() -> None:
    base = tiny_model(seed=1)
    with torch.no_grad():  # away from the sigmoid's flat ends, so any logit change shows
        base.quality_head.probe.readout.weight.div_(20.0)
        base.quality_head.level.weight.div_(20.0)
    model = hinged(base, weight=-1.0)
    normal, quiet, hot = sine(0.05), sine(0.0005), sine(0.9)  # about -29, -69, -4 dBFS
    with torch.no_grad():
        assert torch.equal(hinged(base)(quiet), base(quiet))  # zero weights: the input model
        assert torch.equal(model(normal), base(normal))
        assert torch.all(model(quiet) < base(quiet)) and torch.all(model(hot) < base(hot))


def test_config_round_trip_keeps_old_configs_unchanged() -> None:
    cfg = tiny_model().cfg
    assert "level_hinge" not in cfg.to_dict()["head"]
    with_hinge = hinged(tiny_model()).cfg
    assert ModelConfig.from_dict(with_hinge.to_dict()) == with_hinge
    with pytest.raises(ValueError, match="hinge_quiet_db"):
        dataclasses.replace(cfg.head, level_hinge=True, hinge_quiet_db=-10.0, hinge_hot_db=-20.0)


def test_fit_recovers_known_weights_and_does_not_write_the_intercept() -> None:
    rng = np.random.default_rng(0)

    def rows(n: int) -> tuple[np.ndarray, ...]:
        z = rng.normal(0.0, 1.0, (n, 5))
        lvl = rng.uniform(-70.0, -5.0, n)
        true_w = np.array([[-1.5, 0, 0, 0, -2.0], [-0.8, 0, 0, 0, -1.0]])
        logit = z + level_hinge.hinge_features(lvl, -40.0, -16.0) @ true_w - 0.3  # a corpus-wide offset
        return z.astype(np.float32), lvl.astype(np.float32), (1 + 4 / (1 + np.exp(-logit))).astype(np.float32)

    train, val = rows(1500), rows(300)
    fit = level_hinge.fit_hinge(train, val, -40.0, -16.0, 1.0, 5.0, epochs=1500, lr=3e-2)
    w = np.asarray(fit["weight"])
    np.testing.assert_allclose(w[:, [0, 4]], [[-1.5, -2.0], [-0.8, -1.0]], atol=0.1)
    np.testing.assert_allclose(fit["intercept"], -0.3, atol=0.05)
    assert fit["val_mse"] < 1e-3 < float(fit["val_mse_before"])
    wrong_knots = level_hinge.fit_hinge(train, val, -50.0, -8.0, 1.0, 5.0, epochs=1500, lr=3e-2)
    assert wrong_knots["val_mse"] > fit["val_mse"]


def test_export_parity_and_onnx_import_keep_the_hinge(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    model = hinged(tiny_model(seed=2), quiet=-35.0, hot=-12.0, weight=0.7)
    path = tmp_path / "hinge.onnx"
    export_onnx(model, path, build_spec(spec_args(path), model.cfg, {"stage": "quality", "step": 1}, model.n_params()))
    assert max(check_parity(model, path).values()) < 1e-4
    cfg, state, _ = state_dict_from_onnx(path)
    assert cfg == model.cfg
    assert torch.equal(state["quality_head.hinge.weight"], model.quality_head.hinge.weight.detach())


def test_streaming_models_refuse_a_hinge_without_power_sums() -> None:
    from train.streaming import _readout

    model = hinged(tiny_model())
    with pytest.raises(ValueError, match="level hinge"):
        _readout(model, torch.zeros(1, 5, 32), torch.zeros(1, 80))

def test_fit_of_chosen_outputs_leaves_the_others_at_zero() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 1.0, (600, 5)).astype(np.float32)
    lvl = rng.uniform(-70.0, -5.0, 600).astype(np.float32)
    t = (1 + 4 / (1 + np.exp(-(z + level_hinge.hinge_features(lvl, -40.0, -16.0) @ np.full((2, 5), -1.0))))).astype(np.float32)
    fit = level_hinge.fit_hinge((z[:500], lvl[:500], t[:500]), (z[500:], lvl[500:], t[500:]), -40.0, -16.0,
                                1.0, 5.0, epochs=800, lr=3e-2, outputs=[4])
    w = np.asarray(fit["weight"])
    assert np.all(w[:, :4] == 0.0) and np.all(w[:, 4] < -0.5)


def _streaming_hinged(weight: float = -1.0) -> QualityModel:
    from tests.train.test_streaming import model_with_level, streaming_cfg

    return hinged(model_with_level(streaming_cfg()), quiet=-35.0, hot=-16.0, weight=weight)


def test_streaming_hinge_step_by_step_equals_the_masked_full_forward_whole_and_partial() -> None:
    from tests.train.test_streaming import run_steps
    from train.streaming import StreamingStep, chunk_samples, chunked_forward, tail_samples

    model = _streaming_hinged()
    step = StreamingStep(model, 5)
    assert step.states[-1].name == "power_sums"
    g = torch.Generator().manual_seed(3)
    n = 6
    wav = 0.1 * torch.randn(2, tail_samples(model) + n * chunk_samples(model, 5) + 3 * 640, generator=g)
    wav[1] *= torch.linspace(0.0005, 1.0, wav.shape[1])  # from whisper-quiet to loud: the hinge acts
    with torch.no_grad():
        full = chunked_forward(model, wav, 5, final_partial=True)
        steps = run_steps(model, wav, 5)
        state = step.init_state(2)
        state[0] = wav[:, : step.tail]
        for c in range(n):
            a = step.tail + c * step.chunk_samples
            _, *state = step(wav[:, a: a + step.chunk_samples], *state)
        last, *_ = step(wav[:, step.tail + n * step.chunk_samples:], *state)
        base = chunked_forward(_streaming_hinged(0.0), wav, 5, final_partial=True)
    assert torch.allclose(full[:, :n], steps, atol=1e-5), (full[:, :n] - steps).abs().max()
    assert torch.allclose(full[:, -1], last, atol=1e-5)
    assert (full - base).abs().max() > 1e-3  # the quiet rows moved


def test_streaming_hinge_window_level_is_the_windowed_models() -> None:
    """A row's power sums cover the chunks of its window, as the windowed model's whole window
    (the first tail samples aside: silence here; the tail is not a whole number of 10 ms frames,
    so the two frame grids are offset and the levels agree to a few hundredths of a dB)."""
    from train.streaming import chunk_power_sums, chunk_samples, power_level_db, tail_samples

    model = _streaming_hinged()
    k_samples = chunk_samples(model, 5)
    wav = torch.zeros(1, tail_samples(model) + 4 * k_samples)
    wav[:, tail_samples(model):] = 0.03 * torch.randn(1, 4 * k_samples, generator=torch.Generator().manual_seed(4))
    sums = sum(chunk_power_sums(model, wav[:, tail_samples(model) + c * k_samples:][:, :k_samples]) for c in range(4))
    assert float(power_level_db(sums)) == pytest.approx(float(power_weighted_level_db(wav, None, 160)), abs=0.05)


def test_streaming_export_with_a_hinge_has_parity_and_comes_back(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from train import export_streaming
    from train.checkpoint import load_model
    from train.onnx_import import main as import_main
    from train.streaming import StreamingStep, chunked_forward

    model = _streaming_hinged(weight=0.8)
    step = StreamingStep(model, 5, per_layer_state=True)
    path = tmp_path / "s.onnx"
    args = export_streaming.parse_args(["--random-init", "x", "--out", str(path)])
    export_streaming.export_streaming_onnx(
        step, path, export_streaming.build_spec(args, step, model.cfg, {"stage": "quality"}, model.n_params()))
    assert export_streaming.check_parity(step, path) < 1e-4
    out = tmp_path / "back.pt"
    assert import_main(["--model", str(path), "--out", str(out)]) == 0
    back, _, _ = load_model(out)
    x = torch.from_numpy((0.002 * np.random.default_rng(1).standard_normal((1, 720 + 6 * 3200))).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(chunked_forward(back, x), chunked_forward(model, x), atol=1e-4)


def _level_manifest(tmp_path: Path, n: int = 15) -> Path:
    """Noise clips at levels -66..-6 dBFS with LOUD labels that fall below -35 dBFS."""
    import soundfile as sf

    clips = tmp_path / "clips"
    clips.mkdir()
    rows = ["db,con,filepath_deg,filename_deg,source,mos,noi,col,dis,loud,split,condition"]
    for i, level in enumerate(np.linspace(-66.0, -6.0, n)):
        rng = np.random.default_rng(i)
        sf.write(clips / f"c{i}.wav", (rng.standard_normal(SR) * 10 ** (level / 20)).astype(np.float32), SR)
        loud = 4.0 - 0.1 * max(0.0, -35.0 - level)
        rows.append(f"sim,0,clips/c{i}.wav,c{i}.wav,s,3,3,3,3,{loud:.3f},{'val' if i % 3 == 0 else 'train'},x")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def test_cli_fit_then_copy_from_write_only_the_hinge_and_refuse_by_name(tmp_path: Path) -> None:
    from livesqa.errors import ConfigError
    from train.checkpoint import load_model, save_checkpoint

    base = tiny_model(seed=3)
    src = save_checkpoint(tmp_path / "src.pt", base, base.cfg, stage="quality")
    manifest = _level_manifest(tmp_path)
    fitted = tmp_path / "fitted.pt"
    assert level_hinge.main(["--checkpoint", str(src), "--manifest", str(manifest), "--epochs", "20",
                             "--outputs", "loud", "--out", str(fitted)]) == 0
    model, cfg, ckpt = load_model(fitted)
    assert cfg.head.level_hinge
    assert (cfg.head.hinge_quiet_db, cfg.head.hinge_hot_db) in itertools.product(level_hinge.QUIET_GRID_DB,
                                                                                  level_hinge.HOT_GRID_DB)
    w = model.quality_head.hinge.weight.detach()
    assert torch.all(w[:, :4] == 0.0) and torch.any(w[:, 4] != 0.0)
    old = base.state_dict()
    assert all(torch.equal(v, old[k]) for k, v in model.state_dict().items() if k != "quality_head.hinge.weight")
    assert ckpt["extra"]["level_hinge"]["outputs"] == ["loud"]

    other = tiny_model(seed=4)
    dst = save_checkpoint(tmp_path / "dst.pt", other, other.cfg, stage="quality")
    copied = tmp_path / "copied.pt"
    assert level_hinge.main(["--checkpoint", str(dst), "--copy-from", str(fitted), "--out", str(copied)]) == 0
    model2, cfg2, ckpt2 = load_model(copied)
    assert (cfg2.head.hinge_quiet_db, cfg2.head.hinge_hot_db) == (cfg.head.hinge_quiet_db, cfg.head.hinge_hot_db)
    assert torch.equal(model2.quality_head.hinge.weight, model.quality_head.hinge.weight)
    old2 = other.state_dict()
    assert all(torch.equal(v, old2[k]) for k, v in model2.state_dict().items() if k != "quality_head.hinge.weight")
    assert ckpt2["extra"]["level_hinge"]["copied_from"] == str(fitted)

    with pytest.raises(ConfigError, match="has no level hinge"):
        level_hinge.main(["--checkpoint", str(dst), "--copy-from", str(src), "--out", str(tmp_path / "x.pt")])
    with pytest.raises(ConfigError, match="already has a level hinge"):
        level_hinge.main(["--checkpoint", str(fitted), "--manifest", str(manifest), "--out", str(tmp_path / "x.pt")])
    with pytest.raises(ConfigError, match="--outputs"):
        level_hinge.main(["--checkpoint", str(src), "--manifest", str(manifest), "--outputs", "pitch",
                          "--out", str(tmp_path / "x.pt")])
    assert not (tmp_path / "x.pt").exists()
