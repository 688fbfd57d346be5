"""The per-frame speech-presence head: P(a talker is active) for each 40 ms encoder frame.

Why on the quality model: the runtime's speech gate (Silero) misses a fifth of the speech
windows at -5 dB SNR and costs 16 % of the model's CPU per window (issue #14). The quality
encoder already runs on every window; a head of ~10k weights on its layers costs nothing
beside it, and the simulator knows where the clean talker speaks, so labels are free
(``train/speech_data.py``). Trained with the rest of the model frozen
(``python -m train speech-head``), so the quality scores stay bit-identical.

Read-out: a learned softmax weighting over the encoder blocks' outputs (noise is
clearest in early layers, phonetic content in late ones) -> LayerNorm -> Linear(d, 64)
-> ReLU -> Linear(64, 1) -> sigmoid.

Frame clock: encoder frame ``j`` is made from log-mel frames ``4j .. 4j+6`` (two
kernel-3 stride-2 convolutions over 25 ms / 10 ms frames), i.e. input samples
``[640 j, 640 j + 1360)`` at 16 kHz; :func:`frame_centres` gives their centres.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SUBSAMPLING = 4  # two stride-2 convolutions (train/conformer.py)
RECEPTIVE_MEL_FRAMES = 7  # mel frames 4j .. 4j+6 feed encoder frame j


class SpeechHead(nn.Module):
    """``L x [B, T, d]`` block outputs -> speech probabilities ``[B, T]``."""

    def __init__(self, d_model: int, n_layers: int, hidden: int = 64) -> None:
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def mix(self, blocks: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Softmax-weighted sum of the block outputs ``[B, T, d]`` (a stacked ``[L, B, T, d]`` too)."""
        stacked = torch.stack(list(blocks)) if isinstance(blocks, list) else blocks
        weights = torch.softmax(self.layer_logits, dim=0)
        return (weights[:, None, None, None] * stacked).sum(dim=0)

    def logits(self, blocks: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(self.mix(blocks))).squeeze(-1)

    def forward(self, blocks: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(blocks))


def frame_centres(n_frames: int, hop_samples: int, win_samples: int) -> np.ndarray:
    """Centre sample of each encoder frame (the middle of its receptive field)."""
    span = (RECEPTIVE_MEL_FRAMES - 1) * hop_samples + win_samples
    return np.arange(n_frames) * SUBSAMPLING * hop_samples + span // 2
