"""Chunk streaming (train/streaming.py): step-by-step equals the masked full forward, the
windowed model is untouched by the opt-in keys, and chunks never see the future."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from livesqa.errors import ConfigError
from train.config import EncoderConfig, HeadConfig, ModelConfig, StreamingConfig
from train.model import QualityModel
from train.streaming import (
    StreamingStep,
    chunk_samples,
    chunked_forward,
    stream_rows,
    tail_samples,
)


def streaming_cfg(chunk_frames: int = 5, left_frames: int = 15, cms: bool = True) -> ModelConfig:
    base = ModelConfig()
    return ModelConfig(
        frontend=type(base.frontend)(cms=cms),
        encoder=EncoderConfig(
            n_layers=2, d_model=32, n_heads=4, conv_kernel=7, dropout=0.0,
            subsampling_channels=16, causal_conv=True, positions="chunk",
        ),
        head=HeadConfig(pool_hidden=16),
        streaming=StreamingConfig(
            enabled=True, chunk_frames=chunk_frames, left_frames=left_frames, dynamic_chunks=(5, 15)
        ),
    )


def model_with_level(cfg: ModelConfig) -> QualityModel:
    torch.manual_seed(0)
    model = QualityModel(cfg).eval()
    assert model.quality_head.level is not None
    with torch.no_grad():  # the level unit starts at zero; give it weights so parity sees it
        model.quality_head.level.weight.normal_(0.0, 1.0)
    return model


def run_steps(model: QualityModel, wav: torch.Tensor, chunk_frames: int) -> torch.Tensor:
    step = StreamingStep(model, chunk_frames)
    state = step.init_state(wav.shape[0])
    state[0] = wav[:, : step.tail]
    n = (wav.shape[1] - step.tail) // step.chunk_samples
    out = []
    with torch.no_grad():
        for c in range(n):
            a = step.tail + c * step.chunk_samples
            scores, *state = step(wav[:, a : a + step.chunk_samples], *state)
            out.append(scores)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("chunk_frames", [5, 15])
@pytest.mark.parametrize("cms", [True, False])
def test_streaming_equals_masked_full_forward(chunk_frames: int, cms: bool) -> None:
    model = model_with_level(streaming_cfg(cms=cms))
    n = 45 // chunk_frames + 2  # past the point where the left context is full
    g = torch.Generator().manual_seed(1)
    wav = 0.1 * torch.randn(2, tail_samples(model) + n * chunk_samples(model, chunk_frames), generator=g)
    wav[1] *= torch.linspace(0.01, 1.0, wav.shape[1])  # a level that changes over the stream
    with torch.no_grad():
        full = chunked_forward(model, wav, chunk_frames)
    steps = run_steps(model, wav, chunk_frames)
    assert full.shape == steps.shape == (2, n, 5)
    assert torch.allclose(full, steps, atol=1e-5), (full - steps).abs().max()


def test_chunks_do_not_see_the_future() -> None:
    model = model_with_level(streaming_cfg())
    k = 5
    wav = 0.1 * torch.randn(1, tail_samples(model) + 6 * chunk_samples(model, k))
    later = wav.clone()
    cut = tail_samples(model) + 3 * chunk_samples(model, k)
    later[:, cut:] = 0.3 * torch.randn(1, later.shape[1] - cut)
    with torch.no_grad():
        a, b = chunked_forward(model, wav, k), chunked_forward(model, later, k)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert (a[:, 3:] - b[:, 3:]).abs().max() > 1e-3


def test_forward_scores_each_rows_last_whole_chunk() -> None:
    model = model_with_level(streaming_cfg())
    step = chunk_samples(model, 5)
    short = 0.1 * torch.randn(1, tail_samples(model) + 3 * step + 100)
    padded = torch.cat([short, torch.zeros(1, 2 * step)], dim=1)
    with torch.no_grad():
        alone = model(short)
        both = model(torch.cat([padded, 0.1 * torch.randn(1, padded.shape[1])]),
                     torch.tensor([short.shape[1], padded.shape[1]]))
        full = chunked_forward(model, short, 5)
    assert torch.allclose(alone, full[:, -1], atol=1e-6)
    assert torch.allclose(both[0], alone[0], atol=1e-5)


def test_selected_rows_equal_the_full_results_rows() -> None:
    model = model_with_level(streaming_cfg())
    wav = 0.1 * torch.randn(2, tail_samples(model) + 7 * chunk_samples(model, 5) + 900)
    rows = torch.tensor([0, 3, 6, 7])
    with torch.no_grad():
        full = chunked_forward(model, wav, 5, final_partial=True)
        some = chunked_forward(model, wav, 5, final_partial=True, rows=rows)
    assert some.shape == (2, 4, full.shape[2])
    assert torch.allclose(some, full[:, rows], atol=1e-6)


def test_dynamic_chunk_training_step_has_gradients() -> None:
    model = model_with_level(streaming_cfg()).train()
    wav = 0.1 * torch.randn(3, 32000)
    seen = set()
    for seed in range(6):
        torch.manual_seed(seed)
        out = model(wav)
        out.sum().backward()
        seen.add(out.shape)
    assert seen == {(3, 5)}
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("ctc"))


def test_opt_in_keys_keep_the_windowed_model() -> None:
    """Defaults: the saved config has no new keys (old checkpoints and `average` agree), and a
    causal encoder has the same parameter names and shapes (a windowed checkpoint warm-starts it)."""
    d = ModelConfig().to_dict()
    assert "streaming" not in d and "causal_conv" not in d["encoder"] and "positions" not in d["encoder"]
    assert ModelConfig.from_dict(d) == ModelConfig()
    cfg = streaming_cfg()
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    windowed = ModelConfig(encoder=EncoderConfig(
        n_layers=2, d_model=32, n_heads=4, conv_kernel=7, dropout=0.0, subsampling_channels=16),
        head=HeadConfig(pool_hidden=16))
    a = {k: v.shape for k, v in QualityModel(windowed).state_dict().items()}
    b = {k: v.shape for k, v in QualityModel(cfg).state_dict().items()}
    assert a == b


def test_windowed_forward_unchanged_by_causal_option_off() -> None:
    """The windowed path still uses 'same' padding: a centred impulse response."""
    torch.manual_seed(0)
    model = QualityModel(ModelConfig(encoder=EncoderConfig(
        n_layers=1, d_model=8, n_heads=2, conv_kernel=5, dropout=0.0))).eval()
    conv = model.encoder.blocks[0].conv.depthwise
    assert conv.padding == (2,) and model.encoder.blocks[0].conv.left_pad == 0
    x = torch.zeros(1, 8, 9)
    x[0, :, 4] = 1.0
    y = conv(x) - conv.bias[None, :, None]
    assert torch.allclose(y[0, :, 2:7].flip(-1), conv.weight[:, 0, :], atol=1e-6)


@pytest.mark.parametrize(
    "override",
    [
        {"streaming": {"enabled": True}},  # needs causal conv and chunk positions
        {"encoder": {"n_layers": 2, "d_model": 32, "n_heads": 4, "positions": "chunk"}},
        {"encoder": {"n_layers": 2, "d_model": 32, "n_heads": 4, "positions": "relative"}},
        {"streaming": {"chunk_frames": 7}},  # does not divide left_frames 75
        {"streaming": {"left_frames": 0}},  # no window beyond the chunk
    ],
)
def test_bad_streaming_configs_are_config_errors(override: dict) -> None:
    with pytest.raises(ConfigError):
        ModelConfig.from_dict(override)


def test_short_clip_is_a_clear_error() -> None:
    model = model_with_level(streaming_cfg())
    with pytest.raises(ValueError, match="shorter than one chunk"):
        chunked_forward(model, torch.zeros(1, 1000), 5)
    with pytest.raises(ValueError, match=r"shorter than one chunk \(1360\)"):  # tail + 1 frame
        chunked_forward(model, torch.zeros(1, 1359), 5, final_partial=True)


@pytest.mark.parametrize("chunk_frames", [5, 15])
@pytest.mark.parametrize("n_whole", [0, 2, 4])
def test_final_partial_chunk_equals_masked_full_forward(chunk_frames: int, n_whole: int) -> None:
    """A stream's last k' < K frames: StreamingStep on them (after the whole chunks' steps)
    equals chunked_forward's final row; the whole chunks' rows are those without it."""
    model = model_with_level(streaming_cfg())
    g = torch.Generator().manual_seed(2)
    for k_part in sorted({1, 3, chunk_frames - 1}):
        extra = k_part * 640 + 123  # the 123 samples after the last whole frame are not heard
        wav = 0.1 * torch.randn(2, tail_samples(model) + n_whole * chunk_samples(model, chunk_frames)
                                + extra, generator=g)
        wav[1] *= torch.linspace(0.01, 1.0, wav.shape[1])
        assert stream_rows(model, wav.shape[1], chunk_frames) == (n_whole, k_part)
        with torch.no_grad():
            full = chunked_forward(model, wav, chunk_frames, final_partial=True)
            cut = wav[:, : wav.shape[1] - 123 - 640 * k_part]  # whole chunks only
            whole = chunked_forward(model, cut, chunk_frames) if n_whole else full[:, :0]
            step = StreamingStep(model, chunk_frames)
            state = step.init_state(2)
            state[0] = wav[:, : step.tail]
            for c in range(n_whole):
                a = step.tail + c * step.chunk_samples
                _, *state = step(wav[:, a : a + step.chunk_samples], *state)
            a = step.tail + n_whole * step.chunk_samples
            last, *_ = step(wav[:, a : a + 640 * k_part], *state)
        assert full.shape == (2, n_whole + 1, 5)
        assert torch.allclose(full[:, :n_whole], whole, atol=1e-5)
        assert torch.allclose(full[:, -1], last, atol=1e-5), (full[:, -1] - last).abs().max()
        if k_part > 1:  # it hears its own frames: a different last frame changes the score
            louder = wav.clone()
            louder[:, a + 640 * (k_part - 1) : a + 640 * k_part] *= 8.0
            with torch.no_grad():
                other = chunked_forward(model, louder, chunk_frames, final_partial=True)
            assert (other[:, -1] - full[:, -1]).abs().max() > 1e-4


def test_a_windowed_checkpoint_warm_starts_its_streaming_version() -> None:
    """finetune.init=checkpoint accepts a windowed model for a streaming run of the same
    architecture (every parameter loads strictly), and still refuses a different one."""
    import dataclasses

    from train.finetune import same_architecture

    stream = streaming_cfg()
    windowed = dataclasses.replace(
        stream, encoder=dataclasses.replace(stream.encoder, causal_conv=False, positions="absolute"),
        streaming=StreamingConfig())
    assert same_architecture(windowed, stream) and same_architecture(stream, windowed)
    QualityModel(stream).load_state_dict(QualityModel(windowed).state_dict())  # strict
    wider = dataclasses.replace(windowed, encoder=dataclasses.replace(windowed.encoder, d_model=windowed.encoder.d_model * 2))
    assert not same_architecture(wider, stream)
    with_dropout = dataclasses.replace(windowed, encoder=dataclasses.replace(windowed.encoder, dropout=0.1))
    no_dropout = dataclasses.replace(windowed, encoder=dataclasses.replace(windowed.encoder, dropout=0.0))
    assert same_architecture(no_dropout, with_dropout)  # a fine-tune may drop dropout (session 19)


def test_checkpoint_scorer_averages_a_streaming_models_whole_windows(tmp_path) -> None:
    """evaluate's file score of a streaming model = mean of the chunk scores whose window is
    whole (chunk index >= left/chunk), and the last chunk's score for a short file."""
    from train.checkpoint import save_checkpoint
    from train.scorers import CheckpointScorer
    from train.streaming import chunked_forward

    cfg = streaming_cfg(chunk_frames=5, left_frames=15)
    model = model_with_level(cfg).eval()
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, cfg, stage="quality")
    scorer = CheckpointScorer(path)
    sr = cfg.frontend.sample_rate_hz
    wav = torch.randn(1, tail_samples(model) + 7 * chunk_samples(model, 5)) * 0.1
    with torch.no_grad():
        per_chunk = chunked_forward(model, wav, 5)[0]
    np.testing.assert_allclose(scorer.score(wav[0].numpy(), sr), per_chunk[3:].mean(0).numpy(), atol=1e-5)
    short = wav[:, : tail_samples(model) + 2 * chunk_samples(model, 5)]
    with torch.no_grad():
        last = chunked_forward(model, short, 5)[0, -1]
    np.testing.assert_allclose(scorer.score(short[0].numpy(), sr), last.numpy(), atol=1e-5)


def test_checkpoint_scorer_scores_a_short_files_final_partial_chunk(tmp_path) -> None:
    """A file shorter than one window is scored by its final partial chunk (its last row,
    which covers the whole clip); a longer file keeps the mean of its whole windows, with or
    without partial chunks; ``final_partial=False`` is the protocol before them."""
    from train.checkpoint import save_checkpoint
    from train.scorers import CheckpointScorer

    cfg = streaming_cfg(chunk_frames=5, left_frames=15)
    model = model_with_level(cfg).eval()
    path = save_checkpoint(tmp_path / "best.pt", model, cfg, stage="quality")
    with_part, without = CheckpointScorer(path), CheckpointScorer(path, final_partial=False)
    step = chunk_samples(model, 5)
    wav = torch.randn(1, tail_samples(model) + 2 * step + 3 * 640 + 100) * 0.1  # 2 chunks + 3 frames
    with torch.no_grad():
        rows = chunked_forward(model, wav, 5, final_partial=True)[0]
    assert rows.shape[0] == 3
    np.testing.assert_allclose(with_part.score(wav[0].numpy(), 16000), rows[-1].numpy(), atol=1e-5)
    np.testing.assert_allclose(without.score(wav[0].numpy(), 16000), rows[1].numpy(), atol=1e-5)
    tiny = wav[:, : tail_samples(model) + 4 * 640]  # no whole chunk: only the partial one
    with torch.no_grad():
        only = chunked_forward(model, tiny, 5, final_partial=True)[0, -1]
    np.testing.assert_allclose(with_part.score(tiny[0].numpy(), 16000), only.numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="shorter than one chunk"):
        without.score(tiny[0].numpy(), 16000)
    long = torch.randn(1, tail_samples(model) + 6 * step + 2 * 640) * 0.1
    assert with_part.score(long[0].numpy(), 16000).tolist() == without.score(long[0].numpy(), 16000).tolist()


def test_per_layer_state_equals_the_stacked_state() -> None:
    """``per_layer_state`` only re-lays the caches: the same scores chunk by chunk (partial
    chunk included), and its states are the stacked ones cut per layer."""
    model = model_with_level(streaming_cfg())
    stacked, layered = StreamingStep(model, 5), StreamingStep(model, 5, per_layer_state=True)
    n_layers = model.cfg.encoder.n_layers
    assert [s.name for s in layered.states] == [
        "tail", "mel_sums", "valid", *(f"keys{i}" for i in range(n_layers)),
        *(f"values{i}" for i in range(n_layers)), *(f"conv{i}" for i in range(n_layers)), "head"]
    g = torch.Generator().manual_seed(3)
    wav = 0.1 * torch.randn(2, stacked.tail + 5 * stacked.chunk_samples + 3 * 640, generator=g)
    sa, sb = stacked.init_state(2), layered.init_state(2)
    sa[0] = sb[0] = wav[:, : stacked.tail]
    with torch.no_grad():
        for c in range(6):
            a = stacked.tail + c * stacked.chunk_samples
            x = wav[:, a : a + stacked.chunk_samples]  # the last one: a 3-frame partial chunk
            ra, *sa = stacked(x, *sa)
            rb, *sb = layered(x, *sb)
            assert torch.allclose(ra, rb, atol=1e-6), (ra - rb).abs().max()
            kv, conv = sa[3], sa[4]
            for i in range(n_layers):
                assert torch.equal(sb[3 + i], kv[:, i, 0]) and torch.equal(sb[3 + n_layers + i], kv[:, i, 1])
                assert torch.equal(sb[3 + 2 * n_layers + i], conv[:, i])
            assert torch.equal(sa[-1], sb[-1]) and all(torch.equal(p, q) for p, q in zip(sa[:3], sb[:3]))
