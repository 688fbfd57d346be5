"""`python -m train speech-head`: add a per-frame speech head to a frozen quality model.

Why frozen: the head must not move the quality scores (a shipped model's numbers, cards
and selections stay valid); only ``speech_head.*`` is trained, and the stage checks the
quality scores of OUT equal IN's exactly before it writes OUT.

Steps: (1) make ``--windows`` simulated windows (``train.speech_data``: TRAIN-split
talkers and noise only) and run the frozen encoder once on each, caching every block's
output (float16) and the frame labels under ``--cache`` in parts of ``PART`` windows; a
rerun reuses finished parts (the key is the encoder's weights and the data settings).
(2) Train the head on cached frames (Adam, BCE on soft labels), one window in ten held
out to report the fit. (3) Write OUT: IN plus the head, ``model.speech_head = true``.

Example::

    python -m train speech-head --checkpoint runs/soup-v040-v7/best.pt \\
        --out runs/soup-v040-v7-speech/best.pt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livesqa.errors import ConfigError
from train.checkpoint import load_model, save_checkpoint
from train.model import QualityModel

PART = 200  # windows per cache file
DATA_VERSION = 2  # bump when train.speech_data changes what window i is


def with_speech_head(model: QualityModel, context: int = 1) -> QualityModel:
    """A copy of ``model`` with a fresh speech head of ``context`` frames; every other weight
    identical (an existing head of the same shape is kept as the starting point)."""
    if model.cfg.streaming.enabled:
        raise ConfigError("the speech head is for windowed models; this checkpoint is a streaming model")
    cfg = replace(model.cfg, speech_head=True, speech_context=context)
    out = QualityModel(cfg)
    missing, unexpected = out.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("speech_head.") for k in missing):
        raise ConfigError(f"state dict mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if model.speech_head is not None and model.cfg.speech_context == context:
        out.speech_head.load_state_dict(model.speech_head.state_dict())  # type: ignore[union-attr]
    return out.eval()


def freeze_all_but_head(model: QualityModel) -> list[torch.nn.Parameter]:
    """Only ``speech_head`` learns; returns its parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    assert model.speech_head is not None
    params = list(model.speech_head.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def encoder_key(model: QualityModel, settings: dict[str, Any]) -> str:
    """Cache key: the front end's and encoder's weights plus the data settings."""
    h = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        if name.startswith(("frontend.", "encoder.")):
            h.update(name.encode())
            h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def block_features(model: QualityModel, audio: np.ndarray) -> np.ndarray:
    """``[T', L, d]`` float16: every encoder block's output for one window (no padding)."""
    _, _, _, blocks, _ = model._run(torch.from_numpy(audio)[None, :], None)
    return torch.stack(blocks, dim=2)[0].to(torch.float16).numpy()


def extract(model: QualityModel, maker: Any, n_windows: int, folder: Path, progress: bool = True) -> list[Path]:
    """Cache parts ``part-XXXX.npz`` (feats [F, L, d], labels [F], window [F], kinds [n])."""
    from tqdm import tqdm

    from train.speech_data import encoder_labels

    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    n_parts = -(-n_windows // PART)
    bar = tqdm(total=n_windows, desc="speech-head features", unit="win", disable=not progress)
    for k in range(n_parts):
        path = folder / f"part-{k:04d}.npz"
        idx = range(k * PART, min(n_windows, (k + 1) * PART))
        if path.is_file():
            parts.append(path)
            bar.update(len(idx))
            continue
        feats, labels, window, kinds = [], [], [], []
        for i in idx:
            w = maker(i)
            f = block_features(model, w.audio)
            feats.append(f)
            labels.append(encoder_labels(w.active, f.shape[0]))
            window.append(np.full(f.shape[0], i, np.int32))
            kinds.append(w.kind)
            bar.update(1)
        tmp = folder / f"part-{k:04d}.tmp.npz"
        np.savez(tmp, feats=np.concatenate(feats), labels=np.concatenate(labels),
                 window=np.concatenate(window), kinds=np.array(kinds))
        tmp.replace(path)
        parts.append(path)
    bar.close()
    return parts


def load_parts(parts: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = [np.load(p) for p in parts]
    return (np.concatenate([d["feats"] for d in data]), np.concatenate([d["labels"] for d in data]),
            np.concatenate([d["window"] for d in data]))


def window_spans(window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, window id) of each window's contiguous run of frames."""
    starts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
    ends = np.r_[starts[1:], len(window)]
    return starts, ends, window[starts]


def train_head(model: QualityModel, feats: np.ndarray, labels: np.ndarray, window: np.ndarray, *,
               epochs: int, lr: float, batch: int, seed: int, log: Any = print) -> dict[str, float]:
    """Adam on masked BCE over batches of ``batch`` whole windows (the head may look across
    frames); windows with ``index % 10 == 0`` held out."""
    params = freeze_all_but_head(model)
    head = model.speech_head
    assert head is not None
    starts, ends, ids = window_spans(window)
    held = ids % 10 == 0
    tr, ho = np.flatnonzero(~held), np.flatnonzero(held)
    opt = torch.optim.Adam(params, lr=lr)
    steps = epochs * max(1, len(tr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = np.random.default_rng(seed)
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def batch_logits(wins: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits [B, T], labels [B, T], mask [B, T]) of padded windows."""
        n = ends[wins] - starts[wins]
        t = int(n.max())
        x = np.zeros((len(wins), t) + feats.shape[1:], np.float32)
        y = np.zeros((len(wins), t), np.float32)
        for b, w in enumerate(wins):
            x[b, : n[b]] = feats[starts[w]: ends[w]]
            y[b, : n[b]] = labels[starts[w]: ends[w]]
        mask = torch.from_numpy(np.arange(t)[None, :] < n[:, None])
        stacked = torch.from_numpy(x).permute(2, 0, 1, 3)  # [L, B, T, d]
        return head.logits(stacked, mask), torch.from_numpy(y), mask

    def evaluate(wins: np.ndarray) -> dict[str, float]:
        logits, ys = [], []
        with torch.no_grad():
            for s in range(0, len(wins), 64):
                lg, y, m = batch_logits(wins[s: s + 64])
                logits.append(lg[m])
                ys.append(y[m])
        lg, y = torch.cat(logits), torch.cat(ys)
        return {"bce": float(bce(lg, y)), "frame_acc": float(((lg >= 0) == (y >= 0.5)).float().mean())}

    head.train()
    step = 0
    t0 = time.time()
    for epoch in range(epochs):
        order = gen.permutation(tr)
        for s in range(0, len(order) - batch + 1, batch):
            lg, y, m = batch_logits(order[s: s + batch])
            loss = bce(lg[m], y[m])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step < steps - 1:
                sched.step()
            step += 1
        head.eval()
        metrics = evaluate(ho)
        head.train()
        log(f"epoch {epoch + 1}/{epochs}: held-out BCE {metrics['bce']:.4f}, frame accuracy "
            f"{100 * metrics['frame_acc']:.1f} % ({time.time() - t0:.0f} s)")
    head.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    final = evaluate(ho)
    final["train_windows"], final["held_out_windows"] = float(len(tr)), float(len(ho))
    return final


@torch.no_grad()
def quality_parity(a: QualityModel, b: QualityModel, seed: int = 0) -> float:
    """Max |scores_a - scores_b| on noise and speech-like signals of several lengths."""
    from train.export import test_signals

    worst = 0.0
    for _, wav in test_signals((1.0, 4.0), a.cfg.frontend.sample_rate_hz, seed):
        x = torch.from_numpy(wav)
        ref = a(x)
        worst = max(worst, float((ref - b(x)).abs().max()))
        if b.speech_head is not None:  # the two-output path the export traces
            worst = max(worst, float((ref - b.scores_and_speech(x)[0]).abs().max()))
    return worst


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train speech-head", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="quality checkpoint IN (stays frozen)")
    p.add_argument("--out", required=True, help="checkpoint OUT = IN + the speech head")
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--windows", type=int, default=3000, help="simulated windows (1-4 s each)")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--cache", default="cache/speech-head", help="feature cache folder (resumable)")
    p.add_argument("--no-call-path", action="store_true", help="no codecs, band limits, packet loss")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-windows", type=int, default=16)
    p.add_argument("--context", type=int, default=9,
                   help="the head's temporal context in 40 ms frames (odd; 1 = per-frame MLP)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from train.sim_catalogue import build_catalogue
    from train.speech_data import LABEL_MARGIN_DB, SNR_RANGE_DB, WindowMaker

    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    base, _, ckpt = load_model(args.checkpoint)
    if ckpt.get("stage") != "quality":
        raise ConfigError(f"{args.checkpoint}: stage {ckpt.get('stage')!r}, want a 'quality' checkpoint")
    model = with_speech_head(base, args.context)
    settings = {"version": DATA_VERSION, "seed": args.seed, "call_path": not args.no_call_path,
                "split": "train"}
    folder = Path(args.cache) / encoder_key(model, settings)
    cat = build_catalogue(Path(args.data_root))
    maker = WindowMaker(cat, args.seed, "train", call_path=not args.no_call_path)
    parts = extract(model, maker, args.windows, folder, progress=not args.no_progress)
    feats, labels, window = load_parts(parts)
    print(f"{len(labels)} frames of {args.windows} windows ({100 * float((labels >= 0.5).mean()):.1f} % "
          f"speech frames) from {folder}")
    metrics = train_head(model, feats, labels, window, epochs=args.epochs, lr=args.lr,
                         batch=args.batch_windows, seed=args.seed)
    diff = quality_parity(base, model)
    if diff != 0.0:
        raise ConfigError(f"quality scores moved by {diff:g}: the frozen model changed (a bug)")
    assert model.speech_head is not None
    weights = torch.softmax(model.speech_head.layer_logits, 0).tolist()
    extra = dict(ckpt.get("extra", {}))
    extra["speech_head"] = {
        "source_checkpoint": str(args.checkpoint), "windows": args.windows, "seed": args.seed,
        "call_path": not args.no_call_path, "snr_range_db": list(SNR_RANGE_DB),
        "label_margin_db": LABEL_MARGIN_DB, "epochs": args.epochs, "lr": args.lr,
        "context_frames": args.context,
        "held_out_bce": metrics["bce"], "held_out_frame_acc": metrics["frame_acc"],
        "layer_weights": weights,
    }
    save_checkpoint(args.out, model, model.cfg, stage="quality", extra=extra, step=int(ckpt.get("step", 0)))
    print(f"layer weights {' '.join(f'{w:.2f}' for w in weights)}; quality scores identical to IN; "
          f"wrote {args.out}")
    return 0
