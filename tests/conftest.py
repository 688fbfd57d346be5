"""Shared fixtures: a tiny ONNX model honouring the livesqa contract, built at test time.

The tiny model's scores are a known function of the input, so tests can check real
answers without torch or a binary in git::

    rms = sqrt(mean(audio ** 2))                 # per batch row
    scores[:, k] = clip(1 + TINY_GAINS[k] * rms, 1, 5)   # k in mos, noi, col, dis, loud

Fixtures: ``tiny_model_path`` (session scope), ``tiny_spec``, ``tiny_expected``
(the formula above as a numpy function), ``make_tiny_model`` (a factory with other
spec values) and ``make_model_without_spec`` (a valid graph, no ``livesqa_spec``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from livesqa.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec, spec_metadata

TINY_SAMPLE_RATE_HZ = 16000
TINY_WINDOW_SAMPLES = 24000  # 1.5 s
TINY_HOP_SAMPLES = 8000  # 0.5 s
TINY_GAINS = (8.0, 4.0, 2.0, 1.0, 16.0)


def tiny_spec_value(**overrides: object) -> ModelSpec:
    values: dict[str, object] = dict(
        name="tiny-rms",
        version="0.0-test",
        sample_rate_hz=TINY_SAMPLE_RATE_HZ,
        window_samples=TINY_WINDOW_SAMPLES,
        hop_samples=TINY_HOP_SAMPLES,
        licence="test only",
        training_data="none (scores are a function of RMS)",
        description="test model: scores = clip(1 + gain * rms, 1, 5)",
    )
    values.update(overrides)
    return ModelSpec(**values)  # type: ignore[arg-type]


def tiny_expected_scores(audio: np.ndarray) -> np.ndarray:
    """What the tiny model returns: ``[batch, samples]`` or ``[samples]`` -> ``[batch, 5]``."""
    batch = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    rms = np.sqrt(np.mean(batch**2, axis=1, keepdims=True))
    return np.clip(1.0 + np.asarray(TINY_GAINS)[None, :] * rms, 1.0, 5.0)


def build_tiny_model(
    path: Path, spec: ModelSpec | None = None, with_spec: bool = True, work_layers: int = 0
) -> Path:
    """Write the tiny model to ``path``.

    ``work_layers`` > 0 adds that many 400x400 matmul layers over 25 ms frames whose
    result is multiplied by zero and added: same scores, model-like compute (for benches).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec = spec or tiny_spec_value()
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, INPUT_NAME], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[1], keepdims=1),
        helper.make_node("Sqrt", ["ms"], ["rms"]),
        helper.make_node("Mul", ["rms", "gains"], ["scaled"]),
        helper.make_node("Add", ["scaled", "one"], ["raw"]),
    ]
    inits = [
        numpy_helper.from_array(np.asarray([TINY_GAINS], dtype=np.float32), "gains"),
        numpy_helper.from_array(np.asarray(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.asarray(1.0, dtype=np.float32), "lo"),
        numpy_helper.from_array(np.asarray(5.0, dtype=np.float32), "hi"),
    ]
    last = "raw"
    if work_layers > 0:
        rng = np.random.default_rng(0)
        inits.append(numpy_helper.from_array(np.asarray([0, -1, 400], dtype=np.int64), "fshape"))
        inits.append(numpy_helper.from_array(np.asarray(0.0, dtype=np.float32), "zero"))
        # frames: [batch, n, 400]; the window length must be a multiple of 400 samples
        nodes.append(helper.make_node("Reshape", [INPUT_NAME, "fshape"], ["h0"]))
        for i in range(work_layers):
            w = (rng.standard_normal((400, 400)) / 20.0).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            nodes.append(helper.make_node("MatMul", [f"h{i}", f"w{i}"], [f"m{i}"]))
            nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
        nodes.append(
            helper.make_node("ReduceMean", [f"h{work_layers}"], ["hm"], axes=[1, 2], keepdims=0)
        )
        nodes.append(helper.make_node("Mul", ["hm", "zero"], ["hz"]))
        nodes.append(helper.make_node("Unsqueeze", ["hz", "ax1"], ["hz2"]))
        inits.append(numpy_helper.from_array(np.asarray([1], dtype=np.int64), "ax1"))
        nodes.append(helper.make_node("Add", ["raw", "hz2"], ["raw2"]))
        last = "raw2"
    nodes.append(helper.make_node("Clip", [last, "lo", "hi"], [OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes,
        "tiny_rms",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if with_spec:
        helper.set_model_props(model, spec_metadata(spec))
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny contract-honouring model: 16 kHz, window 1.5 s, hop 0.5 s, RMS-derived scores."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_spec() -> ModelSpec:
    return tiny_spec_value()


@pytest.fixture(scope="session")
def tiny_expected() -> Callable[[np.ndarray], np.ndarray]:
    return tiny_expected_scores


@pytest.fixture(scope="session")
def make_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``make_tiny_model(**spec_overrides) -> Path`` (e.g. window_samples=32000)."""
    counter = iter(range(1_000_000))

    def make(**overrides: object) -> Path:
        path = tmp_path_factory.mktemp("models") / f"tiny{next(counter)}.onnx"
        return build_tiny_model(path, tiny_spec_value(**overrides))

    return make


@pytest.fixture(scope="session")
def make_model_without_spec(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """Factory for a valid ONNX graph with no livesqa spec (the runtime must refuse it)."""

    def make() -> Path:
        path = tmp_path_factory.mktemp("models") / "nospec.onnx"
        return build_tiny_model(path, with_spec=False)

    return make
