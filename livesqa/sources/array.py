"""A numpy array as a source: tests, benchmarks and ``replay`` of decoded audio.

Why: the same chunking and pacing logic as a real source, without any file or
device, so tests feed known signals through the full pipeline. ``realtime=True``
paces chunks by the sample clock (chunk k is released at ``t0 + k*block/rate``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt

from livesqa.sources import EdgeConverter
from livesqa.types import AudioChunk


async def pace(t0: float, stream_s: float) -> None:
    """Sleep until ``stream_s`` seconds of stream time have passed since ``t0`` (perf_counter)."""
    delay = t0 + stream_s - time.perf_counter()
    # always yield: a source that is behind must still let Ctrl-C and --duration in
    await asyncio.sleep(max(0.0, delay))


class ArraySource:
    """Yields ``samples`` (``[frames]`` or ``[frames, channels]`` at ``sample_rate_hz``) in blocks."""

    def __init__(
        self,
        samples: npt.NDArray[np.floating],
        sample_rate_hz: int,
        to_hz: int,
        block_s: float = 0.1,
        realtime: bool = False,
        description: str = "array",
    ) -> None:
        self.samples = samples
        self.sample_rate_hz = sample_rate_hz
        self.to_hz = to_hz
        self.block_frames = max(1, int(round(block_s * sample_rate_hz)))
        self.live = realtime
        self.description = description

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        conv = EdgeConverter(self.sample_rate_hz, self.to_hz)
        n = int(self.samples.shape[0])
        t0 = time.perf_counter()
        for pos in range(0, n, self.block_frames):
            end = min(n, pos + self.block_frames)
            if self.live:
                await pace(t0, end / self.sample_rate_hz)
            chunk = conv.convert(self.samples[pos:end], time.perf_counter(), last=end >= n)
            if chunk is not None:
                yield chunk
            if not self.live and pos // self.block_frames % 16 == 15:
                await asyncio.sleep(0)  # let results be delivered between bursts
