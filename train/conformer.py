"""Conformer encoder (Gulati et al. 2020): x4 conv subsampling, then N macaron blocks.

Block: ``x + FFN/2 -> x + MHSA -> x + Conv -> x + FFN/2 -> LayerNorm``. Positions are
sinusoidal (absolute, added after subsampling), computed on the fly so any length exports.

Masking: every component keeps a padded batch element's valid frames independent of its
padding: the subsampling convs are "valid" (an output frame sees only earlier-or-equal
valid inputs), attention masks padded keys, and padded frames are zeroed before the
depthwise conv, exactly as the zero "same" padding of an unpadded sequence. The conv module
uses LayerNorm rather than BatchNorm so padding never enters normalisation statistics.
With ``lengths=None`` (the ONNX path) no mask is built.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from train.config import EncoderConfig
from train.frontend import length_mask


def subsampled_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames after two kernel-3 stride-2 "valid" convs: L -> (L-3)//2+1, twice."""
    for _ in range(2):
        lengths = torch.clamp(torch.div(lengths - 3, 2, rounding_mode="floor") + 1, min=0)
    return lengths


def sinusoidal_positions(n_frames: int, d_model: int, device: torch.device) -> torch.Tensor:
    """``[n_frames, d_model]``: sin on even, cos on odd channels (Vaswani et al.)."""
    pos = torch.arange(n_frames, device=device, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(
        torch.arange(0, d_model, 2, device=device, dtype=torch.float32)
        * (-math.log(10000.0) / d_model)
    )
    angles = pos * inv_freq[None, :]  # [F, d/2]
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(n_frames, d_model)


class ConvSubsampling(nn.Module):
    """``[B, F, n_mels]`` -> ``[B, F', d]`` with ``F' ~ F/4`` (40 ms frames at a 10 ms hop)."""

    def __init__(self, n_mels: int, d_model: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2),
            nn.ReLU(),
        )
        freq = ((n_mels - 3) // 2 + 1 - 3) // 2 + 1
        self.proj = nn.Linear(channels * freq, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.unsqueeze(1))  # [B, C, F', f']
        b, c, t, f = y.shape
        return self.proj(y.permute(0, 2, 1, 3).reshape(b, t, c * f))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, d_model * mult),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(d_model * mult, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with a key padding mask."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.attn_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x [B, T, d]``, ``mask [B, T]`` True on valid frames (None = all valid);
        ``attn_mask [T, T]`` True where query t may see key s (chunk streaming; None = all)."""
        b, t, d = x.shape
        qkv = (
            self.qkv(self.norm(x))
            .reshape(b, t, 3, self.n_heads, self.d_head)
            .permute(2, 0, 3, 1, 4)
        )
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, T, d_head]
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))  # [B, H, T, T]
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, torch.finfo(scores.dtype).min)
        weights = self.attn_dropout(torch.softmax(scores, dim=-1))
        y = (weights @ v).transpose(1, 2).reshape(b, t, d)
        return self.dropout(self.out(y))


class ConvModule(nn.Module):
    """Pointwise + GLU -> depthwise conv (kernel k) -> LayerNorm -> SiLU -> pointwise."""

    def __init__(self, d_model: int, kernel: int, dropout: float, causal: bool = False) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        # causal: zero left padding k-1 (applied in forward), no look-ahead; same weights
        self.left_pad = kernel - 1 if causal else 0
        self.depthwise = nn.Conv1d(
            d_model, d_model, kernel, padding=0 if causal else kernel // 2, groups=d_model
        )
        self.depth_norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        y = nn.functional.glu(self.pointwise_in(self.norm(x)), dim=-1)  # [B, T, d]
        if mask is not None:
            y = y.masked_fill(~mask[..., None], 0.0)
        y = y.transpose(1, 2)
        if self.left_pad:
            y = nn.functional.pad(y, (self.left_pad, 0))
        y = self.depthwise(y).transpose(1, 2)
        y = self.pointwise_out(nn.functional.silu(self.depth_norm(y)))
        return self.dropout(y)


class ConformerBlock(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.ff1 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.attn = SelfAttention(d, cfg.n_heads, cfg.dropout)
        self.conv = ConvModule(d, cfg.conv_kernel, cfg.dropout, causal=cfg.causal_conv)
        self.ff2 = FeedForward(d, cfg.ff_mult, cfg.dropout)
        self.norm = nn.LayerNorm(d)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, mask, attn_mask)
        x = x + self.conv(x, mask)
        x = x + 0.5 * self.ff2(x)
        x = self.norm(x)
        if mask is not None:
            x = x.masked_fill(~mask[..., None], 0.0)
        return x


class ConformerEncoder(nn.Module):
    """``feats [B, F, n_mels]`` -> one ``[B, F', d]`` output per block (and F' lengths)."""

    def __init__(self, n_mels: int, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        channels = cfg.subsampling_channels or cfg.d_model
        self.subsampling = ConvSubsampling(n_mels, cfg.d_model, channels)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(ConformerBlock(cfg) for _ in range(cfg.n_layers))

    def forward(
        self, feats: torch.Tensor, feat_lengths: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        x = self.subsampling(feats)
        x = self.input_dropout(x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)[None])
        lengths = None if feat_lengths is None else subsampled_lengths(feat_lengths)
        mask = None if lengths is None else length_mask(lengths, x.shape[1])
        if mask is not None:
            x = x.masked_fill(~mask[..., None], 0.0)
        outputs: list[torch.Tensor] = []
        for block in self.blocks:
            x = block(x, mask)
            outputs.append(x)
        return outputs, lengths
