"""Checkpoint weight averaging (`python -m train average`).

Why: the last few validation snapshots of one cosine run sit in the same basin, and their
mean usually generalises a little better than any one of them (Izmailov et al., "Averaging
Weights Leads to Wider Optima", 2018). The encoder uses LayerNorm only, so no batch
statistics need recomputing after averaging. The result is an ordinary quality checkpoint
that ``evaluate``, ``export`` and ``sanity`` take like any other.

With ``--weights`` it is a weighted mean: between a fine-tune and the checkpoint it started
from, that interpolation (Wortsman et al., "Robust fine-tuning of zero-shot models", 2022)
keeps part of what the fine-tune learnt and part of what it lost.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from livesqa.errors import ConfigError
from train.checkpoint import load_checkpoint, load_model, save_checkpoint


def normalised_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """``n`` equal weights, or the given ones scaled to sum to 1 (each must be >= 0, one > 0)."""
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ConfigError(f"--weights gives {len(weights)} weights for {n} checkpoints")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError("--weights must be >= 0 with a positive sum")
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def average_state_dicts(
    states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """Element-wise (weighted) mean of floating-point tensors; other tensors (counters) from the last state."""
    if not states:
        raise ConfigError("nothing to average")
    w = torch.tensor(normalised_weights(weights, len(states)), dtype=torch.float64)
    keys = list(states[-1].keys())
    for i, s in enumerate(states):
        if list(s.keys()) != keys:
            raise ConfigError(f"checkpoint {i} has different weights from the others")
    out: dict[str, torch.Tensor] = {}
    for k in keys:
        last = states[-1][k]
        if last.is_floating_point():
            stacked = torch.stack([s[k].to(torch.float64) for s in states])
            out[k] = torch.tensordot(w, stacked, dims=1).to(last.dtype)
        else:
            out[k] = last.clone()
    return out


def pick_snapshots(run_dir: str | Path, last: int) -> list[Path]:
    """The ``last`` most recent ``snapshots/step-*.pt`` of a run, oldest first."""
    snaps = sorted((Path(run_dir) / "snapshots").glob("step-*.pt"))
    if not snaps:
        raise ConfigError(f"{run_dir}: no snapshots/step-*.pt (train with finetune.snapshots=true)")
    if last < 1:
        raise ConfigError("--last must be at least 1")
    return snaps[-last:]


def average_checkpoints(
    paths: Sequence[str | Path], out: str | Path, weights: Sequence[float] | None = None
) -> Path:
    """Average quality checkpoints of one architecture into ``out``; provenance from the newest."""
    if not paths:
        raise ConfigError("nothing to average")
    ckpts = [load_checkpoint(p) for p in paths]
    configs = {repr(c["model_config"]) for c in ckpts}
    if len(configs) != 1:
        raise ConfigError("checkpoints have different model configs; only one architecture averages")
    if any(c.get("stage") != "quality" for c in ckpts):
        raise ConfigError("only quality checkpoints can be averaged")
    model, model_cfg, newest = load_model(paths[-1])
    w = normalised_weights(weights, len(paths))
    model.load_state_dict(average_state_dicts([c["state_dict"] for c in ckpts], w))
    extra: dict[str, Any] = {k: v for k, v in newest.get("extra", {}).items() if k != "val"}
    loss_states = [c.get("extra", {}).get("loss_state") for c in ckpts]
    if all(isinstance(s, dict) for s in loss_states):
        extra["loss_state"] = average_state_dicts(loss_states, w)  # type: ignore[arg-type]
    elif any(isinstance(s, dict) for s in loss_states):  # e.g. an onnx-import beside a fine-tune
        extra["loss_state"] = next(s for s in reversed(loss_states) if isinstance(s, dict))
    extra["averaged_from"] = [str(p) for p in paths]
    if weights is not None:
        extra["averaged_weights"] = w
    return save_checkpoint(out, model, model_cfg, stage="quality", step=int(newest.get("step", 0)), extra=extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train average", description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a fine-tuning run folder trained with finetune.snapshots=true")
    src.add_argument("--checkpoints", nargs="+", help="explicit quality checkpoints to average")
    parser.add_argument("--last", type=int, default=4, help="with --run: average this many newest snapshots")
    parser.add_argument("--weights", nargs="+", type=float,
                        help="one weight per checkpoint (scaled to sum to 1); default: equal")
    parser.add_argument("--out", required=True, help="where to write the averaged checkpoint")
    args = parser.parse_args(argv)
    paths = pick_snapshots(args.run, args.last) if args.run else [Path(p) for p in args.checkpoints]
    out = average_checkpoints(paths, args.out, args.weights)
    shown = f" with weights {', '.join(f'{w:.3f}' for w in normalised_weights(args.weights, len(paths)))}" if args.weights else ""
    print(f"averaged {len(paths)} checkpoints ({', '.join(str(p) for p in paths)}){shown} -> {out}")
    return 0
