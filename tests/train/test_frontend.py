"""LogMel vs numpy/librosa references: filterbank, bin placement, framing, CMS, padding."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from train.config import FrontendConfig
from train.frontend import LogMel, frame_lengths, mel_filterbank


def test_filterbank_matches_librosa_htk() -> None:
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(16000, 512, 80)
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=80, htk=True, norm=None).T
    assert ours.shape == (257, 80)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_power_spectrum_matches_numpy_stft() -> None:
    cfg = FrontendConfig(cms=False)
    fe = LogMel(cfg)
    rng = np.random.default_rng(0)
    wav = rng.standard_normal(4000).astype(np.float32) * 0.1
    logmel, _ = fe(torch.from_numpy(wav)[None], torch.tensor([4000]))
    n_frames = (4000 - 400) // 160 + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([wav[i * 160 : i * 160 + 400] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, n=512, axis=1)) ** 2
    ref = np.log(np.maximum(power @ mel_filterbank(16000, 512, 80), 1e-10))
    assert logmel.shape == (1, n_frames, 80)
    np.testing.assert_allclose(logmel[0].numpy(), ref, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("freq_hz", [300.0, 1000.0, 3500.0, 6000.0])
def test_sine_peaks_at_its_mel_bin(freq_hz: float) -> None:
    fe = LogMel(FrontendConfig(cms=False))
    t = np.arange(16000) / 16000
    wav = torch.from_numpy((0.5 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32))[None]
    logmel, _ = fe(wav, torch.tensor([16000]))
    fb = mel_filterbank(16000, 512, 80)
    expected = int(np.argmax(fb[round(freq_hz / 16000 * 512)]))
    peak = int(torch.argmax(logmel[0].mean(dim=0)))
    assert abs(peak - expected) <= 1


def test_frame_lengths_and_padding_invariance() -> None:
    fe = LogMel(FrontendConfig())
    assert frame_lengths(torch.tensor([399, 400, 560, 16000]), 400, 160).tolist() == [0, 1, 2, 98]
    x = torch.randn(1, 8000) * 0.1
    padded = torch.cat([x, torch.randn(1, 3000)], dim=1)  # garbage padding, not zeros
    batch = torch.cat([padded, torch.randn(1, 11000)], dim=0)
    full, _ = fe(x, torch.tensor([8000]))
    both, lengths = fe(batch, torch.tensor([8000, 11000]))
    n = int(lengths[0])
    assert n == full.shape[1]
    torch.testing.assert_close(both[0, :n], full[0], atol=1e-4, rtol=1e-4)
    assert torch.all(both[0, n:] == 0)


def test_cms_removes_gain_and_unmasked_path_agrees() -> None:
    fe = LogMel(FrontendConfig(cms=True))
    x = torch.randn(1, 8000) * 0.1
    a, _ = fe(x, torch.tensor([8000]))
    b, _ = fe(x * 4.0, torch.tensor([8000]))  # a pure gain is a constant in log-mel
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(a.mean(dim=1), torch.zeros(1, 80), atol=1e-4, rtol=0)
    c, none = fe(x, None)
    assert none is None
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)
