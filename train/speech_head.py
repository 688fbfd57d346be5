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
    """``L x [B, T, d]`` block outputs -> speech probabilities ``[B, T]``.

    ``context`` (odd, frames): the first layer is a temporal convolution over that many
    40 ms frames (zero-padded at the window's edges), so the head can see the syllable-rate
    rhythm that tells speech from music and noise; 1 = a per-frame MLP.
    """

    def __init__(self, d_model: int, n_layers: int, hidden: int = 64, context: int = 1) -> None:
        super().__init__()
        if context < 1 or context % 2 == 0:
            raise ValueError(f"speech head context {context} must be odd and >= 1")
        self.context = context
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        self.norm = nn.LayerNorm(d_model)
        if context == 1:
            self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        else:
            self.conv = nn.Conv1d(d_model, hidden, context, padding=context // 2)
            self.out = nn.Linear(hidden, 1)

    def mix(self, blocks: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Softmax-weighted sum of the block outputs ``[B, T, d]`` (a stacked ``[L, B, T, d]`` too)."""
        stacked = torch.stack(list(blocks)) if isinstance(blocks, list) else blocks
        weights = torch.softmax(self.layer_logits, dim=0)
        return (weights[:, None, None, None] * stacked).sum(dim=0)

    def logits(self, blocks: list[torch.Tensor] | torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask [B, T]`` (training on padded batches): padded frames are zeroed before the
        convolution, exactly as the zero padding an unpadded window gets at its end."""
        x = self.norm(self.mix(blocks))
        if self.context == 1:
            return self.mlp(x).squeeze(-1)
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        h = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.out(h).squeeze(-1)

    def forward(self, blocks: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(blocks))


def frame_centres(n_frames: int, hop_samples: int, win_samples: int) -> np.ndarray:
    """Centre sample of each encoder frame (the middle of its receptive field)."""
    span = (RECEPTIVE_MEL_FRAMES - 1) * hop_samples + win_samples
    return np.arange(n_frames) * SUBSAMPLING * hop_samples + span // 2
