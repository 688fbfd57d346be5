"""The microphone source against a fake sounddevice whose stream calls back from a thread."""

from __future__ import annotations

import threading
import time
import types

import numpy as np
import pytest

from livesqa.errors import DeviceError
from livesqa.sources.mic import MicSource, list_input_devices, resolve_device


class FakeInputStream:
    """Implements the sounddevice.InputStream surface livesqa uses; delivers ``blocks`` then stops."""

    def __init__(self, *, device, channels, samplerate, blocksize, dtype, callback,
                 finished_callback, blocks, signal, lose_after=None, finish_after=None):
        self.callback = callback
        self.finished_callback = finished_callback
        self.blocksize = blocksize
        self.channels = channels
        self.signal = signal
        self.lose_after = lose_after
        self.finish_after = finish_after
        self.blocks = blocks
        self.callback_threads: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.closed = False

    def _run(self):
        for k in range(self.blocks):
            if self._stop.is_set() or (self.lose_after is not None and k >= self.lose_after):
                return  # the device vanished: no more callbacks, no finish
            if self.finish_after is not None and k >= self.finish_after:
                self.finished_callback()
                return
            block = self.signal[k * self.blocksize : (k + 1) * self.blocksize]
            data = np.repeat(block[:, None], self.channels, axis=1).astype(np.float32)
            self.callback_threads.add(threading.get_ident())
            self.callback(data, self.blocksize, None, None)
            time.sleep(0.001)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def close(self):
        self.closed = True


def fake_sd(**stream_kwargs):
    streams = []

    def InputStream(**kwargs):
        s = FakeInputStream(**kwargs, **stream_kwargs)
        streams.append(s)
        return s

    devices = [
        {"name": "HDMI Out", "max_input_channels": 0, "default_samplerate": 48000.0},
        {"name": "USB Headset Mic", "max_input_channels": 2, "default_samplerate": 48000.0},
        {"name": "Built-in Mic", "max_input_channels": 1, "default_samplerate": 44100.0},
    ]
    sd = types.SimpleNamespace(query_devices=lambda: devices, InputStream=InputStream,
                               default=types.SimpleNamespace(device=(2, 0)))
    sd.streams = streams
    return sd


def test_device_listing_and_resolution():
    sd = fake_sd(blocks=0, signal=np.zeros(0))
    assert [d.name for d in list_input_devices(sd)] == ["USB Headset Mic", "Built-in Mic"]
    assert resolve_device(None, sd).name == "Built-in Mic"  # the default input
    assert resolve_device("1", sd).name == "USB Headset Mic"
    assert resolve_device("usb", sd).index == 1
    with pytest.raises(DeviceError, match="no input device matching"):
        resolve_device("webcam", sd)
    with pytest.raises(DeviceError, match="matches 2 devices"):
        resolve_device("mic", sd)
    with pytest.raises(DeviceError, match="no input device with id 0"):
        resolve_device(0, sd)


async def test_callback_thread_hands_off_and_audio_is_resampled_in_order():
    rate = 48000
    ramp = (np.arange(rate) / rate * 0.5).astype(np.float32)  # 1 s
    sd = fake_sd(blocks=100, signal=ramp, finish_after=None)
    src = MicSource(16000, device="USB", block_s=0.01, device_timeout_s=0.5, sd=sd)
    got = []
    with pytest.raises(DeviceError):  # after 100 blocks the fake goes silent: device lost
        async for chunk in src.chunks():
            got.append(chunk)
    stream = sd.streams[0]
    assert stream.callback_threads and threading.get_ident() not in stream.callback_threads
    assert stream.closed and stream.channels == 2
    starts = [c.start_sample for c in got]
    assert starts == sorted(starts) and all(
        a.end_sample == b.start_sample for a, b in zip(got, got[1:]))
    audio = np.concatenate([c.samples for c in got])
    assert 15000 < audio.size <= 16000
    # the stereo ramp came out as a mono ramp at 16 kHz (resampler delay aside)
    mid = audio[2000:12000]
    assert np.all(np.diff(mid) > 0)


async def test_device_that_finishes_mid_call_raises_device_error():
    sd = fake_sd(blocks=100, signal=np.zeros(48000, dtype=np.float32), finish_after=5)
    src = MicSource(16000, device=1, block_s=0.01, device_timeout_s=5.0, sd=sd)
    t0 = time.perf_counter()
    with pytest.raises(DeviceError, match="stopped"):
        async for _ in src.chunks():
            pass
    assert time.perf_counter() - t0 < 2.0  # noticed via finished_callback, not the timeout


async def test_mic_end_to_end_with_monitor_and_csv(tiny_model_path, tmp_path):
    from livesqa.bench import speechlike
    from livesqa.config import RuntimeConfig
    from livesqa.pipeline import make_monitor, run_source
    from livesqa.scoring import OnnxScorer, ScoringWorker
    from livesqa.sinks.csv import CsvSink
    from livesqa.types import StreamInfo

    signal = speechlike(4.0, 48000)
    sd = fake_sd(blocks=400, signal=signal, lose_after=350)
    src = MicSource(16000, device=1, block_s=0.01, device_timeout_s=0.3, sd=sd)
    sink = CsvSink(tmp_path / "mic.csv")
    async with ScoringWorker(OnnxScorer.load(tiny_model_path)) as worker:
        mon = make_monitor(worker, StreamInfo("mic:1"), RuntimeConfig(hop_s=0.5), live=True,
                           sinks=[sink])
        result = await run_source(src, mon)
    sink.close()
    assert isinstance(result.error, DeviceError)  # the device vanished after 3.5 s
    lines = (tmp_path / "mic.csv").read_text().splitlines()
    assert len(lines) - 1 == result.aggregator.windows >= 4  # rows up to the loss, file closed
