"""An aiortc participant for tests, load runs and demos: sends a signal, records what it hears.

Why in the package: the in-process tests, the bounded load test and anyone checking a
deployment need the same peer the page is (one sending microphone m-line plus receive-only
slots, one POST to join). :class:`SignalTrack` paces frames by a sample counter like
aiortc's own tracks, so a client sends real-time audio without a sound card.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from livesqa.audio import float32_to_pcm16
from livesqa.errors import WebRTCError
from livesqa.types import FloatArray

CLIENT_RATE_HZ = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz, what Opus carries per packet


def speechlike_tone(freq_hz: float, seconds: float, rate_hz: int = CLIENT_RATE_HZ,
                    level: float = 0.3, syllable_hz: float = 3.0) -> FloatArray:
    """A tone switched on and off at a syllable rate: an energy VAD calls it speech.

    ``[rate_hz * seconds]`` float32; on 60 % of each syllable period with 10 ms ramps.
    """
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    phase = (t * syllable_hz) % 1.0
    envelope = np.clip(np.minimum(phase, 0.6 - phase) / (0.01 * syllable_hz), 0.0, 1.0)
    return (level * envelope * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def dominant_frequency(samples: FloatArray, rate_hz: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of a mono signal (0.0 for silence)."""
    if samples.size < 64 or not np.any(samples):
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate_hz / samples.size)


def _track_base() -> type:
    from aiortc.mediastreams import MediaStreamTrack

    return MediaStreamTrack


class SignalTrack(_track_base()):  # type: ignore[misc]
    """Plays a mono float signal at 48 kHz in 20 ms s16 frames, looping, paced in real time."""

    kind = "audio"

    def __init__(self, signal: FloatArray, loop: bool = True) -> None:
        super().__init__()
        self._pcm = float32_to_pcm16(signal)
        self._loop = loop
        self._pos = 0
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> Any:
        import av
        from aiortc.mediastreams import MediaStreamError

        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:  # pace by the sample counter, so drift never accumulates
            wait = self._start + self._pts / CLIENT_RATE_HZ - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        idx = (self._pos + np.arange(FRAME_SAMPLES)) % self._pcm.size
        if not self._loop and self._pos + FRAME_SAMPLES > self._pcm.size:
            self.stop()
            raise MediaStreamError
        frame = av.AudioFrame.from_ndarray(self._pcm[idx][np.newaxis, :], format="s16", layout="mono")
        frame.sample_rate = CLIENT_RATE_HZ
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, CLIENT_RATE_HZ)
        self._pos = (self._pos + FRAME_SAMPLES) % self._pcm.size
        self._pts += FRAME_SAMPLES
        return frame


@dataclass
class Heard:
    """Audio one client received on one slot (mono, 48 kHz; the newest ``keep_s`` seconds)."""

    frames: int = 0
    chunks: list[FloatArray] = field(default_factory=list)

    def recent(self) -> FloatArray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)


class RoomClient:
    """One participant: join a room over HTTP, send a track, record every slot it hears."""

    def __init__(self, base_url: str, room: str, name: str, track: Any, *,
                 slots: int = 9, token: str | None = None, keep_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.room = room
        self.name = name
        self.track = track
        self.slots = slots
        self.token = token
        self._keep = int(keep_s * CLIENT_RATE_HZ)
        self.pc: Any = None
        self.id = ""
        self.secret = ""
        self.heard: dict[str, Heard] = {}  # by receiving transceiver mid
        self._tasks: list[asyncio.Task[None]] = []

    async def join(self) -> dict[str, Any]:
        import aiohttp
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(self.track, direction="sendonly")
        for _ in range(self.slots):
            pc.addTransceiver("audio", direction="recvonly")

        @pc.on("track")
        def on_track(track: Any) -> None:
            mid = str(next((t.mid for t in pc.getTransceivers() if t.receiver.track is track), "?"))
            self.heard[mid] = Heard()
            self._tasks.append(asyncio.ensure_future(self._record(track, self.heard[mid])))

        await pc.setLocalDescription(await pc.createOffer())
        body = {"type": "offer", "sdp": pc.localDescription.sdp, "name": self.name}
        if self.token is not None:
            body["token"] = self.token
        url = f"{self.base_url}/api/room/{self.room}/join"
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as r:
            answer = await r.json()
            if r.status != 200:
                await pc.close()
                raise WebRTCError(f"join refused ({r.status}): {answer.get('error')}")
        self.id, self.secret = answer["id"], answer["secret"]
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return dict(answer)

    async def _record(self, track: Any, heard: Heard) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                heard.frames += 1
                data = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                heard.chunks.append(data.mean(axis=1).astype(np.float32) / 32768.0)
                while sum(c.size for c in heard.chunks) > self._keep:
                    heard.chunks.pop(0)
        except MediaStreamError:
            return

    def heard_frequencies(self, min_frames: int = 25) -> list[float]:
        """Dominant frequency of each slot that received at least ``min_frames`` frames recently."""
        return [
            dominant_frequency(h.recent(), CLIENT_RATE_HZ)
            for h in self.heard.values()
            if h.frames >= min_frames and np.any(h.recent())
        ]

    async def leave(self) -> None:
        """Say goodbye, then close the connection."""
        import aiohttp

        url = f"{self.base_url}/api/room/{self.room}/leave"
        body = {"id": self.id, "secret": self.secret}
        async with aiohttp.ClientSession() as http, http.post(url, json=body) as r:
            await r.read()
        await self.close()

    async def vanish(self) -> None:
        """Disappear without a goodbye: stop sending and answering, as a crashed browser would."""
        for transceiver in self.pc.getTransceivers():
            ice = transceiver.sender.transport.transport
            for protocol in list(getattr(ice._connection, "_protocols", [])):
                if protocol.transport is not None:
                    protocol.transport.close()
        self.track.stop()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()


async def run_load(base_url: str, room: str, clients: int, seconds: float, slots: int) -> dict[str, Any]:
    """Join ``clients`` peers (distinct tones), hold the call ``seconds``, leave; what was heard."""
    peers = [
        RoomClient(base_url, room, f"load{i}", SignalTrack(speechlike_tone(300.0 + 97.0 * i, 2.0)),
                   slots=slots)
        for i in range(clients)
    ]
    for peer in peers:
        await peer.join()
    await asyncio.sleep(seconds)
    heard = {p.name: len(p.heard_frequencies()) for p in peers}
    for peer in peers:
        await peer.leave()
    return {"clients": clients, "seconds": seconds, "heard_streams": heard}


def main(argv: list[str] | None = None) -> int:
    """``python -m livesqa.webrtc.client URL ROOM --clients N --seconds S``: a load generator."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m livesqa.webrtc.client")
    parser.add_argument("url")
    parser.add_argument("room")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--slots", type=int, default=9)
    args = parser.parse_args(argv)
    from livesqa.webrtc.loopback import enable_loopback_candidates

    enable_loopback_candidates()
    result = asyncio.run(run_load(args.url, args.room, args.clients, args.seconds, args.slots))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
