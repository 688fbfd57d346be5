"""Checkpoints = model config + state dict (+ optimizer, step, free-form ``extra``).

Why the config inside: a checkpoint alone rebuilds its model (whisper's habit), so export,
probing and evaluation need no config file that could disagree with the weights. Files are
written to a temp file in the same folder and renamed, so a run killed mid-save never leaves
a truncated ``last.pt`` to resume from. ``extra`` must hold plain values (numbers, strings,
lists, dicts, tensors): files load with ``weights_only=True``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from livesqa.errors import ConfigError
from train.config import ModelConfig
from train.model import QualityModel

STAGES = ("asr", "quality")
FORMAT_VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    model_cfg: ModelConfig,
    *,
    stage: str,
    extra: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    step: int = 0,
) -> Path:
    """Atomically write a checkpoint; returns its path."""
    if stage not in STAGES:
        raise ConfigError(f"checkpoint stage {stage!r} must be one of {STAGES}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model_config": model_cfg.to_dict(),
        "state_dict": model.state_dict(),
        "stage": stage,
        "extra": dict(extra or {}),
        "step": int(step),
    }
    if optimizer is not None:
        payload["optimizer"] = optimizer.state_dict()
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (tensors on CPU)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle, zip and runtime errors alike
        raise ConfigError(f"{p}: not a readable checkpoint ({e})") from e
    if not isinstance(ckpt, dict) or "model_config" not in ckpt or "state_dict" not in ckpt:
        raise ConfigError(f"{p}: not a livesqa checkpoint (no model_config/state_dict)")
    return ckpt


def load_model(path: str | Path) -> tuple[QualityModel, ModelConfig, dict[str, Any]]:
    """Rebuild the model from a checkpoint, in eval mode; returns (model, config, checkpoint)."""
    ckpt = load_checkpoint(path)
    model_config = dict(ckpt["model_config"])
    head = dict(model_config.get("head", {}))
    head.setdefault("level_input", False)  # checkpoints from before the level input existed
    model_config["head"] = head
    cfg = ModelConfig.from_dict(model_config)
    model = QualityModel(cfg)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise ConfigError(f"{path}: weights do not match their own config ({e})") from e
    model.eval()
    return model, cfg, ckpt


def init_encoder_from_asr(model: QualityModel, asr_ckpt_path: str | Path) -> int:
    """Copy front-end and encoder weights from an ASR checkpoint; returns tensors copied.

    The quality head (and CTC head) stay as initialised. Front end and encoder configs must
    match exactly, or the pretrained weights would be silently misread.
    """
    ckpt = load_checkpoint(asr_ckpt_path)
    src = ModelConfig.from_dict(ckpt["model_config"])
    if src.frontend != model.cfg.frontend or _arch(src) != _arch(model.cfg):
        raise ConfigError(
            f"{asr_ckpt_path}: encoder/frontend config {src.encoder}, {src.frontend} does not "
            f"match the model's {model.cfg.encoder}, {model.cfg.frontend}"
        )
    wanted = {
        k: v for k, v in ckpt["state_dict"].items() if k.startswith(("frontend.", "encoder."))
    }
    if not any(k.startswith("encoder.") for k in wanted):
        raise ConfigError(f"{asr_ckpt_path}: holds no encoder weights")
    missing, unexpected = model.load_state_dict(wanted, strict=False)
    if unexpected:
        raise ConfigError(f"{asr_ckpt_path}: unexpected encoder keys {unexpected[:5]}")
    still = [k for k in missing if k.startswith(("frontend.", "encoder."))]
    if still:
        raise ConfigError(f"{asr_ckpt_path}: missing encoder keys {still[:5]}")
    return len(wanted)


def _arch(cfg: ModelConfig) -> tuple[Any, ...]:
    """Encoder fields that shape weights (dropout may differ between stages)."""
    e = cfg.encoder
    return (e.n_layers, e.d_model, e.n_heads, e.ff_mult, e.conv_kernel, e.subsampling_channels)
