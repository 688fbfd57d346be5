"""The model contract, stored in (and read from) the ONNX file's metadata.

Why: the runtime must never guess how a model wants its audio. The exporter in
``train/export.py`` writes a :class:`ModelSpec` into the ONNX ``metadata_props``
under the single key :data:`METADATA_KEY` (a JSON object); the runtime reads it
back with :func:`read_spec` and refuses a model without a valid one.

Graph contract (waveform in, scores out; the log-mel front end is inside):

- input ``audio``: float32 ``[batch, samples]``, mono, at ``sample_rate_hz``,
  full scale = 1.0. ``samples`` is a dynamic axis; the runtime feeds
  ``window_samples``.
- output ``scores``: float32 ``[batch, len(output_names)]`` in the order of
  ``output_names``, each within ``score_range``.
- optional output ``speech``: float32 ``[batch, frames]``, the probability that a talker
  is active in each encoder frame (``extra["speech_output"] == "speech"``; frame hop in
  ``extra["speech_frame_samples"]``). Models without it are unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from livesqa.errors import ModelSpecError

METADATA_KEY = "livesqa_spec"
SPEC_FORMAT_VERSION = 1
MAX_WINDOW_S = 60  # a longer window or hop is a broken spec (10**12 samples = 3.6 TiB)
INPUT_NAME = "audio"
OUTPUT_NAME = "scores"
#: Optional second output (issue #14): per-frame speech probabilities ``[batch, frames]``.
#: A model has it when ``spec.extra[SPEECH_OUTPUT_KEY] == SPEECH_OUTPUT_NAME``.
SPEECH_OUTPUT_NAME = "speech"
SPEECH_OUTPUT_KEY = "speech_output"

#: The NISQA dimensions in the papers' order (MOS, NOI, COL, DIS, LOUD).
#: NISQA's own code emits mos, noi, dis, col, loud: reorder at the teacher, never here.
DIMENSIONS: tuple[str, ...] = ("mos", "noi", "col", "dis", "loud")
DIMENSION_TITLES: dict[str, str] = {
    "mos": "MOS",
    "noi": "Noisiness",
    "col": "Coloration",
    "dis": "Discontinuity",
    "loud": "Loudness",
}


@dataclass(frozen=True)
class ModelSpec:
    """What a quality model needs and promises; validated on construction."""

    name: str
    version: str
    sample_rate_hz: int
    window_samples: int
    hop_samples: int  # recommended hop for live use
    output_names: tuple[str, ...] = DIMENSIONS
    score_min: float = 1.0
    score_max: float = 5.0
    licence: str = "unknown"
    training_data: str = "unknown"
    description: str = ""
    spec_format: int = SPEC_FORMAT_VERSION
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = self._type_problems()
        if problems:  # the range checks below assume the types
            raise ModelSpecError("invalid model spec: " + "; ".join(problems))
        if not self.name:
            problems.append("name is empty")
        if not self.version:
            problems.append("version is empty")
        if not 4000 <= self.sample_rate_hz <= 192000:
            problems.append(f"sample_rate_hz {self.sample_rate_hz} outside 4000..192000")
        limit = MAX_WINDOW_S * self.sample_rate_hz
        if not 0 < self.window_samples <= limit:
            problems.append(f"window_samples {self.window_samples} outside 1..{limit} "
                            f"({MAX_WINDOW_S:g} s)")
        if not 0 < self.hop_samples <= limit:
            problems.append(f"hop_samples {self.hop_samples} outside 1..{limit} ({MAX_WINDOW_S:g} s)")
        if not self.output_names or len(set(self.output_names)) != len(self.output_names):
            problems.append("output_names must be non-empty and unique")
        if not self.score_min < self.score_max:
            problems.append("score_min must be below score_max")
        if self.spec_format != SPEC_FORMAT_VERSION:
            problems.append(f"spec_format {self.spec_format} unsupported (want {SPEC_FORMAT_VERSION})")
        if problems:
            raise ModelSpecError("invalid model spec: " + "; ".join(problems))

    def _type_problems(self) -> list[str]:
        """Each field of the right type (a spec is JSON from a file: anything can be there)."""
        problems = []
        for name in ("name", "version", "licence", "training_data", "description"):
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name} must be a string")
        for name in ("sample_rate_hz", "window_samples", "hop_samples", "spec_format"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(f"{name} must be a whole number, not {value!r}")
        for name in ("score_min", "score_max"):
            value = getattr(self, name)
            if (not isinstance(value, (int, float)) or isinstance(value, bool)
                    or not math.isfinite(value)):
                problems.append(f"{name} must be a finite number, not {value!r}")
        if not isinstance(self.output_names, tuple) or not all(
                isinstance(n, str) for n in self.output_names):
            problems.append("output_names must be a list of strings")
        if not isinstance(self.extra, dict):
            problems.append("extra must be an object of strings")
        return problems

    @property
    def window_s(self) -> float:
        return self.window_samples / self.sample_rate_hz

    @property
    def hop_s(self) -> float:
        return self.hop_samples / self.sample_rate_hz

    def to_json(self) -> str:
        data = asdict(self)
        data["output_names"] = list(self.output_names)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            data: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as e:
            raise ModelSpecError(f"model spec is not valid JSON: {e}") from e
        if not isinstance(data, dict):
            raise ModelSpecError("model spec must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ModelSpecError(f"model spec has unknown fields: {sorted(unknown)}")
        names = data.get("output_names", list(DIMENSIONS))
        if not isinstance(names, list):
            raise ModelSpecError(f"model spec: output_names must be a list, not {names!r}")
        extra = data.get("extra", {})
        if not isinstance(extra, dict):
            raise ModelSpecError(f"model spec: extra must be an object, not {extra!r}")
        try:
            data["output_names"] = tuple(names)
            data["extra"] = {str(k): str(v) for k, v in extra.items()}
            return cls(**data)
        except TypeError as e:
            raise ModelSpecError(f"model spec fields are wrong: {e}") from e


def spec_metadata(spec: ModelSpec) -> dict[str, str]:
    """The ``metadata_props`` entries an exporter writes into the ONNX file."""
    return {METADATA_KEY: spec.to_json()}


def read_spec(model_path: str | Path) -> ModelSpec:
    """Read and validate the spec of an ONNX model without running it.

    Uses onnxruntime's model metadata (no ``onnx`` package needed at run time).
    """
    import onnxruntime as ort  # local: keeps `import livesqa.spec` cheap

    path = Path(model_path)
    if not path.is_file():
        raise ModelSpecError(f"model file not found: {path}")
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises several unrelated types
        raise ModelSpecError(f"{path}: not a loadable ONNX model ({e})") from e
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise ModelSpecError(
            f"{path}: no '{METADATA_KEY}' metadata; export models with `python -m train export`"
        )
    spec = ModelSpec.from_json(meta[METADATA_KEY])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ModelSpecError(
            f"{path}: graph must have input '{INPUT_NAME}' and output '{OUTPUT_NAME}' "
            f"(has inputs {inputs}, outputs {outputs})"
        )
    return spec
