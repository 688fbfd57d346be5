"""`python -m train speech-joint`: train the speech output jointly with an unfrozen encoder.

Why: a speech head on a frozen quality encoder (``speech-head``) found 57.8 % of the speech
windows at -5 dB SNR and took half of real hold music for speech (results/vad/README.md):
the features learnt for quality do not carry enough of what tells a talker from music and
loud noise. Here the encoder learns it too, and a self-distillation term keeps the quality
scores near the input model's:

    loss = BCE(speech logits, soft frame labels; valid frames only)
           + lambda * MSE(five scores, the frozen input model's five scores on the same window)

Scores are on 1-5; at lambda = 1 a drift of 0.1 on every score (MSE 0.01) costs as much as
a 1 % change of a typical BCE of 1.0.

Learning rates (AdamW, linear warmup, cosine to 5 %): front end and encoder at
``--encoder-lr`` (small: they start trained and must keep serving the quality head), the
speech head at ``--head-lr`` (it starts fresh), the quality head at ``--quality-lr``
(default: the encoder's). Why the quality head trains: its only target is the input model's
own scores, so all it can learn is to follow the encoder's drift back to them; frozen, only
the encoder could undo its drift and the same lambda leaves larger quality changes.
``--quality-lr 0`` freezes it. The CTC head is unused and frozen. Dropout stays on in
training, as in fine-tuning, so the training quality MSE has a floor that the held-out
(eval-mode) MSE has not.

Data: ``--windows`` simulated windows (``train.speech_data``: TRAIN-split talkers and noise,
window i a pure function of (seed, i)), rendered once with the input model's scores into
``--cache`` (``train.speech_cache``), batched by length and zero-padded with their lengths.
Windows with id % 10 == 0 are held out: the log lines' held-out BCE, frame accuracy and
quality MSE, and the reported max |quality score change|.

Resume: ``OUT.last`` (a quality checkpoint with the optimiser and this run's settings) is
written every ``--save-minutes``, when ``--max-minutes`` runs out and at the end; the same
command continues from its step (each step seeds its own dropout, and the batch of a step is
a function of the seed and the step, so a resumed run equals an uninterrupted one).

OUT: the input checkpoint with the jointly trained weights and ``model.speech_head = true``
(``python -m train export`` and the runtime's ``gate.detector = "model"`` take it as they
take a speech-head checkpoint); ``extra.speech_joint`` records the run and the max |quality
score change| against the input on the held-out windows. The quality numbers move by design,
so such a model needs its own selection before it ships.

Example::

    python -m train speech-joint --checkpoint runs/v060/best.pt --out runs/v060-joint/best.pt
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.functional import binary_cross_entropy_with_logits as bce_logits

from livesqa.errors import ConfigError
from train.checkpoint import load_checkpoint, load_model, save_checkpoint
from train.data import length_batches
from train.frontend import length_mask
from train.model import QualityModel
from train.rundir import Every, warmup_cosine
from train.speech_cache import WindowSet
from train.speech_data import SR

MIN_LR_FRACTION = 0.05  # the cosine's floor, as a fraction of each peak learning rate
EVAL_BATCH = 16
DEFAULT_CONTEXT = 9  # the speech-head stage's chosen head (results/vad/README.md)


@dataclass(frozen=True)
class JointConfig:
    """What shapes the training trajectory (a resume from ``OUT.last`` must match it)."""

    steps: int = 400
    batch: int = 8
    encoder_lr: float = 5e-5
    head_lr: float = 1e-3
    quality_lr: float = 5e-5  # 0 = quality head frozen
    lam: float = 1.0  # weight of the quality self-distillation MSE
    warmup: int = 20
    weight_decay: float = 1e-3
    grad_clip: float = 5.0
    seed: int = 14

    def check(self) -> None:
        """A one-line ConfigError naming the first bad option."""
        rules = (("--steps", self.steps, self.steps >= 1), ("--batch", self.batch, self.batch >= 1),
                 ("--encoder-lr", self.encoder_lr, self.encoder_lr > 0),
                 ("--head-lr", self.head_lr, self.head_lr > 0),
                 ("--quality-lr", self.quality_lr, self.quality_lr >= 0),
                 ("--lambda", self.lam, self.lam >= 0),
                 ("--warmup", self.warmup, 0 <= self.warmup < self.steps),
                 ("--weight-decay", self.weight_decay, self.weight_decay >= 0),
                 ("--grad-clip", self.grad_clip, self.grad_clip > 0))
        for name, value, ok in rules:
            if not ok or not math.isfinite(value):
                raise ConfigError(f"{name} {value}: out of range (see --help)")


@dataclass
class HeldOut:
    """Metrics on the held-out windows (eval mode)."""

    bce: float
    frame_acc: float
    quality_mse: float  # mean over windows and the five scores of (model - input model)^2
    max_change: float  # max |model - input model| over windows and scores
    max_change_per_dim: list[float] = field(default_factory=list)

    def line(self) -> str:
        return (f"held-out BCE {self.bce:.4f}, frame accuracy {100 * self.frame_acc:.1f} %, quality MSE "
                f"{self.quality_mse:.5f}, max |score change| {self.max_change:.3f}")


def joint_forward(model: QualityModel, wav: torch.Tensor,
                  wav_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scores ``[B, 5]``, speech logits ``[B, T]``, valid-frame mask ``[B, T]``) from one
    encoder pass over a zero-padded batch."""
    if model.speech_head is None:
        raise ValueError("joint training needs model.speech_head")
    _, _, level, blocks, lengths = model._run(wav, wav_lengths)
    assert lengths is not None
    mask = length_mask(lengths, blocks[0].shape[1])
    return model.quality_head(blocks, lengths, level), model.speech_head.logits(blocks, mask), mask


def collate(ws: WindowSet, ks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(audio ``[B, T]`` zero-padded, lengths ``[B]``, teacher scores ``[B, 5]``) of windows ``ks``."""
    lengths = ws.lengths[ks]
    wav = np.zeros((len(ks), int(lengths.max())), np.float32)
    for b, k in enumerate(ks):
        wav[b, : lengths[b]] = ws.wav(int(k))
    return torch.from_numpy(wav), torch.from_numpy(lengths.astype(np.int64)), torch.from_numpy(ws.teacher[ks])


def frame_labels(ws: WindowSet, ks: np.ndarray, mask: torch.Tensor) -> torch.Tensor:
    """Soft labels ``[B, T]`` of the valid encoder frames (0 on padding)."""
    n = mask.sum(dim=1).tolist()
    y = np.zeros(tuple(mask.shape), np.float32)
    for b, k in enumerate(ks):
        y[b, : n[b]] = ws.labels(int(k), int(n[b]))
    return torch.from_numpy(y)


def param_groups(model: QualityModel, cfg: JointConfig) -> list[dict[str, Any]]:
    """AdamW groups with their peak learning rates; what is in no group is frozen."""
    groups: dict[str, list[torch.nn.Parameter]] = {"encoder": [], "speech": [], "quality": []}
    for name, p in model.named_parameters():
        part = ("encoder" if name.startswith(("frontend.", "encoder.")) else
                "speech" if name.startswith("speech_head.") else
                "quality" if name.startswith("quality_head.") and cfg.quality_lr > 0 else None)
        p.requires_grad_(part is not None)
        if part is not None:
            groups[part].append(p)
    peaks = {"encoder": cfg.encoder_lr, "speech": cfg.head_lr, "quality": cfg.quality_lr}
    return [{"params": ps, "peak": peaks[k], "lr": peaks[k], "name": k} for k, ps in groups.items() if ps]


class JointTrainer:
    """One optimiser step at a time on the cached windows; ``step`` counts steps done."""

    def __init__(self, model: QualityModel, ws: WindowSet, cfg: JointConfig) -> None:
        self.model, self.ws, self.cfg = model, ws, cfg
        self.train_ids = np.flatnonzero(~ws.held_out)
        self.held_ids = np.flatnonzero(ws.held_out)
        if not len(self.train_ids) or not len(self.held_ids):
            raise ConfigError("--windows: need at least one held-out (id % 10 == 0) and one training window")
        groups = param_groups(model, cfg)
        self.params = [p for g in groups for p in g["params"]]
        self.opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        self.step = 0
        self.per_epoch = len(self._plan(0))

    def _plan(self, epoch: int) -> list[list[int]]:
        seconds = (self.ws.lengths[self.train_ids] / SR).tolist()
        return length_batches(seconds, batch_size=self.cfg.batch, seed=self.cfg.seed, epoch=epoch)

    def batch_at(self, step: int) -> np.ndarray:
        """Window positions of step ``step``: batches of similar length, reshuffled per epoch."""
        plan = self._plan(step // self.per_epoch)
        return self.train_ids[plan[step % self.per_epoch]]

    def train_step(self) -> tuple[float, float]:
        """One AdamW step; returns (BCE, quality MSE) of its batch."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed * 1_000_003 + self.step)  # dropout: a function of the step
        factor = warmup_cosine(self.step, cfg.warmup, cfg.steps, MIN_LR_FRACTION)
        for g in self.opt.param_groups:
            g["lr"] = g["peak"] * factor
        ks = self.batch_at(self.step)
        wav, lengths, teacher = collate(self.ws, ks)
        self.model.train()
        scores, logits, mask = joint_forward(self.model, wav, lengths)
        y = frame_labels(self.ws, ks, mask)
        bce = bce_logits(logits[mask], y[mask])
        mse = torch.mean((scores - teacher) ** 2)
        loss = bce + cfg.lam * mse
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return float(bce.detach()), float(mse.detach())

    @torch.no_grad()
    def evaluate(self) -> HeldOut:
        """Held-out BCE, frame accuracy and quality change (eval mode, batches by length)."""
        self.model.eval()
        bce_sum = correct = frames = 0.0
        sq_sum, worst = 0.0, np.zeros(self.ws.teacher.shape[1])
        seconds = (self.ws.lengths[self.held_ids] / SR).tolist()
        for b in length_batches(seconds, batch_size=EVAL_BATCH, shuffle=False):
            ks = self.held_ids[b]
            wav, lengths, teacher = collate(self.ws, ks)
            scores, logits, mask = joint_forward(self.model, wav, lengths)
            y = frame_labels(self.ws, ks, mask)[mask]
            lg = logits[mask]
            bce_sum += float(bce_logits(lg, y, reduction="sum"))
            correct += float(((lg >= 0) == (y >= 0.5)).sum())
            frames += float(mask.sum())
            diff = (scores - teacher).numpy()
            sq_sum += float(np.sum(diff ** 2))
            worst = np.maximum(worst, np.abs(diff).max(axis=0))
        n = len(self.held_ids) * self.ws.teacher.shape[1]
        return HeldOut(bce_sum / max(frames, 1.0), correct / max(frames, 1.0), sq_sum / n,
                       float(worst.max()), [float(w) for w in worst])

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Weights, optimiser and step from an ``OUT.last`` checkpoint."""
        self.model.load_state_dict(ckpt["state_dict"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])


SETTING_OPTIONS = {"lam": "--lambda", "teacher": "--checkpoint (weights)",
                   "data_key": "--seed/--no-call-path (windows)"}


def run_settings(cfg: JointConfig, **more: Any) -> dict[str, Any]:
    """Everything a resumed run must share with the saved one (plain values)."""
    return {**asdict(cfg), **more}


def resume(trainer: JointTrainer, last: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Continue from ``last`` when it exists; returns its history of held-out rows."""
    if not last.exists():
        return []
    ckpt = load_checkpoint(last)
    saved = ckpt.get("extra", {}).get("speech_joint_run")
    if not isinstance(saved, dict):
        raise ConfigError(f"{last}: not a speech-joint run state; move it away to start a new run")
    for key, value in settings.items():
        if saved.get(key) != value:
            option = SETTING_OPTIONS.get(key, "--" + key.replace("_", "-"))
            raise ConfigError(f"{last}: was run with other {option} ({saved.get(key)!r}, now {value!r}); "
                              "rerun with its options or delete it to start again")
    trainer.restore(ckpt)
    return list(ckpt["extra"].get("history", []))


def train_joint(trainer: JointTrainer, last: Path, settings: dict[str, Any], *, eval_every: int,
                log_every: int, save_minutes: float, max_minutes: float,
                log: Callable[[str], None], progress: bool = True,
                stop_after: int = 0) -> tuple[bool, list[dict[str, Any]]]:
    """Train to ``cfg.steps`` from wherever ``last`` left off; returns (finished, history).

    Stops early (saving ``last``) after ``max_minutes`` (> 0) of this invocation or
    ``stop_after`` (> 0) steps of it."""
    from tqdm import tqdm

    cfg = trainer.cfg
    history = resume(trainer, last, settings)
    if trainer.step:
        log(f"resumed from {last} at step {trainer.step}")

    def save() -> None:
        save_checkpoint(last, trainer.model, trainer.model.cfg, stage="quality", optimizer=trainer.opt,
                        step=trainer.step, extra={"speech_joint_run": settings, "history": history})

    def held_out() -> HeldOut:
        h = trainer.evaluate()
        history.append({"step": trainer.step, **asdict(h)})
        log(f"step {trainer.step}/{cfg.steps}: {h.line()}")
        return h

    if trainer.step == 0 and not history:
        held_out()  # the starting point (quality change ~0: only padding differs)
    saves, t0, done_here = Every(save_minutes), time.monotonic(), 0
    recent: list[tuple[float, float]] = []
    bar = tqdm(total=cfg.steps, initial=trainer.step, desc="speech-joint", unit="step", disable=not progress)
    while trainer.step < cfg.steps:
        recent.append(trainer.train_step())
        done_here += 1
        bar.update(1)
        bar.set_postfix(bce=f"{recent[-1][0]:.3f}", mse=f"{recent[-1][1]:.4f}")
        if trainer.step % log_every == 0 or trainer.step == cfg.steps:
            b, m = np.mean(recent, axis=0)
            log(f"step {trainer.step}/{cfg.steps}: train BCE {b:.4f}, quality MSE {m:.5f} "
                f"({(time.monotonic() - t0) / done_here:.2f} s/step)")
            recent = []
        if trainer.step % eval_every == 0 or trainer.step == cfg.steps:
            held_out()
        out_of_time = max_minutes > 0 and time.monotonic() - t0 >= 60 * max_minutes
        if trainer.step == cfg.steps or saves.due() or out_of_time or 0 < stop_after <= done_here:
            save()
            if trainer.step < cfg.steps and (out_of_time or 0 < stop_after <= done_here):
                bar.close()
                log(f"stopped at step {trainer.step} of {cfg.steps}; rerun the same command to continue")
                return False, history
    bar.close()
    if not history or history[-1]["step"] != trainer.step:
        held_out()  # a finished run resumed: its final row again
    return True, history


def load_start_head(path: str, src: QualityModel, ckpt: dict[str, Any], model: QualityModel) -> dict[str, Any]:
    """Copy the head of ``src`` (loaded from ``path``) into ``model``; returns its training record."""
    if src.speech_head is None:
        raise ConfigError(f"--head-from {path}: has no speech head (model.speech_head=false)")
    assert model.speech_head is not None
    try:
        model.speech_head.load_state_dict(src.speech_head.state_dict())
    except RuntimeError as e:
        raise ConfigError(f"--head-from {path}: head does not fit (context or encoder shape differ: {e})") from e
    return dict(ckpt.get("extra", {}).get("speech_head", {}))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = JointConfig()
    p = argparse.ArgumentParser(prog="python -m train speech-joint", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="windowed quality checkpoint IN (also the frozen teacher)")
    p.add_argument("--out", required=True, help="checkpoint OUT; the run's state goes to OUT.last")
    p.add_argument("--data-root", default=None, help="shared data (default $LIVESQA_DATA_ROOT or ../shared/data)")
    p.add_argument("--windows", type=int, default=2000, help="simulated windows (1-4 s); id %% 10 == 0 held out")
    p.add_argument("--cache", default="cache/speech-joint", help="audio + teacher-score cache (resumable)")
    p.add_argument("--no-call-path", action="store_true", help="no codecs, band limits, packet loss")
    p.add_argument("--context", type=int, default=None,
                   help=f"head context in 40 ms frames (odd; default: --head-from's, IN's head's, or {DEFAULT_CONTEXT})")
    p.add_argument("--head-from", default=None, help="speech-head checkpoint whose head to start from")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch", type=int, default=d.batch, help="windows per step")
    p.add_argument("--encoder-lr", type=float, default=d.encoder_lr)
    p.add_argument("--head-lr", type=float, default=d.head_lr, help="speech head")
    p.add_argument("--quality-lr", type=float, default=d.quality_lr, help="quality head (0 = frozen)")
    p.add_argument("--lambda", dest="lam", type=float, default=d.lam, help="weight of the quality MSE")
    p.add_argument("--warmup", type=int, default=d.warmup, help="warmup steps")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--grad-clip", type=float, default=d.grad_clip)
    p.add_argument("--seed", type=int, default=d.seed, help="windows and batches")
    p.add_argument("--eval-every", type=int, default=100, help="held-out evaluation every N steps")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-minutes", type=float, default=5.0, help="write OUT.last this often")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop this invocation after N minutes (0 = no limit)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> JointConfig:
    """Every option checked before any work; returns the training settings."""
    cfg = JointConfig(steps=args.steps, batch=args.batch, encoder_lr=args.encoder_lr, head_lr=args.head_lr,
                      quality_lr=args.quality_lr, lam=args.lam, warmup=args.warmup,
                      weight_decay=args.weight_decay, grad_clip=args.grad_clip, seed=args.seed)
    cfg.check()
    for name, value, ok in (("--windows", args.windows, args.windows >= 2),
                            ("--eval-every", args.eval_every, args.eval_every >= 1),
                            ("--log-every", args.log_every, args.log_every >= 1),
                            ("--threads", args.threads, args.threads >= 1),
                            ("--save-minutes", args.save_minutes, args.save_minutes > 0),
                            ("--max-minutes", args.max_minutes, args.max_minutes >= 0)):
        if not ok or not math.isfinite(value):
            raise ConfigError(f"{name} {value}: out of range (see --help)")
    if args.context is not None and (args.context < 1 or args.context % 2 == 0):
        raise ConfigError(f"--context {args.context}: must be odd and >= 1")
    out, src = Path(args.out), Path(args.checkpoint)
    if out.resolve() == src.resolve():
        raise ConfigError(f"--out {out}: is the input checkpoint; write the joint model elsewhere")
    if out.exists():
        try:
            load_checkpoint(out)
        except ConfigError as e:
            raise ConfigError(f"--out {out}: exists and is not a livesqa checkpoint; not overwriting it") from e
    return cfg


def main(argv: list[str] | None = None) -> int:
    from train.asr_data import resolve_data_root
    from train.sim_catalogue import build_catalogue
    from train.speech_cache import build_window_cache, data_key, teacher_key
    from train.speech_data import LABEL_MARGIN_DB, SNR_RANGE_DB, WindowMaker
    from train.speech_train import DATA_VERSION, quality_parity, with_speech_head

    args = parse_args(argv)
    cfg = check_args(args)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    last, log_path = out.with_name(out.name + ".last"), out.with_name(out.name + ".log")

    def log(line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    data_root = resolve_data_root(args.data_root)
    base, _, ckpt = load_model(args.checkpoint)
    if ckpt.get("stage") != "quality":
        raise ConfigError(f"--checkpoint {args.checkpoint}: stage {ckpt.get('stage')!r}, want a 'quality' checkpoint")
    start = load_model(args.head_from) if args.head_from else None
    context = args.context or (start[1].speech_context if start is not None else
                               base.cfg.speech_context if base.speech_head is not None else DEFAULT_CONTEXT)
    torch.manual_seed(args.seed)  # the new head's initial weights
    model = with_speech_head(base, context)
    start_head: dict[str, Any] = {}
    if start is not None:
        start_head = load_start_head(args.head_from, start[0], start[2], model)
    elif base.speech_head is not None and base.cfg.speech_context == context:  # kept by with_speech_head
        start_head = dict(ckpt.get("extra", {}).get("speech_head", {}))
    teacher = base  # the input model, frozen: the distillation target
    for p in teacher.parameters():
        p.requires_grad_(False)

    data = {"version": DATA_VERSION, "seed": args.seed, "call_path": not args.no_call_path, "split": "train"}
    maker = WindowMaker(build_catalogue(data_root), args.seed, "train", call_path=not args.no_call_path)
    ws, folder = build_window_cache(maker, teacher, args.windows, Path(args.cache), data,
                                    progress=not args.no_progress)
    log(f"{len(ws)} windows ({int(ws.held_out.sum())} held out, {100 * float(ws.active.mean()):.1f} % "
        f"speech mel frames) from {folder}")

    settings = run_settings(cfg, windows=args.windows, data_key=data_key(data), teacher=teacher_key(teacher),
                            context=context, head_from=str(args.head_from or ""))
    trainer = JointTrainer(model, ws, cfg)
    finished, history = train_joint(trainer, last, settings, eval_every=args.eval_every,
                                    log_every=args.log_every, save_minutes=args.save_minutes,
                                    max_minutes=args.max_minutes, log=log, progress=not args.no_progress)
    if not finished:
        return 0
    final = history[-1]
    signals = quality_parity(teacher, model.eval())
    assert model.speech_head is not None
    weights = torch.softmax(model.speech_head.layer_logits, 0).tolist()
    extra = dict(ckpt.get("extra", {}))
    extra.pop("speech_head", None)  # a frozen-head record no longer describes these weights
    extra["speech_joint"] = {
        "source_checkpoint": str(args.checkpoint), "windows": args.windows, "seed": args.seed,
        "call_path": not args.no_call_path, "snr_range_db": list(SNR_RANGE_DB),
        "label_margin_db": LABEL_MARGIN_DB, "context_frames": context,
        **{k: v for k, v in asdict(cfg).items() if k != "seed"},
        "head_from": str(args.head_from or ""), "start_head": start_head,
        "held_out_windows": int(ws.held_out.sum()), "held_out_bce": final["bce"],
        "held_out_frame_acc": final["frame_acc"], "held_out_quality_mse": final["quality_mse"],
        "max_quality_change": final["max_change"], "max_quality_change_per_dim": final["max_change_per_dim"],
        "max_quality_change_test_signals": signals, "layer_weights": weights,
        "history": history,
    }
    save_checkpoint(out, model, model.cfg, stage="quality", extra=extra, step=int(ckpt.get("step", 0)))
    log(f"max |quality score change| vs IN: {final['max_change']:.4f} on the held-out windows "
        f"({' '.join(f'{v:.3f}' for v in final['max_change_per_dim'])} for mos noi col dis loud), "
        f"{signals:.4f} on the export's test signals; layer weights {' '.join(f'{w:.2f}' for w in weights)}")
    log(f"wrote {out} (quality scores moved on purpose: select before shipping)")
    return 0
