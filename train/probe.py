"""Layer-wise probing of a frozen ASR encoder (`python -m train probe`).

Why: the paper's evidence that ASR layers carry quality information is a probe per layer
(layer 0 = the log-mel input) whose test PCC rises above the log-mel's. Here the frozen
encoder runs once per clip and every layer's frames are cached (fp16) under
``cache/probe/<key>/``; then one small :class:`train.heads.Probe` per layer learns all five
dimensions at once with a plain masked MSE (the paper fits one probe per layer and
dimension; five outputs share the FC here to fit the CPU budget), with early stopping on
the val split. Writes ``results/probing/probing.csv`` (layer, dimension, PCC on test) and
``probing.png`` (PCC vs layer, one line per dimension).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from livesqa.errors import ConfigError
from livesqa.spec import DIMENSION_TITLES, DIMENSIONS
from train.checkpoint import load_model
from train.data import QualityDataset, collate_quality, length_batches, read_quality_manifest
from train.finetune import sim_manifest
from train.heads import Probe
from train.metrics import per_dimension
from train.model import QualityModel
from train.rundir import Budget, RunDir, load_section, pick_device, set_cpu_threads, stage_parser

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ProbeConfig:
    """``[probe]``: which encoder to probe, where to cache, how to fit the probes."""

    run: str = "probe-small"
    runs_dir: str = "runs"
    asr_checkpoint: str = "runs/asr-small/best.pt"
    manifest: str = ""  # empty: <[simulate].out_dir>/manifest.csv, else cache/sim/manifest.csv
    cache_dir: str = "cache/probe"
    out_dir: str = "results/probing"
    max_clips_per_split: int = 0  # 0 = all (spread evenly over the split)
    crop_s: float = 0.0  # > 0: encode one seeded random crop of this length per clip (cheaper)
    extract_batch_size: int = 8
    hidden: int = 32
    lr: float = 1e-3
    batch_size: int = 16
    max_epochs: int = 20
    patience: int = 3
    max_minutes: float = 15.0  # for the probes; split evenly over the layers still to fit
    device: str = "auto"
    threads: int = 2
    seed: int = 0


@dataclass
class LayerFeatures:
    """One layer of one split: every clip's frames in one fp16 array ``[sum F, dim]``."""

    frames: np.ndarray
    starts: np.ndarray  # [N] int64: clip i is frames[starts[i] : starts[i] + lengths[i]]
    lengths: np.ndarray  # [N] int64 valid frames
    targets: np.ndarray  # [N, 5] float32, NaN = missing

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x [B, T, dim] float32, lengths [B], targets [B, 5] (0 where missing), mask [B, 5])."""
        lens = self.lengths[idx]
        x = np.zeros((len(idx), int(lens.max()), self.frames.shape[1]), dtype=np.float32)
        for row, i in enumerate(idx):
            x[row, : lens[row]] = self.frames[self.starts[i] : self.starts[i] + lens[row]]
        t = self.targets[idx]
        mask = np.isfinite(t)
        return (torch.from_numpy(x), torch.from_numpy(lens.astype(np.int64)),
                torch.from_numpy(np.where(mask, t, 0.0).astype(np.float32)), torch.from_numpy(mask))


def cache_key(checkpoint: Path, manifest: Path, cfg: ProbeConfig) -> str:
    """Changes whenever the encoder weights, the manifest, the clip cap or the crop change."""
    parts = [f"{p.resolve()}:{p.stat().st_mtime_ns}:{p.stat().st_size}" for p in (checkpoint, manifest)]
    parts += [str(cfg.max_clips_per_split), str(cfg.crop_s), str(cfg.seed)]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def _subset(items: list[Any], n: int) -> list[Any]:
    if n <= 0 or len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def extract_split(model: QualityModel, ds: QualityDataset, out: Path, device: torch.device, batch_size: int) -> None:
    """Run the frozen encoder once per clip; append each layer's valid frames to its file.

    Frames are streamed to disk as they come (the cache can be GBs), so clips are stored
    in processing order and located by ``starts``/``lengths``.
    """
    out.mkdir(parents=True, exist_ok=True)
    n_layers = model.cfg.encoder.n_layers + 1
    starts = np.zeros((n_layers, len(ds)), dtype=np.int64)
    lengths = np.zeros((n_layers, len(ds)), dtype=np.int64)
    dims = np.zeros(n_layers, dtype=np.int64)
    written = np.zeros(n_layers, dtype=np.int64)
    model.eval()
    with contextlib.ExitStack() as stack, torch.no_grad():
        files = [stack.enter_context(open(out / f"layer{i:02d}.f16", "wb")) for i in range(n_layers)]
        batches = length_batches(ds.durations_s(), batch_size=batch_size, shuffle=False)
        for idx in tqdm(batches, desc=f"encode {out.name}", leave=False, disable=None):
            batch = collate_quality([ds[i] for i in idx]).to(device)
            enc = model.encode(batch.wav, batch.wav_lengths)
            for layer, (x, lens) in enumerate(zip(enc.layers, enc.lengths)):
                dims[layer] = x.shape[-1]
                x16 = x.to(torch.float16).cpu().numpy()
                for row, i in enumerate(idx):
                    n = int(lens[row])
                    files[layer].write(np.ascontiguousarray(x16[row, :n]).tobytes())
                    starts[layer, i], lengths[layer, i] = written[layer], n
                    written[layer] += n
    targets = np.stack([np.asarray(it.targets, dtype=np.float32) for it in ds.items])
    np.savez(out / "index.npz", starts=starts, lengths=lengths, dims=dims, targets=targets)
    (out / "done").write_text("ok\n")


def load_layer(split_dir: Path, layer: int) -> LayerFeatures:
    index = np.load(split_dir / "index.npz")
    frames = np.fromfile(split_dir / f"layer{layer:02d}.f16", dtype=np.float16)
    return LayerFeatures(frames.reshape(-1, int(index["dims"][layer])), index["starts"][layer],
                         index["lengths"][layer], index["targets"])


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)


def predict_probe(probe: Probe, feats: LayerFeatures, batch_size: int, device: torch.device) -> np.ndarray:
    probe.eval()
    out = np.zeros((len(feats), len(DIMENSIONS)), dtype=np.float32)
    with torch.no_grad():
        for idx in length_batches(feats.lengths.tolist(), batch_size=batch_size * 4, shuffle=False):
            x, lens, _, _ = feats.batch(idx)
            out[idx] = probe(x.to(device), lens.to(device)).cpu().numpy()
    return out


def fit_probe(
    cfg: ProbeConfig, train: LayerFeatures, val: LayerFeatures, device: torch.device, budget: Budget, log: Any
) -> tuple[Probe, list[float]]:
    """Train with early stopping on val MSE; returns the best probe and the val-loss curve."""
    probe = Probe(train.frames.shape[1], hidden=cfg.hidden, n_outputs=len(DIMENSIONS)).to(device)
    opt = torch.optim.Adam(probe.parameters(), lr=cfg.lr)
    best_loss, best_state, curve, bad = math.inf, None, [], 0
    for epoch in range(cfg.max_epochs):
        probe.train()
        for idx in length_batches(train.lengths.tolist(), batch_size=cfg.batch_size, seed=cfg.seed, epoch=epoch):
            x, lens, t, m = (a.to(device) for a in train.batch(idx))
            loss = masked_mse(probe(x, lens), t, m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        pred = torch.from_numpy(predict_probe(probe, val, cfg.batch_size, device))
        t = torch.from_numpy(val.targets)
        m = torch.isfinite(t)
        val_loss = float(masked_mse(pred, torch.where(m, t, 0.0), m))
        curve.append(val_loss)
        if val_loss < best_loss - 1e-6:
            best_loss, bad = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in probe.state_dict().items()}
        else:
            bad += 1
        if bad >= cfg.patience or budget.expired():
            break
    if best_state is not None:
        probe.load_state_dict(best_state)
    log.info("    %d epochs, best val MSE %.4f", len(curve), best_loss)
    return probe, curve


def write_plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """PCC vs layer, one line per dimension (layer 0 = log-mel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for dim in DIMENSIONS:
        pts = sorted((r["layer"], r["pcc"]) for r in rows if r["dimension"] == dim)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=DIMENSION_TITLES[dim])
    ax.set_xlabel("layer (0 = log-mel)")
    ax.set_ylabel("PCC on test")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = stage_parser("probe", "layer-wise probing of a frozen encoder").parse_args(argv)
    resolved, cfg = load_section(args.config, args.overrides, "probe", ProbeConfig)
    device = pick_device(cfg.device)
    set_cpu_threads(device, cfg.threads)
    torch.manual_seed(cfg.seed)
    run = RunDir(Path(cfg.runs_dir) / cfg.run, {**resolved, "probe": asdict(cfg)}, "train.probe")
    checkpoint, manifest = Path(cfg.asr_checkpoint), Path(sim_manifest(resolved, cfg.manifest))
    if not checkpoint.is_file():
        raise ConfigError(f"ASR checkpoint not found: {checkpoint} (run `python -m train pretrain-asr`)")
    model, model_cfg, _ = load_model(checkpoint)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cache = Path(cfg.cache_dir) / cache_key(checkpoint, manifest, cfg)
    sr = model_cfg.frontend.sample_rate_hz
    t0 = time.monotonic()
    for split in SPLITS:
        if (cache / split / "done").exists():
            continue
        items = _subset(read_quality_manifest(manifest, split), cfg.max_clips_per_split)
        if not items:
            raise ConfigError(f"{manifest}: no labelled clips in split {split!r}")
        run.log.info("encoding %d %s clips -> %s", len(items), split, cache / split)
        ds = QualityDataset(items, sr, crop_s=cfg.crop_s, seed=cfg.seed, cache=False)
        extract_split(model, ds, cache / split, device, cfg.extract_batch_size)
    run.log.info("features ready in %.0f s", time.monotonic() - t0)

    budget = Budget(cfg.max_minutes)
    n_layers = model_cfg.encoder.n_layers + 1
    rows: list[dict[str, Any]] = []
    for layer in range(n_layers):
        layer_budget = Budget((cfg.max_minutes - budget.elapsed_s / 60) / (n_layers - layer))
        train, val, test = (load_layer(cache / s, layer) for s in SPLITS)
        run.log.info("layer %d (%s, dim %d)", layer, "log-mel" if layer == 0 else "encoder block", train.frames.shape[1])
        probe, curve = fit_probe(cfg, train, val, device, layer_budget, run.log)
        val_table = per_dimension(predict_probe(probe, val, cfg.batch_size, device), val.targets, DIMENSIONS)
        test_table = per_dimension(predict_probe(probe, test, cfg.batch_size, device), test.targets, DIMENSIONS)
        for dim in DIMENSIONS:
            rows.append({"layer": layer, "dimension": dim, "pcc": test_table[dim]["pcc"],
                         "rmse": test_table[dim]["rmse"], "val_pcc": val_table[dim]["pcc"],
                         "n_test": test_table[dim]["n"], "epochs": len(curve)})
        run.log.info("    test PCC %s", " ".join(f"{d}={test_table[d]['pcc']:.3f}" for d in DIMENSIONS))

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "probing.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    write_plot(rows, out / "probing.png", f"Probing {checkpoint.parent.name} ({n_layers - 1} layers)")
    (out / "probing.json").write_text(json.dumps(
        {"checkpoint": str(checkpoint), "manifest": str(manifest), "model": model_cfg.to_dict(),
         "probe": asdict(cfg), "rows": rows}, indent=1, default=str), encoding="utf-8")
    run.log.info("wrote %s and %s", out / "probing.csv", out / "probing.png")
    run.close()
    return 0
