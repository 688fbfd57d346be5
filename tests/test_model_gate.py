"""The "model" speech gate: a quality model's own speech output decides "no speech" (issue #14).

The fake model is a real ONNX graph with the real contract: ``scores`` as the tiny RMS
model, plus ``speech [batch, 2]``: for each half of the window, min(1, 20 * RMS). So a
window half loud and half silent has exactly half its frames active.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_GAINS, tiny_expected_scores, tiny_spec_value
from livesqa.errors import ConfigError, ModelSpecError
from livesqa.gating import MODEL_MIN_RATIO, MODEL_THRESHOLD, GateConfig, StreamGate, model_verdict
from livesqa.monitor import StreamMonitor
from livesqa.scoring import OnnxScorer, ScoringWorker
from livesqa.spec import INPUT_NAME, OUTPUT_NAME, SPEECH_OUTPUT_KEY, SPEECH_OUTPUT_NAME, spec_metadata
from livesqa.types import AudioChunk, StreamInfo, WindowScores

SR = 16000


def build_speech_model(path: Path, with_extra: bool = True, broken: bool = False) -> Path:
    """The tiny RMS model plus a two-frame speech output (see the module docstring);
    ``broken``: the speech output is NaN (sqrt of a negative number)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    extra = {SPEECH_OUTPUT_KEY: SPEECH_OUTPUT_NAME, "speech_frame_samples": "12000"} if with_extra else {}
    spec = tiny_spec_value(extra=extra)
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, INPUT_NAME], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=1),
        helper.make_node("Sqrt", ["ms"], ["rms"]),
        helper.make_node("Mul", ["rms", "gains"], ["scaled"]),
        helper.make_node("Add", ["scaled", "one"], ["raw"]),
        helper.make_node("Clip", ["raw", "lo", "hi"], [OUTPUT_NAME]),
        helper.make_node("Reshape", ["sq", "halves"], ["sq2"]),
        helper.make_node("ReduceMean", ["sq2"], ["ms2"], axes=[2], keepdims=0),
        helper.make_node("Sqrt", ["ms2"], ["rms2"]),
        helper.make_node("Mul", ["rms2", "twenty"], ["p"]),
        helper.make_node("Clip", ["p", "zero", "one"], ["pc"]),
        helper.make_node("Sqrt", ["neg"], ["nan"]),
        helper.make_node("Add", ["pc", "nan"] if broken else ["pc", "zero"], [SPEECH_OUTPUT_NAME]),
    ]
    inits = [
        numpy_helper.from_array(np.asarray([TINY_GAINS], dtype=np.float32), "gains"),
        numpy_helper.from_array(np.asarray(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.asarray(0.0, dtype=np.float32), "zero"),
        numpy_helper.from_array(np.asarray(-1.0, dtype=np.float32), "neg"),
        numpy_helper.from_array(np.asarray(20.0, dtype=np.float32), "twenty"),
        numpy_helper.from_array(np.asarray(1.0, dtype=np.float32), "lo"),
        numpy_helper.from_array(np.asarray(5.0, dtype=np.float32), "hi"),
        numpy_helper.from_array(np.asarray([0, 2, -1], dtype=np.int64), "halves"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_rms_speech",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 5]),
         helper.make_tensor_value_info(SPEECH_OUTPUT_NAME, TensorProto.FLOAT, ["batch", 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, spec_metadata(spec))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def expected_speech(window: np.ndarray) -> np.ndarray:
    halves = np.asarray(window, np.float64).reshape(2, -1)
    return np.clip(20.0 * np.sqrt(np.mean(halves**2, axis=1)), 0.0, 1.0)


@pytest.fixture(scope="module")
def speech_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_speech_model(tmp_path_factory.mktemp("m") / "speech.onnx")


def test_verdict_is_the_ratio_of_frames_at_or_above_the_threshold() -> None:
    base = StreamGate(GateConfig(detector="model"), SR).analyze(0, np.zeros(1600, np.float32))
    probs = np.array([0.9, 0.5, 0.49, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], np.float32)
    v = model_verdict(base, probs, GateConfig(detector="model", speech_threshold=0.5,
                                              min_speech_ratio=0.2))
    assert v.speech_ratio == pytest.approx(0.2) and v.is_speech
    v = model_verdict(base, probs, GateConfig(detector="model", speech_threshold=0.5,
                                              min_speech_ratio=0.3))
    assert not v.is_speech
    assert not model_verdict(base, np.zeros(0, np.float32), GateConfig(detector="model")).is_speech
    cfg = GateConfig(detector="model")
    assert (cfg.threshold, cfg.ratio_needed) == (MODEL_THRESHOLD, MODEL_MIN_RATIO)
    assert GateConfig().threshold == 0.15  # silero's own default is untouched


def test_provisional_analysis_keeps_level_and_clipping() -> None:
    gate = StreamGate(GateConfig(detector="model"), SR)
    x = np.full(1600, 1.0, np.float32)
    a = gate.analyze(0, x)
    assert a.is_speech and a.clipping and a.level_dbfs == pytest.approx(0.0, abs=1e-3)


def test_scorer_reads_the_speech_output(speech_model: Path, tiny_model_path: Path) -> None:
    scorer = OnnxScorer.load(speech_model)
    assert scorer.has_speech
    rng = np.random.default_rng(0)
    batch = np.stack([0.1 * rng.standard_normal(24000), np.r_[np.zeros(12000), 0.01 * np.ones(12000)]]
                     ).astype(np.float32)
    scores, probs = scorer.score_with_speech(batch)
    np.testing.assert_allclose(scores, tiny_expected_scores(batch), rtol=1e-5)
    np.testing.assert_allclose(probs, np.stack([expected_speech(b) for b in batch]), rtol=1e-5)
    np.testing.assert_array_equal(scorer.score(batch), scores)
    plain = OnnxScorer.load(tiny_model_path)
    assert not plain.has_speech
    with pytest.raises(ModelSpecError, match="no 'speech' output"):
        plain.score_with_speech(batch)


async def test_a_broken_speech_output_is_a_model_error_not_a_verdict(tmp_path: Path) -> None:
    path = build_speech_model(tmp_path / "nan.onnx", broken=True)
    with pytest.raises(ModelSpecError, match="not finite"):
        OnnxScorer.load(path).score_with_speech(np.zeros((1, 24000), np.float32))
    with pytest.raises(ModelSpecError, match="not finite"):
        await _run(path, np.ones(2 * SR, np.float32) * 0.1, 320, GateConfig(detector="model"))


def test_output_without_the_spec_key_is_not_trusted(tmp_path: Path) -> None:
    assert not OnnxScorer.load(build_speech_model(tmp_path / "m.onnx", with_extra=False)).has_speech


async def _run(model: Path, x: np.ndarray, chunk: int, gate: GateConfig) -> list[WindowScores]:
    rows: list[WindowScores] = []
    async with ScoringWorker(OnnxScorer.load(model)) as worker:
        mon = StreamMonitor(worker, StreamInfo("s"), live=False, hop_samples=6000, gate=gate)
        mon.add_listener(rows.append)
        for pos in range(0, x.size, chunk):
            await mon.push(AudioChunk(pos, x[pos: pos + chunk]))
        await mon.finish()
        mon.close()
    return rows


async def test_monitor_scores_only_windows_the_model_hears_speech_in(speech_model: Path) -> None:
    rng = np.random.default_rng(1)
    loud = (0.2 * rng.standard_normal(3 * SR)).astype(np.float32)
    x = np.concatenate([loud, np.zeros(3 * SR, np.float32)])  # 3 s "talker", 3 s silence
    gate = GateConfig(detector="model", speech_threshold=0.5, min_speech_ratio=0.5)
    rows = await _run(speech_model, x, 320, gate)
    assert rows and [r.index for r in rows] == list(range(len(rows)))
    for r in rows:
        a, b = round(r.start_s * SR), round(r.end_s * SR)
        probs = expected_speech(x[a:b])
        ratio = float(np.mean(probs >= 0.5))
        assert r.speech_ratio == pytest.approx(ratio)
        if ratio >= 0.5:
            np.testing.assert_allclose(r.scores, tiny_expected_scores(x[a:b])[0], rtol=1e-4)
        else:
            assert r.scores is None
    assert any(r.scores is None for r in rows) and any(r.scores is not None for r in rows)
    # a stricter window rule drops the half-speech windows too
    strict = await _run(speech_model, x, 320, dataclasses.replace(gate, min_speech_ratio=0.75))
    assert sum(r.scores is not None for r in strict) < sum(r.scores is not None for r in rows)


async def test_verdicts_do_not_depend_on_chunking(speech_model: Path) -> None:
    rng = np.random.default_rng(2)
    x = (0.05 * rng.standard_normal(5 * SR) * (np.arange(5 * SR) % SR < 9000)).astype(np.float32)
    gate = GateConfig(detector="model")
    a, b = await _run(speech_model, x, 320, gate), await _run(speech_model, x, 1777, gate)
    assert [(r.start_s, r.speech_ratio, r.scores) for r in a] == [
        (r.start_s, r.speech_ratio, r.scores) for r in b]


async def test_model_gate_needs_a_model_with_the_output(tiny_model_path: Path) -> None:
    async with ScoringWorker(OnnxScorer.load(tiny_model_path)) as worker:
        with pytest.raises(ConfigError, match="speech output"):
            StreamMonitor(worker, StreamInfo("s"), live=False, gate=GateConfig(detector="model"))


def test_unknown_detector_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="model"):
        GateConfig(detector="modle")
