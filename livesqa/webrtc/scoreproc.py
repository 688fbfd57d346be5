"""Scoring in a child process, so that scoring can never starve the media loop.

Why a process: the server's asyncio loop carries ICE consent, DTLS, SRTP and the relay for
every participant. When scoring shared that process (a thread holding the GIL between model
calls, the speech gate and windowing on the loop), a host short of CPU let the UDP receive
queues grow until ICE consent expired and calls were dropped. Now the loop only converts
frames into 16 kHz chunks and writes them to a socket; windowing, the speech gate and the
model run in ``python -m livesqa.webrtc.scoreproc`` at a lower CPU priority (``nice``), so a
saturated host slows scoring (skipped windows, higher latency) and never the call.

The parent never blocks on the child: audio is written to a buffered transport, and while
more than :data:`MAX_BACKLOG_S` seconds of audio wait for the child, new audio is dropped
and reported to the child, which restarts that stream's windows and counts the audio it
never saw as skipped windows. A child that dies stops the scores, not the calls.

Wire format (a socketpair between our own two processes): 4-byte big-endian length, then a
pickled tuple. Parent -> child: ``("open", key, StreamInfo)``, ``("audio", key, start_sample,
samples, arrival, nonfinite, dropped_samples)``, ``("close", key, dropped_samples)``. Child -> parent:
``("ready",)``, ``("result", key, WindowScores, sent_at)``, ``("closed", key)``,
``("error", key, message)``. ``arrival`` and ``sent_at`` are ``time.perf_counter()``
values: CLOCK_MONOTONIC, the same clock in both processes on Linux.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from livesqa.errors import LivesqaError
from livesqa.gating import GateConfig
from livesqa.spec import ModelSpec
from livesqa.types import AudioChunk, StreamInfo, WindowScores

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a chunk is a few kB; anything this large is corruption
MAX_BACKLOG_S = 2.0  # audio waiting for the child beyond this (per open stream) is dropped
START_TIMEOUT_S = 120.0  # the child loads the model before saying "ready"
CLOSE_TIMEOUT_S = 5.0  # a leaving participant's last windows get this long to be scored
DEFAULT_NICE = 10  # scoring yields the CPU to the media loop (nice 0) when the host is short


@dataclass(frozen=True)
class ScoringConfig:
    """What the child needs to score streams like the in-process monitor did."""

    model_path: str
    hop_samples: int | None = None  # None: the model's recommended hop
    gate: GateConfig = field(default_factory=GateConfig)
    nice: int = DEFAULT_NICE  # added to the child's CPU niceness (0 = same priority)

    def to_json(self) -> str:
        return json.dumps({"model_path": self.model_path, "hop_samples": self.hop_samples,
                           "gate": dataclasses.asdict(self.gate), "nice": self.nice})

    @classmethod
    def from_json(cls, text: str) -> ScoringConfig:
        raw = json.loads(text)
        return cls(raw["model_path"], raw["hop_samples"], GateConfig(**raw["gate"]), raw["nice"])


def encode(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
        (size,) = HEADER.unpack(header)
        if size > MAX_MESSAGE_BYTES:
            raise LivesqaError(f"scoring channel: message of {size} bytes")
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = pickle.loads(body)
    assert isinstance(message, tuple)
    return message


ResultHandler = Callable[[WindowScores], None]


class ScoredStream:
    """The parent's handle on one stream scored in the child."""

    def __init__(self, owner: ScoringProcess, key: str, on_result: ResultHandler) -> None:
        self._owner = owner
        self.key = key
        self.on_result = on_result
        self.dropped_samples = 0  # dropped because the child was behind, not yet reported
        self.dropped_total = 0
        self.closed = asyncio.Event()

    def push(self, chunk: AudioChunk) -> None:
        """Hand a chunk to the child; never blocks (drops and counts when the child is behind)."""
        self._owner.send_audio(self, chunk)

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Score the tail and wait (bounded) for its last results; True if they all came."""
        dropped, self.dropped_samples = self.dropped_samples, 0
        if not self._owner.send_control(("close", self.key, dropped)):
            return False
        try:
            await asyncio.wait_for(self.closed.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            self._owner.forget(self.key)


class ScoringProcess:
    """Starts the scoring child and routes audio to it and results back (parent side)."""

    def __init__(self, config: ScoringConfig, spec: ModelSpec) -> None:
        self.config = config
        self.spec = spec
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._streams: dict[str, ScoredStream] = {}
        self.hop_samples = config.hop_samples or spec.hop_samples
        self._bytes_per_second = 4 * spec.sample_rate_hz  # float32 mono
        self.error: str | None = None
        self.dropped_chunks = 0

    @property
    def alive(self) -> bool:
        return (self._writer is not None and self.error is None
                and not self._writer.transport.is_closing())

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self) -> None:
        parent_sock, child_sock = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "livesqa.webrtc.scoreproc",
                "--fd", str(child_sock.fileno()), "--config", self.config.to_json(),
                pass_fds=(child_sock.fileno(),), stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            child_sock.close()
        reader, writer = await asyncio.open_connection(sock=parent_sock)
        try:
            first = await asyncio.wait_for(read_message(reader), START_TIMEOUT_S)
        except TimeoutError:
            first = None
        if first != ("ready",):
            writer.close()
            await self._reap()
            raise LivesqaError(
                f"the scoring process did not start (model {self.config.model_path}; see above)")
        self._writer = writer
        self._reader_task = asyncio.ensure_future(self._read(reader))

    def open(self, key: str, stream: StreamInfo, on_result: ResultHandler) -> ScoredStream:
        handle = ScoredStream(self, key, on_result)
        self._streams[key] = handle
        self.send_control(("open", key, stream))
        return handle

    def forget(self, key: str) -> None:
        self._streams.pop(key, None)

    def send_control(self, message: tuple[Any, ...]) -> bool:
        if not self.alive:
            return False
        assert self._writer is not None
        self._writer.write(encode(message))
        return True

    def backlog_bytes(self) -> int:
        if self._writer is None:
            return 0
        return int(self._writer.transport.get_write_buffer_size())

    def send_audio(self, stream: ScoredStream, chunk: AudioChunk) -> None:
        if not self.alive:
            return
        limit = MAX_BACKLOG_S * self._bytes_per_second * max(len(self._streams), 1)
        if self.backlog_bytes() > limit:
            stream.dropped_samples += int(chunk.samples.shape[0])
            stream.dropped_total += int(chunk.samples.shape[0])
            self.dropped_chunks += 1
            return
        dropped, stream.dropped_samples = stream.dropped_samples, 0
        self.send_control(("audio", stream.key, chunk.start_sample, chunk.samples, chunk.arrival,
                           chunk.nonfinite, dropped))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await read_message(reader)
                if message is None:
                    break
                try:
                    self._dispatch(message)
                except Exception:  # a bug in one stream's consumer must not end the others'
                    log.exception("scoring result for %s not delivered", message[1])
        finally:
            if self.error is None:
                self.error = "the scoring process exited"
                log.error("%s: no more scores (calls continue)", self.error)
            for handle in list(self._streams.values()):
                handle.closed.set()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind, key = message[0], message[1]
        handle = self._streams.get(key)
        if handle is None:
            return
        if kind == "result":
            result, sent_at = message[2], message[3]
            transit_ms = max(time.perf_counter() - sent_at, 0.0) * 1000.0
            handle.on_result(dataclasses.replace(result, latency_ms=result.latency_ms + transit_ms))
        elif kind == "closed":
            handle.closed.set()
        elif kind == "error":
            log.error("scoring %s: %s", key, message[2])

    async def stop(self) -> None:
        if self._writer is not None:
            self.error = self.error or "stopped"
            self._writer.close()
            self._writer = None
        if self._reader_task is not None:
            self._reader_task.cancel()
            self._reader_task = None
        await self._reap()

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# --- the child ---------------------------------------------------------------------------


class _ChildStreams:
    """The child's monitors by key; one scoring thread serves them all round-robin."""

    def __init__(self, worker: Any, config: ScoringConfig, writer: asyncio.StreamWriter) -> None:
        self.worker = worker
        self.config = config
        self.writer = writer
        self.monitors: dict[str, Any] = {}
        self.infos: dict[str, StreamInfo] = {}
        self.extra_skipped: dict[str, int] = {}
        self.hop = config.hop_samples or worker.spec.hop_samples

    def _new_monitor(self, key: str) -> Any:
        from livesqa.streammonitor import make_stream_monitor

        monitor = make_stream_monitor(self.worker, self.infos[key], live=True,
                                      hop_samples=self.config.hop_samples, gate=self.config.gate,
                                      max_pending=4, history_windows=1)
        monitor.add_listener(functools.partial(self._send_result, key))
        self.monitors[key] = monitor
        return monitor

    def _send_result(self, key: str, result: WindowScores) -> None:
        extra = self.extra_skipped.pop(key, 0)
        if extra:
            result = dataclasses.replace(result, skipped=result.skipped + extra)
        self.writer.write(encode(("result", key, result, time.perf_counter())))

    def handle(self, message: tuple[Any, ...]) -> None:
        kind, key = message[0], message[1]
        if kind == "open":
            self.infos[key] = message[2]
            self._new_monitor(key)
        elif kind == "audio":
            monitor = self.monitors.get(key)
            if monitor is None:
                return
            start, samples, arrival, nonfinite, dropped = message[2:7]
            if dropped:
                # the parent dropped audio we never saw: those windows were skipped, not lost
                # on the network, so restart the windows instead of filling a "gap"
                monitor.close()
                monitor = self._new_monitor(key)
                self.extra_skipped[key] = self.extra_skipped.get(key, 0) + max(
                    1, round(dropped / self.hop))
            try:
                monitor.push_nowait(AudioChunk(start, samples, arrival, nonfinite))
            except LivesqaError as e:
                self.writer.write(encode(("error", key, str(e))))
        elif kind == "close":
            if message[2] and key in self.monitors:  # audio dropped since the last chunk
                self.extra_skipped[key] = self.extra_skipped.get(key, 0) + max(
                    1, round(message[2] / self.hop))
            asyncio.ensure_future(self._close(key))

    async def _close(self, key: str) -> None:
        monitor = self.monitors.pop(key, None)
        if monitor is not None:
            try:
                await asyncio.wait_for(monitor.finish(), CLOSE_TIMEOUT_S)
            except Exception as e:  # noqa: BLE001 - timeout, sink or gate error: still say "closed"
                self.writer.write(encode(("error", key, f"last windows not scored ({e!r})")))
            monitor.close()
        self.infos.pop(key, None)
        self.extra_skipped.pop(key, None)
        self.writer.write(encode(("closed", key)))


async def _child(fd: int, config: ScoringConfig) -> int:
    from livesqa.streammonitor import load_any, worker_for

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it closes us
    if config.nice > 0:
        os.nice(config.nice)
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    scorer = load_any(Path(config.model_path))  # windowed or streaming, as its spec says
    async with worker_for(scorer, name="livesqa-scorer-child") as worker:
        streams = _ChildStreams(worker, config, writer)
        writer.write(encode(("ready",)))
        while True:
            message = await read_message(reader)
            if message is None:
                break
            try:
                streams.handle(message)
            except Exception as e:  # one stream's failure must not end the others' scoring
                log.exception("scoring %s", message[1])
                writer.write(encode(("error", message[1], f"{type(e).__name__}: {e}")))
        for monitor in streams.monitors.values():
            monitor.close()
    writer.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child (started by :class:`ScoringProcess`, not by people)."""
    parser = argparse.ArgumentParser(prog="python -m livesqa.webrtc.scoreproc")
    parser.add_argument("--fd", type=int, required=True, help="socket inherited from the parent")
    parser.add_argument("--config", required=True, help="ScoringConfig as JSON")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_child(args.fd, ScoringConfig.from_json(args.config)))
    except LivesqaError as e:
        print(f"livesqa scoring process: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
