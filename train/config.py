"""Training configuration: TOML files + ``--set`` overrides -> frozen dataclasses.

How sections are parsed (for every stage module):

1. ``load_toml(path, overrides)`` returns the whole file as a plain nested dict, with each
   ``--set section.key=value`` applied (the value is parsed as a TOML literal, so
   ``--set finetune.lr=3e-4`` is a float and ``--set data.root="x"`` or ``data.root=x`` a
   string; dotted keys nest, e.g. ``model.head.layer_attention=false``).
2. Each stage owns one section and turns it into its own frozen dataclass with
   ``build(MyStageConfig, cfg.get("finetune", {}))``. ``build`` rejects unknown keys and
   missing required fields with :class:`ConfigError`, so a typo in a TOML file or an
   override fails at start-up, not an hour into a run.
3. The model is always ``ModelConfig.from_dict(cfg["model"])`` (sections ``[model.frontend]``,
   ``[model.encoder]``, ``[model.head]``, plus ``vocab_size``).

``dump_toml(cfg)`` writes a resolved config back (for ``runs/<name>/config.resolved.toml``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from livesqa.errors import ConfigError

T = TypeVar("T")


def _parse_value(text: str) -> Any:
    """A TOML literal (number, bool, string, array, inline table); a bare word is a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(cfg: dict[str, Any], override: str) -> None:
    """Apply one ``a.b.c=value`` to a nested dict in place."""
    key, sep, value = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = _parse_value(value.strip())


def load_toml(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read a TOML config and apply ``section.key=value`` overrides (in order)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            cfg = tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {p}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: invalid TOML ({e})") from e
    for override in overrides:
        apply_override(cfg, override)
    return cfg


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Check/convert one value against a field's type hint (nested dataclasses recurse)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a table, got {value!r}")
        return build(hint, value, prefix=f"{name}.")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, arg, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{name}: {value!r} does not match {hint} ({'; '.join(errors)})")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be an array, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        return tuple(_coerce(f"{name}[]", item, v) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a table, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return value
    return value  # Any, Path-like or exotic hints: pass through unchanged


def build(cls: type[T], mapping: Mapping[str, Any] | None, prefix: str = "") -> T:
    """A frozen dataclass from a dict: unknown keys, missing fields and bad types raise."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a dataclass")
    data = dict(mapping or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {[prefix + k for k in unknown]} for {cls.__name__}; "
            f"known: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(prefix + name, hints[name], data[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {prefix + name!r} for {cls.__name__}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cls.__name__}: {e}") from e


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Path):
        return _toml_value(str(value))
    if value is None:
        raise ConfigError("TOML has no null: drop None values before dumping")
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def dump_toml(cfg: Mapping[str, Any]) -> str:
    """A nested dict (plain values, lists, sub-tables) -> TOML text readable by tomllib."""
    lines: list[str] = []

    def table(path: list[str], node: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, Mapping) and v is not None}
        tables = {k: v for k, v in node.items() if isinstance(v, Mapping)}
        if path and (scalars or not tables):
            lines.append(f"[{'.'.join(path)}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {_toml_value(v)}")
        if scalars or (path and not tables):
            lines.append("")
        for k, v in tables.items():
            table([*path, k], v)

    table([], cfg)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------- model configs


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel front end (paper: 80 mels, 25 ms window, 10 ms hop, CMS, 16 kHz)."""

    sample_rate_hz: int = 16000
    n_mels: int = 80
    win_ms: float = 25.0
    hop_ms: float = 10.0
    cms: bool = True

    def __post_init__(self) -> None:
        if self.sample_rate_hz <= 0 or self.n_mels <= 0 or self.hop_ms <= 0:
            raise ValueError("sample_rate_hz, n_mels and hop_ms must be positive")
        if self.win_ms < self.hop_ms:
            raise ValueError(f"win_ms {self.win_ms} must be >= hop_ms {self.hop_ms}")

    @property
    def win_samples(self) -> int:
        return round(self.win_ms * self.sample_rate_hz / 1000)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_ms * self.sample_rate_hz / 1000)


@dataclass(frozen=True)
class EncoderConfig:
    """Conformer encoder. ``subsampling_channels=0`` means ``d_model`` (the usual choice)."""

    n_layers: int
    d_model: int
    n_heads: int
    ff_mult: int = 4
    conv_kernel: int = 31
    dropout: float = 0.1
    subsampling_channels: int = 0
    # streaming (opt-in, train/streaming.py); the defaults are the windowed model exactly
    causal_conv: bool = False  # depthwise conv padded k-1 on the left only (no look-ahead)
    positions: str = "absolute"  # "chunk": sinusoid of the frame's index within its chunk

    def __post_init__(self) -> None:
        if self.positions not in ("absolute", "chunk"):
            raise ValueError(f"positions {self.positions!r} must be 'absolute' or 'chunk'")
        if self.n_layers < 1 or self.d_model < 1 or self.n_heads < 1:
            raise ValueError("n_layers, d_model and n_heads must be positive")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} not divisible by n_heads {self.n_heads}")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel {self.conv_kernel} must be odd (same padding)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout} must be in [0, 1)")


@dataclass(frozen=True)
class HeadConfig:
    """Quality head: layer attention (or last layer only), level input, pooling, score range."""

    layer_attention: bool = True
    pool_hidden: int = 128
    n_outputs: int = 5
    score_min: float = 1.0
    score_max: float = 5.0
    level_input: bool = True  # see train.heads.QualityHead; false = the paper's head exactly
    level_hidden: int = 0  # > 0: a small tanh MLP on the level too (train/level_head.py); 0 = linear only
    # train.heads.LevelHinge (train/level_hinge.py): logit offsets only below hinge_quiet_db or
    # above hinge_hot_db of the window's power-weighted level (dBFS); false = no such term
    level_hinge: bool = False
    hinge_quiet_db: float = -40.0
    hinge_hot_db: float = -14.0

    def __post_init__(self) -> None:
        if not self.score_min < self.score_max:
            raise ValueError("score_min must be below score_max")
        if self.level_hidden < 0 or (self.level_hidden and not self.level_input):
            raise ValueError("level_hidden must be >= 0 and needs level_input = true")
        if self.level_hinge and not self.hinge_quiet_db < self.hinge_hot_db:
            raise ValueError("hinge_quiet_db must be below hinge_hot_db")


@dataclass(frozen=True)
class StreamingConfig:
    """Chunk streaming (train/streaming.py). ``enabled=False`` (default) is the windowed model.

    Encoder frames are 40 ms. Each chunk of ``chunk_frames`` frames is encoded once and
    attends to ``left_frames`` of cached left context; a score describes the last
    ``chunk_frames + left_frames`` frames (25 + 75 = 4 s). ``dynamic_chunks`` lists the chunk
    sizes drawn at random per training batch (empty: always ``chunk_frames``).
    """

    enabled: bool = False
    chunk_frames: int = 25
    left_frames: int = 75
    dynamic_chunks: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.left_frames < 1:
            raise ValueError(f"left_frames {self.left_frames} must be positive (a window > a chunk)")
        for k in (self.chunk_frames, *self.dynamic_chunks):
            if k < 1 or self.left_frames % k:
                raise ValueError(
                    f"chunk of {k} frames must be positive and divide left_frames {self.left_frames}"
                )


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a :class:`train.model.QualityModel` (stored in checkpoints)."""

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    encoder: EncoderConfig = field(
        default_factory=lambda: EncoderConfig(
            n_layers=8, d_model=144, n_heads=4, conv_kernel=15, subsampling_channels=64
        )  # configs/train/small.toml
    )
    head: HeadConfig = field(default_factory=HeadConfig)
    vocab_size: int = 29
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    # per-frame speech-presence head (train/speech_head.py); off: the model exactly as before
    speech_head: bool = False
    speech_context: int = 1  # the speech head's temporal context in 40 ms frames (odd; 1 = per frame)

    def __post_init__(self) -> None:
        on = self.streaming.enabled
        if on and self.speech_head:
            raise ValueError("speech_head is only defined for windowed models (streaming.enabled=false)")
        if on and not (self.encoder.causal_conv and self.encoder.positions == "chunk"):
            raise ValueError(
                "streaming.enabled needs encoder.causal_conv=true and encoder.positions='chunk' "
                "(a chunk must not see frames after it, nor absolute stream positions)"
            )
        if self.encoder.positions == "chunk" and not on:
            raise ValueError("encoder.positions='chunk' is only defined with streaming.enabled")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        return build(cls, d, prefix="model.")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict; the streaming keys are left out while at their defaults, so windowed
        checkpoints, specs and ``average``'s config comparison stay as before streaming existed;
        likewise ``speech_head`` while off."""
        d = dataclasses.asdict(self)
        for key, default in _STREAMING_DEFAULTS["encoder"].items():
            if d["encoder"].get(key) == default:
                del d["encoder"][key]
        if self.streaming == StreamingConfig():
            del d["streaming"]
        if not self.speech_head:
            del d["speech_head"]
        if self.speech_context == 1:
            del d["speech_context"]
        if not self.head.level_hidden:  # likewise the level MLP while off
            del d["head"]["level_hidden"]
        if not self.head.level_hinge:  # and the level hinge
            for key in ("level_hinge", "hinge_quiet_db", "hinge_hot_db"):
                del d["head"][key]
        return d


_STREAMING_DEFAULTS: dict[str, dict[str, Any]] = {
    "encoder": {"causal_conv": False, "positions": "absolute"},
}
