"""Teach a trained student what level does to quality (`python -m train level-hinge`).

Why: CMS hides level from the encoder, and the head's one linear term on the mean log-mel reads
the long-term spectrum more than the level. The students rate a clean talker at -56 dBFS MOS 3.3
and LOUD 3.2 where NISQA says 1.9 and 1.4, and a hot, clipping input too high as well
(``python -m train sanity --teacher-reference``). A level MLP on the mean log-mel was tried
(``results/v8/level.md``): it learnt the corpus's spectra and lost on human ratings.

How: everything of the input checkpoint stays. ``train.heads.LevelHinge`` adds, per output, a
weight on ``relu(quiet - L)`` and one on ``relu(L - hot)``, ``L`` the window's power-weighted
level (one number, exactly shifted by a gain, blind to pauses and zeroed packets). Inside
``[quiet, hot]`` the scores are bit-for-bit the input model's. One pass caches each clip's
pre-sigmoid logits, ``L`` and targets; for each pair of knots of the grid, the weights and a
per-output intercept are fitted (full batch, score-space MSE against the teacher targets,
early stopping on the validation split); the pair with the lowest validation MSE is kept. The
intercept only absorbs the corpus's overall offset from the model while fitting and is *not*
written: the change is to act on level alone, not to recalibrate normal-level speech.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import ModelConfig
from train.data import QualityDataset, read_quality_manifest
from train.heads import LEVEL_SCALE
from train.level_head import encoded_batches, masked_mse
from train.model import QualityModel

QUIET_GRID_DB = (-50.0, -45.0, -40.0, -35.0)
HOT_GRID_DB = (-20.0, -16.0, -12.0, -8.0)


def cache_rows(model: QualityModel, ds: QualityDataset, batch_size: int = 16) -> tuple[np.ndarray, ...]:
    """(pre-sigmoid logits [N, K] of the input model, power-weighted level [N] dBFS, targets [N, K])."""
    from train.frontend import power_weighted_level_db

    head = model.quality_head
    n = len(ds)
    logits = np.zeros((n, head.cfg.n_outputs), np.float32)
    level_db = np.zeros(n, np.float32)
    targets = np.zeros_like(logits)
    for idx, samples, batch, (_, _, level, blocks, lengths) in encoded_batches(model, ds, batch_size):
        with torch.no_grad():
            out = head.logits(blocks, lengths, level)
            if head.level_mlp is not None:
                out = out + head.level_mlp(level / LEVEL_SCALE)
            logits[idx] = out.numpy()
            level_db[idx] = power_weighted_level_db(batch.wav, batch.wav_lengths, model.frontend.hop_samples).numpy()
        targets[idx] = np.stack([s[1] for s in samples])
    return logits, level_db, targets


def split_rows(model: QualityModel, manifests: list[Path], sample_rate_hz: int,
               cache: Path | None) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """:func:`cache_rows` of the train and val splits of every manifest, concatenated; read from
    ``cache`` (npz) if it exists, else computed and written there (when given)."""
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return ((z["train_logits"], z["train_level_db"], z["train_targets"]),
                (z["val_logits"], z["val_level_db"], z["val_targets"]))
    parts: dict[str, list[tuple[np.ndarray, ...]]] = {"train": [], "val": []}
    for manifest, split in itertools.product(manifests, ("train", "val")):
        rows = read_quality_manifest(str(manifest), split)
        if rows:
            parts[split].append(cache_rows(model, QualityDataset(rows, sample_rate_hz)))
    if not parts["train"] or not parts["val"]:
        raise ConfigError("the manifests need labelled rows in both the train and the val split")
    train, val = (tuple(np.concatenate([p[i] for p in parts[s]]) for i in range(3)) for s in ("train", "val"))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, train_logits=train[0], train_level_db=train[1], train_targets=train[2],
                 val_logits=val[0], val_level_db=val[1], val_targets=val[2])
    return train, val


def hinge_features(level_db: np.ndarray, quiet_db: float, hot_db: float) -> np.ndarray:
    """``[N]`` -> ``[N, 2]``, exactly as ``train.heads.LevelHinge.features``."""
    return np.stack([np.maximum(quiet_db - level_db, 0.0), np.maximum(level_db - hot_db, 0.0)], axis=1) / 10.0


def fit_hinge(train: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...], quiet_db: float, hot_db: float,
              score_min: float, score_max: float, epochs: int = 3000, lr: float = 1e-2,
              outputs: list[int] | None = None) -> dict[str, object]:
    """Fit the hinge weights ``[2, K]`` and an intercept ``[K]`` for one pair of knots.

    ``outputs``: fit only these output columns (the others keep zero weights and are left out of
    the loss). Returns the weights of the lowest validation MSE, that MSE (with the intercept), the
    validation MSE of the input model and of the input model plus the hinge alone (what is written).
    """
    span = score_max - score_min
    cols = list(range(train[0].shape[1])) if outputs is None else outputs

    def tensors(part: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, lvl, t = part
        return (torch.from_numpy(z[:, cols].astype(np.float64)),
                torch.from_numpy(hinge_features(lvl.astype(np.float64), quiet_db, hot_db)),
                torch.from_numpy(t[:, cols].astype(np.float64)))

    tz, th, tt = tensors(train)
    vz, vh, vt = tensors(val)
    k = tz.shape[1]
    w = torch.zeros(2, k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=lr)

    def mse(z: torch.Tensor, h: torch.Tensor, t: torch.Tensor, intercept: bool = True) -> torch.Tensor:
        logit = z + h @ w + (b if intercept else 0.0)
        return masked_mse(score_min + span * torch.sigmoid(logit), t)

    with torch.no_grad():
        before = float(masked_mse(score_min + span * torch.sigmoid(vz), vt))
    best: tuple[float, int, np.ndarray, np.ndarray] = (float("inf"), 0, w.detach().numpy().copy(), b.detach().numpy().copy())
    for epoch in range(1, epochs + 1):
        opt.zero_grad()
        mse(tz, th, tt).backward()
        opt.step()
        with torch.no_grad():
            v = float(mse(vz, vh, vt))
        if v < best[0]:
            best = (v, epoch, w.detach().numpy().copy(), b.detach().numpy().copy())
    with torch.no_grad():
        w.copy_(torch.from_numpy(best[2]))
        written = float(mse(vz, vh, vt, intercept=False))
    weight = np.zeros((2, train[0].shape[1]))
    intercept = np.zeros(train[0].shape[1])
    weight[:, cols], intercept[cols] = best[2], best[3]
    return {"quiet_db": quiet_db, "hot_db": hot_db, "val_mse": best[0], "epoch": best[1],
            "val_mse_before": before, "val_mse_written": written,
            "weight": weight.tolist(), "intercept": intercept.tolist()}


def with_hinge(checkpoint: Path, ckpt: dict, cfg: ModelConfig, quiet_db: float, hot_db: float,
               weight: torch.Tensor) -> tuple[QualityModel, ModelConfig]:
    """``ckpt``'s model grown by a level hinge with these knots and weights, every other weight kept.

    Why one place: the fit and ``--copy-from`` must both refuse a checkpoint whose weights are not
    exactly its own config's plus the hinge, or a copy would silently keep random weights.
    """
    new_cfg = dataclasses.replace(cfg, head=dataclasses.replace(
        cfg.head, level_hinge=True, hinge_quiet_db=float(quiet_db), hinge_hot_db=float(hot_db)))
    model = QualityModel(new_cfg)
    missing, unexpected = model.load_state_dict(ckpt["state_dict"], strict=False)
    if unexpected or missing != ["quality_head.hinge.weight"]:
        raise ConfigError(f"{checkpoint}: weights do not match its own config")
    with torch.no_grad():
        assert model.quality_head.hinge is not None
        model.quality_head.hinge.weight.copy_(weight)
    return model, new_cfg


def copy_hinge(checkpoint: Path, source: Path, out: Path) -> int:
    """Write ``checkpoint`` with ``source``'s level hinge (knots and weights), everything else kept.

    Why: the streaming file is distilled from the windowed model row by row, so the same level
    correction applies to its logits; ``train.streaming`` carries the window's power sums in state.
    """
    if not source.is_file():
        raise ConfigError(f"--copy-from: checkpoint not found: {source}")
    src = load_checkpoint(source)
    src_cfg = ModelConfig.from_dict(src["model_config"])
    if not src_cfg.head.level_hinge:
        raise ConfigError(f"--copy-from {source}: has no level hinge")
    ckpt = load_checkpoint(checkpoint)
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    if cfg.head.level_hinge:
        raise ConfigError(f"{checkpoint}: already has a level hinge")
    if cfg.head.n_outputs != src_cfg.head.n_outputs:
        raise ConfigError(f"{checkpoint} and {source}: different outputs")
    model, new_cfg = with_hinge(checkpoint, ckpt, cfg, src_cfg.head.hinge_quiet_db, src_cfg.head.hinge_hot_db,
                                src["state_dict"]["quality_head.hinge.weight"])
    extra = dict(ckpt.get("extra", {}))
    extra["level_hinge"] = {"copied_from": str(source), **src.get("extra", {}).get("level_hinge", {})}
    save_checkpoint(out, model, new_cfg, stage="quality", extra=extra, step=int(ckpt.get("step", 0)))
    print(f"wrote {out}: the level hinge of {source} (knots {new_cfg.head.hinge_quiet_db:.0f} / "
          f"{new_cfg.head.hinge_hot_db:.0f} dBFS)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train level-hinge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="trained windowed quality checkpoint (kept)")
    parser.add_argument("--manifest", type=Path, action="append", default=[],
                        help="labelled corpus with train and val rows (repeatable: the splits are pooled)")
    parser.add_argument("--copy-from", type=Path, default=None,
                        help="take the knots and weights of this checkpoint's hinge instead of fitting "
                             "(e.g. onto the streaming model distilled from it)")
    parser.add_argument("--epochs", type=int, default=3000, help="full-batch epochs per pair of knots")
    parser.add_argument("--outputs", default=",".join(DIMENSIONS),
                        help="comma-separated outputs the hinge acts on (the others keep zero weights)")
    parser.add_argument("--cache", type=Path, default=None, help="npz of cached logits (reused if present)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.outputs.split(",") if n.strip()]
    unknown = [n for n in names if n not in DIMENSIONS]
    if unknown or not names:
        raise ConfigError(f"--outputs: unknown {unknown or 'empty'}; choose from {', '.join(DIMENSIONS)}")
    outputs = [DIMENSIONS.index(n) for n in names]
    if not args.checkpoint.is_file():
        raise ConfigError(f"checkpoint not found: {args.checkpoint}")
    if args.copy_from is not None:
        return copy_hinge(args.checkpoint, args.copy_from, args.out)
    if not args.manifest:
        raise ConfigError("--manifest is needed to fit (or give --copy-from)")
    for m in args.manifest:
        if not m.is_file():
            raise ConfigError(f"manifest not found: {m}")
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    if cfg.head.level_hinge:
        raise ConfigError(f"{args.checkpoint}: already has a level hinge")
    if cfg.streaming.enabled:
        raise ConfigError(f"{args.checkpoint}: a streaming model; the level hinge is for windowed models")
    torch.set_num_threads(1)
    model = QualityModel(cfg)
    model.load_state_dict(ckpt["state_dict"])
    train, val = split_rows(model, args.manifest, cfg.frontend.sample_rate_hz, args.cache)
    fits = [fit_hinge(train, val, q, h, cfg.head.score_min, cfg.head.score_max, args.epochs, outputs=outputs)
            for q, h in tqdm(list(itertools.product(QUIET_GRID_DB, HOT_GRID_DB)), desc="knots", unit="pair")]
    best = min(fits, key=lambda f: float(f["val_mse"]))  # type: ignore[arg-type]
    grown, new_cfg = with_hinge(args.checkpoint, ckpt, cfg, float(best["quiet_db"]), float(best["hot_db"]),  # type: ignore[arg-type]
                                torch.tensor(best["weight"], dtype=torch.float32))
    extra = dict(ckpt.get("extra", {}))
    extra["level_hinge"] = {"from": str(args.checkpoint), "manifests": [str(m) for m in args.manifest], "outputs": names,
                            "n_train": len(train[1]), "n_val": len(val[1]), "chosen": best,
                            "grid": [{k: f[k] for k in ("quiet_db", "hot_db", "val_mse", "val_mse_written")} for f in fits]}
    save_checkpoint(args.out, grown, new_cfg, stage="quality", extra=extra, step=int(ckpt.get("step", 0)))
    w = np.asarray(best["weight"])
    print(f"wrote {args.out}: knots {best['quiet_db']:.0f} / {best['hot_db']:.0f} dBFS; val MSE input "
          f"{best['val_mse_before']:.4f}, with hinge {best['val_mse_written']:.4f} (fit with intercept {best['val_mse']:.4f})")
    for d, name in enumerate(DIMENSIONS):
        print(f"  {name}: quiet {w[0, d]:+.3f}, hot {w[1, d]:+.3f} (logit per 10 dB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
