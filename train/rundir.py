"""What every training stage shares: CLI options, the run folder, logging, budgets, devices.

Why one place: each stage must save the resolved config next to its checkpoints, log to
``runs/<name>/train.log``, append a metrics CSV, stop on a wall-clock budget and pick
``cuda`` when present, and these must behave the same in all of them.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from train.config import build, dump_toml, load_toml

T = TypeVar("T")

DEFAULT_CONFIG = "configs/train/small.toml"


def stage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """``--config``, repeatable ``--set section.key=value`` and ``--data-root``."""
    parser = argparse.ArgumentParser(prog=f"python -m train {prog}", description=description)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"training TOML (default {DEFAULT_CONFIG})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override one config value (repeatable)")
    parser.add_argument("--data-root", default=None,
                        help="shared data folder (default $LIVESQA_DATA_ROOT or ../shared/data)")
    return parser


def load_section(config: str, overrides: Sequence[str], section: str, cls: type[T]) -> tuple[dict[str, Any], T]:
    """The whole resolved config dict and ``[section]`` built into ``cls``."""
    cfg = load_toml(config, overrides)
    return cfg, build(cls, cfg.get(section, {}), prefix=f"{section}.")


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_cpu_threads(device: torch.device, n_threads: int) -> None:
    """On CPU use a fixed thread count (the training box has 2 shared cores)."""
    if device.type == "cpu" and n_threads > 0:
        torch.set_num_threads(n_threads)


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, floor: float = 0.0) -> float:
    """Learning-rate factor: linear warmup to 1, then cosine down to ``floor`` at ``total_steps``."""
    warm = max(warmup_steps, 1)
    if step < warm:
        return (step + 1) / warm
    progress = min((step - warm) / max(total_steps - warm, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class Budget:
    """Wall-clock budget in minutes (<= 0 or inf = unlimited); monotonic clock."""

    def __init__(self, max_minutes: float, already_spent_s: float = 0.0) -> None:
        self.limit_s = max_minutes * 60.0 if max_minutes > 0 else math.inf
        self._start = time.monotonic() - already_spent_s

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._start

    def expired(self) -> bool:
        return self.elapsed_s >= self.limit_s


class Every:
    """True once per ``minutes`` of wall clock (periodic checkpoints)."""

    def __init__(self, minutes: float) -> None:
        self.period_s = minutes * 60.0
        self._last = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() - self._last >= self.period_s:
            self._last = time.monotonic()
            return True
        return False

    def since_s(self) -> float:
        """Seconds since the period last started."""
        return time.monotonic() - self._last

    def reset(self) -> None:
        """Start a new period now (the thing it schedules just happened for another reason)."""
        self._last = time.monotonic()


class StepPolicy:
    """What a training loop does after each step: the same rule for ASR and fine-tuning.

    Budget spent (wall clock, or ``max_steps`` > 0 reached): evaluate, save and stop. Else an
    evaluation is due (``eval_minutes`` > 0): evaluate and save. Else a checkpoint is due:
    save ``last.pt`` only. ``after_step`` returns True when the loop must stop. A step limit
    makes a run's length independent of the machine's speed, so a rebuild stops where it did.
    """

    def __init__(self, max_minutes: float, checkpoint_minutes: float, eval_minutes: float,
                 log: logging.Logger, max_steps: int = 0) -> None:
        self.budget = Budget(max_minutes)
        self.max_steps = max_steps
        self._max_minutes = max_minutes
        self._checkpoints = Every(checkpoint_minutes)
        self._evals = Every(eval_minutes) if eval_minutes > 0 else None
        self._log = log

    def after_step(self, step: int, evaluate_and_save: Callable[[], None],
                   save_last: Callable[[], None]) -> bool:
        if self.budget.expired():
            self._log.info("wall-clock budget of %.1f min reached at step %d", self._max_minutes, step)
            evaluate_and_save()
            return True
        if self.steps_done(step):
            self._log.info("step limit of %d reached", self.max_steps)
            evaluate_and_save()
            return True
        if self._evals is not None and self._evals.due():
            evaluate_and_save()
        elif self._checkpoints.due():
            save_last()
        return False

    def steps_done(self, step: int) -> bool:
        """True once ``step`` reached ``max_steps`` (never when it is 0)."""
        return 0 < self.max_steps <= step

    def end_of_epoch(self, evaluate_and_save: Callable[[], None], save_last: Callable[[], None]) -> None:
        """Evaluate at an epoch's end; the periodic evaluation restarts its period from here.

        When a periodic evaluation ran within the last tenth of its period, only ``last.pt``
        is saved (so a resume starts at the next epoch): the weights have barely moved, and
        a second snapshot of them would count twice in an average of the last snapshots.
        """
        if self._evals is not None and self._evals.since_s() < 0.1 * self._evals.period_s:
            save_last()
        else:
            evaluate_and_save()
            if self._evals is not None:
                self._evals.reset()
        self._checkpoints.reset()


class RunDir:
    """``runs/<name>/``: ``config.resolved.toml``, ``train.log``, ``metrics.csv``, checkpoints."""

    def __init__(self, path: str | Path, resolved_config: Mapping[str, Any], logger_name: str,
                 write: bool = True) -> None:
        """``write=False`` (the other ranks of a distributed run): same paths, nothing written,
        nothing logged; rank 0 owns the folder."""
        self.path = Path(path)
        self.write = write
        self.log = logging.getLogger(logger_name)
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        for h in list(self.log.handlers):
            self.log.removeHandler(h)
            h.close()
        if not write:
            self.log.addHandler(logging.NullHandler())
            return
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.resolved.toml").write_text(dump_toml(_plain(resolved_config)), encoding="utf-8")
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        for handler in (logging.FileHandler(self.path / "train.log", encoding="utf-8"), logging.StreamHandler()):
            handler.setFormatter(fmt)
            self.log.addHandler(handler)

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def append_metrics(self, row: Mapping[str, Any], name: str = "metrics.csv") -> None:
        """Append one row; the header is written with the first row (columns fixed then)."""
        if not self.write:
            return
        path = self.path / name
        new = not path.exists()
        with path.open("a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(row), extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(v) for k, v in row.items()})

    def close(self) -> None:
        for h in list(self.log.handlers):
            self.log.removeHandler(h)
            h.close()


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def _plain(value: Any) -> Any:
    """Dataclasses -> dicts, tuples -> lists, None dropped (TOML has no null)."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
