"""Teach a trained student loudness (`python -m train level-head`): a small nonlinear level unit.

Why: CMS removes the utterance's level from the encoder's input, and the quality head gets it
back only through one *linear* term on the mean log-mel. Listeners (and NISQA's LOUD) rate
both a whisper-quiet and a hot, overdriven talker low: an inverted U that a linear term cannot
draw. 0.5.0 rates a clean talker at -50 dBFS LOUD 3.6 where NISQA says 1.5 (the bundled sample
call), and on the corpus's quiet clips it sits 0.6 above its teacher on LOUD.

How: everything of the input checkpoint stays frozen. One pass over the corpus caches each
clip's pre-sigmoid logits and its mean log-mel; then only ``quality_head.level_mlp``
(``model.head.level_hidden`` units, tanh, last layer starting at zero, i.e. at exactly the
input model) is fitted to the teacher targets, with early stopping on the validation split.
The result is an ordinary quality checkpoint (export, evaluate and sanity take it as is).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from livesqa.errors import ConfigError
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import ModelConfig
from train.data import QualityDataset, collate_quality, length_batches, read_quality_manifest
from train.heads import LEVEL_SCALE
from train.model import QualityModel


def encoded_batches(model: QualityModel, ds: QualityDataset, batch_size: int = 16
                    ) -> Iterator[tuple[list[int], list[tuple], Any, tuple]]:
    """(row indices, samples, collated batch, ``model._run`` of it) per length-sorted batch, in
    eval mode and without gradients: the one slow pass that the head-fitting stages cache."""
    model.eval()
    batches = list(length_batches(ds.durations_s(), batch_size=batch_size, shuffle=False))
    for idx in tqdm(batches, desc="caching logits", unit="batch"):
        samples = [ds[i] for i in idx]
        batch = collate_quality(samples)
        with torch.no_grad():
            yield idx, samples, batch, model._run(batch.wav, batch.wav_lengths)


def cache_logits(model: QualityModel, ds: QualityDataset, batch_size: int = 16) -> tuple[np.ndarray, ...]:
    """(pre-sigmoid logits [N, K], mean log-mel [N, n_mels], targets [N, K]) in dataset order."""
    head = model.quality_head
    n = len(ds)
    logits = np.zeros((n, head.cfg.n_outputs), np.float32)
    levels = np.zeros((n, model.cfg.frontend.n_mels), np.float32)
    targets = np.zeros_like(logits)
    for idx, samples, _, (_, _, level, blocks, lengths) in encoded_batches(model, ds, batch_size):
        with torch.no_grad():
            logits[idx] = head.logits(blocks, lengths, level).numpy()
        levels[idx] = level.numpy()
        targets[idx] = np.stack([s[1] for s in samples])
    return logits, levels, targets


def split_logits(model: QualityModel, manifest: Path, sample_rate_hz: int,
                 cache: Path | None) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """:func:`cache_logits` of the train and val splits, read from ``cache`` (npz) if it exists,
    else computed and written there (when given): the slow pass is done once per model."""
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return ((z["train_logits"], z["train_levels"], z["train_targets"]),
                (z["val_logits"], z["val_levels"], z["val_targets"]))
    train, val = (cache_logits(model, QualityDataset(read_quality_manifest(str(manifest), split), sample_rate_hz))
                  for split in ("train", "val"))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, train_logits=train[0], train_levels=train[1], train_targets=train[2],
                 val_logits=val[0], val_levels=val[1], val_targets=val[2])
    return train, val


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the targets that exist (NaN = no label for that dimension)."""
    ok = ~torch.isnan(target)
    return ((pred - torch.nan_to_num(target)) ** 2)[ok].mean()


def fit_level_mlp(
    mlp: torch.nn.Module, score: Callable[[torch.Tensor], torch.Tensor],
    train: tuple[np.ndarray, ...], val: tuple[np.ndarray, ...],
    epochs: int, lr: float, seed: int,
) -> tuple[int, float, float]:
    """Full-batch Adam on the cached rows (``score`` maps logits to scores, e.g. the head's
    ``ScoreReadout.scale``); keeps the weights of the best validation loss.
    Returns (best epoch, val loss at start, best val loss)."""
    torch.manual_seed(seed)
    t_logit, t_level, t_target = (torch.from_numpy(a) for a in train)
    v_logit, v_level, v_target = (torch.from_numpy(a) for a in val)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr, weight_decay=1e-4)

    def val_loss() -> float:
        with torch.no_grad():
            return float(masked_mse(score(v_logit + mlp(v_level / LEVEL_SCALE)), v_target))

    start = best = val_loss()
    best_state, best_epoch = {k: v.clone() for k, v in mlp.state_dict().items()}, 0
    for epoch in tqdm(range(1, epochs + 1), desc="fitting level unit", unit="epoch"):
        opt.zero_grad()
        loss = masked_mse(score(t_logit + mlp(t_level / LEVEL_SCALE)), t_target)
        loss.backward()
        opt.step()
        current = val_loss()
        if current < best:
            best, best_epoch = current, epoch
            best_state = {k: v.clone() for k, v in mlp.state_dict().items()}
    mlp.load_state_dict(best_state)
    return best_epoch, start, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train level-head", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="trained quality checkpoint (frozen)")
    parser.add_argument("--manifest", required=True, type=Path, help="labelled corpus (train and val splits)")
    parser.add_argument("--hidden", type=int, default=16, help="units of the level MLP")
    parser.add_argument("--epochs", type=int, default=20000, help="full-batch epochs; the best on val is kept")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="npz of cached logits (reused if present)")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint to write")
    args = parser.parse_args(argv)
    if args.hidden < 1:
        raise ConfigError("--hidden must be at least 1")
    ckpt = load_checkpoint(args.checkpoint)
    cfg = ModelConfig.from_dict(ckpt["model_config"])
    if cfg.head.level_hidden:
        raise ConfigError(f"{args.checkpoint}: already has a level MLP")
    if not cfg.head.level_input:
        raise ConfigError(f"{args.checkpoint}: built without level input (model.head.level_input)")
    torch.set_num_threads(1)
    model = QualityModel(cfg)
    model.load_state_dict(ckpt["state_dict"])
    sr = cfg.frontend.sample_rate_hz
    train, val = split_logits(model, args.manifest, sr, args.cache)
    new_cfg = dataclasses.replace(cfg, head=dataclasses.replace(cfg.head, level_hidden=args.hidden))
    torch.manual_seed(args.seed)  # the MLP's first layer: same seed, same result, cache or not
    grown = QualityModel(new_cfg)
    missing, unexpected = grown.load_state_dict(ckpt["state_dict"], strict=False)
    if unexpected or any(not k.startswith("quality_head.level_mlp.") for k in missing):
        raise ConfigError(f"{args.checkpoint}: weights do not match its own config")
    mlp = grown.quality_head.level_mlp
    assert mlp is not None
    epoch, start, best = fit_level_mlp(mlp, grown.quality_head.probe.readout.scale,
                                       train, val, args.epochs, args.lr, args.seed)
    extra = dict(ckpt.get("extra", {}))
    extra["level_head"] = {"from": str(args.checkpoint), "manifest": str(args.manifest), "hidden": args.hidden,
                           "best_epoch": epoch, "val_mse_start": start, "val_mse_best": best}
    save_checkpoint(args.out, grown, new_cfg, stage="quality", extra=extra, step=int(ckpt.get("step", 0)))
    print(f"wrote {args.out}: level MLP {args.hidden} units, val MSE {start:.4f} -> {best:.4f} (epoch {epoch})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
