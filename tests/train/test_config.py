"""train.config: TOML + overrides, strict build, round trips."""

from pathlib import Path

import pytest
import tomllib

from livesqa.errors import ConfigError
from train.config import EncoderConfig, FrontendConfig, ModelConfig, build, dump_toml, load_toml


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_overrides_parse_toml_literals(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "[model.encoder]\nn_layers = 2\nd_model = 32\nn_heads = 4\n[finetune]\nlr = 1e-3\n",
    )
    cfg = load_toml(
        p,
        [
            "finetune.lr=3e-4",
            "model.head.layer_attention=false",
            "data.root=../x",
            'data.name="a b"',
        ],
    )
    assert cfg["finetune"]["lr"] == 3e-4
    assert cfg["model"]["head"] == {"layer_attention": False}
    assert cfg["data"] == {"root": "../x", "name": "a b"}
    model = ModelConfig.from_dict(cfg["model"])
    assert model.encoder == EncoderConfig(n_layers=2, d_model=32, n_heads=4)
    assert model.head.layer_attention is False


def test_build_rejects_unknown_missing_and_bad_types() -> None:
    with pytest.raises(ConfigError, match="n_mel"):
        build(FrontendConfig, {"n_mel": 80})
    with pytest.raises(ConfigError, match="d_model"):
        build(EncoderConfig, {"n_layers": 2, "n_heads": 4})
    with pytest.raises(ConfigError, match="integer"):
        build(EncoderConfig, {"n_layers": "2", "d_model": 32, "n_heads": 4})
    with pytest.raises(ConfigError, match="divisible"):
        build(EncoderConfig, {"n_layers": 2, "d_model": 30, "n_heads": 4})
    assert build(FrontendConfig, {"win_ms": 25}).win_ms == 25.0  # ints widen to float
    with pytest.raises(ConfigError, match="model.encoder.bogus"):
        ModelConfig.from_dict({"encoder": {"n_layers": 2, "d_model": 32, "n_heads": 4, "bogus": 1}})


def test_errors_for_files_and_overrides(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_toml(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_toml(write(tmp_path, "a = = 1"))
    with pytest.raises(ConfigError, match="section.key=value"):
        load_toml(write(tmp_path, ""), ["novalue"])


def test_model_config_round_trips_through_toml() -> None:
    cfg = ModelConfig(encoder=EncoderConfig(n_layers=3, d_model=64, n_heads=2))
    text = dump_toml(
        {"model": cfg.to_dict(), "finetune": {"lr": 1e-3, "tags": ["a", "b"], "name": 'x"y'}}
    )
    back = tomllib.loads(text)
    assert ModelConfig.from_dict(back["model"]) == cfg
    assert back["finetune"] == {"lr": 1e-3, "tags": ["a", "b"], "name": 'x"y'}
