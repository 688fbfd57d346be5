"""Grow a trained student deeper (`python -m train grow`): the warm start of a larger student.

Why: issue #13 asks for at least one larger student that still meets the speed goal. On two
CPU cores a larger model cannot be pretrained and distilled from scratch in a session, but a
deeper copy of the trained student can be fine-tuned like any checkpoint ("progressive
stacking", Gong et al., ICML 2019: a trained block's copy is a good start for a new block).

How: block ``i`` of the new encoder is a copy of block ``plan[i]`` of the old one (the plan is
a non-decreasing list that uses every old block, e.g. ``0,1,2,3,4,4,5,5,6,6,7,7``). With
``zero_residual`` a repeated block starts with its four residual branches' output
projections at zero, so it only re-applies its block's final LayerNorm. The layer attention
reads one more output per repeat: each copy of block ``k`` gets ``bias_k - log(copies)``, so
the copies of one block together keep that block's prior share. Everything else (front end,
subsampling, head, loss state) is copied unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from livesqa.errors import ConfigError
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import ModelConfig
from train.model import QualityModel

BLOCK_PREFIX = "encoder.blocks."
LAYER_BIAS = "quality_head.layer_attention.layer_bias"
# the last linear layer of each residual branch of a ConformerBlock (train/conformer.py)
RESIDUAL_OUTPUTS = ("ff1.net.4", "attn.out", "conv.pointwise_out", "ff2.net.4")


def parse_plan(text: str) -> list[int]:
    """``"0,1,1,2"`` -> ``[0, 1, 1, 2]``; a clear error for anything else."""
    try:
        plan = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise ConfigError(f"--plan {text!r}: comma-separated block numbers expected") from e
    if not plan:
        raise ConfigError("--plan is empty")
    return plan


def check_plan(plan: Sequence[int], n_old: int) -> None:
    """A plan must keep the old order and use every old block at least once."""
    if any(b < a for a, b in zip(plan, plan[1:])):
        raise ConfigError(f"plan {list(plan)} must be non-decreasing (blocks keep their order)")
    if sorted(set(plan)) != list(range(n_old)):
        raise ConfigError(f"plan {list(plan)} must use each of the {n_old} old blocks")


def grow_state(
    state: dict[str, torch.Tensor], plan: Sequence[int], n_old: int, zero_residual: bool
) -> dict[str, torch.Tensor]:
    """The grown state dict (new tensors; ``state`` is not modified)."""
    check_plan(plan, n_old)
    copies = Counter(plan)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(BLOCK_PREFIX) and key != LAYER_BIAS:
            out[key] = value.clone()
    seen: Counter[int] = Counter()
    for new, old in enumerate(plan):
        repeat = seen[old] > 0
        seen[old] += 1
        prefix = f"{BLOCK_PREFIX}{old}."
        for key, value in state.items():
            if key.startswith(prefix):
                rest = key[len(prefix):]
                tensor = value.clone()
                if repeat and zero_residual and rest.rsplit(".", 1)[0] in RESIDUAL_OUTPUTS:
                    tensor.zero_()
                out[f"{BLOCK_PREFIX}{new}.{rest}"] = tensor
    if LAYER_BIAS in state:
        bias = state[LAYER_BIAS]
        out[LAYER_BIAS] = torch.stack([bias[old] - math.log(copies[old]) for old in plan])
    return out


def grow_checkpoint(src: Path, dst: Path, plan: Sequence[int], zero_residual: bool) -> ModelConfig:
    """Write the grown checkpoint to ``dst``; returns its model config."""
    ckpt = load_checkpoint(src)
    old_cfg = ModelConfig.from_dict(ckpt["model_config"])
    new_cfg = dataclasses.replace(
        old_cfg, encoder=dataclasses.replace(old_cfg.encoder, n_layers=len(plan))
    )
    model = QualityModel(new_cfg)
    model.load_state_dict(grow_state(ckpt["state_dict"], plan, old_cfg.encoder.n_layers, zero_residual))
    extra = dict(ckpt.get("extra", {}))
    extra["grown_from"] = {"checkpoint": str(src), "plan": list(plan), "zero_residual": zero_residual}
    save_checkpoint(dst, model, new_cfg, stage="quality", extra=extra, step=0)
    return new_cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train grow", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="trained quality checkpoint")
    parser.add_argument("--plan", required=True, help="old block of each new block, e.g. 0,1,2,3,4,4,5,5")
    parser.add_argument("--zero-residual", action="store_true", help="repeated blocks start as LayerNorm only")
    parser.add_argument("--out", required=True, type=Path, help="grown checkpoint to write")
    args = parser.parse_args(argv)
    if args.out.exists() and args.out.resolve() == args.checkpoint.resolve():
        raise ConfigError("--out must differ from --checkpoint")
    cfg = grow_checkpoint(args.checkpoint, args.out, parse_plan(args.plan), args.zero_residual)
    print(f"wrote {args.out}: {cfg.encoder.n_layers} blocks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
