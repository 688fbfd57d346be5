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

from livesqa.errors import ModelSpecError

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
