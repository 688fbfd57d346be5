"""The relay: one Opus encoder per speaker, packets fanned out to listeners' switchable slots."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest

av = pytest.importorskip("av")
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livesqa.webrtc.relay import MAX_BACKLOG_FRAMES, PacketQueue, SlotTrack, SpeakerFeed

RATE = 48000


class ScriptedTrack(MediaStreamTrack):
    """Emits 20 ms frames (48 kHz s16 mono tone of ``freq_hz``) with the given pts, then ends."""

    kind = "audio"

    def __init__(self, pts: list[int], freq_hz: float = 440.0, delay_s: float = 0.0) -> None:
        super().__init__()
        self._pts = list(pts)
        self.freq_hz = freq_hz
        self.delay_s = delay_s

    async def recv(self) -> av.AudioFrame:
        if not self._pts:
            raise MediaStreamError
        await asyncio.sleep(self.delay_s)
        pts = self._pts.pop(0)
        t = (pts + np.arange(960)) / RATE
        samples = (8000 * np.sin(2 * np.pi * self.freq_hz * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


class Spy:
    """Records every payload a feed produced (a listener of its own), to attribute packets."""

    def __init__(self, feed: SpeakerFeed) -> None:
        self.queue = feed.subscribe()
        self.payloads: set[bytes] = set()

    def drain(self) -> set[bytes]:
        while (packet := self.queue.get_nowait()) is not None:
            self.payloads.add(packet.data)
        return self.payloads


def started(track: MediaStreamTrack, *slots: SlotTrack) -> tuple[SpeakerFeed, Spy]:
    feed = SpeakerFeed(track)
    spy = Spy(feed)
    for slot in slots:
        slot.set_source(feed)
    feed.start()
    return feed, spy


async def settle(feed: SpeakerFeed, frames: int) -> None:
    for _ in range(200):
        if feed.frames_in >= frames or feed.ended:
            return
        await asyncio.sleep(0.005)


def dominant_hz(pcm: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * RATE / len(pcm))


async def test_restamps_monotonically_across_switches_and_keeps_gaps() -> None:
    slot = SlotTrack()
    a = ScriptedTrack([5000, 5960, 5960 + 960 * 3], freq_hz=400.0)  # frames 3 and 4 of 'a' lost
    _, spy_a = started(a, slot)
    f1, f2, f3 = [await slot.recv() for _ in range(3)]
    assert isinstance(f1, av.Packet) and f1.time_base == fractions.Fraction(1, RATE)
    assert [f.pts for f in (f1, f2)] == [0, 960]
    assert f3.pts == 960 * 4  # the loss stays a timestamp gap for the listener's concealment
    assert {bytes(f) for f in (f1, f2, f3)} <= spy_a.drain()
    b = ScriptedTrack([0, 960], freq_hz=900.0)  # a new speaker starting at pts 0
    _, spy_b = started(b, slot)
    g1 = await slot.recv()
    assert g1.pts >= f3.pts + 960 and bytes(g1) in spy_b.drain()
    g2 = await slot.recv()
    assert g2.pts == g1.pts + 960
    slot.stop()


async def test_each_speaker_is_encoded_once_for_all_listeners(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiortc.codecs.opus import OpusEncoder

    calls = {"n": 0}
    original = OpusEncoder.encode

    def counting(self: OpusEncoder, frame: av.AudioFrame, force_keyframe: bool = False) -> object:
        calls["n"] += 1
        return original(self, frame, force_keyframe)

    monkeypatch.setattr(OpusEncoder, "encode", counting)
    slots = [SlotTrack() for _ in range(3)]
    n = 8
    feed, _ = started(ScriptedTrack([960 * i for i in range(n)]), *slots)
    outputs = [[bytes(await slot.recv()) for _ in range(n)] for slot in slots]
    assert calls["n"] == n and feed.packets_out == n  # not n x listeners
    assert outputs[0] == outputs[1] == outputs[2]


async def test_forwarded_packets_decode_to_the_speakers_tone() -> None:
    from aiortc.codecs.opus import OpusDecoder
    from aiortc.jitterbuffer import JitterFrame

    slot = SlotTrack()
    started(ScriptedTrack([960 * i for i in range(10)], freq_hz=750.0), slot)
    decoder = OpusDecoder()
    pcm = []
    for _ in range(10):
        packet = await slot.recv()
        for frame in decoder.decode(JitterFrame(data=bytes(packet), timestamp=int(packet.pts))):
            pcm.append(frame.to_ndarray().reshape(-1, 2)[:, 0].astype(np.float64))
    tail = np.concatenate(pcm)[-4800:]  # past the encoder's start-up
    assert abs(dominant_hz(tail) - 750.0) < 20.0


async def test_a_speaker_nobody_hears_is_not_encoded() -> None:
    feed = SpeakerFeed(ScriptedTrack([960 * i for i in range(5)]))
    feed.start()
    await settle(feed, 5)
    assert feed.frames_in == 5 and feed.packets_out == 0


async def test_empty_slot_blocks_until_a_source_arrives() -> None:
    slot = SlotTrack()
    pending = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.05)
    assert not pending.done()
    _, spy = started(ScriptedTrack([0]), slot)
    packet = await asyncio.wait_for(pending, 1.0)
    assert bytes(packet) in spy.drain()


async def test_source_that_ends_leaves_the_slot_waiting_then_reusable() -> None:
    slot = SlotTrack()
    started(ScriptedTrack([0]), slot)
    await slot.recv()
    waiting = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.05)
    assert not waiting.done() and slot.source is None
    _, spy = started(ScriptedTrack([0]), slot)
    assert bytes(await asyncio.wait_for(waiting, 1.0)) in spy.drain()


async def test_switch_while_waiting_on_a_silent_source() -> None:
    class Silent(MediaStreamTrack):
        kind = "audio"

        async def recv(self) -> None:
            await asyncio.sleep(3600)

    slot = SlotTrack()
    silent, _ = started(Silent(), slot)
    pending = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.02)
    _, spy = started(ScriptedTrack([0]), slot)
    assert bytes(await asyncio.wait_for(pending, 1.0)) in spy.drain()
    slot.stop()
    silent.stop()
    with pytest.raises(MediaStreamError):
        await slot.recv()


async def test_a_listener_that_falls_behind_skips_to_the_newest_packets() -> None:
    slot = SlotTrack()
    feed = SpeakerFeed(ScriptedTrack([960 * i for i in range(30)]))
    newest = feed.subscribe(limit=100)  # everything produced, in order
    slot.set_source(feed)
    feed.start()
    await settle(feed, 30)
    await asyncio.sleep(0.01)
    assert slot.backlog == MAX_BACKLOG_FRAMES
    assert slot.frames_dropped == 30 - MAX_BACKLOG_FRAMES
    produced = [p.data for p in [newest.get_nowait() for _ in range(30)] if p is not None]
    first = await slot.recv()
    assert bytes(first) == produced[30 - MAX_BACKLOG_FRAMES]
    assert first.pts == 0


async def test_packet_queue_is_bounded_and_ends_after_draining() -> None:
    drops: list[int] = []
    queue = PacketQueue(limit=2, on_drop=drops.append)
    from livesqa.webrtc.relay import EncodedPacket

    for i in range(5):
        queue.push(EncodedPacket(bytes([i]), 960 * i, 960))
    assert len(queue) == 2 and queue.dropped == 3 and sum(drops) == 3
    queue.close()
    assert (await queue.get()).data == b"\x03"
    assert (await queue.get()).data == b"\x04"
    with pytest.raises(MediaStreamError):
        await queue.get()
