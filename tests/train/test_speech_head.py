"""Speech head (issue #14): off by default, frozen quality parity, labels, export with parity."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from livesqa.scoring import OnnxScorer
from livesqa.spec import OUTPUT_NAME, SPEECH_OUTPUT_KEY, SPEECH_OUTPUT_NAME, read_spec
from train.checkpoint import load_model, save_checkpoint
from train.config import EncoderConfig, HeadConfig, ModelConfig
from train.export import build_spec, check_parity, export_onnx
from train.model import QualityModel
from train.speech_data import MEL_HOP, MEL_WIN, encoder_labels, mel_frame_activity
from train.speech_head import frame_centres
from train.speech_train import block_features, quality_parity, train_head, with_speech_head

SR = 16000


def tiny(seed: int = 0) -> QualityModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(encoder=EncoderConfig(n_layers=2, d_model=32, n_heads=4, conv_kernel=7, dropout=0.0),
                      head=HeadConfig(pool_hidden=16))
    model = QualityModel(cfg).eval()
    with torch.no_grad():
        model.quality_head.probe.readout.weight.mul_(20.0)
    return model


def test_off_by_default_leaves_config_and_weights_as_before() -> None:
    model = tiny()
    assert model.speech_head is None
    assert "speech_head" not in model.cfg.to_dict()
    assert not any(k.startswith("speech_head") for k in model.state_dict())
    on = with_speech_head(model)
    assert on.cfg.to_dict()["speech_head"] is True and "speech_context" not in on.cfg.to_dict()
    assert with_speech_head(model, 9).cfg.to_dict()["speech_context"] == 9
    assert ModelConfig.from_dict(on.cfg.to_dict()) == on.cfg


def test_streaming_models_have_no_speech_head() -> None:
    from train.config import StreamingConfig

    with pytest.raises(ValueError, match="speech_head"):
        ModelConfig(encoder=EncoderConfig(n_layers=2, d_model=32, n_heads=4, causal_conv=True,
                                          positions="chunk"),
                    streaming=StreamingConfig(enabled=True), speech_head=True)


@pytest.mark.parametrize("context", [1, 5])
def test_training_moves_only_the_head_and_scores_stay_identical(context: int) -> None:
    base = tiny()
    model = with_speech_head(base, context)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    # windows of a harmonic tone (label 1) and of white noise (label 0); the front end's
    # mean subtraction hides level, not spectral shape. Odd i: tone, so both kinds are held out
    t = np.arange(SR) / SR
    feats, labels, window = [], [], []
    for i in range(20):
        tone = i % 2 == 1
        x = 0.05 * rng.standard_normal(SR) + (sum(np.sin(2 * np.pi * 200 * k * t) / k
                                                  for k in (1, 2, 3)) if tone else 0.0)
        f = block_features(model, x.astype(np.float32))
        feats.append(f)
        labels.append(np.full(f.shape[0], 1.0 if tone else 0.0, np.float32))
        window.append(np.full(f.shape[0], 100 if i == 1 else i, np.int32))  # 0 and 100 held out
    m = train_head(model, np.concatenate(feats), np.concatenate(labels), np.concatenate(window),
                   epochs=60, lr=1e-2, batch=2, seed=0, log=lambda _: None)
    assert m["frame_acc"] > 0.8  # a separable toy task is learned (chance: 0.5)
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("speech_head.") for k in changed)
    assert quality_parity(base, model) == 0.0
    x = torch.from_numpy((0.1 * rng.standard_normal((2, 2 * SR))).astype(np.float32))
    with torch.no_grad():
        scores, speech = model.scores_and_speech(x)
        assert torch.equal(scores, base(x))
    assert speech.shape == (2, 48) and float(speech.min()) >= 0 and float(speech.max()) <= 1


def test_padded_batches_equal_unpadded_windows() -> None:
    from train.speech_head import SpeechHead

    torch.manual_seed(0)
    head = SpeechHead(16, 3, context=9)
    blocks = torch.randn(3, 2, 20, 16)
    blocks[:, 1, 15:] = 7.0  # padding content must not leak into the valid frames
    mask = torch.ones(2, 20, dtype=torch.bool)
    mask[1, 15:] = False
    padded = head.logits(blocks, mask)
    alone = head.logits(blocks[:, 1:2, :15])
    torch.testing.assert_close(padded[1, :15], alone[0])
    with pytest.raises(ValueError, match="odd"):
        SpeechHead(16, 3, context=4)


def test_checkpoint_round_trip_keeps_the_head(tmp_path: Path) -> None:
    model = with_speech_head(tiny(), 3)
    with torch.no_grad():
        model.speech_head.layer_logits.fill_(0.5)  # type: ignore[union-attr]
    path = save_checkpoint(tmp_path / "s.pt", model, model.cfg, stage="quality")
    loaded, cfg, _ = load_model(path)
    assert cfg.speech_head and cfg.speech_context == 3 and loaded.speech_head is not None
    assert torch.equal(loaded.speech_head.layer_logits, model.speech_head.layer_logits)  # type: ignore[union-attr]


def test_labels_follow_the_clean_talker() -> None:
    x = np.zeros(2 * SR, np.float32)
    x[SR // 2: SR] = 0.1 * np.sin(2 * np.pi * 200 * np.arange(SR // 2) / SR)  # 0.5-1.0 s
    active = mel_frame_activity(x, -23.0)  # the burst's level
    assert active.size == (len(x) - MEL_WIN) // MEL_HOP + 1
    centres = np.arange(active.size) * MEL_HOP + MEL_WIN // 2
    inside = (centres > SR // 2 + 300) & (centres < SR - 300)
    outside = (centres < SR // 2 - 300) | (centres > SR + 300)
    assert active[inside].all() and not active[outside].any()
    model = tiny()
    n = block_features(model, x).shape[0]
    labels = encoder_labels(active, n)
    c = frame_centres(n, MEL_HOP, MEL_WIN)
    assert np.all(labels[(c > SR // 2 + 400) & (c < SR - 400)] == 1.0)
    assert np.all(labels[(c < SR // 2 - 400) | (c > SR + 400)] == 0.0)


def spec_args(out: Path) -> Namespace:
    return Namespace(name="", out=str(out), version="9.9", licence="test-only", training_data="none",
                     window_s=2.0, hop_s=0.5)


@pytest.mark.parametrize("context", [1, 9])
def test_export_with_head_adds_the_speech_output_with_parity(tmp_path: Path, context: int) -> None:
    model = with_speech_head(tiny(), context)
    with torch.no_grad():  # spread the probabilities away from 0.5
        last = model.speech_head.mlp[2] if context == 1 else model.speech_head.out  # type: ignore[union-attr,index]
        last.weight.mul_(10.0)
    out = tmp_path / "s.onnx"
    spec = build_spec(spec_args(out), model.cfg, {"stage": "quality"}, model.n_params())
    export_onnx(model, out, spec)
    read = read_spec(out)
    assert read.extra[SPEECH_OUTPUT_KEY] == SPEECH_OUTPUT_NAME and read.extra["speech_frame_samples"] == "640"
    assert json.loads(read.extra["model_config"])["speech_head"] is True
    diffs = check_parity(model, out, (1.0, 2.0))
    speech = [v for k, v in diffs.items() if k.startswith("speech ")]  # "speech noise@1s" ...
    assert len(speech) == 4 and max(diffs.values()) < 1e-4
    scorer = OnnxScorer.load(out)
    assert scorer.has_speech
    x = (0.05 * np.random.default_rng(3).standard_normal((1, 2 * SR))).astype(np.float32)
    scores, probs = scorer.score_with_speech(x)
    with torch.no_grad():
        ref_scores, ref_probs = model.scores_and_speech(torch.from_numpy(x))
    np.testing.assert_allclose(probs, ref_probs.numpy(), atol=1e-4)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-3)


def test_export_without_head_is_as_before(tmp_path: Path) -> None:
    model = tiny()
    out = tmp_path / "q.onnx"
    spec = build_spec(spec_args(out), model.cfg, {"stage": "quality"}, model.n_params())
    export_onnx(model, out, spec)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    assert SPEECH_OUTPUT_KEY not in read_spec(out).extra
    assert "speech_head" not in json.loads(read_spec(out).extra["model_config"])
    assert not OnnxScorer.load(out).has_speech
