"""The shipped default model: a valid contract, honest licence, and scores that move the right way.

Skipped when no model is shipped in exported/. Uses the bundled sample call, whose sections
are documented in livesqa/assets/sample_call.md (clean, noisy, packet loss, narrowband, quiet).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livesqa.audio import read_audio
from livesqa.errors import ModelSpecError
from livesqa.models import find_model
from livesqa.scoring import OnnxScorer
from livesqa.spec import DIMENSIONS, read_spec

SAMPLE = Path(__file__).resolve().parents[1] / "livesqa" / "assets" / "sample_call.flac"
SECTIONS_S = {"clean": (0.0, 9.4), "noisy": (9.4, 17.6), "loss": (17.6, 26.8),
              "narrowband": (26.8, 36.0), "quiet": (36.0, 43.5)}


@pytest.fixture(scope="module")
def default_model() -> Path:
    try:
        return find_model()
    except ModelSpecError:
        pytest.skip("no default model shipped in exported/")


def _section_scores(scorer: OnnxScorer, audio: np.ndarray, name: str) -> np.ndarray:
    sr = scorer.spec.sample_rate_hz
    start, end = (round(t * sr) for t in SECTIONS_S[name])
    win = scorer.spec.window_samples
    starts = range(start, end - win + 1, scorer.spec.hop_samples)
    batch = np.stack([audio[s : s + win] for s in starts]).astype(np.float32)
    return scorer.score(batch).mean(axis=0)


def test_spec_is_complete_and_licence_honest(default_model: Path) -> None:
    spec = read_spec(default_model)
    assert spec.output_names == DIMENSIONS
    assert spec.sample_rate_hz == 16000 and spec.window_s >= 1.0
    assert "CC BY-NC-SA" in spec.licence  # distilled from NISQA's labels
    assert (default_model.with_suffix(".md")).is_file(), "model card missing beside the model"


def test_degraded_sections_score_below_clean(default_model: Path) -> None:
    scorer = OnnxScorer.load(default_model)
    audio = read_audio(SAMPLE, scorer.spec.sample_rate_hz)
    idx = {d: i for i, d in enumerate(DIMENSIONS)}
    clean = _section_scores(scorer, audio, "clean")
    assert np.all((clean >= 1.0) & (clean <= 5.0))
    assert _section_scores(scorer, audio, "noisy")[idx["noi"]] < clean[idx["noi"]]
    assert _section_scores(scorer, audio, "loss")[idx["dis"]] < clean[idx["dis"]]
    assert _section_scores(scorer, audio, "narrowband")[idx["col"]] < clean[idx["col"]]
    assert _section_scores(scorer, audio, "quiet")[idx["loud"]] < clean[idx["loud"]]
