"""Streaming ONNX (train/export_streaming.py) and its runtime (livesqa/streaming.py): ORT equals
torch chunk by chunk, a gap resets a stream, and batching streams changes no score."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from livesqa.errors import ModelSpecError
from livesqa.scoring import OnnxScorer
from livesqa.spec import DIMENSIONS, read_spec
from livesqa.streaming import StreamingScorer, model_kind
from tests.train.test_streaming import model_with_level, streaming_cfg
from train import export_streaming
from train.streaming import StreamingStep, chunked_forward

K = 5  # 0.2 s chunks keep the test fast; the layout is the same at 25


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    model = model_with_level(streaming_cfg(chunk_frames=K))
    step = StreamingStep(model, K)
    out = tmp_path_factory.mktemp("stream") / "s.onnx"
    args = export_streaming.parse_args(["--random-init", "x", "--out", str(out)])
    spec = export_streaming.build_spec(args, step, model.cfg, {"stage": "quality"}, model.n_params())
    export_streaming.export_streaming_onnx(step, out, spec)
    return out, model


def audio(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.standard_normal(n) * np.linspace(0.05, 1.0, n)
    return x.astype(np.float32)


def test_onnx_equals_torch_streaming(exported: tuple[Path, object]) -> None:
    path, model = exported
    step = StreamingStep(model, K)  # type: ignore[arg-type]
    assert export_streaming.check_parity(step, path, n_chunks=6) < 1e-4
    spec = read_spec(path)
    assert model_kind(spec) == "streaming"
    assert spec.hop_samples == step.chunk_samples and spec.window_samples == 640 * (K + 15)


@pytest.fixture(scope="module")
def exported25(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The shipped layout (1 s chunks, 3 s of left context) on a tiny encoder."""
    model = model_with_level(streaming_cfg(chunk_frames=25, left_frames=75))
    step = StreamingStep(model, 25)
    out = tmp_path_factory.mktemp("stream25") / "s25.onnx"
    args = export_streaming.parse_args(["--random-init", "x", "--out", str(out)])
    spec = export_streaming.build_spec(args, step, model.cfg, {"stage": "quality"}, model.n_params())
    export_streaming.export_streaming_onnx(step, out, spec)
    return out, model


def test_onnx_scores_a_partial_chunk_as_torch(exported25: tuple[Path, object]) -> None:
    """The audio input's length is dynamic: after two whole chunks, 5- and 13-frame partial
    chunks give torch's scores; the spec says the graph takes them."""
    import json

    import onnxruntime as ort

    path, model = exported25
    step = StreamingStep(model, 25)  # type: ignore[arg-type]
    assert export_streaming.partial_frames(step) == [1, 5, 13]
    assert export_streaming.check_parity(step, path, n_chunks=3) < 1e-4  # whole + partial
    assert json.loads(read_spec(path).extra["streaming"])["min_chunk_samples"] == 640
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[1], str)  # a named, dynamic axis
    x = torch.from_numpy(audio(step.tail + 2 * step.chunk_samples + 13 * 640, 8))[None]
    state = step.init_state(1)
    state[0] = x[:, : step.tail]
    names = [s.name for s in step.states]
    with torch.no_grad():
        for c in range(2):
            a = step.tail + c * step.chunk_samples
            _, *state = step(x[:, a : a + step.chunk_samples], *state)
        for frames in (5, 13):
            a = step.tail + 2 * step.chunk_samples
            part = x[:, a : a + 640 * frames]
            ref = step(part, *state)[0].numpy()
            got = session.run(["scores"], {"audio": part.numpy(),
                                           **{n: t.numpy() for n, t in zip(names, state)}})[0]
            np.testing.assert_allclose(got, ref, atol=1e-4)


def test_runtime_flush_scores_the_final_partial_chunk(exported25: tuple[Path, object]) -> None:
    """StreamingScorer.flush = chunked_forward's final partial row; it closes the stream; an old
    file (no ``min_chunk_samples``) and a remainder under one frame give no row."""
    from train.export import write_metadata

    path, model = exported25
    scorer = StreamingScorer.load(path)
    lay = scorer.layout
    assert lay.partial_chunks and lay.min_chunk_samples == 640
    x = audio(lay.tail_samples + 2 * lay.chunk_samples + 13 * 640 + 200, 9)
    scorer.push("a", x)
    with pytest.raises(ValueError, match="whole chunk due"):
        scorer.flush("a")
    whole = [scorer.run(["a"])["a"] for _ in range(2)]
    assert scorer.due() == []
    last = scorer.flush("a")
    assert last is not None and last.end_sample == lay.tail_samples + 2 * lay.chunk_samples + 13 * 640
    assert "a" not in scorer.streams()  # a partial chunk ends the stream
    with torch.no_grad():
        ref = chunked_forward(model, torch.from_numpy(x)[None], 25, final_partial=True)[0].numpy()  # type: ignore[arg-type]
    np.testing.assert_allclose(np.stack([r.scores for r in [*whole, last]]), ref, atol=1e-4)
    scorer.push("b", x[: lay.tail_samples + lay.chunk_samples + 639])  # under one frame left
    scorer.run_due()
    assert scorer.flush("b") is None and scorer.flush("never") is None
    scorer.push("c", x[: lay.tail_samples + 640])  # a clip with no whole chunk: one partial row
    only = scorer.flush("c")
    assert only is not None and only.end_sample == lay.tail_samples + 640
    np.testing.assert_allclose(only.scores, chunked_forward(
        model, torch.from_numpy(x[: lay.tail_samples + 640])[None], 25, final_partial=True)[0, -1].detach().numpy(),  # type: ignore[arg-type]
        atol=1e-4)
    # the spec of a file exported before partial chunks: whole chunks only, as before
    import dataclasses
    import json
    import shutil

    old = path.with_name("old.onnx")
    shutil.copy(path, old)
    spec = read_spec(path)
    raw = json.loads(spec.extra["streaming"])
    del raw["min_chunk_samples"]
    write_metadata(old, dataclasses.replace(spec, extra={**spec.extra, "streaming": json.dumps(raw)}))
    legacy = StreamingScorer.load(old)
    assert not legacy.layout.partial_chunks
    legacy.push("a", x)
    legacy.run_due(), legacy.run_due()
    assert legacy.flush("a") is None


def test_runtime_scores_equal_masked_full_forward(exported: tuple[Path, object]) -> None:
    path, model = exported
    scorer = StreamingScorer.load(path)
    n_chunks = 7
    x = audio(scorer.layout.tail_samples + n_chunks * scorer.layout.chunk_samples + 500, 3)
    got = []
    for a in range(0, x.size, 320):  # 20 ms pushes, as WebRTC frames arrive
        scorer.push("a", x[a : a + 320])
        got += [r for r in scorer.run_due().values()]
    assert len(got) == n_chunks
    assert [r.end_sample for r in got] == [
        scorer.layout.tail_samples + (c + 1) * scorer.layout.chunk_samples for c in range(n_chunks)
    ]
    with torch.no_grad():
        ref = chunked_forward(model, torch.from_numpy(x)[None], K)[0].numpy()  # type: ignore[arg-type]
    assert read_spec(path).output_names == DIMENSIONS  # so no reordering between the two
    assert np.allclose(np.stack([r.scores for r in got]), ref, atol=1e-4)


def test_gap_resets_the_stream(exported: tuple[Path, object]) -> None:
    path, _ = exported
    scorer = StreamingScorer.load(path)
    fresh = StreamingScorer.load(path)
    lay = scorer.layout
    before, after = audio(lay.tail_samples + 3 * lay.chunk_samples, 4), audio(
        lay.tail_samples + 4 * lay.chunk_samples, 5)
    scorer.push("s", before, start_sample=0)
    scorer.run_due(), scorer.run_due(), scorer.run_due()
    scorer.push("s", np.zeros(0, np.float32), start_sample=before.size)  # in order: no reset
    assert scorer.resets("s") == 0
    gap_at = before.size + 16000  # one second of audio lost
    scorer.push("s", after, start_sample=gap_at)
    fresh.push("s", after)
    assert scorer.resets("s") == 1 and fresh.resets("s") == 0
    for _ in range(4):
        a, b = scorer.run_due()["s"], fresh.run_due()["s"]
        assert np.allclose(a.scores, b.scores, atol=1e-6)
        assert a.end_sample == gap_at + (b.end_sample)


def test_batching_streams_equals_one_by_one(exported: tuple[Path, object]) -> None:
    path, _ = exported
    batched, single = StreamingScorer.load(path, max_batch=3), StreamingScorer.load(path)
    lay = batched.layout
    streams = {i: audio(lay.tail_samples + 3 * lay.chunk_samples + 37 * i, 10 + i) for i in range(5)}
    for i, x in streams.items():
        batched.push(i, x)
        single.push(i, x)
    for _ in range(3):
        due = batched.due()
        assert sorted(due) == list(range(5))
        calls = batched.calls
        together = batched.run(due)
        assert batched.calls == calls + 2  # 5 streams at max_batch 3: two ORT calls
        for i in due:
            alone = single.run([i])[i]
            assert np.allclose(together[i].scores, alone.scores, atol=1e-5)
            assert together[i].end_sample == alone.end_sample
    assert batched.due() == []
    with pytest.raises(ValueError, match="no whole chunk"):
        batched.run([0])


def test_windowed_runtime_refuses_a_streaming_model(exported: tuple[Path, object]) -> None:
    path, _ = exported
    with pytest.raises(ModelSpecError, match="besides 'audio'"):
        OnnxScorer.load(path)


@pytest.fixture(scope="module")
def windowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from train.config import EncoderConfig, HeadConfig, ModelConfig
    from train.export import build_spec, export_onnx, parse_args
    from train.model import QualityModel

    cfg = ModelConfig(encoder=EncoderConfig(n_layers=1, d_model=16, n_heads=2, conv_kernel=3),
                      head=HeadConfig(pool_hidden=8))
    out = tmp_path_factory.mktemp("win") / "w.onnx"
    spec = build_spec(parse_args(["--random-init", "x", "--out", str(out)]), cfg, {"stage": "random"}, 1)
    return export_onnx(QualityModel(cfg).eval(), out, spec)


def test_streaming_runtime_refuses_a_windowed_model(windowed: Path) -> None:
    assert model_kind(read_spec(windowed)) == "windowed"
    with pytest.raises(ModelSpecError, match="windowed, not streaming"):
        StreamingScorer.load(windowed)


def test_bench_cli_side_by_side(exported: tuple[Path, object], windowed: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from livesqa.cli import main

    path, _ = exported
    assert main(["bench", "--all-cores", "--windows", "2", "--model", str(windowed),
                 "--streaming", str(path)]) == 0
    out = capsys.readouterr().out
    for case in ("windowed b=1", "windowed b=8", "streaming b=1", "streaming b=8", "streaming b=32"):
        assert case in out
    assert "load average" in out and "MB per stream" in out
    # a windowed file passed as --streaming: one line, no traceback
    assert main(["bench", "--all-cores", "--windows", "2", "--model", str(windowed),
                 "--streaming", str(windowed)]) != 0
    err = capsys.readouterr().err
    assert "windowed, not streaming" in err and "Traceback" not in err


def test_onnx_streaming_file_score_equals_the_checkpoints(exported: tuple[Path, object], tmp_path: Path) -> None:
    """evaluate scores an exported streaming file (``model_scorer``) as it scores the checkpoint:
    the mean of the whole-window chunks, or the last chunk for a short file."""
    from train.checkpoint import save_checkpoint
    from train.scorers import CheckpointScorer, OnnxStreamingFileScorer, model_scorer

    path, model = exported
    ckpt = tmp_path / "best.pt"
    save_checkpoint(ckpt, model, model.cfg, stage="quality")  # type: ignore[attr-defined]
    onnx_scorer, torch_scorer = model_scorer(path), CheckpointScorer(ckpt)
    assert isinstance(onnx_scorer, OnnxStreamingFileScorer)
    step = StreamingStep(model, K)  # type: ignore[arg-type]
    for n_chunks in (9, 2):  # whole windows from the 4th chunk on; a short file
        wav = audio(step.tail + n_chunks * step.chunk_samples, seed=n_chunks)
        np.testing.assert_allclose(onnx_scorer.score(wav, 16000), torch_scorer.score(wav, 16000), atol=1e-4)


def test_onnx_and_torch_file_scores_agree_with_partial_chunks(exported25: tuple[Path, object],
                                                              tmp_path: Path) -> None:
    """1 s chunks, 4 s windows: 1.3 s and 2.6 s clips are scored by their final partial chunk
    (torch and ONNX alike, and not as their last whole chunk), 5.5 s by its whole windows."""
    from train.checkpoint import save_checkpoint
    from train.scorers import CheckpointScorer, model_scorer

    path, model = exported25
    ckpt = save_checkpoint(tmp_path / "best.pt", model, model.cfg, stage="quality")  # type: ignore[attr-defined]
    onnx_scorer, torch_scorer = model_scorer(path), CheckpointScorer(ckpt)
    whole_only = CheckpointScorer(ckpt, final_partial=False)
    for seconds in (1.3, 2.6, 5.5):
        wav = audio(round(seconds * 16000), seed=int(seconds * 10))
        a, b = onnx_scorer.score(wav, 16000), torch_scorer.score(wav, 16000)
        np.testing.assert_allclose(a, b, atol=1e-4)
        differs = np.abs(b - whole_only.score(wav, 16000)).max() > 1e-4
        assert differs == (seconds < 4.0), seconds


def test_int8_streaming_export_is_a_streaming_file_close_to_fp32(tmp_path: Path) -> None:
    """`export-streaming --int8` writes NAME.int8.onnx beside NAME.onnx: same state layout,
    version tagged ``-int8``, chunk scores within the int8 tolerance of the fp32 file's."""
    from train.checkpoint import save_checkpoint

    cfg = streaming_cfg(chunk_frames=K)
    ckpt = save_checkpoint(tmp_path / "best.pt", model_with_level(cfg), cfg, stage="quality")
    out = tmp_path / "s.onnx"
    assert export_streaming.main(["--checkpoint", str(ckpt), "--out", str(out), "--int8"]) == 0
    q = out.with_suffix(".int8.onnx")
    fp, i8 = read_spec(out), read_spec(q)
    assert model_kind(i8) == "streaming" and i8.extra["streaming"] == fp.extra["streaming"]
    assert i8.version == fp.version + "-int8"
    a, b = StreamingScorer.load(out), StreamingScorer.load(q)
    wav = audio(a.layout.tail_samples + 4 * a.layout.chunk_samples, seed=3)
    for s in (a, b):
        s.push("x", wav, 0)
    for _ in range(4):
        ra, rb = a.run(["x"])["x"], b.run(["x"])["x"]
        assert np.max(np.abs(ra.scores - rb.scores)) < 0.15


def test_per_layer_state_file_scores_as_the_stacked_file(exported: tuple[Path, object], tmp_path: Path) -> None:
    """The default export layout (one state per layer and cache): ORT == torch, the runtime
    gives the stacked file's scores stream by stream, and onnx-import's parity finds the layout."""
    from train.onnx_import import parity

    path, model = exported
    step = StreamingStep(model, K, per_layer_state=True)  # type: ignore[arg-type]
    out = tmp_path / "layered.onnx"
    args = export_streaming.parse_args(["--random-init", "x", "--out", str(out)])
    spec = export_streaming.build_spec(args, step, model.cfg, {"stage": "quality"}, model.n_params())  # type: ignore[attr-defined]
    export_streaming.export_streaming_onnx(step, out, spec)
    assert export_streaming.check_parity(step, out, n_chunks=6) < 1e-4
    assert export_streaming.per_layer_state(read_spec(out).extra)
    assert not export_streaming.per_layer_state(read_spec(path).extra)
    assert parity(out, model) < 1e-4 and parity(path, model) < 1e-4  # type: ignore[arg-type]
    old, new = StreamingScorer.load(path), StreamingScorer.load(out)
    for i in range(3):
        x = audio(old.layout.tail_samples + 4 * old.layout.chunk_samples, 20 + i)
        old.push(i, x)
        new.push(i, x)
    for _ in range(4):
        a, b = old.run_due(), new.run_due()
        assert a.keys() == b.keys() and len(a) == 3
        for key in a:
            assert a[key].end_sample == b[key].end_sample
            np.testing.assert_allclose(a[key].scores, b[key].scores, atol=1e-5)
