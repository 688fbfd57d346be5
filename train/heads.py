"""Read-outs on top of frame sequences: attentive statistics pooling, layer attention,
the quality head and the layer-wise probe.

Pooling has one attention query per output dimension (``n_queries``): noisiness is best
judged in speech pauses, coloration on speech, so each of the five scores may weight
frames differently. Each query yields a weighted mean and standard deviation (Okabe et al.
2018); scores are ``score_min + (score_max - score_min) * sigmoid(.)``, so always in range.
"""

from __future__ import annotations

import torch
from torch import nn

from train.config import HeadConfig
from train.frontend import length_mask

STD_FLOOR = 1e-5  # variance floor: keeps sqrt's gradient finite on constant inputs
LEVEL_SCALE = 10.0  # log-power units (10 nepers ~ 43 dB) -> O(1) inputs for the level unit


class AttentiveStatsPooling(nn.Module):
    """``x [B, T, D]``, ``lengths [B]`` -> ``[B, n_queries, 2D]`` (weighted mean ++ std)."""

    def __init__(self, in_dim: int, n_queries: int = 1, attn_hidden: int = 64) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Linear(in_dim, attn_hidden), nn.Tanh(), nn.Linear(attn_hidden, n_queries)
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        logits = self.attention(x)  # [B, T, Q]
        if lengths is not None:
            mask = length_mask(lengths, x.shape[1])[..., None]
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits, dim=1).transpose(1, 2)  # [B, Q, T]
        mean = weights @ x  # [B, Q, D]
        var = weights @ (x * x) - mean * mean
        std = torch.sqrt(torch.clamp(var, min=STD_FLOOR))
        return torch.cat([mean, std], dim=-1)


class ScoreReadout(nn.Module):
    """One linear unit per query on its pooled statistics, then a sigmoid scaled to range."""

    def __init__(self, pooled_dim: int, n_outputs: int, score_min: float, score_max: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_outputs, pooled_dim) / pooled_dim**0.5)
        self.bias = nn.Parameter(torch.zeros(n_outputs))
        self.score_min = score_min
        self.score_span = score_max - score_min

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """``[B, K, P]`` -> pre-sigmoid logits ``[B, K]``."""
        return (pooled * self.weight[None]).sum(dim=-1) + self.bias

    def scale(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> scores in ``[score_min, score_max]``."""
        return self.score_min + self.score_span * torch.sigmoid(logits)

    def forward(
        self, pooled: torch.Tensor, extra_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[B, K, P]`` (+ optional ``[B, K]`` added before the sigmoid) -> scores ``[B, K]``."""
        logits = self.logits(pooled)
        if extra_logits is not None:
            logits = logits + extra_logits
        return self.scale(logits)


class Probe(nn.Module):
    """FC -> attentive statistics pooling -> linear -> sigmoid scaled to [1, 5].

    The paper's probing classifier: trained on one frozen layer at a time.
    ``forward(x [B, T, in_dim], lengths [B] | None) -> [B, n_outputs]``.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int = 128,
        n_outputs: int = 5,
        score_min: float = 1.0,
        score_max: float = 5.0,
    ) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.pool = AttentiveStatsPooling(hidden, n_queries=n_outputs)
        self.readout = ScoreReadout(2 * hidden, n_outputs, score_min, score_max)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return self.readout(self.pool(self.fc(x), lengths))


class LayerAttention(nn.Module):
    """Per-frame softmax over encoder layers: ``L x [B, T, d]`` -> ``[B, T, d]``.

    Each frame scores every layer's vector (a shared linear unit plus a learned per-layer
    bias), so the model can, e.g., read noise from early layers and content from late ones.
    """

    def __init__(self, d_model: int, n_layers: int) -> None:
        super().__init__()
        self.score = nn.Linear(d_model, 1, bias=False)
        self.layer_bias = nn.Parameter(torch.zeros(n_layers))

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(layers, dim=2)  # [B, T, L, d]
        logits = self.score(stacked).squeeze(-1) + self.layer_bias  # [B, T, L]
        weights = torch.softmax(logits, dim=-1).unsqueeze(-1)
        return (weights * stacked).sum(dim=2)

    def mean_weights(self, layers: list[torch.Tensor]) -> torch.Tensor:
        """Average attention per layer ``[L]`` (for logs and plots)."""
        stacked = torch.stack(layers, dim=2)
        logits = self.score(stacked).squeeze(-1) + self.layer_bias
        return torch.softmax(logits, dim=-1).mean(dim=(0, 1))


class LevelHinge(nn.Module):
    """Logit offsets that act only outside ``[quiet_db, hot_db]`` of a window's level.

    Why: listeners (and NISQA) rate a whisper-quiet talker and a hot, clipping input low, but the
    students barely move (``train/level_hinge.py``). Two hinge features of the power-weighted level
    (``train.frontend.power_weighted_level_db``), ``relu(quiet - L)`` and ``relu(L - hot)`` in
    units of 10 dB, with one weight per output each: zero weights (the start) or any input at a
    normal level leave the scores exactly as they were.
    """

    def __init__(self, n_outputs: int, quiet_db: float, hot_db: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(2, n_outputs))
        self.quiet_db = quiet_db
        self.hot_db = hot_db

    def features(self, level_db: torch.Tensor) -> torch.Tensor:
        """``[B]`` dBFS -> ``[B, 2]`` (quiet, hot) hinge values."""
        return torch.stack([torch.relu(self.quiet_db - level_db), torch.relu(level_db - self.hot_db)], dim=1) / 10.0

    def forward(self, level_db: torch.Tensor) -> torch.Tensor:
        return self.features(level_db) @ self.weight


class QualityHead(nn.Module):
    """Encoder block outputs -> five scores ``[B, n_outputs]``.

    ``layer_attention=False`` reads only the last block (the paper's "last layer" row).
    ``level_input=True`` adds a linear term on the utterance's mean log-mel (``level_dim``
    values, what CMS removed), so loudness stays observable; it starts at zero, i.e. as
    the paper's head, and ``--set model.head.level_input=false`` is the paper exactly.
    """

    def __init__(self, d_model: int, n_layers: int, cfg: HeadConfig, level_dim: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.layer_attention = LayerAttention(d_model, n_layers) if cfg.layer_attention else None
        self.probe = Probe(d_model, cfg.pool_hidden, cfg.n_outputs, cfg.score_min, cfg.score_max)
        self.level: nn.Linear | None = None
        self.level_mlp: nn.Sequential | None = None
        if cfg.level_input and level_dim > 0:
            self.level = nn.Linear(level_dim, cfg.n_outputs)
            nn.init.zeros_(self.level.weight)
            nn.init.zeros_(self.level.bias)
            if cfg.level_hidden:  # loudness is an inverted U in level: a linear term cannot draw it
                self.level_mlp = nn.Sequential(
                    nn.Linear(level_dim, cfg.level_hidden), nn.Tanh(), nn.Linear(cfg.level_hidden, cfg.n_outputs)
                )
                nn.init.zeros_(self.level_mlp[2].weight)  # starts as the head without it
                nn.init.zeros_(self.level_mlp[2].bias)
        self.hinge = LevelHinge(cfg.n_outputs, cfg.hinge_quiet_db, cfg.hinge_hot_db) if cfg.level_hinge else None

    def forward(
        self,
        layers: list[torch.Tensor],
        lengths: torch.Tensor | None,
        level: torch.Tensor | None = None,
        level_db: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``layers``: block outputs ``[B, T, d]``; ``level``: mean log-mel ``[B, level_dim]``;
        ``level_db``: power-weighted level ``[B]`` (needed with ``level_hinge``)."""
        out = self.logits(layers, lengths, level)
        if self.level_mlp is not None and level is not None:
            out = out + self.level_mlp(level / LEVEL_SCALE)
        if self.hinge is not None:
            if level_db is None:
                raise ValueError("this head has a level hinge (model.head.level_hinge): pass level_db")
            out = out + self.hinge(level_db)
        return self.probe.readout.scale(out)

    def logits(
        self,
        layers: list[torch.Tensor],
        lengths: torch.Tensor | None,
        level: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pre-sigmoid logits ``[B, n_outputs]`` of :meth:`forward` without the level MLP
        (what ``train/level_head.py`` caches and fits the MLP on)."""
        x = layers[-1] if self.layer_attention is None else self.layer_attention(layers)
        out = self.probe.readout.logits(self.probe.pool(self.probe.fc(x), lengths))
        if self.level is not None:
            if level is None:
                raise ValueError("this head was built with level_input=True: pass level")
            out = out + self.level(level / LEVEL_SCALE)
        return out
