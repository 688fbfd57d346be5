"""Finding the model to run: ``--model``, then ``$LIVESQA_MODEL``, then ``exported/*.onnx``.

Why a fixed search order: the same command must pick the same model on every
machine, and a user must be told plainly when no trained model is shipped yet
(we never fall back to a random or untrained model).

``exported/`` is looked up next to the package (a source checkout or an editable
install: ``<repo>/exported``) and inside it (``livesqa/exported`` for wheels).
With several models, the one named by ``exported/DEFAULT`` (a file holding a file
name) wins; otherwise the newest ``*.onnx`` by name order is taken.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from livesqa.errors import ModelSpecError
from livesqa.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec

ENV_MODEL = "LIVESQA_MODEL"
DEFAULT_POINTER = "DEFAULT"


def exported_dirs() -> list[Path]:
    """Folders searched for shipped models, in order."""
    package = Path(__file__).resolve().parent
    return [package.parent / "exported", package / "exported"]


def _pick(folder: Path) -> Path | None:
    pointer = folder / DEFAULT_POINTER
    if pointer.is_file():
        named = folder / pointer.read_text(encoding="utf-8").strip()
        if not named.is_file():
            raise ModelSpecError(f"{pointer} names {named.name}, which does not exist")
        return named
    models = sorted(folder.glob("*.onnx"))
    return models[-1] if models else None


def find_model(explicit: str | Path | None = None) -> Path:
    """The model path to load; raises :class:`ModelSpecError` if there is none."""
    if explicit is not None and not str(explicit).strip():
        raise ModelSpecError("--model is empty; pass a model file or leave the option out "
                             "for the default model")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ModelSpecError(f"model file not found: {path}")
        return path
    env = os.environ.get(ENV_MODEL)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ModelSpecError(f"${ENV_MODEL} points to {path}, which does not exist")
        return path
    for folder in exported_dirs():
        if folder.is_dir():
            found = _pick(folder)
            if found is not None:
                return found
    raise ModelSpecError(
        "no default model shipped in exported/; pass --model PATH (or set $LIVESQA_MODEL)"
    )


def _dims(shape: Any) -> list[int | None]:
    return [d if isinstance(d, int) and d > 0 else None for d in (shape or [])]


def check_session(spec: ModelSpec, session: Any, path: Path) -> None:
    """Refuse a model whose graph disagrees with its spec, before any audio is scored.

    Why at load: the disagreement (an int64 input, three outputs for five names, a
    fixed input length other than the window) otherwise surfaces on the scoring
    thread in the middle of a run. One trial window checks what shapes cannot.
    """
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    problems = []
    extra = sorted(set(inputs) - {INPUT_NAME})
    if extra:
        problems.append(f"inputs {extra} besides '{INPUT_NAME}' (the runtime feeds audio only)")
    audio = inputs.get(INPUT_NAME)
    if audio is not None:
        dims = _dims(audio.shape)
        if audio.type != "tensor(float)":
            problems.append(f"input '{INPUT_NAME}' is {audio.type}, want tensor(float)")
        if len(dims) != 2:
            problems.append(f"input '{INPUT_NAME}' has {len(dims)} axes, want [batch, samples]")
        elif dims[1] is not None and dims[1] != spec.window_samples:
            problems.append(f"input '{INPUT_NAME}' takes {dims[1]} samples but the spec's "
                            f"window is {spec.window_samples}")
    scores = outputs.get(OUTPUT_NAME)
    if scores is not None:
        dims = _dims(scores.shape)
        if scores.type != "tensor(float)":
            problems.append(f"output '{OUTPUT_NAME}' is {scores.type}, want tensor(float)")
        if len(dims) != 2:
            problems.append(f"output '{OUTPUT_NAME}' has {len(dims)} axes, want [batch, names]")
        elif dims[1] is not None and dims[1] != len(spec.output_names):
            problems.append(f"output '{OUTPUT_NAME}' has {dims[1]} values per window but the "
                            f"spec names {len(spec.output_names)}")
    if problems:
        raise ModelSpecError(f"{path}: graph and spec disagree: " + "; ".join(problems))
    trial = (np.random.default_rng(0).standard_normal((1, spec.window_samples)) * 0.05)
    try:
        out = session.run([OUTPUT_NAME], {INPUT_NAME: trial.astype(np.float32)})[0]
    except Exception as e:  # onnxruntime raises several unrelated types
        raise ModelSpecError(f"{path}: fails on a test window of {spec.window_samples} samples "
                             f"({str(e).strip().splitlines()[-1] if str(e).strip() else e!r})") from e
    shape = np.shape(out)
    if shape != (1, len(spec.output_names)):
        raise ModelSpecError(f"{path}: returns shape {list(shape)} for one window, want "
                             f"[1, {len(spec.output_names)}] ({', '.join(spec.output_names)})")


def check_scores(spec: ModelSpec, scores: np.ndarray, tolerance: float = 1e-3) -> None:
    """Refuse NaN/inf or values outside the spec's score range (a broken model, not a score)."""
    lo, hi = spec.score_min - tolerance, spec.score_max + tolerance
    bad = ~np.isfinite(scores) | (scores < lo) | (scores > hi)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        name = spec.output_names[col] if col < len(spec.output_names) else str(col)
        raise ModelSpecError(
            f"model {spec.name} {spec.version} returned {float(scores[row, col])} for '{name}', "
            f"outside its range {spec.score_min:g}..{spec.score_max:g}; not written as a score "
            "(the model is broken: re-export it)")
