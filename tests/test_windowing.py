"""Windower and ring buffer: any chunking gives the same windows; gaps and overlaps are handled."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from livesqa.ringbuffer import RingBuffer
from livesqa.types import AudioChunk
from livesqa.windowing import Windower


def _windows(signal: np.ndarray, cuts: list[int], window: int, hop: int, origin: int = 0):
    w = Windower(window, hop)
    out = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < signal.size)), signal.size]
    for a, b in zip(bounds[:-1], bounds[1:]):
        out += w.push(AudioChunk(origin + a, signal[a:b]))
    return out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 3000),
    window=st.integers(1, 400),
    hop=st.integers(1, 500),
    cuts=st.lists(st.integers(0, 3000), max_size=30),
    origin=st.integers(0, 10_000),
)
def test_any_chunking_gives_the_same_windows(n, window, hop, cuts, origin):
    signal = np.arange(n, dtype=np.float32)
    got = _windows(signal, cuts, window, hop, origin)
    expected_starts = list(range(0, n - window + 1, hop))
    assert [w.start_sample - origin for w in got] == expected_starts
    for w in got:
        s = w.start_sample - origin
        np.testing.assert_array_equal(w.samples, signal[s : s + window])
        assert not w.gap
    assert [w.index for w in got] == list(range(len(got)))


@settings(max_examples=40, deadline=None)
@given(capacity=st.integers(1, 50), sizes=st.lists(st.integers(0, 120), max_size=20))
def test_ring_buffer_holds_the_newest_samples(capacity, sizes):
    ring = RingBuffer(capacity)
    stream = np.zeros(0, dtype=np.float32)
    for k, size in enumerate(sizes):
        block = np.arange(stream.size, stream.size + size, dtype=np.float32)
        if k % 3 == 2:
            ring.write_silence(size)
            block[:] = 0.0
        else:
            ring.write(block)
        stream = np.concatenate([stream, block])
    assert ring.end == stream.size
    held = min(capacity, stream.size)
    np.testing.assert_array_equal(ring.read(ring.end - held, held), stream[stream.size - held :])


def test_gap_is_filled_with_silence_and_flagged_only_where_it_overlaps():
    window, hop = 100, 50
    w = Windower(window, hop)
    ones = np.ones(200, dtype=np.float32)
    got = w.push(AudioChunk(0, ones))  # windows ending at 100, 150, 200
    got += w.push(AudioChunk(230, ones))  # 30 samples lost at [200, 230)
    by_start = {x.start_sample: x for x in got}
    assert [x.gap for x in got[:3]] == [False, False, False]
    gap_window = by_start[150]  # [150, 250) overlaps the gap
    assert gap_window.gap
    np.testing.assert_array_equal(gap_window.samples[50:80], 0.0)
    np.testing.assert_array_equal(gap_window.samples[80:], 1.0)
    assert not by_start[300].gap  # [300, 400) is after the gap
    assert [x.start_sample for x in got] == list(range(0, 331, 50))


def test_overlapping_chunk_drops_already_seen_samples():
    w = Windower(10, 10)
    first = w.push(AudioChunk(0, np.arange(8, dtype=np.float32)))
    second = w.push(AudioChunk(5, np.arange(5, 20, dtype=np.float32)))
    assert first == []
    np.testing.assert_array_equal(second[0].samples, np.arange(10))
    np.testing.assert_array_equal(second[1].samples, np.arange(10, 20))
    assert not any(x.gap for x in second)


def test_nonfinite_chunk_marks_its_windows_as_gap():
    w = Windower(10, 10)
    got = w.push(AudioChunk(0, np.zeros(10, dtype=np.float32)))
    got += w.push(AudioChunk(10, np.zeros(10, dtype=np.float32), nonfinite=3))
    assert [x.gap for x in got] == [False, True]


def test_flush_adds_a_tail_window_aligned_to_the_end():
    w = Windower(100, 50)
    got = w.push(AudioChunk(0, np.arange(180, dtype=np.float32)))
    assert [x.end_sample for x in got] == [100, 150]
    tail = w.flush()
    assert tail is not None and tail.end_sample == 180 and tail.start_sample == 80
    short = Windower(100, 50)
    short.push(AudioChunk(0, np.zeros(60, dtype=np.float32)))
    assert short.flush() is None  # shorter than one window
    exact = Windower(100, 50)
    exact.push(AudioChunk(0, np.zeros(160, dtype=np.float32)))
    assert exact.flush() is None  # tail of 10 samples < hop/2


@settings(max_examples=80, deadline=None)
@given(
    window=st.integers(1, 300),
    hop=st.integers(1, 300),
    ops=st.lists(st.tuples(st.integers(0, 200), st.integers(-40, 60)), max_size=40),
)
def test_gaps_and_overlaps_match_a_materialised_stream(window, hop, ops):
    """Held chunks, gaps and overlaps in any order give the windows of the stream as heard."""
    w = Windower(window, hop)
    stream: list[float] = []  # what the windower should have heard, gaps as 0.0
    lost: list[bool] = []
    got = []
    clock = 0
    for i, (length, jump) in enumerate(ops):
        start = max(0, clock + jump) if i else 0
        values = np.arange(length, dtype=np.float32) + 1000.0 * (i + 1)
        got += w.push(AudioChunk(start, values))
        if start > clock:
            stream += [0.0] * (start - clock)
            lost += [True] * (start - clock)
            clock = start
        keep = values[clock - start:] if start < clock else values
        stream += keep.tolist()
        lost += [False] * keep.size
        clock += keep.size
    ref = np.asarray(stream, dtype=np.float32)
    starts = list(range(0, ref.size - window + 1, hop))
    assert [x.start_sample for x in got] == starts
    for x in got:
        np.testing.assert_array_equal(x.samples, ref[x.start_sample: x.start_sample + window])
        assert x.gap == any(lost[x.start_sample: x.start_sample + window])


def test_a_stream_shorter_than_a_window_but_long_enough_is_one_window_of_its_own_length():
    w = Windower(100, 50, min_samples=25)
    assert w.push(AudioChunk(7, np.arange(60, dtype=np.float32))) == []
    clip = w.flush()
    assert clip is not None and (clip.start_sample, clip.end_sample) == (7, 67)
    np.testing.assert_array_equal(clip.samples, np.arange(60, dtype=np.float32))
    too_short = Windower(100, 50, min_samples=25)
    too_short.push(AudioChunk(0, np.zeros(24, dtype=np.float32)))
    assert too_short.flush() is None


@settings(max_examples=40, deadline=None)
@given(n=st.integers(25, 99), cuts=st.lists(st.integers(0, 99), max_size=10))
def test_a_short_clip_is_the_same_whatever_the_chunking(n, cuts):
    signal = np.arange(n, dtype=np.float32)
    w = Windower(100, 50, min_samples=25)
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < n)), n]
    for a, b in zip(bounds[:-1], bounds[1:]):
        assert w.push(AudioChunk(a, signal[a:b])) == []
    clip = w.flush()
    assert clip is not None and clip.start_sample == 0
    np.testing.assert_array_equal(clip.samples, signal)
