"""Fine-tuning of the quality model (`python -m train finetune`).

Why one command for the paper's three rows (Table 2): they differ by one key each.

- pretrained + layer attention (default): ``finetune.init = "asr"``, ``model.head.layer_attention = true``
- pretrained, last layer only: ``--set model.head.layer_attention=false``
- from scratch: ``--set finetune.init="scratch"``

With ``init = "asr"`` the front end and encoder start from the CTC checkpoint and are
fine-tuned whole (at ``encoder_lr``); the head and the uncertainty weights train at ``lr``.
Loss: Kendall's uncertainty-weighted MSE over the five teacher targets, missing labels
masked. Validation PCC/RMSE per dimension each epoch; ``best.pt`` = best val MOS PCC.
Stops after ``epochs``, ``max_minutes`` (per invocation) or ``max_steps`` (in all); resumes
from ``last.pt``.

Longer runs: ``init = "checkpoint"`` warm-starts every weight (head and uncertainty
terms included) from ``init_checkpoint``, a finished quality run; ``schedule = "cosine"``
decays both learning rates to ``min_lr_fraction`` at ``total_steps``; and the train
split is re-read at each epoch so clips labelled while training join the next epoch.
``snapshots = true`` keeps the weights of every validation in ``snapshots/``, so the tail
of a cosine run can be averaged (``python -m train average``).

Several processes: ``torchrun --nproc_per_node N -m train finetune ...`` trains one run with
DistributedDataParallel and the same global batch (``train/distributed.py``).
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train.checkpoint import init_encoder_from_asr, load_checkpoint, save_checkpoint
from train.config import ModelConfig, StreamingConfig
from train.data import (
    QualityDataset,
    collate_quality,
    length_batches,
    manifest_teachers,
    read_quality_manifest,
)
from train.distributed import LossStep, init_from_env, wrap
from train.losses import UncertaintyLoss
from train.metrics import per_dimension
from train.model import QualityModel
from train.rundir import (
    RunDir,
    StepPolicy,
    load_section,
    pick_device,
    set_cpu_threads,
    stage_parser,
    warmup_cosine,
)

DEFAULT_SIM_MANIFEST = "cache/sim/manifest.csv"


@dataclass(frozen=True)
class FinetuneConfig:
    """``[finetune]``: one quality-model training run."""

    run: str = ""  # empty: "ft-<init>-<la|last>" so each paper row gets its own folder
    runs_dir: str = "runs"
    manifest: str = ""  # empty: <[simulate].out_dir>/manifest.csv, else cache/sim/manifest.csv
    init: str = "asr"  # "asr": encoder from asr_checkpoint; "scratch": random; "checkpoint": all
    asr_checkpoint: str = "runs/asr-small/best.pt"
    init_checkpoint: str = ""  # init = "checkpoint": a quality checkpoint to warm-start from
    schedule: str = "constant"  # after warmup: "constant" or "cosine" (to total_steps)
    total_steps: int = 0  # cosine: the step at which the learning rate reaches its floor
    min_lr_fraction: float = 0.05  # cosine floor, as a fraction of the peak
    reload_manifest: bool = True  # re-read the train split each epoch (labels still arriving)
    snapshots: bool = False  # also keep each validation's weights in snapshots/ (for `train average`)
    lr: float = 1e-3  # head and uncertainty weights (and everything when from scratch)
    encoder_lr: float = 3e-4  # front end + encoder when initialised from ASR
    weight_decay: float = 1e-3
    warmup_steps: int = 100
    batch_size: int = 16
    crop_s: float = 0.0  # > 0: random training crops of this length
    epochs: int = 30
    max_minutes: float = 30.0
    max_steps: int = 0  # > 0: stop (validating first) at this optimizer step, whatever the clock says
    grad_clip: float = 5.0
    val_max_clips: int = 0  # 0 = whole val split
    val_minutes: float = 0.0  # > 0: also validate (and maybe write best.pt) this often within an epoch
    checkpoint_minutes: float = 5.0
    log_every: int = 25
    device: str = "auto"
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.init not in {"asr", "scratch", "checkpoint"}:
            raise ValueError(f"init must be 'asr', 'scratch' or 'checkpoint', got {self.init!r}")
        if self.init == "checkpoint" and not self.init_checkpoint:
            raise ValueError("init = 'checkpoint' needs finetune.init_checkpoint")
        if self.schedule not in {"constant", "cosine"}:
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if self.schedule == "cosine" and self.total_steps <= self.warmup_steps:
            raise ValueError("schedule = 'cosine' needs total_steps > warmup_steps")
        if self.batch_size < 1 or self.lr <= 0 or self.encoder_lr <= 0 or self.epochs < 1:
            raise ValueError("batch_size, lr, encoder_lr and epochs must be positive")
        if self.max_steps < 0:
            raise ValueError("max_steps must be >= 0 (0 = no step limit)")


def same_architecture(a: ModelConfig, b: ModelConfig) -> bool:
    """Equal configs, or equal up to the streaming keys (causal conv, chunk positions,
    ``[model.streaming]``) and dropout: those change masks, padding and training noise, not one
    parameter's name or shape, so a windowed model can warm-start its own streaming version
    (issue #18) and a converged model can be fine-tuned without dropout (session 19)."""
    def windowed(c: ModelConfig) -> ModelConfig:
        enc = dataclasses.replace(c.encoder, causal_conv=False, positions="absolute", dropout=0.0)
        return dataclasses.replace(c, encoder=enc, streaming=StreamingConfig())
    return a == b or windowed(a) == windowed(b)


def run_name(cfg: FinetuneConfig, model_cfg: ModelConfig) -> str:
    return cfg.run or f"ft-{cfg.init}-{'la' if model_cfg.head.layer_attention else 'last'}"


def sim_manifest(resolved: dict[str, Any], explicit: str) -> str:
    """The quality manifest: explicit key, else ``<[simulate].out_dir>/manifest.csv``, else the default."""
    if explicit:
        return explicit
    out_dir = resolved.get("simulate", {}).get("out_dir")
    return str(Path(out_dir) / "manifest.csv") if out_dir else DEFAULT_SIM_MANIFEST


def predict(
    model: nn.Module, ds: QualityDataset, device: torch.device, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(predictions [N, 5], targets [N, 5] with NaN for missing), in dataset order."""
    model.eval()
    preds = np.zeros((len(ds), len(DIMENSIONS)), dtype=np.float32)
    targets = np.zeros_like(preds)
    with torch.no_grad():
        for idx in length_batches(ds.durations_s(), batch_size=batch_size, shuffle=False):
            samples = [ds[i] for i in idx]
            batch = collate_quality(samples).to(device)
            preds[idx] = model(batch.wav, batch.wav_lengths).float().cpu().numpy()
            targets[idx] = np.stack([s[1] for s in samples])
    return preds, targets


def lr_factor(cfg: FinetuneConfig, step: int) -> float:
    """Linear warmup to 1, then constant or cosine down to ``min_lr_fraction`` at ``total_steps``."""
    if cfg.schedule == "cosine":
        return warmup_cosine(step, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_fraction)
    return min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def _subset(ds_items: list[Any], n: int) -> list[Any]:
    if n <= 0 or len(ds_items) <= n:
        return ds_items
    return [ds_items[i] for i in np.linspace(0, len(ds_items) - 1, n).round().astype(int)]


def main(argv: list[str] | None = None) -> int:
    args = stage_parser("finetune", "fine-tune the quality model").parse_args(argv)
    resolved, cfg = load_section(args.config, args.overrides, "finetune", FinetuneConfig)
    model_cfg = ModelConfig.from_dict(resolved.get("model", {}))
    ctx, device = init_from_env(pick_device(cfg.device))  # torchrun: one rank of a DDP job
    set_cpu_threads(device, cfg.threads)
    torch.manual_seed(cfg.seed)
    resolved = {**resolved, "model": model_cfg.to_dict(), "finetune": asdict(cfg)}
    run = RunDir(Path(cfg.runs_dir) / run_name(cfg, model_cfg), resolved, "train.finetune", write=ctx.is_main)
    manifest = sim_manifest(resolved, cfg.manifest)
    sr = model_cfg.frontend.sample_rate_hz
    train_ds = QualityDataset(read_quality_manifest(manifest, "train"), sr, crop_s=cfg.crop_s, seed=cfg.seed)
    val_ds = QualityDataset(_subset(read_quality_manifest(manifest, "val"), cfg.val_max_clips), sr)
    if not len(train_ds) or not len(val_ds):
        raise ConfigError(f"{manifest}: need labelled clips in both the train and val splits")

    model = QualityModel(model_cfg).to(device)
    loss_fn = UncertaintyLoss(len(DIMENSIONS)).to(device)
    if cfg.init == "asr":
        n = init_encoder_from_asr(model, cfg.asr_checkpoint)
        run.log.info("encoder initialised from %s (%d tensors)", cfg.asr_checkpoint, n)
    elif cfg.init == "checkpoint" and not run.last.exists():
        warm = load_checkpoint(cfg.init_checkpoint)
        if not same_architecture(ModelConfig.from_dict(warm["model_config"]), model_cfg):
            raise ConfigError(f"{cfg.init_checkpoint}: model config differs from this run's")
        model.load_state_dict(warm["state_dict"])
        if "loss_state" in warm.get("extra", {}):
            loss_fn.load_state_dict(warm["extra"]["loss_state"])
        run.log.info("warm start from %s (step %s)", cfg.init_checkpoint, warm.get("step"))
    enc_params = [p for n, p in model.named_parameters() if n.startswith(("frontend.", "encoder."))]
    head_params = [p for n, p in model.named_parameters() if n.startswith("quality_head.")]
    enc_lr = cfg.encoder_lr if cfg.init in {"asr", "checkpoint"} else cfg.lr
    opt = torch.optim.AdamW(
        [{"params": enc_params, "lr": enc_lr, "peak": enc_lr},
         {"params": head_params + list(loss_fn.parameters()), "lr": cfg.lr, "peak": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )
    params = enc_params + head_params
    model.ctc_head.requires_grad_(False)  # not trained here; DDP wants every trainable weight used
    step_module = wrap(LossStep(model, loss_fn), ctx, device)

    step, epoch, first_batch, best_pcc = 0, 0, 0, -math.inf
    if run.last.exists():
        ckpt = load_checkpoint(run.last)
        model.load_state_dict(ckpt["state_dict"])
        if ckpt.get("optimizer") is not None:
            opt.load_state_dict(ckpt["optimizer"])
        extra = ckpt.get("extra", {})
        loss_fn.load_state_dict(extra["loss_state"])
        step, epoch, first_batch = int(ckpt.get("step", 0)), int(extra.get("epoch", 0)), int(extra.get("batch", 0))
        best_pcc = float(extra.get("best_val_mos_pcc", -math.inf))
        run.log.info("resumed from %s at step %d (epoch %d, batch %d)", run.last, step, epoch, first_batch)
    run.log.info("train %d clips, val %d clips; init %s, layer attention %s; %.2fM params; device %s%s",
                 len(train_ds), len(val_ds), cfg.init, model_cfg.head.layer_attention,
                 model.n_params() / 1e6, device,
                 f"; {ctx.world_size} processes (DDP), global batch {cfg.batch_size}" if ctx.enabled else "")

    teachers = manifest_teachers(manifest)
    provenance = {
        "training_data": f"livesqa simulated corpus {manifest} (teacher labels: {', '.join(teachers) or 'unknown'})",
        # NISQA's weights are CC BY-NC-SA 4.0; a model trained on its outputs says so
        "licence": "CC BY-NC-SA 4.0 (trained on NISQA outputs)" if any("nisqa" in t.lower() for t in teachers)
        else "unknown",
    }

    def save(path: Path, ep: int, batch: int, val: dict[str, Any] | None = None) -> None:
        save_checkpoint(path, model, model_cfg, stage="quality", optimizer=opt, step=step,
                        extra={"epoch": ep, "batch": batch, "best_val_mos_pcc": best_pcc,
                               "loss_state": loss_fn.state_dict(), "finetune": asdict(cfg),
                               "val": val or {}, **provenance})

    policy = StepPolicy(cfg.max_minutes, cfg.checkpoint_minutes, cfg.val_minutes, run.log, cfg.max_steps)
    budget = policy.budget

    def validate_and_save(ep: int, batch_pos: int, n_batches: int, losses: list[float]) -> None:
        """Val PCC/RMSE per dimension; best.pt when val MOS PCC improved; always last.pt."""
        nonlocal best_pcc
        pred, target = predict(model, val_ds, device, cfg.batch_size)
        model.train()
        val = per_dimension(pred, target, DIMENSIONS)
        mos_pcc = val["mos"]["pcc"] if math.isfinite(val["mos"]["pcc"]) else -math.inf
        improved = mos_pcc > best_pcc
        best_pcc = max(best_pcc, mos_pcc)
        mean_loss = float(np.mean(losses)) if losses else math.nan
        run.append_metrics({
            "epochs_done": ep + batch_pos / max(n_batches, 1), "step": step, "train_loss": mean_loss,
            **{f"val_pcc_{d}": val[d]["pcc"] for d in DIMENSIONS},
            **{f"val_rmse_{d}": val[d]["rmse"] for d in DIMENSIONS},
            **{f"sigma_{d}": sg for d, sg in zip(DIMENSIONS, loss_fn.sigmas().cpu().tolist())},
            "elapsed_s": budget.elapsed_s,
        })
        run.log.info("step %d (epoch %d, batch %d): train loss %.4f val PCC %s%s", step, ep, batch_pos, mean_loss,
                     " ".join(f"{d}={val[d]['pcc']:.3f}" for d in DIMENSIONS), " (best)" if improved else "")
        if improved:
            save(run.best, ep, batch_pos, val)
        save(run.last, ep, batch_pos, val)
        if cfg.snapshots:  # weights only: averaging needs no optimizer state
            save_checkpoint(run.path / "snapshots" / f"step-{step:06d}.pt", model, model_cfg, stage="quality",
                            step=step, extra={"val": val, "loss_state": loss_fn.state_dict(), **provenance})

    stopped = policy.steps_done(step)  # resumed a run that already reached its step limit
    if stopped:
        run.log.info("already at step %d of max_steps %d: nothing to do", step, cfg.max_steps)
    while epoch < cfg.epochs and not stopped:
        if cfg.reload_manifest and epoch > 0:
            fresh = read_quality_manifest(manifest, "train")
            if len(fresh) != len(train_ds):
                run.log.info("epoch %d: train split now %d clips (was %d)", epoch, len(fresh), len(train_ds))
                train_ds = QualityDataset(fresh, sr, crop_s=cfg.crop_s, seed=cfg.seed)
        train_ds.set_epoch(epoch)
        batches = length_batches(train_ds.durations_s(), batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch)
        model.train()
        losses: list[float] = []
        bar = tqdm(total=len(batches), initial=first_batch, desc=f"finetune epoch {epoch}", leave=False, disable=None)
        for bi in range(first_batch, len(batches)):
            if not ctx.usable(batches[bi]):  # DDP: a short last batch some rank would get nothing of
                continue
            batch = collate_quality([train_ds[i] for i in ctx.shard(batches[bi])]).to(device)
            factor = lr_factor(cfg, step)
            for group in opt.param_groups:
                group["lr"] = group["peak"] * factor
            loss, mse = step_module(batch.wav, batch.wav_lengths, batch.targets, batch.mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            opt.step()
            step += 1
            losses.append(ctx.mean(loss.item()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if step % cfg.log_every == 0:
                run.log.info("step %d epoch %d loss %.4f mse %s grad %.2f", step, epoch,
                             float(np.mean(losses[-cfg.log_every:])),
                             " ".join(f"{d}={v:.3f}" for d, v in zip(DIMENSIONS, mse.tolist())), grad_norm)
                run.append_metrics({"step": step, "epoch": epoch, "loss": losses[-1], "grad_norm": grad_norm,
                                    **{f"mse_{d}": v for d, v in zip(DIMENSIONS, mse.tolist())}}, "steps.csv")
            # rank 0 validates and saves; its clock decides for every rank
            stopped = ctx.agree(ctx.is_main and policy.after_step(
                step, partial(validate_and_save, epoch, bi + 1, len(batches), losses),
                partial(save, run.last, epoch, bi + 1)))
            if stopped:
                break
        bar.close()
        if not stopped:
            epoch, first_batch = epoch + 1, 0
            if ctx.is_main:
                policy.end_of_epoch(partial(validate_and_save, epoch, 0, len(batches), losses),
                                    partial(save, run.last, epoch, 0))
            ctx.barrier()
    run.log.info("finished at step %d, epoch %d; best val MOS PCC %.4f", step, epoch, best_pcc)
    run.close()
    ctx.close()
    return 0
