"""The small SFU: each speaker is encoded once; listeners' "slot" tracks forward the packets.

Why slots: a participant who joins later must be heard by those already in the room, which
normally means renegotiating every peer connection (a server-pushed offer, glare handling).
Instead each page offers a fixed number of receive-only audio transceivers at join; the server
binds each to a :class:`SlotTrack` whose *source* it switches as people come and go
(``set_source``). A slot without a source blocks in ``recv()``, so an idle slot costs nothing.

Why encode once: a slot that returned decoded frames made aiortc run one Opus encoder per
(speaker, listener) pair, N x (N - 1) encoders for N people, which saturated a small host at
8 peers. A :class:`SpeakerFeed` reads the speaker's decoded audio (a ``MediaRelay`` proxy),
encodes each 20 ms frame once and fans the packets out to one bounded queue per listening
slot. Slots return ``av.Packet``, which aiortc's ``RTCRtpSender`` only packetizes.

Packets are re-stamped per slot, never shared mutable state: the outgoing RTP clock must run
forward across source switches and keep loss gaps as timestamp gaps, so the listener's jitter
buffer conceals them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

OPUS_RATE_HZ = 48000  # Opus' RTP clock (RFC 7587), whatever the input rate
OPUS_FRAME_SAMPLES = 960  # 20 ms at 48 kHz: aiortc's OpusEncoder frame size
MAX_CARRIED_GAP_S = 1.0  # longer source gaps are not replayed as timestamp gaps
MAX_BACKLOG_FRAMES = 10  # 200 ms: a listener further behind skips ahead (latency stays bounded)


@dataclass(frozen=True)
class EncodedPacket:
    """One encoded 20 ms Opus frame; ``src_pts`` on the speaker's 48 kHz clock (gaps kept)."""

    data: bytes
    src_pts: int
    samples: int  # duration, samples at 48 kHz


class PacketQueue:
    """One listener's queue of a speaker's packets; keeps the newest ``limit``, counts the rest.

    Why drop oldest: a listener whose sender falls behind (CPU saturated, slow socket) must not
    grow latency or memory for the whole call; skipping ahead is what a jitter buffer expects.
    """

    def __init__(self, limit: int = MAX_BACKLOG_FRAMES, on_drop: Callable[[int], None] | None = None) -> None:
        self._items: deque[EncodedPacket] = deque()
        self._limit = limit
        self._on_drop = on_drop
        self._ready = asyncio.Event()
        self.closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, packet: EncodedPacket) -> None:
        if self.closed:
            return
        self._items.append(packet)
        excess = len(self._items) - self._limit
        for _ in range(max(excess, 0)):
            self._items.popleft()
        if excess > 0:
            self.dropped += excess
            if self._on_drop is not None:
                self._on_drop(excess)
        self._ready.set()

    def close(self) -> None:
        """End of the speaker's stream: ``get`` raises MediaStreamError once drained."""
        self.closed = True
        self._ready.set()

    def get_nowait(self) -> EncodedPacket | None:
        return self._items.popleft() if self._items else None

    async def get(self) -> EncodedPacket:
        while not self._items:
            if self.closed:
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class SpeakerFeed:
    """Reads one speaker's decoded audio, Opus-encodes it once, fans packets out to listeners.

    Encodes only while someone listens (a speaker alone in a room costs no encoder time).
    ``stop()`` or the end of the source track closes every listener's queue.
    """

    def __init__(self, track: MediaStreamTrack) -> None:
        self._track = track
        self._queues: set[PacketQueue] = set()
        self._encoder: Any = None  # aiortc OpusEncoder, bound to the first frame's format
        self._format: tuple[str, str, int] | None = None
        self._clock = 0  # src_pts of the next packet, 48 kHz samples
        self._next_in: int | None = None  # expected pts (48 kHz) of the next input frame
        self._task: asyncio.Task[None] | None = None
        self.ended = False
        self.frames_in = 0
        self.packets_out = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def subscribe(self, on_drop: Callable[[int], None] | None = None,
                  limit: int = MAX_BACKLOG_FRAMES) -> PacketQueue:
        queue = PacketQueue(limit, on_drop)
        if self.ended:
            queue.close()
        else:
            self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: PacketQueue) -> None:
        self._queues.discard(queue)
        queue.close()

    async def _run(self) -> None:
        try:
            while True:
                frame = await self._track.recv()
                self.frames_in += 1
                if self._queues:
                    for packet in self._encode(frame):
                        self.packets_out += 1
                        for queue in list(self._queues):
                            queue.push(packet)
        except MediaStreamError:
            pass  # the speaker's track ended
        except Exception:  # an encoder failure must not pass silently; the listeners end
            log.exception("speaker feed stopped")
        finally:
            self._close_all()

    def _encode(self, frame: Any) -> list[EncodedPacket]:
        """Encode one decoded frame; stamp packets on our own 48 kHz clock, gaps included.

        Why our own clock: the encoder's resampler may re-time its output contiguously, which
        would hide the source's loss gaps from listeners.
        """
        from aiortc.codecs.opus import OpusEncoder

        fmt = (frame.format.name, frame.layout.name, int(frame.sample_rate))
        if self._encoder is None or fmt != self._format:
            # aiortc's encoder binds its resampler to the first frame: rebuild on a change
            self._encoder = OpusEncoder()
            self._format = fmt
        samples_48k = int(frame.samples) * OPUS_RATE_HZ // int(frame.sample_rate)
        if frame.pts is not None and frame.time_base is not None:
            start = int(frame.pts * frame.time_base * OPUS_RATE_HZ)
            if self._next_in is not None and start > self._next_in:
                self._clock += start - self._next_in  # a loss gap stays a gap
            self._next_in = start + samples_48k
        else:
            self._next_in = None
        payloads, _ = self._encoder.encode(frame)
        out = []
        for data in payloads:
            out.append(EncodedPacket(data, self._clock, OPUS_FRAME_SAMPLES))
            self._clock += OPUS_FRAME_SAMPLES
        return out

    def _close_all(self) -> None:
        self.ended = True
        for queue in self._queues:
            queue.close()
        self._queues.clear()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._close_all()
        self._track.stop()


def to_av_packet(packet: EncodedPacket, pts: int) -> Any:
    """An ``av.Packet`` stamped on the listener's clock (time base 1/48000), for RTCRtpSender."""
    import av

    out = av.Packet(packet.data)
    out.pts = pts
    out.time_base = Fraction(1, OPUS_RATE_HZ)
    return out


class SlotTrack(MediaStreamTrack):
    """An outgoing audio track whose source feed can be switched (or emptied) at any time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._source: SpeakerFeed | None = None
        self._queue: PacketQueue | None = None
        self._changed = asyncio.Event()
        self._pts = 0  # next outgoing pts, samples at 48 kHz
        self._last_src_end: int | None = None  # source pts one past its previous packet
        self._last_out_wall: float | None = None
        self.frames_out = 0
        self.frames_dropped = 0  # skipped because this listener fell behind

    @property
    def source(self) -> SpeakerFeed | None:
        return self._source

    @property
    def backlog(self) -> int:
        """Packets waiting for this listener (0-2 when keeping up, at most MAX_BACKLOG_FRAMES)."""
        return len(self._queue) if self._queue is not None else 0

    def _count_drops(self, n: int) -> None:
        self.frames_dropped += n

    def set_source(self, feed: SpeakerFeed | None) -> None:
        """Switch to another speaker (None = silence by absence: nothing is sent)."""
        if feed is self._source:
            return
        if self._source is not None and self._queue is not None:
            self._source.unsubscribe(self._queue)
        self._source = feed
        self._queue = feed.subscribe(self._count_drops) if feed is not None else None
        self._last_src_end = None
        self._changed.set()

    async def _next_packet(self) -> EncodedPacket:
        while True:
            queue = self._queue
            if queue is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            ready = queue.get_nowait()  # fast path: no futures while packets are waiting
            if ready is not None:
                return ready
            self._changed.clear()
            getter = asyncio.ensure_future(queue.get())
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({getter, changed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                if not getter.done():
                    getter.cancel()
            if getter.cancelled():
                continue  # the source changed while waiting
            try:
                packet = getter.result()
            except MediaStreamError:
                if self._queue is queue:  # the speaker's stream ended: wait for a new source
                    self._source = None
                    self._queue = None
                continue
            if self._queue is not queue:
                continue  # switched in the same tick: this packet belongs to the old speaker
            return packet

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._next_packet()
        now = time.monotonic()
        if self._last_src_end is not None:
            jump = packet.src_pts - self._last_src_end
            if 0 < jump <= MAX_CARRIED_GAP_S * OPUS_RATE_HZ:
                self._pts += jump
        elif self._last_out_wall is not None:
            # new source after a pause: let the RTP clock reflect the wall time that passed
            self._pts += int(max(now - self._last_out_wall, 0.0) * OPUS_RATE_HZ)
        self._last_src_end = packet.src_pts + packet.samples
        out = to_av_packet(packet, self._pts)
        self._pts += packet.samples
        self._last_out_wall = now
        self.frames_out += 1
        return out

    def stop(self) -> None:
        self.set_source(None)
        super().stop()
