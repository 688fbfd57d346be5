"""Data-parallel training across processes (``torchrun --nproc_per_node N -m train finetune``).

Why this shape: the training loops stay the single-process loops, and a run with N processes
is the same run with the same *global* batch. Every rank draws the identical batch list
(same seed, same epoch) and takes every N-th clip of each batch; DistributedDataParallel
averages the gradients, which for equal shards equals the gradient of the mean loss over
the whole batch, so the trajectory matches one process up to float rounding (a CI test
checks it). Rank 0 alone validates, logs and writes checkpoints; decisions that depend on
the clock (stop, budget) are taken on rank 0 and broadcast, so the ranks never disagree.
gloo on CPU, NCCL on GPUs (one per local rank). Without torchrun's environment
(``WORLD_SIZE`` unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: Sequence[int]) -> list[int]:
        """This rank's clips of a global batch (every ``world_size``-th, from ``rank``)."""
        return list(batch[self.rank:: self.world_size]) if self.enabled else list(batch)

    def usable(self, batch: Sequence[int]) -> bool:
        """A batch every rank gets at least one clip of (the last, short batch may not be)."""
        return len(batch) >= self.world_size

    def agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks (for logging the global loss)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def init_from_env(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group that ``torchrun`` describes; returns the context and the device
    this rank computes on (``cuda:<local rank>`` on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), device
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world), device


def wrap(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``module`` in DistributedDataParallel when the job has several processes."""
    if not ctx.enabled:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


class LossStep(nn.Module):
    """Model and uncertainty loss as one module, so DDP synchronises both sets of gradients."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss_fn(self.model(wav, lengths), targets, mask)  # type: ignore[no-any-return]


class CtcStep(nn.Module):
    """The CTC loss of a batch as a module's forward, so DDP can wrap ASR pretraining."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
                label_lengths: torch.Tensor) -> torch.Tensor:
        log_probs, out_lengths = self.model.ctc_log_probs(wav, lengths)  # type: ignore[operator]
        return nn.functional.ctc_loss(log_probs.transpose(0, 1), labels, out_lengths, label_lengths,
                                      blank=0, reduction="mean", zero_infinity=True)
