"""Re-fit the MOS output's level term to broadband level (`python -m train mos-level`).

Why: CMS removes each window's mean log-mel, and the quality head adds it back through one
linear row per output on all 80 channels: level *and* long-term spectrum. For MOS that row reads
the spectrum that noise fills in as a higher score; on three of the four human-rated views it
correlates negatively with the listeners (``results/v12/level-term.md``). Loudness is what the
term is there for, and loudness needs the level, not the spectral shape.

How: every weight of the input checkpoint stays; only the MOS output is re-parameterised as
``a * enc + w * lvl + c`` (``enc`` the MOS logit without the level row, ``lvl`` the mean over mel
channels of the mean log-mel, scaled by ``LEVEL_SCALE``), which is written back exactly into the
same weights (readout MOS row times ``a``, level MOS row ``w / n_mels`` on every channel, its
bias ``c``), so the graph, the export and the cost are unchanged. ``a, w, c`` are fitted to the
MOS targets in score space, full batch, early stopping on the validation split; ``--no-level``
fixes ``w = 0``. ``--target self`` fits to the input model's own MOS score instead of the manifest's
labels: the re-fit then drops the spectral shape without moving the model's scale toward the
labels' (a fit to labels inherits their clean-speech scale, ``results/v12/README.md``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import ModelConfig
from train.heads import LEVEL_SCALE
from train.level_head import split_logits
from train.model import QualityModel

MOS = DIMENSIONS.index("mos")


def encoder_logit(model: QualityModel, logits: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """The MOS logit without the level row's contribution: ``[N]``."""
    level = model.quality_head.level
    assert level is not None
    w = level.weight[MOS].detach().numpy().astype(np.float64)
    b = float(level.bias[MOS].detach())
    return logits[:, MOS].astype(np.float64) - (levels.astype(np.float64) / LEVEL_SCALE) @ w - b


def broadband_level(levels: np.ndarray) -> np.ndarray:
    """Mean over mel channels of the mean log-mel, scaled as the head scales it: ``[N]``."""
    return levels.astype(np.float64).mean(axis=1) / LEVEL_SCALE


def fit_mos_output(enc: tuple[np.ndarray, np.ndarray], lvl: tuple[np.ndarray, np.ndarray],
                   target: tuple[np.ndarray, np.ndarray], score_min: float, score_max: float,
                   use_level: bool, epochs: int = 3000, lr: float = 1e-2) -> dict[str, float]:
    """Fit ``a, w, c`` of ``score = min + span * sigmoid(a * enc + w * lvl + c)`` (train, val pairs).

    Starts at ``a = 1, w = 0`` and ``c`` = 0 (the encoder path alone); keeps the parameters of the
    lowest validation MSE. Rows with a NaN target are left out.
    """
    span = score_max - score_min

    def tensors(i: int) -> tuple[torch.Tensor, ...]:
        ok = ~np.isnan(target[i])
        return tuple(torch.from_numpy(np.asarray(a[ok], np.float64)) for a in (enc[i], lvl[i], target[i]))

    te, tl, tt = tensors(0)
    ve, vl, vt = tensors(1)
    a = torch.ones((), dtype=torch.float64, requires_grad=True)
    w = torch.zeros((), dtype=torch.float64, requires_grad=use_level)
    c = torch.zeros((), dtype=torch.float64, requires_grad=True)
    params = [a, c] + ([w] if use_level else [])
    opt = torch.optim.Adam(params, lr=lr)

    def mse(e: torch.Tensor, lv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return ((score_min + span * torch.sigmoid(a * e + w * lv + c) - t) ** 2).mean()

    with torch.no_grad():
        start = float(mse(ve, vl, vt))
    best = (float("inf"), 0, 1.0, 0.0, 0.0)
    for epoch in tqdm(range(1, epochs + 1), desc="fitting MOS output", unit="epoch"):
        opt.zero_grad()
        mse(te, tl, tt).backward()
        opt.step()
        with torch.no_grad():
            v = float(mse(ve, vl, vt))
        if v < best[0]:
            best = (v, epoch, float(a), float(w), float(c))
    return {"val_mse_encoder_only": start, "val_mse": best[0], "epoch": best[1],
            "a": best[2], "w": best[3], "c": best[4]}


def own_mos(logits: np.ndarray, score_min: float, score_max: float) -> np.ndarray:
    """The model's own MOS score from its cached logits: the ``--target self`` target, ``[N]``."""
    return score_min + (score_max - score_min) / (1.0 + np.exp(-logits[:, MOS].astype(np.float64)))


def write_mos_output(model: QualityModel, a: float, w: float, c: float) -> None:
    """Write ``a * enc + w * lvl + c`` into the model's own MOS weights (in place)."""
    head = model.quality_head
    readout, level = head.probe.readout, head.level
    assert level is not None
    with torch.no_grad():
        readout.weight[MOS] *= a
        readout.bias[MOS] *= a
        level.weight[MOS] = w / level.weight.shape[1]
        level.bias[MOS] = c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train mos-level", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="trained quality checkpoint (windowed)")
    parser.add_argument("--manifest", required=True, type=Path, help="labelled corpus (train and val splits)")
    parser.add_argument("--no-level", action="store_true", help="MOS ignores the level (w = 0)")
    parser.add_argument("--target", choices=("labels", "self"), default="labels",
                        help="fit to the manifest's MOS labels, or to the input model's own MOS score")
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--cache", type=Path, default=None, help="npz of cached logits (reused if present)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise ConfigError(f"checkpoint not found: {args.checkpoint}")
    if not args.manifest.is_file():
        raise ConfigError(f"manifest not found: {args.manifest}")
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    if not cfg.head.level_input or cfg.head.level_hidden:
        raise ConfigError(f"{args.checkpoint}: needs a linear level term and no level MLP")
    if cfg.streaming.enabled:
        raise ConfigError(f"{args.checkpoint}: a streaming model; this stage fits windowed models")
    torch.set_num_threads(1)
    model = QualityModel(cfg)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    sr = cfg.frontend.sample_rate_hz
    train, val = split_logits(model, args.manifest, sr, args.cache)
    lo, hi = cfg.head.score_min, cfg.head.score_max
    if args.target == "self":
        targets = (own_mos(train[0], lo, hi), own_mos(val[0], lo, hi))
    else:
        targets = (train[2][:, MOS].astype(np.float64), val[2][:, MOS].astype(np.float64))
    fit = fit_mos_output(
        (encoder_logit(model, train[0], train[1]), encoder_logit(model, val[0], val[1])),
        (broadband_level(train[1]), broadband_level(val[1])),
        targets, lo, hi, use_level=not args.no_level, epochs=args.epochs)
    v_ok = ~np.isnan(targets[1])
    fit["val_mse_before"] = float(np.mean((own_mos(val[0], lo, hi)[v_ok] - targets[1][v_ok]) ** 2))
    write_mos_output(model, fit["a"], fit["w"], fit["c"])
    extra = dict(ckpt.get("extra", {}))
    extra["mos_level"] = {"from": str(args.checkpoint), "manifest": str(args.manifest),
                          "level": not args.no_level, "target": args.target, **fit}
    save_checkpoint(args.out, model, cfg, stage="quality", extra=extra, step=int(ckpt.get("step", 0)))
    print(f"wrote {args.out}: MOS = a*enc + w*lvl + c with a={fit['a']:.3f} w={fit['w']:.3f} c={fit['c']:.3f}; "
          f"val MSE: input model {fit['val_mse_before']:.4f}, encoder only {fit['val_mse_encoder_only']:.4f}, "
          f"fitted {fit['val_mse']:.4f} (epoch {fit['epoch']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
