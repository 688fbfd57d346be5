"""onnx-import: an exported model comes back as a checkpoint with the same scores."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from tests.train.test_export import spec_args, tiny_model
from train.checkpoint import load_model
from train.export import build_spec, export_onnx
from train.onnx_import import main, state_dict_from_onnx


def test_roundtrip_reproduces_scores(tmp_path: Path) -> None:
    model = tiny_model(seed=3)
    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(model, onnx_path, build_spec(spec_args(onnx_path), model.cfg, {"stage": "quality", "step": 1},
                                             model.n_params()))
    cfg, state, left = state_dict_from_onnx(onnx_path)
    assert cfg == model.cfg and set(left) <= {"ctc_head.weight", "ctc_head.bias"}
    for k, v in model.state_dict().items():
        if k not in left:
            assert torch.allclose(state[k], v, atol=1e-6), k
    out = tmp_path / "back.pt"
    assert main(["--model", str(onnx_path), "--out", str(out)]) == 0
    back, _, _ = load_model(out)
    x = torch.from_numpy((0.05 * np.random.default_rng(0).standard_normal((2, 24000))).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(back(x), model(x), atol=1e-4)


def test_refuses_a_non_livesqa_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "g",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    assert main(["--model", str(path), "--out", str(tmp_path / "x.pt")]) == 1
    assert "livesqa_spec" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()


def test_streaming_file_comes_back_with_the_same_stream_scores(tmp_path: Path) -> None:
    from tests.train.test_streaming import model_with_level, streaming_cfg
    from train import export_streaming
    from train.streaming import StreamingStep, chunked_forward

    model = model_with_level(streaming_cfg(chunk_frames=5))
    step = StreamingStep(model, 5)
    onnx_path = tmp_path / "s.onnx"
    args = export_streaming.parse_args(["--random-init", "x", "--out", str(onnx_path)])
    export_streaming.export_streaming_onnx(
        step, onnx_path, export_streaming.build_spec(args, step, model.cfg, {"stage": "quality"}, model.n_params()))
    cfg, state, left = state_dict_from_onnx(onnx_path)
    assert cfg == model.cfg and set(left) <= {"ctc_head.weight", "ctc_head.bias"}
    out = tmp_path / "back.pt"
    assert main(["--model", str(onnx_path), "--out", str(out)]) == 0
    back, _, _ = load_model(out)
    x = torch.from_numpy((0.05 * np.random.default_rng(1).standard_normal((1, 720 + 6 * 3200))).astype(np.float32))
    with torch.no_grad():
        assert torch.allclose(chunked_forward(back, x), chunked_forward(model.eval(), x), atol=1e-4)
