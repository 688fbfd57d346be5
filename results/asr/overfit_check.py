"""Can the small Conformer overfit a handful of utterances with CTC? A check on the optimiser.

Why: the first ASR pretraining (peak lr 1e-3) sat on the CTC plateau (train loss ~2.6 per
character, greedy CER ~0.74) for thousands of steps. A model that cannot memorise 40
utterances in 200 steps has an optimisation problem, not a data one; this script trains
the real model (configs/train/small.toml) on the first N training utterances of the ASR
manifest at each learning rate and prints the loss curve, so the choice of lr is measured.

    python results/asr/overfit_check.py --lr 1e-3 6e-4 3e-4 --utts 40 --steps 200
"""

from __future__ import annotations

import argparse
import time
import tomllib

import torch
import torch.nn.functional as F

from train.config import ModelConfig
from train.data import AsrDataset, collate_asr, length_batches, read_asr_manifest
from train.model import QualityModel


def curve(model_cfg: ModelConfig, manifest: str, utts: int, lr: float, steps: int, every: int) -> list[float]:
    """CTC training loss every ``every`` steps (AdamW, constant lr, clip 5, 60 s batches)."""
    torch.manual_seed(0)
    items = [it for it in read_asr_manifest(manifest, "train") if it.duration_s <= 6][:utts]
    ds = AsrDataset(items, model_cfg.frontend.sample_rate_hz)
    model = QualityModel(model_cfg).train()
    params = [p for n, p in model.named_parameters() if not n.startswith("quality_head.")]
    opt = torch.optim.AdamW(params, lr=lr)
    out: list[float] = []
    step, epoch = 0, 0
    while step < steps:
        for idx in length_batches(ds.durations_s(), max_batch_s=60.0, seed=0, epoch=epoch):
            batch = collate_asr([ds[i] for i in idx])
            log_probs, lengths = model.ctc_log_probs(batch.wav, batch.wav_lengths)
            loss = F.ctc_loss(log_probs.transpose(0, 1), batch.labels, lengths, batch.label_lengths,
                              blank=0, reduction="mean", zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            step += 1
            if step % every == 0:
                out.append(float(loss.item()))
            if step >= steps:
                break
        epoch += 1
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/train/small.toml")
    p.add_argument("--manifest", default="cache/asr/manifest.csv")
    p.add_argument("--lr", type=float, nargs="+", default=[1e-3, 6e-4, 3e-4])
    p.add_argument("--utts", type=int, default=40)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config, "rb") as f:
        model_cfg = ModelConfig.from_dict(tomllib.load(f).get("model", {}))
    marks = list(range(args.every, args.steps + 1, args.every))
    print(f"| lr | {' | '.join(f'step {s}' for s in marks)} | s |")
    print("|---:|" + "---:|" * (len(marks) + 1))
    for lr in args.lr:
        t0 = time.monotonic()
        losses = curve(model_cfg, args.manifest, args.utts, lr, args.steps, args.every)
        print(f"| {lr:g} | {' | '.join(f'{v:.3f}' for v in losses)} | {time.monotonic() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
