"""The microphone as a source (sounddevice / PortAudio, imported lazily).

Why lazily: ``import sounddevice`` raises when PortAudio is missing; the rest of
livesqa (files, bench, webrtc) must work without it, and ``livesqa mic`` must say
in one line what is missing and how to install it.

The PortAudio callback runs on PortAudio's thread: it only copies the block and
hands it to the event loop with ``loop.call_soon_threadsafe`` (no model, no
allocation-heavy work, no locks shared with the scorer). Conversion to the
model's rate happens on the loop. A device that stops delivering audio (unplugged,
driver error) is detected by the stream finishing or by ``device_timeout_s``
without callbacks, and raises :class:`DeviceError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from livesqa.errors import DeviceError
from livesqa.sources import EdgeConverter
from livesqa.types import AudioChunk

INSTALL_HINT = (
    "PortAudio is missing: install it (Debian/Ubuntu: apt-get install libportaudio2; "
    "macOS: brew install portaudio) and `pip install 'livesqa[mic]'`"
)


def import_sounddevice() -> ModuleType:
    """``sounddevice`` or a :class:`DeviceError` naming what to install."""
    try:
        import sounddevice
    except ImportError as e:
        raise DeviceError("sounddevice is not installed: pip install 'livesqa[mic]'") from e
    except OSError as e:  # raised at import when the PortAudio library is absent
        raise DeviceError(INSTALL_HINT) from e
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate_hz: int
    is_default: bool


def list_input_devices(sd: ModuleType | None = None) -> list[InputDevice]:
    """Devices with at least one input channel."""
    sd = sd or import_sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0] if sd.default.device else -1
    except Exception as e:  # PortAudioError and friends
        raise DeviceError(f"cannot list audio devices ({e})") from e
    out = []
    for i, d in enumerate(devices):
        if int(d["max_input_channels"]) > 0:
            out.append(
                InputDevice(i, str(d["name"]), int(d["max_input_channels"]),
                            int(d["default_samplerate"]), i == default_in)
            )
    return out


def resolve_device(device: str | int | None, sd: ModuleType | None = None) -> InputDevice:
    """An input device by index, exact name or case-insensitive substring; None = default."""
    devices = list_input_devices(sd)
    if not devices:
        raise DeviceError("no audio input device found (is a microphone connected?)")
    if device is None or device == "":
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    if isinstance(device, int) or str(device).isdigit():
        idx = int(device)
        for d in devices:
            if d.index == idx:
                return d
        raise DeviceError(f"no input device with id {idx}; see `livesqa devices`")
    matches = [d for d in devices if str(device).lower() in d.name.lower()]
    exact = [d for d in matches if d.name == device]
    if exact:
        return exact[0]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DeviceError(f"no input device matching {device!r}; see `livesqa devices`")
    raise DeviceError(f"{device!r} matches {len(matches)} devices; use an id from `livesqa devices`")


class MicSource:
    """Live microphone audio as chunks at ``to_hz``; runs until cancelled or the device is lost."""

    live = True

    def __init__(
        self,
        to_hz: int,
        device: str | int | None = None,
        block_s: float = 0.1,
        device_timeout_s: float = 2.0,
        sd: ModuleType | None = None,
    ) -> None:
        self._sd = sd or import_sounddevice()
        self.device = resolve_device(device, self._sd)
        self.to_hz = to_hz
        self.sample_rate_hz = self.device.default_rate_hz or to_hz
        self.block_frames = max(1, int(round(block_s * self.sample_rate_hz)))
        self.device_timeout_s = device_timeout_s
        self.description = f"mic: {self.device.name} ({self.sample_rate_hz} Hz)"
        self.overflows = 0

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[np.ndarray, float] | BaseException | None] = asyncio.Queue()

        def callback(indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
            # PortAudio thread: copy and hand off, nothing else
            if status and getattr(status, "input_overflow", False):
                self.overflows += 1
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (indata.copy(), time.perf_counter()))
            except RuntimeError:  # loop already closed: the source is shutting down
                pass

        def finished() -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:
                pass

        conv = EdgeConverter(self.sample_rate_hz, self.to_hz)
        try:
            stream = self._sd.InputStream(
                device=self.device.index,
                channels=min(self.device.channels, 2),
                samplerate=self.sample_rate_hz,
                blocksize=self.block_frames,
                dtype="float32",
                callback=callback,
                finished_callback=finished,
            )
            stream.start()
        except Exception as e:  # PortAudioError, ValueError for bad settings
            raise DeviceError(f"cannot open input device {self.device.name!r} ({e})") from e
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=self.device_timeout_s)
                except asyncio.TimeoutError:
                    raise DeviceError(
                        f"input device {self.device.name!r} stopped delivering audio "
                        f"for {self.device_timeout_s:.1f} s (disconnected?)"
                    ) from None
                if item is None:
                    raise DeviceError(f"input device {self.device.name!r} stopped (disconnected?)")
                if isinstance(item, BaseException):
                    raise DeviceError(f"input device error ({item})") from item
                block, arrival = item
                chunk = conv.convert(block, arrival)
                if chunk is not None:
                    yield chunk
        finally:
            try:
                stream.stop()
                stream.close()
            except Exception:  # closing a vanished device may itself fail; nothing to save
                pass
