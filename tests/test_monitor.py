"""StreamMonitor on a shared ScoringWorker: real answers, live skipping, fairness, gating."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from livesqa.errors import ModelSpecError
from livesqa.monitor import StreamMonitor
from livesqa.scoring import OnnxScorer, ScoringWorker
from livesqa.types import AudioChunk, StreamInfo, WindowScores
from realspeech import speech

SR = 16000


class SlowScorer:
    """A fake scorer that takes ``delay_s`` per window and returns the window's mean + 3."""

    def __init__(self, spec, delay_s: float) -> None:
        self.spec = spec
        self.delay_s = delay_s
        self.threads: set[str] = set()

    def score(self, batch):
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return np.full((batch.shape[0], 5), 3.0, dtype=np.float32)


async def _push_all(monitor, signal, chunk):
    for pos in range(0, signal.size, chunk):
        await monitor.push(AudioChunk(pos, signal[pos : pos + chunk]))


async def test_scores_are_the_tiny_models_known_answer(tiny_model_path, tiny_expected):
    x = speech(5.0, SR)
    results: list[WindowScores] = []
    async with ScoringWorker(OnnxScorer.load(tiny_model_path)) as worker:
        mon = StreamMonitor(worker, StreamInfo("s"), live=False, hop_samples=8000)
        mon.add_listener(results.append)
        await _push_all(mon, x, 320)
        await mon.finish()
        mon.close()
    assert [r.index for r in results] == list(range(len(results)))
    assert [r.start_s for r in results] == [i * 0.5 for i in range(len(results))]
    assert results[-1].end_s == 5.0
    scored = [r for r in results if r.scores is not None]
    assert len(scored) >= len(results) // 2  # a real talker: pauses leave some windows unscored
    for r in scored:
        a, b = round(r.start_s * SR), round(r.end_s * SR)
        np.testing.assert_allclose(r.scores, tiny_expected(x[a:b])[0], rtol=1e-4)
        assert r.model == "tiny-rms" and r.skipped == 0 and not r.gap
        assert r.latency_ms >= r.compute_ms >= 0.0


async def test_silence_is_no_speech_not_a_low_score(tiny_model_path):
    x = np.concatenate([speech(3.0, SR), np.zeros(3 * SR, dtype=np.float32)])
    results: list[WindowScores] = []
    async with ScoringWorker(OnnxScorer.load(tiny_model_path)) as worker:
        mon = StreamMonitor(worker, StreamInfo("s"), live=False, hop_samples=SR)
        mon.add_listener(results.append)
        await _push_all(mon, x, 1600)
        await mon.finish()
        snap = mon.snapshot()
    assert results[0].scores is not None
    assert results[-1].scores is None and results[-1].level_dbfs == -120.0
    # the mean ignores silent windows: it equals the mean over speech windows only
    scored = [r.scores[0] for r in results if r.scores is not None]
    assert snap.dimensions[0].mean == pytest.approx(np.mean(scored))
    assert snap.scored == len(scored) < snap.windows


async def test_live_mode_scores_the_newest_window_and_counts_skips(tiny_spec):
    scorer = SlowScorer(tiny_spec, delay_s=0.05)
    results: list[WindowScores] = []
    async with ScoringWorker(scorer) as worker:
        mon = StreamMonitor(worker, StreamInfo("live"), live=True, hop_samples=800)  # 50 ms hop
        mon.add_listener(results.append)
        x = speech(6.0, SR)
        for pos in range(0, x.size, 800):  # 20 windows' worth per scoring time: must skip
            mon.push_nowait(AudioChunk(pos, x[pos : pos + 800]))
            await asyncio.sleep(0.005)
        await mon.finish()
    n_windows = (x.size - 24000) // 800 + 1
    skipped = sum(r.skipped for r in results)
    assert skipped > 0
    assert len(results) + skipped == n_windows  # 6 s is a whole number of hops: no tail window
    assert results[-1].index >= n_windows - 1  # the newest window was scored, never a stale one
    assert scorer.threads == {"livesqa-scorer"}  # model only on the worker thread


async def test_worker_serves_streams_round_robin(tiny_spec):
    scorer = SlowScorer(tiny_spec, delay_s=0.01)
    per_stream: dict[str, int] = {}
    async with ScoringWorker(scorer) as worker:
        monitors = []
        for name in ("a", "b", "c"):
            mon = StreamMonitor(worker, StreamInfo(name), live=True, hop_samples=400)
            mon.add_listener(lambda r: per_stream.__setitem__(r.stream.source,
                                                              per_stream.get(r.stream.source, 0) + 1))
            monitors.append(mon)
        x = speech(4.0, SR)
        for pos in range(0, x.size, 400):
            for mon in monitors:  # all three streams faster than the core can score
                mon.push_nowait(AudioChunk(pos, x[pos : pos + 400]))
            await asyncio.sleep(0.002)
        for mon in monitors:
            await mon.drain()
    counts = sorted(per_stream.values())
    assert len(counts) == 3 and counts[0] > 0
    assert counts[-1] - counts[0] <= max(2, counts[-1] // 4)  # fair within a few windows


async def test_offline_mode_scores_every_window_with_backpressure(tiny_spec):
    scorer = SlowScorer(tiny_spec, delay_s=0.002)
    results: list[WindowScores] = []
    async with ScoringWorker(scorer) as worker:
        mon = StreamMonitor(worker, StreamInfo("f"), live=False, hop_samples=800, max_pending=2)
        mon.add_listener(results.append)
        x = speech(4.0, SR)
        max_pending = 0
        for pos in range(0, x.size, 800):
            await mon.push(AudioChunk(pos, x[pos : pos + 800]))
            max_pending = max(max_pending, len(mon._pending))
        await mon.finish()
    assert [r.index for r in results] == list(range((x.size - 24000) // 800 + 1))
    assert max_pending <= 2
    assert all(r.skipped == 0 for r in results)


async def test_scorer_error_reaches_the_caller(tiny_spec):
    class Broken:
        spec = tiny_spec

        def score(self, batch):
            raise ModelSpecError("model output has shape (1,), want [batch, names]")

    async with ScoringWorker(Broken()) as worker:
        mon = StreamMonitor(worker, StreamInfo("x"), live=False)
        await mon.push(AudioChunk(0, speech(2.0, SR)))
        with pytest.raises(ModelSpecError):
            await mon.finish()


def test_model_without_spec_is_refused(make_model_without_spec):
    with pytest.raises(ModelSpecError, match="no 'livesqa_spec' metadata"):
        OnnxScorer.load(make_model_without_spec())
