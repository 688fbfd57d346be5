"""The speech gate: Silero finds a real talker in loud noise; noise, tones and silence are not speech.

The detector's accuracy over many signals is measured by results/vad/bench_vad.py; these
tests pin the behaviour the runtime relies on: the verdicts on signals with a known answer,
and that frame probabilities depend on the samples only, never on the windows' hop.
"""

from __future__ import annotations

import numpy as np
import pytest
from realspeech import speech

from livesqa.errors import ConfigError
from livesqa.gating import GateConfig, StreamGate, analyze
from livesqa.vad import FRAME, StreamVad

SR = 16000


def _windows(x: np.ndarray, window: int, hop: int):
    for start in range(0, x.size - window + 1, hop):
        yield start, x[start: start + window]


def _noise(n: int, dbfs: float, seed: int = 0) -> np.ndarray:
    return (10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_a_talker_in_noise_louder_than_the_talker_is_scored_where_the_energy_vad_is_not():
    talk = speech(4.0)  # about -26 dBFS active level
    mixed = talk + _noise(talk.size, -21.0)  # -5 dB SNR, white noise
    silero = StreamGate(GateConfig(), SR).analyze(0, mixed)
    assert silero.is_speech
    assert not analyze(mixed, SR, GateConfig(detector="energy")).is_speech  # issue #14's bug


@pytest.mark.parametrize("name", ["white noise", "dial tone", "busy tone", "silence", "hum"])
def test_signals_without_a_talker_are_no_speech(name):
    t = np.arange(4 * SR) / SR
    x = {
        "white noise": _noise(t.size, -20.0),
        "dial tone": 0.1 * (np.sin(2 * np.pi * 350 * t) + np.sin(2 * np.pi * 440 * t)),
        "busy tone": 0.1 * np.sin(2 * np.pi * 480 * t) * ((t % 1.0) < 0.5),
        "silence": np.zeros(t.size),
        "hum": 0.1 * np.sin(2 * np.pi * 50 * t) + 0.05 * np.sin(2 * np.pi * 150 * t),
    }[name].astype(np.float32)
    result = StreamGate(GateConfig(), SR).analyze(0, x)
    assert not result.is_speech and result.speech_ratio < 0.1


@pytest.mark.parametrize("stride", [1, 2])
def test_frame_probabilities_do_not_depend_on_the_hop(stride):
    x = np.concatenate([speech(6.0), _noise(3 * SR, -40.0)])
    per_frame: list[dict[int, float]] = []
    for hop in (SR, 4000, 3 * SR):
        vad = StreamVad(stride=stride)
        seen: dict[int, float] = {}
        for start, w in _windows(x, 4 * SR, hop):
            probs = vad.window_probs(start, w)
            first = -(-start // FRAME) * FRAME
            for k, p in enumerate(probs):
                seen.setdefault(first + k * FRAME, float(p))
        per_frame.append(seen)
    common = sorted(set(per_frame[0]) & set(per_frame[1]) & set(per_frame[2]))
    assert len(common) > 200
    for a in per_frame[1:]:
        np.testing.assert_allclose([a[k] for k in common], [per_frame[0][k] for k in common],
                                   atol=1e-5)


def test_stride_2_runs_the_even_frames_and_holds_them_for_the_odd_ones():
    """Every other frame run, the LSTM state carried across the skipped one: half the calls' frames."""
    from livesqa.vad import CONTEXT, SileroSession

    x = np.concatenate([speech(5.0), _noise(3 * SR, -30.0)]).astype(np.float32)
    n = x.size // FRAME
    frames = np.zeros((n, CONTEXT + FRAME), np.float32)
    frames[:, CONTEXT:] = x[: n * FRAME].reshape(n, FRAME)
    frames[1:, :CONTEXT] = frames[:-1, -CONTEXT:]
    z = np.zeros((1, 1, 128), np.float32)
    even, _, _ = SileroSession.shared().run(frames[::2], z, z.copy())
    expected = np.repeat(even, 2)[:n]

    class Counting(SileroSession):
        def __init__(self) -> None:
            self.session = SileroSession.shared().session
            self.input_name = SileroSession.shared().input_name
            self.frames_run = 0

        def run(self, f, h, c):
            self.frames_run += f.shape[0]
            return super().run(f, h, c)

    counting = Counting()
    vad = StreamVad(session=counting, stride=2)
    got: dict[int, float] = {}
    for start, w in _windows(x, 4 * SR, SR):
        first = -(-start // FRAME)
        for k, p in enumerate(vad.window_probs(start, w)):
            got.setdefault(first + k, float(p))
    ks = sorted(got)
    np.testing.assert_allclose([got[k] for k in ks], expected[ks], atol=1e-5)
    assert counting.frames_run == (max(ks) + 2) // 2  # only the even frames were run
    assert not np.allclose(expected[::2][1:], expected[::2][:-1])  # not a constant


@pytest.mark.parametrize("stride", [1, 2])
def test_gate_decisions_do_not_depend_on_the_chunk_size(stride):
    """The runtime path: chunks of any size -> Windower -> StreamGate, the same verdicts."""
    from livesqa.types import AudioChunk
    from livesqa.windowing import Windower

    x = np.concatenate([_noise(3 * SR, -40.0), speech(5.0) + _noise(5 * SR, -33.0, seed=1),
                        _noise(4 * SR, -40.0, seed=2)]).astype(np.float32)
    verdicts = []
    for chunk in (320, 4000, 12345, x.size):
        win, gate = Windower(4 * SR, SR), StreamGate(GateConfig(silero_stride=stride), SR)
        out = []
        for i in range(0, x.size, chunk):
            for w in win.push(AudioChunk(i, x[i: i + chunk])):
                a = gate.analyze(w.start_sample, w.samples)
                out.append((w.start_sample, a.is_speech, round(a.speech_ratio, 6)))
        verdicts.append(out)
    assert len(verdicts[0]) >= 8 and {v[1] for v in verdicts[0]} == {True, False}
    assert all(v == verdicts[0] for v in verdicts[1:])


def test_a_window_gets_the_frames_that_lie_inside_it():
    vad = StreamVad()
    assert vad.window_probs(0, speech(4.0)).size == 4 * SR // FRAME  # 125
    assert vad.window_probs(SR, speech(4.0, offset_s=1.0)).size == (5 * SR // FRAME) - 32  # 124
    short = StreamVad().window_probs(0, speech(1.5))
    assert short.size == int(1.5 * SR) // FRAME


def test_a_hop_longer_than_the_window_restarts_cleanly():
    x = speech(12.0)
    vad = StreamVad()
    a = vad.window_probs(0, x[: 2 * SR])
    b = vad.window_probs(8 * SR, x[8 * SR: 10 * SR])  # frames 2..8 s never seen
    fresh = StreamVad().window_probs(0, x[8 * SR: 10 * SR])
    assert a.size == b.size == fresh.size
    np.testing.assert_allclose(b, fresh, atol=1e-5)


def test_bad_gate_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="gate.detector"):
        GateConfig(detector="webrtc")
    with pytest.raises(ConfigError, match="speech_threshold"):
        GateConfig(speech_threshold=1.5)
    with pytest.raises(ConfigError, match="16000 Hz"):
        StreamGate(GateConfig(), 8000)
    assert GateConfig().ratio_needed == 0.1 and GateConfig(detector="energy").ratio_needed == 0.2
    assert GateConfig(min_speech_ratio=0.3).ratio_needed == 0.3
    with pytest.raises(ConfigError, match="silero_stride"):
        GateConfig(silero_stride=3)


def test_numpy_stft_and_the_cut_graph_give_the_whole_graphs_probabilities():
    """Parity: the runtime's path (numpy STFT + the graph after its STFT) against the graph as the
    silero-vad wheel ships it, on real speech in noise, noise alone and silence, state carried."""
    from livesqa.vad import SILERO_FULL_ONNX, SILERO_ONNX, SileroSession

    whole, tail = SileroSession(SILERO_FULL_ONNX), SileroSession(SILERO_ONNX)
    assert (whole.input_name, tail.input_name) == ("input", "/stft/Sqrt_output_0")
    talk = speech(4.0, SR)
    for x in (talk + _noise(talk.size, -30.0), _noise(3 * SR, -40.0, seed=1), np.zeros(2 * SR, np.float32)):
        a, b = StreamVad(whole), StreamVad(tail)
        pa = np.concatenate([a.window_probs(s, w) for s, w in _windows(x, 2 * SR, SR)])
        pb = np.concatenate([b.window_probs(s, w) for s, w in _windows(x, 2 * SR, SR)])
        assert pa.shape == pb.shape and np.max(np.abs(pa - pb)) < 1e-5


def test_a_graph_that_is_not_silero_is_refused_by_name(tmp_path):
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    path = tmp_path / "other.onnx"
    save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["audio"], ["y"])], "g", [x], [y])), str(path))
    from livesqa.vad import SileroSession

    with pytest.raises(ConfigError, match="other.onnx"):
        SileroSession(path)
