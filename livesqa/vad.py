"""Noise-robust speech detection: Silero VAD (MIT) run with ONNX Runtime, one frame once.

Why a neural VAD and not energy: a call monitor exists to catch speech in loud noise,
and an energy detector whose floor rises with the noise calls that speech "no speech"
(issue #14: every window of P.835's 0 dB condition was dropped). Silero VAD was trained
for exactly this; ``results/vad/`` holds the benchmark that chose it.

Why not the ``silero-vad`` package: it requires torch. Its wheel also ships the
"sequence" ONNX export (``silero_vad_16k_sequence.onnx``: a block of 32 ms frames, each
with the previous frame's last 64 samples, plus the LSTM state, in one call); that file
and its MIT licence are bundled under ``livesqa/assets/silero/``, so the runtime still
needs only numpy and onnxruntime. The runtime runs the same graph cut after its STFT
(``silero_vad_16k_sequence_tail.onnx``, made by ``results/vad/make_silero_tail.py``) and does
the STFT itself with numpy's FFT (:func:`stft_magnitude`): same probabilities, less CPU.

Cost and chunking: each stream has one :class:`StreamVad`. With ``stride`` 2
(``gate.silero_stride``) only the frames with even ``k`` are run, the LSTM state carried
across the skipped frame, and each odd frame holds the previous frame's probability: half
the cost (``results/vad/explore.md`` measures what it does to detection). Frames sit on the stream's
sample clock (frame ``k`` covers ``[origin + 512 k, origin + 512 (k + 1))``) and each is
run once, when the first window that contains it is analysed; the LSTM state carries from
frame to frame. So a window's frame probabilities depend only on the stream's samples
(never on how they were chunked) and a 1 s hop costs 31 frames, not the 125 of a whole
4 s window. One shared session, one intra-op thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livesqa.errors import ConfigError
from livesqa.types import FloatArray

SILERO_DIR = Path(__file__).resolve().parent / "assets" / "silero"
SILERO_FULL_ONNX = SILERO_DIR / "silero_vad_16k_sequence.onnx"  # as the silero-vad wheel ships it
SILERO_ONNX = SILERO_DIR / "silero_vad_16k_sequence_tail.onnx"  # the same after its STFT (the default)
SAMPLE_RATE_HZ = 16000  # the sequence export is 16 kHz only
FRAME = 512  # 32 ms
CONTEXT = 64  # samples of the previous frame each frame sees
STATE_SHAPE = (1, 1, 128)
MAGNITUDE_INPUT = "/stft/Sqrt_output_0"  # the tail graph's input: [n, 129, 4] STFT magnitudes
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(256) / 256)).astype(np.float32)  # periodic, 256 taps
_pos = np.arange(4)[:, None] * 128 + np.arange(256)[None, :]  # 4 columns, hop 128, of the padded frame
_COLUMNS = np.where(_pos < CONTEXT + FRAME, _pos, 2 * (CONTEXT + FRAME - 1) - _pos)  # reflect-padded right


def stft_magnitude(frames: np.ndarray) -> np.ndarray:
    """``[n, 576]`` frames -> ``[n, 129, 4]``: the magnitudes the Silero graph's STFT Conv computes.

    Its Conv is a fixed periodic-Hann windowed DFT (256 taps, hop 128) over the frame
    reflect-padded by 64 samples on the right, so ``numpy.fft.rfft`` gives the same numbers
    (``tests/test_vad.py`` checks the probabilities against the whole graph) at a fraction of
    the graph's cost (``results/vad/stft_split_cost.md``).
    """
    spectrum = np.fft.rfft(frames[:, _COLUMNS] * _HANN, axis=-1)  # [n, 4, 129]
    return np.ascontiguousarray(np.abs(spectrum).transpose(0, 2, 1), dtype=np.float32)


class SileroSession:
    """The shared ONNX Runtime session (thread-safe ``run``); load once per process."""

    _shared: SileroSession | None = None

    def __init__(self, path: Path = SILERO_ONNX) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ConfigError(f"{path}: Silero VAD model missing (reinstall livesqa)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # the export carries unused initialisers; ORT warns
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        # the tail graph reads STFT magnitudes (computed here); the whole graph reads the frames
        self.input_name = self.session.get_inputs()[0].name
        if self.input_name not in (MAGNITUDE_INPUT, "input"):
            raise ConfigError(f"{path}: not a Silero VAD sequence graph (first input {self.input_name!r})")

    @classmethod
    def shared(cls) -> SileroSession:
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def run(self, frames: np.ndarray, h: np.ndarray, c: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``frames [n, 576]`` (64 context + 512 samples) -> probabilities ``[n]``, new h, c."""
        x = stft_magnitude(frames) if self.input_name == MAGNITUDE_INPUT else frames
        probs, h2, c2 = self.session.run(None, {self.input_name: x, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h2, c2


@dataclass
class _State:
    next_sample: int  # stream sample where the next frame to run starts
    h: np.ndarray
    c: np.ndarray
    context: np.ndarray  # the CONTEXT samples before next_sample
    held: float | None = None  # the last frame run's probability (stride > 1)


class StreamVad:
    """Per-stream speech probabilities of 32 ms frames, each frame computed once.

    Call :meth:`window_probs` with the stream's windows in order (start samples never
    decreasing, as the windower emits them). A window that starts after the last frame
    run (a hop longer than the window) restarts the LSTM at that window's first frame
    on the grid, which is again a function of the samples only.
    """

    def __init__(self, session: SileroSession | None = None, sample_rate_hz: int = SAMPLE_RATE_HZ,
                 stride: int = 1) -> None:
        if sample_rate_hz != SAMPLE_RATE_HZ:
            raise ConfigError(f"the Silero VAD needs {SAMPLE_RATE_HZ} Hz audio, "
                              f"the model runs at {sample_rate_hz} Hz (use gate.detector='energy')")
        if stride < 1:
            raise ConfigError(f"gate.silero_stride {stride}: must be at least 1")
        self.session = session or SileroSession.shared()
        self.stride = stride
        self._origin: int | None = None
        self._state: _State | None = None
        self._probs: deque[tuple[int, float]] = deque()  # (frame start sample, probability)

    def _reset(self, at: int) -> _State:
        z = np.zeros(STATE_SHAPE, np.float32)
        return _State(at, z, z.copy(), np.zeros(CONTEXT, np.float32))

    def window_probs(self, start_sample: int, samples: FloatArray) -> np.ndarray:
        """Probabilities of the frames lying wholly inside ``[start, start + len(samples))``."""
        end = start_sample + int(samples.shape[0])
        if self._origin is None:
            self._origin = start_sample
        first_in = self._origin + -(-(start_sample - self._origin) // FRAME) * FRAME
        state = self._state
        if state is None or state.next_sample < start_sample:
            state = self._reset(first_in)  # nothing of this window was run yet: start clean
            self._probs.clear()
        n_new = (end - state.next_sample) // FRAME
        if n_new > 0:
            offset = state.next_sample - start_sample
            x = np.asarray(samples[offset: offset + n_new * FRAME], dtype=np.float32)
            frames = np.empty((n_new, CONTEXT + FRAME), np.float32)
            frames[:, CONTEXT:] = x.reshape(n_new, FRAME)
            frames[0, :CONTEXT] = state.context
            if n_new > 1:
                frames[1:, :CONTEXT] = frames[:-1, -CONTEXT:]
            if self.stride == 1:
                probs, h, c = self.session.run(frames, state.h, state.c)
                held = None
            else:  # run frames k = 0, stride, 2 stride, ... of the grid; the others hold
                first_k = (state.next_sample - self._origin) // FRAME
                run = (first_k + np.arange(n_new)) % self.stride == 0
                if state.held is None:
                    run[0] = True  # a fresh start has no probability to hold
                h, c = state.h, state.c
                ran = np.zeros(0, np.float32)
                if run.any():
                    ran, h, c = self.session.run(frames[run], state.h, state.c)
                pick = np.cumsum(run) - 1
                probs = np.where(pick >= 0, ran[np.maximum(pick, 0)] if ran.size else 0.0,
                                 state.held if state.held is not None else 0.0)
                held = float(probs[-1])
            for k in range(n_new):
                self._probs.append((state.next_sample + k * FRAME, float(probs[k])))
            state = _State(state.next_sample + n_new * FRAME, h, c, frames[-1, -CONTEXT:].copy(),
                           held)
        self._state = state
        while self._probs and self._probs[0][0] < start_sample:
            self._probs.popleft()
        return np.fromiter((p for s, p in self._probs if s + FRAME <= end), dtype=np.float32)
