"""A preallocated float32 ring buffer addressed by a monotonic sample clock.

Why: a live monitor runs for hours; it must keep only the last window of audio in
memory that never grows (NISQA-s grew a buffer without bound). Positions are
absolute sample indices on the stream clock, so callers never do modular maths.
"""

from __future__ import annotations

import numpy as np

from livesqa.types import FloatArray


class RingBuffer:
    """Holds the most recent ``capacity_samples`` samples; ``end`` is the clock after the last one."""

    def __init__(self, capacity_samples: int, start_sample: int = 0) -> None:
        if capacity_samples <= 0:
            raise ValueError("capacity_samples must be positive")
        self.capacity_samples = capacity_samples
        self._data = np.zeros(capacity_samples, dtype=np.float32)
        self._end = start_sample  # clock position one past the newest sample
        self._filled = 0  # valid samples held (<= capacity)

    @property
    def end(self) -> int:
        """Sample clock one past the newest sample written."""
        return self._end

    @property
    def start(self) -> int:
        """Sample clock of the oldest sample still held."""
        return self._end - self._filled

    def write(self, samples: FloatArray) -> None:
        """Append samples at ``end``; older samples beyond the capacity are overwritten."""
        n = samples.shape[0]
        cap = self.capacity_samples
        pos = self._end % cap
        if pos + n <= cap and n < cap:  # fast path: no wrap (called for every 10-20 ms chunk)
            self._data[pos : pos + n] = samples
            self._end += n
            if self._filled < cap:
                self._filled = min(cap, self._filled + n)
            return
        if n >= self.capacity_samples:
            samples = samples[-self.capacity_samples :]
            self._end += n - self.capacity_samples
            n = self.capacity_samples
        pos = self._end % self.capacity_samples
        first = min(n, self.capacity_samples - pos)
        self._data[pos : pos + first] = samples[:first]
        if first < n:
            self._data[: n - first] = samples[first:]
        self._end += n
        self._filled = min(self.capacity_samples, self._filled + n)

    def write_many(self, arrays: list[FloatArray], total: int) -> None:
        """Append several arrays (``total`` samples in all) with a single copy when no wrap."""
        cap = self.capacity_samples
        pos = self._end % cap
        if pos + total <= cap and total < cap:
            np.concatenate(arrays, out=self._data[pos : pos + total])
            self._end += total
            self._filled = min(cap, self._filled + total)
        else:
            self.write(np.concatenate(arrays))

    def write_silence(self, n: int) -> None:
        """Advance the clock by ``n`` zero samples (a gap in the stream)."""
        if n <= 0:
            return
        if n >= self.capacity_samples:
            self._data[:] = 0.0
            self._end += n
            self._filled = self.capacity_samples
            return
        pos = self._end % self.capacity_samples
        first = min(n, self.capacity_samples - pos)
        self._data[pos : pos + first] = 0.0
        if first < n:
            self._data[: n - first] = 0.0
        self._end += n
        self._filled = min(self.capacity_samples, self._filled + n)

    def read(self, start_sample: int, n: int, out: FloatArray | None = None) -> FloatArray:
        """Copy of samples ``[start_sample, start_sample + n)``; they must still be held.

        ``out`` (float32, exactly ``n`` long) receives the copy instead of a new array.
        """
        if start_sample < self.start or start_sample + n > self._end or n < 0:
            raise IndexError(
                f"samples [{start_sample}, {start_sample + n}) not in buffer "
                f"[{self.start}, {self._end})"
            )
        if out is None:
            out = np.empty(n, dtype=np.float32)
        elif out.shape != (n,):
            raise ValueError(f"out has shape {out.shape}, need ({n},)")
        pos = start_sample % self.capacity_samples
        first = min(n, self.capacity_samples - pos)
        out[:first] = self._data[pos : pos + first]
        if first < n:
            out[first:] = self._data[: n - first]
        return out
