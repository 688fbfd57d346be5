"""Gap-aware ingest: 48 kHz stereo s16 frames -> 16 kHz mono chunks; lost frames become gaps."""

from __future__ import annotations

import fractions
from itertools import pairwise

import numpy as np
import pytest

av = pytest.importorskip("av")

from livesqa.webrtc.client import dominant_frequency
from livesqa.webrtc.ingest import FrameIngest, frame_to_mono
from livesqa.windowing import Windower

RATE = 48000
FRAME = 960


def tone_frame(index: int, freq: float = 440.0, n: int = FRAME, rate: int = RATE,
               fmt: str = "s16", right_gain: float = 1.0) -> av.AudioFrame:
    pts = index * n
    t = np.arange(pts, pts + n) / rate
    left = 0.5 * np.sin(2 * np.pi * freq * t)
    right = right_gain * left
    if fmt == "s16":
        pcm = (np.stack([left, right], 1) * 32767).astype(np.int16).reshape(1, -1)
    else:  # fltp: planar float, [channels, samples]
        pcm = np.stack([left, right]).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(pcm, format=fmt, layout="stereo")
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, rate)
    return frame


def run(ingest: FrameIngest, indices: list[int], **kw: object) -> list:
    chunks = []
    for i in indices:
        chunks += ingest.push(tone_frame(i, **kw), arrival=1.0)  # type: ignore[arg-type]
    return chunks + ingest.close()


def test_frame_to_mono_downmixes_both_layouts() -> None:
    packed = frame_to_mono(tone_frame(0, right_gain=0.0))
    planar = frame_to_mono(tone_frame(0, fmt="fltp", right_gain=0.0))
    assert packed.shape == planar.shape == (FRAME,)
    assert np.max(np.abs(packed)) == pytest.approx(0.25, abs=1e-3)  # (0.5 + 0) / 2
    np.testing.assert_allclose(packed, planar, atol=1e-4)


def test_continuous_frames_give_contiguous_chunks_at_16k() -> None:
    chunks = run(FrameIngest(16000), list(range(50)))
    for a, b in pairwise(chunks):
        assert b.start_sample == a.end_sample
    assert chunks[-1].end_sample == 50 * FRAME // 3  # exactly one second at 16 kHz
    audio = np.concatenate([c.samples for c in chunks])
    assert dominant_frequency(audio[1000:], 16000) == pytest.approx(440.0, abs=2.0)


def test_lost_frames_become_a_jump_on_the_clock_never_a_splice() -> None:
    ingest = FrameIngest(16000)
    chunks = run(ingest, [i for i in range(50) if i not in (10, 11, 12)])
    jumps = [(a.end_sample, b.start_sample) for a, b in pairwise(chunks) if b.start_sample != a.end_sample]
    assert jumps == [(10 * 320, 13 * 320)]  # 3 frames of 20 ms = 960 samples at 16 kHz
    assert chunks[-1].end_sample == 50 * 320  # the clock still matches the timestamps
    stats = ingest.stats
    assert (stats.gaps, stats.lost_frames, stats.gap_s) == (1, 3, pytest.approx(0.06))
    assert ingest.take_loss_bursts() == (3, 1)
    assert ingest.take_loss_bursts() == (0, 0)


def test_windows_touching_the_gap_are_flagged() -> None:
    windower = Windower(window_samples=8000, hop_samples=4000)  # 0.5 s / 0.25 s at 16 kHz
    windows = []
    for chunk in run(FrameIngest(16000), [i for i in range(100) if i != 40]):  # 0.8 s lost 20 ms
        windows += windower.push(chunk)
    gap_start = 40 * 320
    for w in windows:
        touches = w.start_sample < gap_start + 320 and w.end_sample > gap_start
        assert w.gap == touches, (w.start_sample, w.end_sample)
    assert sum(w.gap for w in windows) == 2


def test_duplicate_and_reordered_frames_are_dropped() -> None:
    ingest = FrameIngest(16000)
    chunks = run(ingest, [0, 1, 2, 2, 1, 3, 4])
    assert ingest.stats.late_frames == 2
    assert chunks[-1].end_sample == 5 * 320
    for a, b in pairwise(chunks):
        assert b.start_sample == a.end_sample


def test_timestamp_wobble_below_tolerance_is_absorbed() -> None:
    ingest = FrameIngest(16000)
    out = []
    for i in range(5):
        frame = tone_frame(i)
        frame.pts = i * FRAME + (30 if i == 3 else 0)  # 0.6 ms late stamp
        out += ingest.push(frame, arrival=1.0)
    assert ingest.stats.gaps == 0


def test_sample_rate_change_keeps_one_clock() -> None:
    ingest = FrameIngest(16000)
    chunks = run(ingest, list(range(10)))
    chunks = [c for c in chunks]
    more = []
    for i in range(10):
        more += ingest.push(tone_frame(i, n=320, rate=16000), arrival=1.0)
    more += ingest.close()
    assert ingest.stats.resets == 1
    assert more[0].start_sample == chunks[-1].end_sample
    assert more[-1].end_sample == 10 * 320 + 10 * 320


def test_a_backlog_shows_as_latency_from_the_stream_clock() -> None:
    """Frames read late (a stalled loop drains its socket queue in a burst) keep their due time."""
    ingest = FrameIngest(16000)
    t0 = 100.0
    lag: list[float] = []
    for i in range(100):  # 2 s read on time, one frame per 20 ms
        for chunk in ingest.push(tone_frame(i), arrival=t0 + 0.02 * (i + 1)):  # type: ignore[arg-type]
            lag.append(t0 + 0.02 * (i + 1) - chunk.arrival)
    assert max(lag) < 0.02  # on time: due == read time (within the resampler's delay)
    stalled_until = t0 + 2.0 + 3.0  # the loop stalls for 3 s, then reads 150 queued frames at once
    burst = []
    for i in range(100, 250):
        for chunk in ingest.push(tone_frame(i), arrival=stalled_until):  # type: ignore[arg-type]
            burst.append(stalled_until - chunk.arrival)
    assert burst[0] == pytest.approx(3.0, abs=0.05)  # the oldest queued audio is 3 s late
    assert burst[-1] == pytest.approx(0.0, abs=0.05)  # the newest was on time
    # a sender clock running 100 ppm slow never turns into a growing "backlog"
    slow = FrameIngest(16000)
    lags = []
    for i in range(30_000):  # 10 minutes
        now = 0.02 * (i + 1) * (1 + 1e-4)
        for chunk in slow.push(tone_frame(i), arrival=now):  # type: ignore[arg-type]
            lags.append(now - chunk.arrival)
    assert max(lags[-100:]) < 0.03
