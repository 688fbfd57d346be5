"""Window buffers are recycled: a long offline run allocates a bounded number of them."""

from __future__ import annotations

import numpy as np

from livesqa.bench import speechlike
from livesqa.bufferpool import ArrayPool
from livesqa.monitor import StreamMonitor
from livesqa.scoring import OnnxScorer, ScoringWorker
from livesqa.types import AudioChunk, StreamInfo


def test_pool_reuses_returned_arrays_and_ignores_foreign_ones():
    pool = ArrayPool(8, keep=2)
    a = pool.take()
    pool.give(a)
    assert pool.take() is a
    pool.give(np.zeros(7, dtype=np.float32))  # wrong size
    pool.give(np.zeros(16, dtype=np.float32)[:8])  # a view of someone else's array
    pool.give(np.zeros(8, dtype=np.float64))
    assert pool.take() is not a and pool.allocated == 2


async def test_offline_run_allocates_at_most_the_queue_depth(tiny_model_path):
    signal = speechlike(60.0, 16000)
    async with ScoringWorker(OnnxScorer.load(tiny_model_path)) as worker:
        mon = StreamMonitor(worker, StreamInfo("s"), live=False, hop_samples=1600, max_pending=4)
        for pos in range(0, signal.size, 320):
            await mon.push(AudioChunk(pos, signal[pos: pos + 320]))
        await mon.finish()
        windows = mon.aggregator.windows
        allocated = mon.windower.pool.allocated
        mon.close()
    assert windows > 500
    assert allocated <= 4 + 2  # queue depth + one being scored + one being filled
