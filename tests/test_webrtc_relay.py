"""SlotTrack: a listener's outgoing track whose source is switched as people come and go."""

from __future__ import annotations

import asyncio
import fractions

import numpy as np
import pytest

av = pytest.importorskip("av")
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livesqa.webrtc.relay import SlotTrack


class ScriptedTrack(MediaStreamTrack):
    """Emits frames with the given pts (960 samples, 48 kHz, value = marker), then ends."""

    kind = "audio"

    def __init__(self, pts: list[int], marker: int) -> None:
        super().__init__()
        self._pts = list(pts)
        self.marker = marker

    async def recv(self) -> av.AudioFrame:
        if not self._pts:
            raise MediaStreamError
        await asyncio.sleep(0)
        frame = av.AudioFrame.from_ndarray(np.full((1, 960), self.marker, np.int16), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self._pts.pop(0)
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


async def test_restamps_monotonically_across_switches_and_keeps_gaps() -> None:
    slot = SlotTrack()
    a = ScriptedTrack([5000, 5960, 5960 + 960 * 3], marker=1)  # frames 3 and 4 of 'a' lost
    slot.set_source(a)
    f1, f2, f3 = [await slot.recv() for _ in range(3)]
    assert [f.pts for f in (f1, f2)] == [0, 960]
    assert f3.pts == 960 * 4  # the loss stays a timestamp gap for the listener's concealment
    b = ScriptedTrack([0, 960], marker=2)  # a new speaker starting at pts 0
    slot.set_source(b)
    g1 = await slot.recv()
    assert g1.pts >= f3.pts + 960 and int(g1.to_ndarray()[0, 0]) == 2
    g2 = await slot.recv()
    assert g2.pts == g1.pts + 960


async def test_frames_are_copies_so_other_consumers_keep_their_timestamps() -> None:
    src = ScriptedTrack([48000], marker=3)
    original = await src.recv()
    src._pts = [48000 + 960]
    slot = SlotTrack()
    slot.set_source(src)
    out = await slot.recv()
    assert original.pts == 48000 and out.pts == 0


async def test_empty_slot_blocks_until_a_source_arrives() -> None:
    slot = SlotTrack()
    pending = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.05)
    assert not pending.done()
    slot.set_source(ScriptedTrack([0], marker=4))
    frame = await asyncio.wait_for(pending, 1.0)
    assert int(frame.to_ndarray()[0, 0]) == 4


async def test_source_that_ends_leaves_the_slot_waiting_then_reusable() -> None:
    slot = SlotTrack()
    slot.set_source(ScriptedTrack([0], marker=5))
    await slot.recv()
    waiting = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.05)
    assert not waiting.done() and slot.source is None
    slot.set_source(ScriptedTrack([0], marker=6))
    assert int((await asyncio.wait_for(waiting, 1.0)).to_ndarray()[0, 0]) == 6


async def test_switch_while_waiting_on_a_silent_source() -> None:
    class Silent(MediaStreamTrack):
        kind = "audio"

        async def recv(self) -> None:
            await asyncio.sleep(3600)

    slot = SlotTrack()
    slot.set_source(Silent())
    pending = asyncio.ensure_future(slot.recv())
    await asyncio.sleep(0.02)
    slot.set_source(ScriptedTrack([0], marker=7))
    assert int((await asyncio.wait_for(pending, 1.0)).to_ndarray()[0, 0]) == 7
    slot.stop()
    with pytest.raises(MediaStreamError):
        await slot.recv()


async def test_a_listener_that_falls_behind_skips_to_the_newest_frames() -> None:
    from livesqa.webrtc.relay import MAX_BACKLOG_FRAMES

    class Backlogged(ScriptedTrack):
        def __init__(self) -> None:
            super().__init__([0], marker=8)
            self._queue: asyncio.Queue[object] = asyncio.Queue()
            for i in range(30):
                self._queue.put_nowait(i)

    src = Backlogged()
    slot = SlotTrack()
    slot.set_source(src)
    await slot.recv()
    assert src._queue.qsize() == MAX_BACKLOG_FRAMES
    assert slot.frames_dropped == 30 - MAX_BACKLOG_FRAMES
