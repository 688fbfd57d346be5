"""Dense distillation of a streaming model from a windowed one (`python -m train stream-distill`).

Why: the runtime reads *every* row of a streaming model (1-3 s prefixes, then 4 s windows
sliding by 1 s), and a file's score is their mean; training on one clip-level target per clip
(its last row, clips of at most 4 s) leaves the other rows and streams longer than 4 s
untaught. Here each whole-second row of a 4-10 s stream is fitted to the windowed model's
scores on that row's own window (:mod:`train.dense_targets`), with one masked full-sequence
forward per batch (:func:`train.streaming.chunked_forward`, the forward that the exported
state-in/state-out graph reproduces).

Chunk sizes: each batch draws ``K`` from ``model.streaming.dynamic_chunks`` (0.2/0.6/1 s), so
one model keeps serving several hops; with ``K`` below 1 s only the rows that end on a whole
second carry a loss.

Loss: plain MSE over rows and the five dimensions. The targets are one model's outputs, all
five present and equally reliable, so the uncertainty weighting used for teacher labels
(``train.losses``) has nothing to weigh.

``agree`` prints the row agreement (PCC and RMSE per dimension) of checkpoints with the
targets on one split, at each chunk size: the label-free measure of how well the student
reproduces its windowed teacher on held-out talkers, noises and devices.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train.checkpoint import load_checkpoint, load_model, save_checkpoint
from train.config import ModelConfig
from train.dense_targets import HOP_SAMPLES, SAMPLE_RATE_HZ, TAIL_SAMPLES
from train.model import QualityModel
from train.rundir import RunDir, set_cpu_threads, warmup_cosine
from train.streaming import check_streamable, chunked_forward

FRAMES_PER_SECOND = 25  # 40 ms encoder frames


@dataclass(frozen=True)
class DistillConfig:
    run: str
    init_checkpoint: str
    targets_dir: str = "cache/dense-targets"
    runs_dir: str = "runs"
    steps: int = 1200
    warmup_steps: int = 50
    lr: float = 2.5e-4  # head
    encoder_lr: float = 1e-4  # front end + encoder
    min_lr_fraction: float = 0.05
    weight_decay: float = 1e-3
    batch_size: int = 12
    max_rows: int = 9  # streams are cut to at most this many whole seconds (+ the tail)
    grad_clip: float = 5.0
    val_every: int = 150
    val_max_clips: int = 300
    snapshots: bool = True
    threads: int = 2
    seed: int = 0


@dataclass
class DenseSet:
    """Clips with per-row targets (all shards of a targets folder, one split)."""

    paths: list[str]
    offsets: np.ndarray
    n_rows: np.ndarray
    scores: np.ndarray

    @classmethod
    def load(cls, folder: str | Path, split: str, max_clips: int = 0) -> DenseSet:
        shards = sorted(Path(folder).glob("targets-*-of-*.npz"))
        if not shards:
            raise ConfigError(f"{folder}: no targets-K-of-N.npz (run `python -m train dense-targets`)")
        paths: list[str] = []
        rows: list[np.ndarray] = []
        for shard in shards:
            z = np.load(shard)
            off = np.append(z["offset"], len(z["scores"]))
            for i in np.flatnonzero(z["split"] == split):
                paths.append(str(z["path"][i]))
                rows.append(z["scores"][off[i] : off[i + 1]])
        if max_clips and len(paths) > max_clips:
            keep = np.linspace(0, len(paths) - 1, max_clips).round().astype(int)
            paths, rows = [paths[i] for i in keep], [rows[i] for i in keep]
        n_rows = np.array([len(r) for r in rows], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(n_rows)[:-1]]).astype(np.int64) if rows else n_rows
        scores = np.concatenate(rows) if rows else np.zeros((0, len(DIMENSIONS)), np.float32)
        return cls(paths, offsets, n_rows, scores)

    def __len__(self) -> int:
        return len(self.paths)

    def item(self, i: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The clip's first ``tail + n`` seconds and its first ``n`` rows' targets."""
        wav = read_audio(self.paths[i], SAMPLE_RATE_HZ)[: TAIL_SAMPLES + n * HOP_SAMPLES]
        return wav.astype(np.float32), self.scores[self.offsets[i] : self.offsets[i] + n]


def batches(n_rows: np.ndarray, batch_size: int, max_rows: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of clips with similar row counts (each batch is cut to its shortest)."""
    order = rng.permutation(len(n_rows))
    order = order[np.argsort(np.minimum(n_rows[order], max_rows), kind="stable")]
    out = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [out[i] for i in rng.permutation(len(out))]


def aligned_rows(chunk_frames: int, n_seconds: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows of a ``chunk_frames`` stream that end on a whole second, the second's row index)."""
    rows = [r for r in range(n_seconds * FRAMES_PER_SECOND // chunk_frames)
            if ((r + 1) * chunk_frames) % FRAMES_PER_SECOND == 0]
    seconds = [(r + 1) * chunk_frames // FRAMES_PER_SECOND - 1 for r in rows]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(seconds, dtype=torch.long)


def collate(ds: DenseSet, idx: np.ndarray, max_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(min(max_rows, ds.n_rows[idx].min()))
    items = [ds.item(int(i), n) for i in idx]
    length = TAIL_SAMPLES + n * HOP_SAMPLES
    wav = np.zeros((len(items), length), np.float32)
    for j, (w, _) in enumerate(items):
        wav[j, : len(w)] = w
    return torch.from_numpy(wav), torch.from_numpy(np.stack([t for _, t in items]).astype(np.float32))


def dense_forward(model: QualityModel, wav: torch.Tensor, chunk_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions at the whole-second rows ``[B, S, 5]``, their second indices ``[S]``)."""
    n_seconds = (wav.shape[1] - TAIL_SAMPLES) // HOP_SAMPLES
    rows, seconds = aligned_rows(chunk_frames, n_seconds)
    return chunked_forward(model, wav, chunk_frames, rows=rows), seconds


def predict_rows(model: QualityModel, ds: DenseSet, chunk_frames: int, max_rows: int,
                 batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, targets), one line per whole-second row of every clip (in eval mode)."""
    model.eval()
    preds, targets = [], []
    order = np.argsort(ds.n_rows, kind="stable")
    with torch.no_grad():
        for a in range(0, len(order), batch_size):
            idx = order[a : a + batch_size]
            wav, tgt = collate(ds, idx, max_rows)
            pred, seconds = dense_forward(model, wav, chunk_frames)
            preds.append(pred.reshape(-1, pred.shape[-1]).numpy())
            targets.append(tgt[:, seconds].reshape(-1, tgt.shape[-1]).numpy())
    return np.concatenate(preds), np.concatenate(targets)


def agreement(pred: np.ndarray, target: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per dimension: (PCC, RMSE)."""
    return {d: (float(np.corrcoef(pred[:, i], target[:, i])[0, 1]),
                float(np.sqrt(np.mean((pred[:, i] - target[:, i]) ** 2))))
            for i, d in enumerate(DIMENSIONS)}


def train(cfg: DistillConfig) -> Path:
    torch.manual_seed(cfg.seed)
    set_cpu_threads(torch.device("cpu"), cfg.threads)
    warm = load_checkpoint(cfg.init_checkpoint)
    model_cfg = ModelConfig.from_dict(warm["model_config"])
    model = QualityModel(model_cfg)
    model.load_state_dict(warm["state_dict"])
    check_streamable(model)
    chunks = list(model_cfg.streaming.dynamic_chunks) or [model_cfg.streaming.chunk_frames]
    run = RunDir(Path(cfg.runs_dir) / cfg.run, {"stream_distill": asdict(cfg), "model": model_cfg.to_dict()},
                 "train.stream_distill")
    train_ds = DenseSet.load(cfg.targets_dir, "train")
    val_ds = DenseSet.load(cfg.targets_dir, "val", cfg.val_max_clips)
    if not len(train_ds) or not len(val_ds):
        raise ConfigError(f"{cfg.targets_dir}: need clips in both the train and val splits")
    enc = [p for n, p in model.named_parameters() if n.startswith(("frontend.", "encoder."))]
    head = [p for n, p in model.named_parameters() if n.startswith("quality_head.")]
    model.ctc_head.requires_grad_(False)
    opt = torch.optim.AdamW([{"params": enc, "peak": cfg.encoder_lr}, {"params": head, "peak": cfg.lr}],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best = 0, math.inf
    if run.last.exists():
        ckpt = load_checkpoint(run.last)
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best = int(ckpt["step"]), float(ckpt["extra"]["best_val_mse"])
        run.log.info("resumed from %s at step %d", run.last, step)
    teacher = str(np.load(sorted(Path(cfg.targets_dir).glob("targets-*.npz"))[0])["teacher"])
    provenance = {"training_data": f"dense streaming distillation: {len(train_ds)} clips of {cfg.targets_dir}, "
                                   f"targets = {teacher} on every whole-second row's window",
                  "licence": "CC BY-NC-SA 4.0 (trained on NISQA outputs)"}
    run.log.info("train %d clips (%d rows), val %d clips; chunks %s; from %s at step %d",
                 len(train_ds), int(train_ds.n_rows.sum()), len(val_ds), chunks, cfg.init_checkpoint, step)

    def save(path: Path, val: dict[str, Any] | None = None, with_opt: bool = True) -> None:
        save_checkpoint(path, model, model_cfg, stage="quality", optimizer=opt if with_opt else None, step=step,
                        extra={"best_val_mse": best, "val": val or {}, "stream_distill": asdict(cfg),
                               **({"loss_state": warm["extra"]["loss_state"]}
                                  if "loss_state" in warm.get("extra", {}) else {}), **provenance})

    def validate(losses: list[float]) -> None:
        nonlocal best
        pred, target = predict_rows(model, val_ds, model_cfg.streaming.chunk_frames, cfg.max_rows)
        model.train()
        mse = float(np.mean((pred - target) ** 2))
        agree = agreement(pred, target)
        improved = mse < best
        best = min(best, mse)
        run.append_metrics({"step": step, "train_mse": float(np.mean(losses)) if losses else math.nan,
                            "val_mse": mse, **{f"val_pcc_{d}": agree[d][0] for d in DIMENSIONS}})
        run.log.info("step %d: train mse %.4f val mse %.4f PCC %s%s", step,
                     float(np.mean(losses)) if losses else math.nan, mse,
                     " ".join(f"{d}={agree[d][0]:.3f}" for d in DIMENSIONS), " (best)" if improved else "")
        if improved:
            save(run.best, {"mse": mse})
        save(run.last, {"mse": mse})
        if cfg.snapshots:
            save(run.path / "snapshots" / f"step-{step:06d}.pt", {"mse": mse}, with_opt=False)

    if step == 0:
        validate([])  # the starting point's row of metrics.csv
    rng_epoch = step // max(1, len(train_ds) // cfg.batch_size)
    plan: list[np.ndarray] = []
    losses: list[float] = []
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc="stream-distill", unit="step", disable=None)
    while step < cfg.steps:
        if not plan:
            plan = batches(train_ds.n_rows, cfg.batch_size, cfg.max_rows,
                           np.random.default_rng([cfg.seed, rng_epoch]))
            rng_epoch += 1
        idx = plan.pop()
        wav, tgt = collate(train_ds, idx, cfg.max_rows)
        k = chunks[int(np.random.default_rng([cfg.seed, step]).integers(len(chunks)))]
        factor = warmup_cosine(step, cfg.warmup_steps, cfg.steps, cfg.min_lr_fraction)
        for g in opt.param_groups:
            g["lr"] = g["peak"] * factor
        pred, seconds = dense_forward(model, wav, k)
        loss = torch.mean((pred - tgt[:, seconds]) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc + head, cfg.grad_clip)
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(mse=f"{np.mean(losses[-25:]):.4f}", k=k)
        if step % cfg.val_every == 0 or step == cfg.steps:
            validate(losses)
            losses = []
    bar.close()
    run.log.info("finished at step %d; best val mse %.4f", step, best)
    run.close()
    return run.path


def agree_table(models: list[str], targets_dir: str, split: str, chunks: list[int], max_rows: int,
                max_clips: int) -> str:
    ds = DenseSet.load(targets_dir, split, max_clips)
    lines = [f"Row agreement with the windowed targets, {split} split: {len(ds)} clips, "
             f"{int(np.minimum(ds.n_rows, max_rows).sum())} whole-second rows (PCC / RMSE)", "",
             "| model | chunk | " + " | ".join(DIMENSIONS) + " |", "|---|---:|" + "---|" * len(DIMENSIONS)]
    for m in models:
        model, _, _ = load_model(m)
        for k in chunks:
            pred, target = predict_rows(model, ds, k, max_rows)
            a = agreement(pred, target)
            lines.append(f"| {m} | {k} | " + " | ".join(f"{a[d][0]:.3f} / {a[d][1]:.3f}" for d in DIMENSIONS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train stream-distill", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a streaming checkpoint on dense targets (resumable)")
    for f in DistillConfig.__dataclass_fields__.values():
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            t.add_argument(flag, type=lambda v: v.lower() in {"1", "true", "yes"}, default=f.default)
        elif f.name in {"run", "init_checkpoint"}:
            t.add_argument(flag, required=True)
        else:
            t.add_argument(flag, type=type(f.default), default=f.default)
    a = sub.add_parser("agree", help="row agreement of checkpoints with the targets on one split")
    a.add_argument("--model", action="append", required=True)
    a.add_argument("--targets-dir", default="cache/dense-targets")
    a.add_argument("--split", default="test")
    a.add_argument("--chunks", type=int, nargs="+", default=[25, 15, 5])
    a.add_argument("--max-rows", type=int, default=9)
    a.add_argument("--max-clips", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "train":
        cfg = DistillConfig(**{k: v for k, v in vars(args).items() if k != "cmd"})
        if cfg.steps < 1 or cfg.batch_size < 1 or cfg.max_rows < 1:
            raise ConfigError("--steps, --batch-size and --max-rows must be positive")
        print(f"wrote {train(cfg)}")
        return 0
    sys.stdout.write(agree_table(args.model, args.targets_dir, args.split, args.chunks, args.max_rows,
                                 args.max_clips))
    return 0
