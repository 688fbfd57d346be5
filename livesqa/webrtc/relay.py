"""The small SFU: one outgoing "slot" track per listener per other participant.

Why slots: a participant who joins later must be heard by those already in the room, which
normally means renegotiating every peer connection (a server-pushed offer, glare handling).
Instead each page offers a fixed number of receive-only audio transceivers at join; the server
binds each to a :class:`SlotTrack` whose *source* it switches as people come and go
(``set_source``). A slot without a source blocks in ``recv()``, so an idle slot costs no
encoding. Sources are proxies from aiortc's ``MediaRelay``: one reader per participant's
incoming track, fanned out to every listener.

Frames are re-stamped, never mutated (the relay hands the same frame object to every proxy,
the monitor's included): the outgoing RTP clock must run forward across source switches, and
keep loss gaps as timestamp gaps so the listener's jitter buffer conceals them.
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

MAX_CARRIED_GAP_S = 1.0  # longer source gaps are not replayed as timestamp gaps
MAX_BACKLOG_FRAMES = 10  # 200 ms: a listener further behind skips ahead (latency stays bounded)


def copy_frame(frame: Any, pts: int) -> Any:
    """A new ``av.AudioFrame`` with the same samples and a new pts (time base 1/rate)."""
    import av

    out = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    out.pts = pts
    out.time_base = Fraction(1, frame.sample_rate)
    return out


class SlotTrack(MediaStreamTrack):
    """An outgoing audio track whose source can be switched (or emptied) at any time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._source: MediaStreamTrack | None = None
        self._changed = asyncio.Event()
        self._pending: asyncio.Future[Any] | None = None
        self._pending_source: MediaStreamTrack | None = None
        self._pts = 0  # next outgoing pts, samples at the source rate
        self._last_src_end: int | None = None  # source pts one past its previous frame
        self._last_out_wall: float | None = None
        self.frames_out = 0
        self.frames_dropped = 0  # skipped because this listener fell behind

    @property
    def source(self) -> MediaStreamTrack | None:
        return self._source

    def set_source(self, track: MediaStreamTrack | None) -> None:
        """Switch to another source (None = silence by absence: nothing is sent)."""
        old = self._source
        if old is track:
            return
        self._source = track
        self._last_src_end = None
        if self._pending is not None and self._pending_source is old:
            self._pending.cancel()
            self._pending = None
        if old is not None:
            old.stop()
        self._changed.set()

    async def _next_source_frame(self) -> tuple[MediaStreamTrack, Any]:
        while True:
            src = self._source
            if src is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            if self._pending is None:
                self._pending = asyncio.ensure_future(src.recv())
                self._pending_source = src
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({self._pending, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
            self._changed.clear()
            pending = self._pending
            if pending is None or not pending.done():
                continue  # the source changed; its pending recv was cancelled
            self._pending = None
            if pending.cancelled():
                continue
            try:
                frame = pending.result()
                self._skip_backlog(src)
                return src, frame
            except MediaStreamError:
                if self._source is src:  # the speaker's track ended: wait for a new source
                    self._source = None
                continue

    def _skip_backlog(self, src: MediaStreamTrack) -> None:
        """Drop the oldest queued frames of a buffered relay proxy beyond MAX_BACKLOG_FRAMES.

        Why: a buffered ``MediaRelay`` proxy queues without bound; if this listener's encoder
        falls behind (CPU saturated), latency and memory would grow for the whole call.
        """
        queue = getattr(src, "_queue", None)  # RelayStreamTrack's private asyncio.Queue
        if queue is None:
            return
        while queue.qsize() > MAX_BACKLOG_FRAMES:
            frame = queue.get_nowait()
            if frame is None:  # end of stream: keep it for the next recv()
                queue.put_nowait(None)
                break
            self.frames_dropped += 1

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        _, frame = await self._next_source_frame()
        rate = int(frame.sample_rate)
        now = time.monotonic()
        if self._last_src_end is not None and frame.pts is not None:
            jump = int(frame.pts) - self._last_src_end
            if 0 < jump <= MAX_CARRIED_GAP_S * rate:
                self._pts += jump
        elif self._last_out_wall is not None:
            # new source after a pause: let the RTP clock reflect the wall time that passed
            self._pts += int(max(now - self._last_out_wall, 0.0) * rate)
        if frame.pts is not None:
            self._last_src_end = int(frame.pts) + int(frame.samples)
        out = copy_frame(frame, self._pts)
        self._pts += int(frame.samples)
        self._last_out_wall = now
        self.frames_out += 1
        return out

    def stop(self) -> None:
        self.set_source(None)
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        super().stop()
