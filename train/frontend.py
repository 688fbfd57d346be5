"""Log-mel front end inside the graph: waveform [B, T] -> log-mel [B, F, n_mels] at 10 ms.

Why in torch and ONNX-exportable: the exported model takes raw audio, so the runtime has no
feature code that could drift from training. The STFT is a strided ``conv1d`` with a fixed
Hann-windowed DFT basis and the mel projection a matmul; both export to plain ONNX ops.

Framing is "valid" (no centre padding): frame ``f`` covers samples ``[f*hop, f*hop + win)``,
so ``F = (T - win) // hop + 1`` and a padded batch element's valid frames depend only on its
valid samples. Cepstral mean subtraction (CMS) subtracts the per-utterance mean of each mel
channel over the valid frames; padded frames are set to 0.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from train.config import FrontendConfig

LOG_FLOOR = 1e-10  # power floor before log: ~-100 dB re full scale, below 16-bit dither


def hz_to_mel(hz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """HTK mel scale: 2595 log10(1 + f/700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate_hz: int,
    n_fft: int,
    n_mels: int,
    f_min_hz: float = 0.0,
    f_max_hz: float | None = None,
) -> npt.NDArray[np.float32]:
    """Triangular HTK-mel filters, unnormalised: ``[n_fft // 2 + 1, n_mels]``.

    Matches ``librosa.filters.mel(..., htk=True, norm=None).T`` (checked in tests).
    """
    f_max = sample_rate_hz / 2 if f_max_hz is None else f_max_hz
    fft_hz = np.linspace(0.0, sample_rate_hz / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [n_mels, n_bins]
    return weights.T.astype(np.float32)


def dft_basis(win_samples: int, n_fft: int) -> npt.NDArray[np.float32]:
    """Hann-windowed real DFT as conv weights ``[2 * (n_fft//2+1), 1, win_samples]`` (cos; sin)."""
    n = np.arange(win_samples)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_samples)  # periodic Hann
    k = np.arange(n_fft // 2 + 1)[:, None]
    phase = 2.0 * np.pi * k * n[None, :] / n_fft
    basis = np.concatenate([np.cos(phase) * window, -np.sin(phase) * window], axis=0)
    return basis[:, None, :].astype(np.float32)


def frame_lengths(wav_lengths: torch.Tensor, win_samples: int, hop_samples: int) -> torch.Tensor:
    """Valid frames per sample count (0 when shorter than one window)."""
    return torch.clamp(
        torch.div(wav_lengths - win_samples, hop_samples, rounding_mode="floor") + 1, min=0
    )


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, max_len]`` bool, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class LogMel(nn.Module):
    """Waveform ``[B, T]`` float32 (full scale 1.0) -> ``([B, F, n_mels], frame lengths [B])``."""

    dft: torch.Tensor  # [2 * n_bins, 1, win_samples] fixed buffer, not a parameter
    fbank: torch.Tensor  # [n_bins, n_mels]

    def __init__(self, cfg: FrontendConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.win_samples = cfg.win_samples
        self.hop_samples = cfg.hop_samples
        self.n_fft = 2 ** math.ceil(math.log2(self.win_samples))  # 400 -> 512
        self.n_bins = self.n_fft // 2 + 1
        self.register_buffer(
            "dft", torch.from_numpy(dft_basis(self.win_samples, self.n_fft)), persistent=False
        )
        fbank = mel_filterbank(cfg.sample_rate_hz, self.n_fft, cfg.n_mels)
        self.register_buffer("fbank", torch.from_numpy(fbank), persistent=False)

    def forward(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``wav_lengths=None`` means every row is full length (the ONNX path, no masking)."""
        logmel, lengths, _ = self.analyse(wav, wav_lengths)
        return logmel, lengths

    def analyse(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """As :meth:`forward`, plus each row's mean log-mel over valid frames ``[B, n_mels]``.

        That mean is what CMS removes: the utterance's level and long-term spectrum. It is
        returned so the quality head can still judge loudness (CMS makes the features of
        ``x`` and ``g * x`` identical).
        """
        spec = torch.nn.functional.conv1d(wav.unsqueeze(1), self.dft, stride=self.hop_samples)
        real, imag = spec[:, : self.n_bins], spec[:, self.n_bins :]
        power = (real * real + imag * imag).transpose(1, 2)  # [B, F, n_bins]
        logmel = torch.log(torch.clamp(power @ self.fbank, min=LOG_FLOOR))  # [B, F, n_mels]
        if wav_lengths is None:
            mean = logmel.mean(dim=1)
            if self.cfg.cms:
                logmel = logmel - mean[:, None, :]
            return logmel, None, mean
        lengths = frame_lengths(wav_lengths, self.win_samples, self.hop_samples)
        mask = length_mask(lengths, logmel.shape[1]).unsqueeze(-1)  # [B, F, 1]
        logmel = logmel.masked_fill(~mask, 0.0)
        mean = logmel.sum(dim=1) / lengths.clamp(min=1).to(logmel.dtype)[:, None]
        if self.cfg.cms:
            logmel = (logmel - mean[:, None, :]).masked_fill(~mask, 0.0)
        return logmel, lengths, mean


def power_weighted_level_db(wav: torch.Tensor, wav_lengths: torch.Tensor | None,
                            frame_samples: int) -> torch.Tensor:
    """Each row's level in dBFS ``[B]``: the power of its ``frame_samples`` frames, each weighted
    by its own power (``10 log10(sum p^2 / sum p)``).

    Why this and not the mean log-mel: a gain ``g`` shifts it by exactly ``20 log10 g``, loud
    (speech) frames dominate it, and silent or zeroed frames (pauses, lost packets, padding) add
    nothing, so pauses and chops do not read as a quiet talker. Digital silence gives -100 dB.
    """
    x = wav
    if wav_lengths is not None:
        valid = torch.arange(wav.shape[1], device=wav.device)[None, :] < wav_lengths[:, None]
        x = wav * valid.to(wav.dtype)
    p = torch.nn.functional.avg_pool1d((x * x).unsqueeze(1), frame_samples, frame_samples).squeeze(1)
    return 10.0 * (torch.log10((p * p).sum(dim=1) + 1e-20) - torch.log10(p.sum(dim=1) + 1e-10))
