"""Runtime configuration: frozen dataclasses from ``configs/livesqa.toml`` plus CLI overrides.

Why frozen and validated once, in one place: every component gets the values it
needs at construction and can trust them; a bad value fails at start-up with one
line, never an hour into a call. Every key is checked here for its type and its
finite range (:data:`LIMITS`; NaN and inf never pass), and the message names the
key and where the value came from (``--set gate.x=...``, ``--hop`` or the config
file and its table). Overrides are ``section.key=value`` strings (``--set hop_s=0.5``,
``--set gate.min_speech_ratio=0.3``), parsed as TOML values.
"""

from __future__ import annotations

import math
import re
import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from livesqa.errors import ConfigError
from livesqa.gating import GateConfig

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "livesqa.toml"

#: Finite range (inclusive) of every numeric key; unit for the message. Keys of the
#: dataclasses without an entry are still checked for type and finiteness.
LIMITS: dict[str, tuple[float, float, str]] = {
    "hop_s": (0.05, 60.0, " s"),
    "history_s": (1.0, 86400.0, " s"),
    "max_pending": (1, 4096, ""),
    "block_s": (0.005, 5.0, " s"),  # below 5 ms a real-time reader would only spin
    "refresh_hz": (0.1, 60.0, " Hz"),
    "device_timeout_s": (0.1, 3600.0, " s"),
    "gate.frame_ms": (5.0, 100.0, " ms"),
    "gate.abs_floor_dbfs": (-120.0, 0.0, " dBFS"),
    "gate.on_margin_db": (0.0, 60.0, " dB"),
    "gate.hysteresis_db": (0.0, 60.0, " dB"),
    "gate.floor_percentile": (0.0, 100.0, ""),
    "gate.min_speech_ratio": (0.0, 1.0, ""),
    "gate.speech_threshold": (0.0, 1.0, ""),
    "gate.silero_stride": (1, 2, ""),
}


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
        for f in fields(self):
            if f.name != "gate":
                check_value(f.name, getattr(self, f.name), "RuntimeConfig")

    def hop_samples(self, sample_rate_hz: int, model_hop_samples: int) -> int:
        if self.hop_s is None:
            return model_hop_samples
        return max(1, int(round(self.hop_s * sample_rate_hz)))

    def history_windows(self, hop_s: float) -> int:
        return max(1, int(round(self.history_s / hop_s)))


# --- the schema: keys, types, ranges -----------------------------------------------------


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _tables() -> dict[str, Any]:
    """Nested tables of RuntimeConfig (``gate``) by key."""
    return {name: t for name, t in _hints(RuntimeConfig).items() if is_dataclass(t)}


def known_keys() -> dict[str, Any]:
    """Every settable key (``hop_s``, ``gate.frame_ms``...) and its type."""
    keys: dict[str, Any] = {}
    tables = _tables()
    for name, t in _hints(RuntimeConfig).items():
        if name in tables:
            for sub, st in _hints(t).items():
                keys[f"{name}.{sub}"] = st
        else:
            keys[name] = t
    return keys


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_value(key: str, value: Any, origin: str) -> Any:
    """``value`` for ``key`` checked for type and finite range; returns it (ints stay ints).

    Raises :class:`ConfigError` naming ``origin``, the key, the value and what is allowed.
    """
    want = known_keys().get(key)
    where = f"{origin}: {key} = {_show(value)}"
    if key == "hop_s" and isinstance(value, str) and value == "model":
        return None
    options = typing.get_args(want)
    if type(None) in options:  # "X | None": None is the default's own meaning
        if value is None:
            return None
        want = next(t for t in options if t is not type(None))
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false")
        return value
    if want is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string")
        return value
    if want is int:
        if not (_number(value) and float(value).is_integer()):
            raise ConfigError(f"{where}: must be a whole number{_range_text(key)}")
        value = int(value)
    elif want is float:
        if not _number(value):
            extra = ' or "model"' if key == "hop_s" else ""
            raise ConfigError(f"{where}: must be a number{_range_text(key)}{extra}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number{_range_text(key)}")
        value = float(value)
    if key in LIMITS:
        lo, hi, _ = LIMITS[key]
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: outside the allowed range{_range_text(key)}")
    return value


def _range_text(key: str) -> str:
    if key not in LIMITS:
        return ""
    lo, hi, unit = LIMITS[key]
    return f" ({lo:g}..{hi:g}{unit})"


# --- loading ----------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # bare strings


def _flatten(table: dict[str, Any], origin: str, prefix: str = "") -> dict[str, tuple[Any, str]]:
    """A config file's ``[runtime]`` table as ``{key: (value, origin)}``."""
    tables = _tables()
    keys = known_keys()
    out: dict[str, tuple[Any, str]] = {}
    for name, value in table.items():
        key = prefix + name
        if not prefix and name in tables:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [runtime.{name}] must be a table of keys")
            out.update(_flatten(value, f"{origin} [runtime.{name}]", key + "."))
        elif key in keys:
            out[key] = (value, origin)
        else:
            raise ConfigError(f"{origin}: unknown key {key!r} (known: {', '.join(sorted(keys))})")
    return out


def _read_file(p: Path) -> dict[str, tuple[Any, str]]:
    where = str(p)
    if p.is_dir() or p.is_fifo() or p.is_socket():  # a named pipe would block the read
        raise ConfigError(f"{p}: cannot read config (not a regular file)")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config ({e.strerror or e})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: config is not UTF-8 text (byte {e.start}); save it as UTF-8") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from e
    runtime = data.get("runtime", {})
    if not isinstance(runtime, dict):
        raise ConfigError(f"{p}: [runtime] must be a table of keys (it is a "
                          f"{'list of tables' if isinstance(runtime, list) else type(runtime).__name__})")
    return _flatten(runtime, f"{where} [runtime]")


def _parse_override(item: str) -> tuple[str, Any, str]:
    origin = f"--set {item}"
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{origin}: must look like KEY=VALUE, e.g. --set hop_s=0.5")
    keys = known_keys()
    if key not in keys:
        head = key.split(".")[0]
        if head in keys:
            raise ConfigError(f"{origin}: {head} is a value, not a table; use --set {head}=VALUE")
        raise ConfigError(f"{origin}: unknown key {key!r} (known: {', '.join(sorted(keys))})")
    return key, _parse_value(text.strip()), origin


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                named: dict[str, tuple[Any, str]] | None = None) -> RuntimeConfig:
    """Read the TOML (default ``configs/livesqa.toml`` if present) and apply overrides.

    ``overrides`` are ``key=value`` strings (``--set``); ``named`` maps a key to
    ``(value, option)`` for dedicated options such as ``--hop`` (applied last).
    """
    values: dict[str, tuple[Any, str]] = {}
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if path is not None and not str(path):
        raise ConfigError("--config is empty; pass a TOML file or leave the option out")
    if path is not None or p.is_file():
        values.update(_read_file(p))
    for item in overrides or []:
        key, value, origin = _parse_override(item)
        values[key] = (value, origin)
    for key, (value, origin) in (named or {}).items():
        values[key] = (value, origin)
    checked = {key: (check_value(key, value, origin), origin) for key, (value, origin) in values.items()}
    return _build(checked)


def _build(values: dict[str, tuple[Any, str]]) -> RuntimeConfig:
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, (value, _) in values.items():
        table, dot, name = key.partition(".")
        if dot:
            nested.setdefault(table, {})[name] = value
        else:
            top[key] = value
    try:
        for table, cls in _tables().items():
            if table in nested:
                top[table] = cls(**nested[table])
        return RuntimeConfig(**top)
    except ConfigError as e:
        # a check of the dataclass itself (e.g. a choice among names): say where the key was set
        for key, (_, origin) in values.items():
            if re.search(rf"\b{re.escape(key)}\b", str(e)):
                raise ConfigError(f"{origin}: {e}") from e
        raise
