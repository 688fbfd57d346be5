"""Joint speech training (issue #14): the encoder learns, distillation holds the scores,
resume is exact, the window cache resumes, and OUT exports with a ``speech`` output."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from livesqa.errors import ConfigError
from livesqa.spec import SPEECH_OUTPUT_KEY, SPEECH_OUTPUT_NAME, read_spec
from tests.fakedata import make_fake_data_root
from train import speech_cache
from train.checkpoint import load_checkpoint, load_model, save_checkpoint
from train.config import EncoderConfig, HeadConfig, ModelConfig
from train.model import QualityModel
from train.speech_cache import WindowSet, render_parts, teacher_scores
from train.speech_data import MEL_HOP, MEL_WIN, SpeechWindow
from train.speech_joint import (
    JointConfig,
    JointTrainer,
    joint_forward,
    main,
    run_settings,
    train_joint,
)
from train.speech_train import with_speech_head

SR = 16000


def tiny(seed: int = 0, dropout: float = 0.0) -> QualityModel:
    torch.manual_seed(seed)
    cfg = ModelConfig(encoder=EncoderConfig(n_layers=2, d_model=32, n_heads=4, conv_kernel=7, dropout=dropout),
                      head=HeadConfig(pool_hidden=16))
    model = QualityModel(cfg).eval()
    with torch.no_grad():  # spread the scores away from sigmoid's flat ends and middle
        model.quality_head.probe.readout.weight.mul_(20.0)
    return model


def toy_window(i: int) -> SpeechWindow:
    """Id ``i``: a loud harmonic tone at a 4 Hz syllable-like rhythm in faint noise (a "talker",
    every frame active; the rhythm survives the front end's mean subtraction, a steady tone
    barely does) or the faint noise alone; ids 0 (noise) and 10 (tone) are the held-out pair.
    1-1.5 s long."""
    rng = np.random.default_rng([7, i])
    n = int(SR * (1.0 + 0.5 * rng.random()))
    tone = (i % 2 == 1) != (i % 20 == 10)
    t = np.arange(n) / SR
    x = 0.01 * rng.standard_normal(n)
    if tone:
        f0 = rng.uniform(150, 250)
        env = np.maximum(0.0, np.sin(2 * np.pi * 4 * t + rng.uniform(0, 2 * np.pi)))
        x = x + env * sum(0.3 * np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    n_mel = (n - MEL_WIN) // MEL_HOP + 1
    return SpeechWindow("talker" if tone else "noise", x.astype(np.float32),
                        np.full(n_mel, 1.0 if tone else 0.0, np.float32))


def window_set(teacher: QualityModel, n: int = 20) -> WindowSet:
    wins = [toy_window(i) for i in range(n)]
    return WindowSet(
        index=np.arange(n, dtype=np.int64),
        offsets=np.cumsum([0] + [len(w.audio) for w in wins]).astype(np.int64),
        audio=np.concatenate([w.audio for w in wins]),
        act_offsets=np.cumsum([0] + [len(w.active) for w in wins]).astype(np.int64),
        active=np.concatenate([w.active for w in wins]),
        kinds=np.array([w.kind for w in wins]),
        teacher=teacher_scores(teacher, [w.audio for w in wins]),
    )


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second thread only spins on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def toy() -> tuple[QualityModel, WindowSet]:
    base = tiny()
    return base, window_set(base)


def test_training_forward_is_the_exported_forward(toy: tuple[QualityModel, WindowSet]) -> None:
    base, ws = toy
    model = with_speech_head(base, 3)
    ks = np.array([1, 2])  # different lengths: the second row is padded
    a, b = (torch.from_numpy(ws.wav(k))[None] for k in ks)
    wav = torch.zeros(2, max(a.shape[1], b.shape[1]))
    wav[0, : a.shape[1]], wav[1, : b.shape[1]] = a[0], b[0]
    with torch.no_grad():
        scores, logits, mask = joint_forward(model, wav, torch.tensor([a.shape[1], b.shape[1]]))
        for row, x in enumerate((a, b)):
            ref_scores, ref_speech = model.scores_and_speech(x)
            n = int(mask[row].sum())
            assert n == ref_speech.shape[1]
            torch.testing.assert_close(scores[row], ref_scores[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(torch.sigmoid(logits[row, :n]), ref_speech[0], atol=1e-5, rtol=0)
    assert np.allclose(ws.teacher[ks], base(a).detach().numpy().tolist() + base(b).detach().numpy().tolist(),
                       atol=1e-5)


def test_a_few_steps_teach_the_speech_output_through_the_unfrozen_encoder(
        toy: tuple[QualityModel, WindowSet]) -> None:
    base, ws = toy
    model = with_speech_head(base, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = JointTrainer(model, ws, JointConfig(steps=40, batch=4, encoder_lr=1e-3, head_lr=1e-2,
                                                  warmup=0, lam=1.0))
    start = trainer.evaluate()
    assert start.quality_mse < 1e-8  # the starting point is the input model
    while trainer.step < trainer.cfg.steps:
        trainer.train_step()
    end = trainer.evaluate()
    assert end.bce < 0.7 * start.bce and end.frame_acc > 0.9  # at the start: chance (BCE ~0.69, 50 %)
    after = model.state_dict()
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert any(k.startswith("encoder.") for k in moved) and any(k.startswith("speech_head.") for k in moved)
    assert not any(k.startswith("ctc_head.") for k in moved)


def quality_drift(base: QualityModel, ws: WindowSet, lam: float) -> float:
    model = with_speech_head(base, 3)
    trainer = JointTrainer(model, ws, JointConfig(steps=20, batch=4, encoder_lr=3e-3, head_lr=1e-2,
                                                  quality_lr=3e-3, warmup=0, lam=lam))
    while trainer.step < trainer.cfg.steps:
        trainer.train_step()
    return trainer.evaluate().quality_mse


def test_the_distillation_term_holds_the_quality_scores(toy: tuple[QualityModel, WindowSet]) -> None:
    base, ws = toy
    free, held = quality_drift(base, ws, 0.0), quality_drift(base, ws, 30.0)
    assert free > 0.01  # without it the encoder's training moves the scores
    assert held < 0.2 * free


def test_resume_continues_from_the_saved_step_exactly(tmp_path: Path, toy: tuple[QualityModel, WindowSet]) -> None:
    _, ws = toy
    base = tiny(1, dropout=0.2)  # dropout on: each step's own seed must survive the resume
    cfg = JointConfig(steps=6, batch=4, encoder_lr=1e-3, head_lr=1e-2, warmup=2)
    settings = run_settings(cfg, windows=len(ws))
    quiet = {"eval_every": 3, "log_every": 3, "save_minutes": 60.0, "max_minutes": 0.0,
             "log": lambda _: None, "progress": False}

    def fresh() -> QualityModel:  # the same new head each time
        torch.manual_seed(3)
        return with_speech_head(base, 3)

    whole = JointTrainer(fresh(), ws, cfg)
    assert train_joint(whole, tmp_path / "whole.last", settings, **quiet)[0]

    last = tmp_path / "split.last"
    first = JointTrainer(fresh(), ws, cfg)
    finished, _ = train_joint(first, last, settings, stop_after=4, **quiet)
    assert not finished and load_checkpoint(last)["step"] == 4
    lines: list[str] = []
    second = JointTrainer(fresh(), ws, cfg)
    finished, history = train_joint(second, last, settings, **{**quiet, "log": lines.append})
    assert finished and second.step == 6 and any("resumed" in s and "step 4" in s for s in lines)
    assert [h["step"] for h in history] == [0, 3, 6]
    for k, v in whole.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[k], v, atol=1e-6, rtol=0)

    with pytest.raises(ConfigError, match="other --lambda"):  # other settings: refused, not mixed
        train_joint(JointTrainer(fresh(), ws, cfg), last,
                    run_settings(replace(cfg, lam=2.0), windows=len(ws)), **quiet)
    foreign = tmp_path / "foreign.last"
    save_checkpoint(foreign, base, base.cfg, stage="quality")
    with pytest.raises(ConfigError, match="not a speech-joint run state"):
        train_joint(JointTrainer(fresh(), ws, cfg), foreign, settings, **quiet)


def test_the_window_cache_resumes_and_grows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech_cache, "PART", 4)
    made: list[int] = []

    def maker(i: int) -> SpeechWindow:
        made.append(i)
        return toy_window(i)

    folder = tmp_path / "c"
    parts = render_parts(maker, 6, folder, progress=False)
    assert made == list(range(6)) and len(parts) == 2
    made.clear()
    assert render_parts(maker, 6, folder, progress=False) == parts and made == []
    render_parts(maker, 9, folder, progress=False)  # the short last part is made again, one more added
    assert made == [4, 5, 6, 7, 8]
    made.clear()
    teacher = tiny()
    parts = render_parts(maker, 3, folder, progress=False)
    scores = speech_cache.score_parts(teacher, parts, folder / "t", progress=False)
    mtime = scores[0].stat().st_mtime_ns
    assert speech_cache.score_parts(teacher, parts, folder / "t", progress=False) == scores
    assert scores[0].stat().st_mtime_ns == mtime and made == []
    ws = speech_cache.load_windows(parts, scores, 3)
    assert list(ws.index) == [0, 1, 2]
    np.testing.assert_array_equal(ws.wav(2), toy_window(2).audio)
    np.testing.assert_allclose(ws.teacher, teacher_scores(teacher, [toy_window(i).audio for i in range(3)]))
    (folder / "part-0000.npz").write_bytes(b"not a part")
    with pytest.raises(ConfigError, match="part-0000.npz: not a speech-joint cache part"):
        render_parts(maker, 3, folder, progress=False)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_data_root(tmp_path_factory.mktemp("data"), speakers=17, noises=17)  # every split non-empty


def test_cli_end_to_end_resumes_and_exports_a_speech_output(tmp_path: Path, data_root: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from train import export

    base = tiny(2)
    src = save_checkpoint(tmp_path / "in.pt", base, base.cfg, stage="quality",
                          extra={"training_data": "synthetic", "licence": "test-only"})
    out = tmp_path / "joint" / "best.pt"
    argv = ["--checkpoint", str(src), "--out", str(out), "--data-root", str(data_root),
            "--cache", str(tmp_path / "cache"), "--windows", "12", "--steps", "3", "--batch", "4",
            "--warmup", "1", "--context", "3", "--no-call-path", "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    model, cfg, ckpt = load_model(out)
    assert ckpt["stage"] == "quality" and cfg.speech_head and cfg.speech_context == 3
    joint = ckpt["extra"]["speech_joint"]
    assert ckpt["extra"]["training_data"] == "synthetic" and joint["windows"] == 12 and joint["steps"] == 3
    assert joint["held_out_windows"] == 2 and 0.0 < joint["max_quality_change"] < 4.0
    assert "max |quality score change| vs IN" in capsys.readouterr().out
    assert load_checkpoint(out.with_name("best.pt.last"))["step"] == 3

    # a rerun renders nothing and resumes the finished run: the same OUT
    monkeypatch.setattr("train.speech_data.WindowMaker.__call__", lambda *a: pytest.fail("re-rendered"))
    assert main(argv) == 0
    again, _, _ = load_model(out)
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v)

    onnx_path = tmp_path / "joint.onnx"
    assert export.main(["--checkpoint", str(out), "--out", str(onnx_path), "--window-s", "1.0",
                        "--bench-runs", "1", "--parity-s", "1.0"]) == 0
    assert read_spec(onnx_path).extra[SPEECH_OUTPUT_KEY] == SPEECH_OUTPUT_NAME
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    x = (0.05 * np.random.default_rng(0).standard_normal((1, SR))).astype(np.float32)
    scores, speech = session.run(None, {"audio": x})
    with torch.no_grad():
        ref_scores, ref_speech = model.scores_and_speech(torch.from_numpy(x))
    np.testing.assert_allclose(speech, ref_speech.numpy(), atol=1e-4)
    np.testing.assert_allclose(scores, ref_scores.numpy(), atol=1e-3)


@pytest.mark.parametrize("extra, option", [
    (["--steps", "0"], "--steps"), (["--lambda", "-1"], "--lambda"), (["--lambda", "nan"], "--lambda"),
    (["--encoder-lr", "0"], "--encoder-lr"), (["--warmup", "500"], "--warmup"), (["--windows", "1"], "--windows"),
    (["--context", "4"], "--context"), (["--batch", "0"], "--batch"), (["--max-minutes", "-1"], "--max-minutes"),
])
def test_bad_options_are_one_config_error_naming_them(tmp_path: Path, extra: list[str], option: str) -> None:
    with pytest.raises(ConfigError, match=f"^{option} "):
        main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o.pt"), *extra])


def test_outputs_that_are_not_ours_or_are_the_input_are_refused(tmp_path: Path) -> None:
    base = tiny()
    src = save_checkpoint(tmp_path / "in.pt", base, base.cfg, stage="quality")
    with pytest.raises(ConfigError, match="is the input checkpoint"):
        main(["--checkpoint", str(src), "--out", str(src)])
    foreign = tmp_path / "notes.pt"
    foreign.write_bytes(b"my notes")
    with pytest.raises(ConfigError, match="not a livesqa checkpoint; not overwriting"):
        main(["--checkpoint", str(src), "--out", str(foreign)])
    assert foreign.read_bytes() == b"my notes"
    asr = save_checkpoint(tmp_path / "asr.pt", base, base.cfg, stage="asr")
    with pytest.raises(ConfigError, match="want a 'quality' checkpoint"):
        main(["--checkpoint", str(asr), "--out", str(tmp_path / "o.pt"), "--data-root", str(tmp_path)])


def test_the_head_can_start_from_a_speech_head_checkpoint() -> None:
    from train.speech_joint import load_start_head

    base = tiny()
    trained = with_speech_head(base, 3)
    with torch.no_grad():
        trained.speech_head.layer_logits.fill_(0.7)  # type: ignore[union-attr]
    ckpt = {"extra": {"speech_head": {"epochs": 8}}}
    model = with_speech_head(base, 3)
    assert load_start_head("s.pt", trained, ckpt, model) == {"epochs": 8}
    assert torch.equal(model.speech_head.layer_logits, trained.speech_head.layer_logits)  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="--head-from s.pt: head does not fit"):
        load_start_head("s.pt", trained, ckpt, with_speech_head(base, 5))
    with pytest.raises(ConfigError, match="--head-from q.pt: has no speech head"):
        load_start_head("q.pt", base, {}, model)
