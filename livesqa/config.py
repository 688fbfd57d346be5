"""Runtime configuration: frozen dataclasses from ``configs/livesqa.toml`` plus CLI overrides.

Why frozen and validated once: every component gets the values it needs at
construction and can trust them; a bad value fails at start-up with one line,
never an hour into a call. Overrides are ``section.key=value`` strings
(``--set hop_s=0.5``, ``--set gate.min_speech_ratio=0.3``), parsed as TOML values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from livesqa.errors import ConfigError
from livesqa.gating import GateConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "livesqa.toml"


@dataclass(frozen=True)
class RuntimeConfig:
    """Runtime defaults; ``hop_s`` None means the model's recommended hop."""

    hop_s: float | None = 1.0
    history_s: float = 180.0  # dashboard history length
    max_pending: int = 8  # offline mode: windows queued before the reader waits (2 MB at 4 s)
    block_s: float = 0.1  # file reader / mic callback block length
    refresh_hz: float = 4.0  # dashboard refresh rate
    device_timeout_s: float = 2.0  # live input silent (no callbacks) this long = device lost
    fsync: bool = False  # fsync every CSV/JSONL row (survives power loss, slower)
    gate: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if self.hop_s is not None and not 0.05 <= self.hop_s <= 60.0:
            raise ConfigError(f"hop_s {self.hop_s} outside 0.05..60")
        if self.history_s <= 0 or self.block_s <= 0 or self.refresh_hz <= 0:
            raise ConfigError("history_s, block_s and refresh_hz must be positive")
        if self.max_pending < 1:
            raise ConfigError("max_pending must be at least 1")
        if self.device_timeout_s <= 0:
            raise ConfigError("device_timeout_s must be positive")

    def hop_samples(self, sample_rate_hz: int, model_hop_samples: int) -> int:
        if self.hop_s is None:
            return model_hop_samples
        return max(1, int(round(self.hop_s * sample_rate_hz)))

    def history_windows(self, hop_s: float) -> int:
        return max(1, int(round(self.history_s / hop_s)))


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare strings


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    values = dict(data)
    if cls is RuntimeConfig and "gate" in values:
        if not isinstance(values["gate"], dict):
            raise ConfigError(f"{where}: [gate] must be a table")
        values["gate"] = _build(GateConfig, values["gate"], where + " [gate]")
    if values.get("hop_s") == "model":
        values["hop_s"] = None
    try:
        return cls(**values)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}") from e


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RuntimeConfig:
    """Read the TOML (default ``configs/livesqa.toml`` if present) and apply ``key=value`` overrides."""
    data: dict[str, Any] = {}
    where = "defaults"
    p = Path(path) if path else DEFAULT_CONFIG
    if path or p.is_file():
        where = str(p)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8")).get("runtime", {})
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"{p}: cannot read config ({e})") from e
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value")
        parts = key.strip().split(".")
        target = data
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _parse_value(text.strip())
    return _build(RuntimeConfig, data, where)


