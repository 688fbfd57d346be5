"""Rooms and participants: who is connected, who hears whom, and when someone is gone.

Why here and not in the server: the HTTP layer only validates and translates; everything
that must stay consistent (the participant limit, the slot wiring of the relay, removal of a
peer that vanished) happens in one place, under one lock per room. Rooms never share a
relay, so one room's audio cannot reach another room.

A participant offers one sending audio m-line (the microphone) and up to
``max_participants - 1`` receive-only audio m-lines (the slots it hears others on).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from livesqa.errors import WebRTCError
from livesqa.webrtc.netstats import InboundSample, read_inbound, read_rtt_ms
from livesqa.webrtc.overload import last_datagram_s
from livesqa.webrtc.relay import SlotTrack, SpeakerFeed

log = logging.getLogger(__name__)

ROOM_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_MAX_CHARS = 40


class OfferError(WebRTCError):
    """The offer cannot be used (malformed SDP, no microphone, video...): the client's fault."""


class RoomFullError(WebRTCError):
    """The room already holds its maximum number of participants."""


@dataclass(frozen=True)
class RoomConfig:
    """Limits and timings of every room; validated once."""

    max_participants: int = 10
    stats_interval_s: float = 1.0  # network statistics and liveness poll
    # from answer to the first media packet: a browser on a LAN needs < 2 s; a join that never
    # sends media must not hold a slot long (it could keep a room full)
    connect_timeout_s: float = 8.0
    peer_timeout_s: float = 10.0  # no media for this long -> the peer is gone

    def __post_init__(self) -> None:
        if not 2 <= self.max_participants <= 64:
            raise WebRTCError(f"max_participants {self.max_participants} outside 2..64")
        if min(self.stats_interval_s, self.connect_timeout_s, self.peer_timeout_s) <= 0:
            raise WebRTCError("room timings must be positive")


@dataclass(frozen=True)
class ParticipantInfo:
    """Who a participant is, as sinks and the dashboard see them."""

    room: str
    id: str
    name: str
    joined_wall: float  # time.time() at join


@dataclass(frozen=True)
class RoomEvent:
    """A join or a leave, for the dashboard and the event log."""

    kind: str  # "join" | "leave"
    participant: ParticipantInfo
    wall_time: float
    reason: str = ""  # for leaves: "bye", "closed", "failed", "timeout", "shutdown"


class ParticipantMonitor(Protocol):
    """What the room drives for each participant (``livesqa.webrtc.participant`` implements it)."""

    async def consume(self, track: Any) -> None:
        """Read the participant's audio until the track ends."""
        ...

    def on_inbound(self, sample: InboundSample) -> None:
        """Cumulative receiver counters, every ``stats_interval_s``."""
        ...

    async def close(self, reason: str) -> None:
        """The participant left: flush and close its rows."""
        ...


MonitorFactory = Callable[[ParticipantInfo], ParticipantMonitor]


def clean_name(name: object, fallback: str) -> str:
    """A display name safe for logs, CSV and HTML: printable, no markup characters, bounded."""
    text = name if isinstance(name, str) else ""
    text = "".join(ch for ch in text if ch.isprintable() and ch not in "<>&\"'`\\")
    text = " ".join(text.split())[:NAME_MAX_CHARS]
    return text or fallback


def audio_directions(sdp_text: str) -> list[tuple[str, str]]:
    """``[(mid, direction)]`` of the audio m-lines; OfferError for anything else or bad SDP."""
    from aiortc.sdp import SessionDescription

    try:
        parsed = SessionDescription.parse(sdp_text)
    except Exception as e:  # the parser raises ValueError, KeyError, IndexError...
        raise OfferError(f"offer SDP does not parse ({type(e).__name__})") from e
    out: list[tuple[str, str]] = []
    for media in parsed.media:
        if media.kind != "audio":
            raise OfferError(f"only audio is accepted, offer has {media.kind!r}")
        out.append((str(media.rtp.muxId), str(media.direction or "sendrecv")))
    if not out:
        raise OfferError("offer has no audio m-line")
    return out


@dataclass(eq=False)
class Participant:
    """One connected peer: its connection, its incoming track and its listening slots."""

    info: ParticipantInfo
    secret: str
    pc: Any  # aiortc RTCPeerConnection
    slots: list[SlotTrack]
    track: Any = None  # incoming audio (aiortc RemoteStreamTrack)
    feed: SpeakerFeed | None = None  # its audio encoded once, for every listener's slot
    slot_of: dict[str, int] = field(default_factory=dict)  # speaker id -> slot index
    monitor: ParticipantMonitor | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    last_packets: int = 0
    last_packet_time: float = 0.0
    rtt_ms: float | None = None  # newest RTCP round trip (None until measured)

    def free_slot(self) -> int | None:
        used = set(self.slot_of.values())
        return next((i for i in range(len(self.slots)) if i not in used), None)


class Room:
    """Participants of one room, their relay wiring, liveness and statistics."""

    def __init__(
        self,
        name: str,
        config: RoomConfig,
        monitor_factory: MonitorFactory | None = None,
        on_event: Callable[[RoomEvent], None] | None = None,
    ) -> None:
        from aiortc.contrib.media import MediaRelay

        self.name = name
        self.config = config
        self._monitor_factory = monitor_factory
        self._on_event = on_event
        self._relay = MediaRelay()
        self._lock = asyncio.Lock()
        self.participants: dict[str, Participant] = {}

    def __len__(self) -> int:
        return len(self.participants)

    def roster(self) -> list[dict[str, Any]]:
        return [{"id": p.info.id, "name": p.info.name} for p in self.participants.values()]

    async def join(self, sdp: str, name: object) -> tuple[Participant, str]:
        """Accept an offer: returns the participant and the answer SDP.

        Raises OfferError (bad offer; nothing changed) or RoomFullError.
        """
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        directions = audio_directions(sdp)
        mic_mids = [mid for mid, d in directions if d in ("sendonly", "sendrecv")]
        if len(mic_mids) != 1:
            raise OfferError(f"offer must send exactly one audio track, sends {len(mic_mids)}")
        async with self._lock:
            if len(self.participants) >= self.config.max_participants:
                raise RoomFullError(f"room {self.name!r} is full ({self.config.max_participants})")
            pid = secrets.token_hex(4)
            info = ParticipantInfo(self.name, pid, clean_name(name, f"guest-{pid}"), time.time())
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            part = Participant(info=info, secret=secrets.token_urlsafe(16), pc=pc, slots=[])
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                self._bind_transceivers(part, mic_mids[0], directions)
                await pc.setLocalDescription(await pc.createAnswer())
            except OfferError:
                await pc.close()
                raise
            except Exception as e:  # aiortc raises ValueError/InvalidStateError/OperationError...
                await pc.close()
                raise OfferError(f"offer rejected by WebRTC stack: {e}") from e
            if part.track is None:
                await pc.close()
                raise OfferError("offer carries no receivable audio track")
            self.participants[pid] = part
            part.feed = SpeakerFeed(self._relay.subscribe(part.track, buffered=True))
            part.feed.start()
            self._wire(part)
            pc.on("connectionstatechange", lambda: self._on_state(part))
            part.last_packet_time = time.monotonic()
            if self._monitor_factory is not None:
                part.monitor = self._monitor_factory(info)
                proxy = self._relay.subscribe(part.track, buffered=True)
                part.tasks.append(asyncio.ensure_future(part.monitor.consume(proxy)))
            part.tasks.append(asyncio.ensure_future(self._watch(part)))
            self._emit(RoomEvent("join", info, time.time()))
            return part, pc.localDescription.sdp

    def _bind_transceivers(self, part: Participant, mic_mid: str, dirs: list[tuple[str, str]]) -> None:
        receives = {mid for mid, d in dirs if d in ("recvonly", "sendrecv")}
        slot_limit = self.config.max_participants - 1
        for transceiver in part.pc.getTransceivers():
            if transceiver.mid == mic_mid:
                part.track = transceiver.receiver.track
                transceiver.direction = "recvonly"
            elif transceiver.mid in receives and len(part.slots) < slot_limit:
                slot = SlotTrack()
                transceiver.sender.replaceTrack(slot)
                transceiver.direction = "sendonly"
                part.slots.append(slot)
            else:
                transceiver.direction = "inactive"

    def _wire(self, newcomer: Participant) -> None:
        """Everyone hears everyone: bind speakers' feeds into free slots, both ways."""
        for other in self.participants.values():
            if other is newcomer or other.feed is None:
                continue
            for listener, speaker in ((newcomer, other), (other, newcomer)):
                index = listener.free_slot()
                if index is None:
                    log.warning("room %s: %s has no free slot for %s", self.name, listener.info.id, speaker.info.id)
                    continue
                listener.slot_of[speaker.info.id] = index
                listener.slots[index].set_source(speaker.feed)

    def _on_state(self, part: Participant) -> None:
        state = part.pc.connectionState
        if state in ("failed", "closed") and part.info.id in self.participants:
            asyncio.ensure_future(self.leave(part.info.id, reason=state))

    async def _watch(self, part: Participant) -> None:
        """Poll receiver statistics; remove a peer whose media stopped (vanished peers)."""
        transceivers = part.pc.getTransceivers()
        receivers = [t.receiver for t in transceivers if t.receiver.track is part.track]
        slot_senders = [(t.sender, t.sender.track) for t in transceivers
                        if isinstance(t.sender.track, SlotTrack)]
        while part.info.id in self.participants:
            await asyncio.sleep(self.config.stats_interval_s)
            now = time.monotonic()
            sample: InboundSample | None = None
            if receivers:
                try:
                    sample = read_inbound(await receivers[0].getStats(), now)
                    if sample is not None:
                        rtt = await self._rtt_ms(slot_senders)
                        part.rtt_ms = rtt if rtt is not None else part.rtt_ms
                        sample = dataclasses.replace(sample, rtt_ms=part.rtt_ms)
                except Exception as e:  # noqa: BLE001 - a closing connection's stats may raise anything
                    log.debug("stats of %s unavailable: %s", part.info.id, e)
            if sample is not None:
                if sample.packets_received > part.last_packets:
                    part.last_packets = sample.packets_received
                    part.last_packet_time = now
                if part.monitor is not None:
                    part.monitor.on_inbound(sample)
            heard = last_datagram_s(receivers[0]) if receivers else None
            if heard is not None and heard > part.last_packet_time:
                part.last_packet_time = heard  # datagrams still arrive: we are late, not they gone
            limit = self.config.peer_timeout_s if part.last_packets else self.config.connect_timeout_s
            if now - part.last_packet_time > limit:
                asyncio.ensure_future(self.leave(part.info.id, reason="timeout"))
                return

    @staticmethod
    async def _rtt_ms(senders: list[tuple[Any, SlotTrack]]) -> float | None:
        """Round trip to this participant from RTCP receiver reports on a slot we send on.

        Why the senders: aiortc measures RTT only as a sender (LSR/DLSR of the participant's
        receiver reports about our packets); a participant who hears nobody gives none yet.
        """
        for sender, slot in senders:
            if slot.source is None and slot.frames_out == 0:
                continue  # never sent: no receiver report can refer to it
            rtt = read_rtt_ms(await sender.getStats())
            if rtt is not None:
                return rtt
        return None

    async def leave(self, pid: str, reason: str = "bye") -> bool:
        """Remove a participant (idempotent); closes its connection, slots and monitor rows."""
        async with self._lock:
            part = self.participants.pop(pid, None)
            if part is None:
                return False
            for other in self.participants.values():
                index = other.slot_of.pop(pid, None)
                if index is not None:
                    other.slots[index].set_source(None)
            for slot in part.slots:
                slot.stop()
            if part.feed is not None:
                part.feed.stop()
        current = asyncio.current_task()
        for task in part.tasks:
            if task is not current:
                task.cancel()
        await part.pc.close()
        if part.monitor is not None:
            await part.monitor.close(reason)
        self._emit(RoomEvent("leave", part.info, time.time(), reason))
        return True

    async def close(self) -> None:
        for pid in list(self.participants):
            await self.leave(pid, reason="shutdown")

    def _emit(self, event: RoomEvent) -> None:
        log.info("room %s: %s %s (%s) %s", self.name, event.kind, event.participant.id, event.participant.name, event.reason)
        if self._on_event is not None:
            self._on_event(event)
