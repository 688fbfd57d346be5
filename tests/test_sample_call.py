"""The bundled demo call tells the truth: its sidecar's scores are the shipped model's, and the
sections come out in the order a listener would expect.

`python -m train.make_sample_call --scores-only` rewrites the sidecar after a new model ships;
then this test says whether the new model keeps the order.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from train.make_sample_call import SECTIONS, ordering_checks, section_scores

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "livesqa" / "assets"
MODEL = ROOT / "exported" / "livesqa-small.onnx"
DIMS = ("mos", "noi", "col", "dis", "loud")

CHECKS = [f"clean above {s.name} on MOS" for s in SECTIONS if s.name != "clean"]
CHECKS += [f"{s.name} lowest on {s.lowest.upper()}" for s in SECTIONS if s.lowest]
# Known failures of the shipped model, with their numbers (strict: the suite says so once one passes).
# None since 0.6.2: its LOUD level hinge rates the -50 dBFS section 2.36, below the café section's 2.60.
KNOWN_FAILURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def scored() -> list[dict[str, object]]:
    table = json.loads((ASSETS / "sample_call.json").read_text(encoding="utf-8"))
    audio, rate = sf.read(str(ASSETS / "sample_call.flac"), dtype="float32")
    assert rate == 16000
    by_name = {s.name: s for s in SECTIONS}
    sections = [(by_name[r["section"]], r["start_s"], r["end_s"]) for r in table["sections"]]
    return section_scores(audio, sections, MODEL)


def test_the_sidecar_states_the_shipped_models_scores(scored):
    table = json.loads((ASSETS / "sample_call.json").read_text(encoding="utf-8"))
    from livesqa.spec import read_spec

    spec = read_spec(MODEL)
    assert table["model"] == f"{spec.name} {spec.version}", "rerun make_sample_call --scores-only"
    for fresh, stated in zip(scored, table["sections"], strict=True):
        assert fresh["scored"] == fresh["windows"] == stated["windows"]  # speech found everywhere
        for d in DIMS:
            assert fresh[d] == pytest.approx(stated[d], abs=0.011), (stated["section"], d)
    md = (ASSETS / "sample_call.md").read_text(encoding="utf-8")
    assert f"{stated['loud']:.2f}" in md and "LibriSpeech" in md and "CC BY 4.0" in md


@pytest.mark.parametrize("check", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[c]))
    if c in KNOWN_FAILURES else c for c in CHECKS])
def test_listener_order(scored, check):
    results = {name: (ok, detail) for name, ok, detail in ordering_checks(scored)}
    assert set(results) == set(CHECKS)
    ok, detail = results[check]
    assert ok, detail
