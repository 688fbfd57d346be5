"""CTC pretraining of the Conformer encoder (`python -m train pretrain-asr`).

Why: the paper's finding is that an encoder trained for ASR carries more speech-quality
information than the log-mel it starts from; this stage makes that encoder. One flat
loop: AdamW, warmup then Noam (inverse square root) or cosine decay, batches sized by
padded seconds, optional SpecAugment on the log-mel, gradient clipping. Each epoch it
decodes the held-out speakers (``split=test``) greedily and logs CER/WER; ``best.pt`` is
the lowest CER. It stops after ``epochs`` or ``max_minutes`` (per invocation), writes
``last.pt`` every ``checkpoint_minutes`` and resumes from it (same batch order, skipping
the batches already seen).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from livesqa.errors import ConfigError
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import ModelConfig
from train.data import AsrDataset, AsrItem, collate_asr, length_batches, read_asr_manifest
from train.distributed import CtcStep, init_from_env, wrap
from train.metrics import cer, greedy_ctc_decode, wer
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
from train.text import VOCAB_SIZE, normalize


@dataclass(frozen=True)
class AsrConfig:
    """``[asr]``: the CTC pretraining run."""

    run: str = "asr-small"
    runs_dir: str = "runs"
    manifest: str = ""  # empty: [data].asr_manifest, else cache/asr/manifest.csv
    epochs: int = 30
    max_minutes: float = 35.0
    lr: float = 1e-3
    schedule: str = "noam"  # "noam" (warmup then 1/sqrt(step)) or "cosine" (to 0 at the last epoch)
    warmup_steps: int = 300
    weight_decay: float = 1e-3
    batch_s: float = 160.0  # padded seconds per batch (clips x longest clip)
    max_clip_s: float = 16.0  # longer utterances are skipped
    grad_clip: float = 5.0
    spec_augment: bool = True
    freq_masks: int = 2
    freq_mask_bins: int = 15
    time_masks: int = 2
    time_mask_frames: int = 40
    eval_max_utts: int = 400  # 0 = the whole test split
    eval_minutes: float = 0.0  # > 0: also decode the test split (and maybe write best.pt) this often
    checkpoint_minutes: float = 5.0
    log_every: int = 25
    device: str = "auto"
    threads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in {"noam", "cosine"}:
            raise ValueError(f"schedule must be noam or cosine, got {self.schedule!r}")
        if self.batch_s <= 0 or self.lr <= 0 or self.epochs < 1:
            raise ValueError("batch_s, lr and epochs must be positive")


def learning_rate(cfg: AsrConfig, step: int, total_steps: int) -> float:
    """Linear warmup to ``cfg.lr``, then Noam decay or cosine to zero at ``total_steps``."""
    warm = max(cfg.warmup_steps, 1)
    if cfg.schedule == "noam" and step >= warm:
        return cfg.lr * math.sqrt(warm / (step + 1))
    return cfg.lr * warmup_cosine(step, cfg.warmup_steps, total_steps)


class SpecAugment:
    """Frequency and time masks on the front end's log-mel, in training mode only.

    Installed as a forward hook on ``model.frontend`` so the model API stays waveform in;
    masked values are set to 0, which after cepstral mean subtraction is the mean.
    """

    def __init__(self, cfg: AsrConfig, seed: int) -> None:
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(seed)

    def _masks(self, n_masks: int, max_width: int, size: torch.Tensor, span: int) -> torch.Tensor:
        """[B, span] bool: ``n_masks`` random bands of width <= max_width below each ``size``."""
        b = size.shape[0]
        out = torch.zeros(b, span, dtype=torch.bool)
        pos = torch.arange(span)
        for _ in range(n_masks):
            width = (torch.rand(b, generator=self.gen) * (max_width + 1)).long()
            width = torch.minimum(width, size.cpu())
            start = (torch.rand(b, generator=self.gen) * (size.cpu() - width + 1).float()).long()
            out |= (pos[None] >= start[:, None]) & (pos[None] < (start + width)[:, None])
        return out

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        if not module.training:
            return output
        feats, lengths = output
        b, n_frames, n_mels = feats.shape
        valid = lengths if lengths is not None else torch.full((b,), n_frames)
        freq = self._masks(self.cfg.freq_masks, self.cfg.freq_mask_bins, torch.full((b,), n_mels), n_mels)
        time = self._masks(self.cfg.time_masks, self.cfg.time_mask_frames, valid, n_frames)
        drop = (freq[:, None, :] | time[:, :, None]).to(feats.device)
        return feats.masked_fill(drop, 0.0), lengths


def evaluate_ctc(
    model: QualityModel, ds: AsrDataset, device: torch.device, batch_s: float
) -> tuple[float, float, list[tuple[str, str]]]:
    """Greedy-decoded (CER, WER, [(reference, hypothesis)]) over a dataset."""
    model.eval()
    refs: list[str] = []
    hyps: list[str] = []
    with torch.no_grad():
        for idx in length_batches(ds.durations_s(), max_batch_s=batch_s, shuffle=False):
            batch = collate_asr([ds[i] for i in idx]).to(device)
            log_probs, out_lengths = model.ctc_log_probs(batch.wav, batch.wav_lengths)
            hyps.extend(greedy_ctc_decode(log_probs.float().cpu(), out_lengths.cpu()))
            refs.extend(normalize(ds.items[i].text) for i in idx)
    return cer(refs, hyps), wer(refs, hyps), list(zip(refs, hyps))


def _subset(items: list[AsrItem], n: int) -> list[AsrItem]:
    """Every k-th item so that a capped eval set still covers all test speakers."""
    if n <= 0 or len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def main(argv: list[str] | None = None) -> int:
    args = stage_parser("pretrain-asr", "CTC pretraining of the Conformer encoder").parse_args(argv)
    resolved, cfg = load_section(args.config, args.overrides, "asr", AsrConfig)
    model_cfg = ModelConfig.from_dict(resolved.get("model", {}))
    if model_cfg.vocab_size != VOCAB_SIZE:
        raise ConfigError(f"model.vocab_size {model_cfg.vocab_size} != character vocabulary {VOCAB_SIZE}")
    ctx, device = init_from_env(pick_device(cfg.device))  # torchrun: one rank of a DDP job
    set_cpu_threads(device, cfg.threads)
    torch.manual_seed(cfg.seed)
    resolved = {**resolved, "model": model_cfg.to_dict(), "asr": asdict(cfg)}
    run = RunDir(Path(cfg.runs_dir) / cfg.run, resolved, "train.pretrain_asr", write=ctx.is_main)
    manifest = cfg.manifest or resolved.get("data", {}).get("asr_manifest", "cache/asr/manifest.csv")
    sr = model_cfg.frontend.sample_rate_hz
    train_ds = AsrDataset([it for it in read_asr_manifest(manifest, "train") if it.duration_s <= cfg.max_clip_s], sr)
    test_ds = AsrDataset(_subset(read_asr_manifest(manifest, "test"), cfg.eval_max_utts), sr)
    if not len(train_ds) or not len(test_ds):
        raise ConfigError(f"{manifest}: need utterances in both the train and test splits")

    model = QualityModel(model_cfg).to(device)
    params = [p for n, p in model.named_parameters() if not n.startswith("quality_head.")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.spec_augment:
        model.frontend.register_forward_hook(SpecAugment(cfg, cfg.seed))
    model.quality_head.requires_grad_(False)  # not trained here; DDP wants every trainable weight used
    ctc_step = wrap(CtcStep(model), ctx, device)

    step, epoch, first_batch, best_cer = 0, 0, 0, math.inf
    if run.last.exists():
        ckpt = load_checkpoint(run.last)
        model.load_state_dict(ckpt["state_dict"])
        if ckpt.get("optimizer") is not None:
            opt.load_state_dict(ckpt["optimizer"])
        step = int(ckpt.get("step", 0))
        extra = ckpt.get("extra", {})
        epoch, first_batch = int(extra.get("epoch", 0)), int(extra.get("batch", 0))
        best_cer = float(extra.get("best_cer", math.inf))
        run.log.info("resumed from %s at step %d (epoch %d, batch %d)", run.last, step, epoch, first_batch)
    run.log.info("train %d utts (%.2f h), test %d utts; model %.2fM params; device %s",
                 len(train_ds), sum(train_ds.durations_s()) / 3600, len(test_ds), model.n_params() / 1e6, device)

    def save(path: Path, ep: int, batch: int) -> None:
        save_checkpoint(path, model, model_cfg, stage="asr", optimizer=opt, step=step,
                        extra={"epoch": ep, "batch": batch, "best_cer": best_cer, "asr": asdict(cfg)})

    policy = StepPolicy(cfg.max_minutes, cfg.checkpoint_minutes, cfg.eval_minutes, run.log)
    budget = policy.budget
    steps_per_epoch = len(length_batches(train_ds.durations_s(), max_batch_s=cfg.batch_s, seed=cfg.seed))
    total_steps = cfg.epochs * steps_per_epoch

    def eval_and_save(ep: int, batch_pos: int, n_batches: int, losses: list[float]) -> None:
        """Decode the test split, log, write best.pt when CER improved and always last.pt."""
        nonlocal best_cer
        c, w, pairs = evaluate_ctc(model, test_ds, device, cfg.batch_s)
        model.train()
        for ref, hyp in pairs[:2]:
            run.log.info("  ref: %s\n  hyp: %s", ref, hyp)
        improved = c < best_cer
        best_cer = min(best_cer, c)
        mean_loss = float(np.mean(losses)) if losses else math.nan
        run.append_metrics({"epochs_done": ep + batch_pos / max(n_batches, 1), "step": step, "train_loss": mean_loss,
                            "test_cer": c, "test_wer": w, "lr": opt.param_groups[0]["lr"],
                            "elapsed_s": budget.elapsed_s})
        run.log.info("step %d (epoch %d, batch %d): train loss %.4f test CER %.4f WER %.4f%s", step, ep,
                     batch_pos, mean_loss, c, w, " (best)" if improved else "")
        if improved:
            save(run.best, ep, batch_pos)
        save(run.last, ep, batch_pos)

    stopped = False
    while epoch < cfg.epochs and not stopped:
        batches = length_batches(train_ds.durations_s(), max_batch_s=cfg.batch_s, seed=cfg.seed, epoch=epoch)
        model.train()
        losses: list[float] = []
        bar = tqdm(total=len(batches), initial=first_batch, desc=f"asr epoch {epoch}", leave=False, disable=None)
        for bi in range(first_batch, len(batches)):
            if not ctx.usable(batches[bi]):  # DDP: a batch some rank would get nothing of
                continue
            batch = collate_asr([train_ds[i] for i in ctx.shard(batches[bi])]).to(device)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step, total_steps)
            loss = ctc_step(batch.wav, batch.wav_lengths, batch.labels, batch.label_lengths)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            opt.step()
            step += 1
            losses.append(ctx.mean(loss.item()))
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if step % cfg.log_every == 0:
                run.log.info("step %d epoch %d loss %.4f grad %.2f lr %.2e", step, epoch,
                             float(np.mean(losses[-cfg.log_every:])), grad_norm, opt.param_groups[0]["lr"])
                run.append_metrics({"step": step, "epoch": epoch, "loss": losses[-1], "grad_norm": grad_norm,
                                    "lr": opt.param_groups[0]["lr"], "elapsed_s": budget.elapsed_s}, "steps.csv")
            # rank 0 evaluates and saves; its clock decides for every rank
            stopped = ctx.agree(ctx.is_main and policy.after_step(
                step, partial(eval_and_save, epoch, bi + 1, len(batches), losses),
                partial(save, run.last, epoch, bi + 1)))
            if stopped:
                break
        bar.close()
        if not stopped:
            epoch, first_batch = epoch + 1, 0
            if ctx.is_main:
                policy.end_of_epoch(partial(eval_and_save, epoch, 0, len(batches), losses),
                                    partial(save, run.last, epoch, 0))
            ctx.barrier()
    run.log.info("finished at step %d, epoch %d; best test CER %.4f", step, epoch, best_cer)
    run.close()
    ctx.close()
    return 0
