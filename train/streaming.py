"""Chunk-streaming quality model: each chunk of audio is encoded once, with cached context.

Why: the windowed model re-encodes the whole 4 s window every 1 s hop, so each second of
audio passes the Conformer four times. Here a stream is cut into chunks of ``K`` encoder
frames (``K = 25``: 1 s); each chunk is encoded once, attending to itself and ``left_frames``
cached frames before it (75: 3 s), and a score is read over the last ``K + left_frames``
frames (4 s), as the windowed model's score is over its window.

Two forwards compute exactly the same numbers (``tests/train/test_streaming.py``):

- :func:`chunked_forward`: the whole sequence at once with chunk masks (training, parity);
- :class:`StreamingStep`: one chunk plus explicit state in, scores plus new state out (what
  ``python -m train export-streaming`` writes to ONNX; the runtime keeps one state per stream).

Both also score a stream's *final partial chunk* (``k' < K`` whole 40 ms frames after the
last whole chunk; ``chunked_forward(..., final_partial=True)``), so a clip of 1.0-1.04 s
gets a score and a 2.9 s clip's last 0.86 s is heard; nothing may follow a partial chunk.

Framing. A stream's first :data:`TAIL_SAMPLES` (720, 45 ms) samples prime the state; chunk
``c`` is then the next ``640 K`` samples. With the tail, a chunk yields ``4K + 3`` log-mel
frames (10 ms), the last 3 of which the next chunk recomputes: exactly what the x4 valid
subsampling needs for ``K`` new 40 ms frames. Chunk ``c`` "owns" log-mel frames
``[4Kc, 4Kc + 4K)``.

What replaces the non-causal parts of the windowed model:

- CMS (per-utterance mean subtraction) becomes a chunk-causal mean: chunk ``c``'s frames
  have the mean log-mel of the frames owned by chunks ``c - L .. c`` (``L = left/K``)
  subtracted, i.e. the mean of the window that ends with this chunk (for the last chunk of
  a 4 s window this is the windowed model's CMS mean).
- The head's level input (mean log-mel) is that same mean.
- The depthwise conv is causal (``encoder.causal_conv``: k-1 cached frames per layer) and
  positions are sinusoids of a frame's index within its chunk (``encoder.positions="chunk"``),
  identical in both forwards and bounded however long a call lasts.
- The head: layer attention acts per frame, so the fused frame after the head's first
  linear layer is cached for ``left_frames`` and attentive statistics pooling runs over the
  cached frames plus the chunk's (the same as re-running it over every layer's cached frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from train.conformer import ConformerBlock, sinusoidal_positions
from train.frontend import LOG_FLOOR
from train.heads import LEVEL_SCALE, STD_FLOOR
from train.model import QualityModel

SUB_CONTEXT = 3  # extra log-mel frames the x4 subsampling needs beyond 4 per output frame
SAMPLES_PER_FRAME = 640  # 4 log-mel hops of 160 samples at 16 kHz


def tail_samples(model: QualityModel) -> int:
    """Samples kept between chunks: ``SUB_CONTEXT`` hops plus one analysis window (720)."""
    fe = model.frontend
    return (SUB_CONTEXT - 1) * fe.hop_samples + fe.win_samples


def chunk_samples(model: QualityModel, chunk_frames: int) -> int:
    return chunk_frames * 4 * model.frontend.hop_samples


def raw_logmel(model: QualityModel, wav: torch.Tensor) -> torch.Tensor:
    """Log-mel ``[B, F, n_mels]`` without CMS (the same ops as ``train.frontend.LogMel``)."""
    fe = model.frontend
    spec = torch.nn.functional.conv1d(wav.unsqueeze(1), fe.dft, stride=fe.hop_samples)
    real, imag = spec[:, : fe.n_bins], spec[:, fe.n_bins :]
    power = (real * real + imag * imag).transpose(1, 2)
    return torch.log(torch.clamp(power @ fe.fbank, min=LOG_FLOOR))


def check_streamable(model: QualityModel) -> None:
    cfg = model.cfg
    if not cfg.streaming.enabled:
        raise ValueError("model.streaming.enabled is false: this is a windowed model")
    if cfg.frontend.hop_samples * 4 != SAMPLES_PER_FRAME or cfg.frontend.win_samples > 400:
        raise ValueError("streaming assumes 16 kHz, a 10 ms hop and a window <= 25 ms")


def _pool(model: QualityModel, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Attentive statistics pooling of ``h [N, T, P]`` over frames where ``keep [N, T]``."""
    pool = model.quality_head.probe.pool
    logits = pool.attention(h).masked_fill(~keep[..., None], torch.finfo(h.dtype).min)
    weights = torch.softmax(logits, dim=1).transpose(1, 2)  # [N, Q, T]
    mean = weights @ h
    var = weights @ (h * h) - mean * mean
    return torch.cat([mean, torch.sqrt(torch.clamp(var, min=STD_FLOOR))], dim=-1)


def _readout(model: QualityModel, pooled: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    head = model.quality_head
    extra = None if head.level is None else head.level(level / LEVEL_SCALE)
    return head.probe.readout(pooled, extra)


def _fused(model: QualityModel, outputs: list[torch.Tensor]) -> torch.Tensor:
    """Per-frame head features ``[B, T, pool_hidden]`` (layer attention, then the FC)."""
    head = model.quality_head
    x = outputs[-1] if head.layer_attention is None else head.layer_attention(outputs)
    return head.probe.fc(x)


def stream_rows(model: QualityModel, n_samples: int, chunk_frames: int) -> tuple[int, int]:
    """``(whole chunks, frames of the final partial chunk)`` in a stream of ``n_samples``:
    the samples after the tail and the last whole chunk, rounded down to whole 40 ms frames."""
    tail, step = tail_samples(model), chunk_samples(model, chunk_frames)
    rest = max(n_samples - tail, 0)
    n = rest // step
    return n, (rest - n * step) // SAMPLES_PER_FRAME


def chunked_forward(
    model: QualityModel,
    wav: torch.Tensor,
    chunk_frames: int | None = None,
    final_partial: bool = False,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scores after every chunk ``[B, n_rows, n_outputs]``, the whole sequence at once.

    ``rows``: only these row indices are pooled and read out (``[B, len(rows), n_outputs]``),
    the same numbers as the full result's columns; dense distillation uses it to skip the rows
    that carry no loss.

    ``wav [B, T]``: a stream from its first sample. Samples after the last whole chunk are
    ignored, unless ``final_partial``: then at least one 40 ms frame of them (rounded down to
    whole frames, see :func:`stream_rows`) is a final partial chunk of ``k' < K`` frames and
    its score is the last row (its window: the ``left`` frames before it plus its own). This
    is the masked full-sequence forward that :class:`StreamingStep` reproduces.
    """
    check_streamable(model)
    s = model.cfg.streaming
    k = chunk_frames or s.chunk_frames
    if s.left_frames % k:
        raise ValueError(f"chunk of {k} frames does not divide left_frames {s.left_frames}")
    n_left = s.left_frames // k
    tail, step = tail_samples(model), chunk_samples(model, k)
    n, k_part = stream_rows(model, wav.shape[1], k)
    if not final_partial:
        k_part = 0
    if n < 1 and k_part < 1:
        need = tail + (SAMPLES_PER_FRAME if final_partial else step)
        raise ValueError(f"{wav.shape[1]} samples: shorter than one chunk ({need})")
    b = wav.shape[0]
    n_rows = n + (k_part > 0)
    n_frames = 4 * (k * n + k_part)  # log-mel frames owned by the rows' chunks
    mel = raw_logmel(model, wav[:, : tail + n_frames * model.frontend.hop_samples])
    assert mel.shape[1] == n_frames + SUB_CONTEXT, mel.shape
    seg_len = 4 * k + SUB_CONTEXT
    owned = mel[:, : 4 * k * n].reshape(b, n, 4 * k, mel.shape[2]).sum(dim=2)  # [B, n, n_mels]
    counts = torch.full((n,), 4.0 * k, dtype=mel.dtype, device=wav.device)
    if k_part:
        part_sum = mel[:, 4 * k * n : n_frames].sum(dim=1, keepdim=True)
        owned = torch.cat([owned, part_sum], dim=1)
        counts = torch.cat([counts, counts.new_full((1,), 4.0 * k_part)])
    csum = torch.cumsum(owned, dim=1)
    ccount = torch.cumsum(counts, dim=0)
    idx = torch.arange(n_rows, device=wav.device)
    start = torch.clamp(idx - n_left, min=0)
    # sum over chunks start..c = csum[c] - csum[start - 1] (nothing to take off when start = 0)
    before = torch.clamp(start - 1, min=0)
    win_sum = csum - torch.where((start > 0)[None, :, None], csum[:, before], 0.0)
    count = ccount - torch.where(start > 0, ccount[before], 0.0)  # [n_rows], whole numbers
    level = win_sum / count[None, :, None]  # [B, n_rows, n_mels]
    enc = model.encoder
    parts = []
    if n:
        segments = mel.unfold(1, seg_len, 4 * k)[:, :n].transpose(2, 3)  # [B, n, 4K+3, n_mels]
        if model.cfg.frontend.cms:
            segments = segments - level[:, :n, None, :]
        parts.append(enc.subsampling(segments.reshape(b * n, seg_len, -1)).reshape(b, n * k, -1))
    if k_part:
        last = mel[:, 4 * k * n :]  # [B, 4k' + 3, n_mels]
        if model.cfg.frontend.cms:
            last = last - level[:, n:, :]
        parts.append(enc.subsampling(last))
    x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
    positions = sinusoidal_positions(k, x.shape[2], x.device)
    pos = torch.cat([positions.repeat(n, 1), positions[:k_part]], dim=0)
    x = enc.input_dropout(x + pos[None])
    n_frames_enc = n * k + k_part
    chunk_of = torch.arange(n_frames_enc, device=wav.device) // k
    attn_mask = (chunk_of[None, :] <= chunk_of[:, None]) & (
        chunk_of[None, :] >= chunk_of[:, None] - n_left
    )
    outputs: list[torch.Tensor] = []
    for block in enc.blocks:
        x = block(x, None, attn_mask)
        outputs.append(x)
    h = _fused(model, outputs)  # [B, nK + k', P]
    if rows is not None:
        idx, level = idx[rows], level[:, rows]
        n_rows = int(idx.shape[0])
    keep = (chunk_of[None, :] <= idx[:, None]) & (chunk_of[None, :] >= idx[:, None] - n_left)
    t = n_frames_enc
    pooled = _pool(
        model,
        h[:, None].expand(b, n_rows, t, h.shape[-1]).reshape(b * n_rows, t, -1),
        keep[None].expand(b, n_rows, t).reshape(b * n_rows, t),
    )
    return _readout(model, pooled, level.reshape(b * n_rows, -1)).reshape(b, n_rows, -1)


def last_chunk_scores(
    model: QualityModel, wav: torch.Tensor, wav_lengths: torch.Tensor | None, chunk_frames: int
) -> torch.Tensor:
    """``[B, n_outputs]``: each row's score after its last whole chunk (``QualityModel.forward``)."""
    scores = chunked_forward(model, wav, chunk_frames)
    n = scores.shape[1]
    if wav_lengths is None:
        return scores[:, -1]
    step = chunk_samples(model, chunk_frames)
    last = torch.clamp((wav_lengths - tail_samples(model)) // step, min=1, max=n) - 1
    return scores[torch.arange(scores.shape[0], device=scores.device), last]


@dataclass(frozen=True)
class StateSpec:
    """One state tensor: its name and shape without the leading batch axis; starts at zero."""

    name: str
    shape: tuple[int, ...]


class StreamingStep(nn.Module):
    """One chunk per call: ``(audio [B, 640K], *state) -> (scores [B, 5], *new_state)``.

    Every state starts at zero except ``tail``, which holds the stream's first
    ``tail_samples`` samples. ``valid [B, L]`` marks which of the ``L`` previous chunks
    exist (0 at a stream's start), so a fresh state is a new stream.

    Partial chunks: ``audio`` may be any whole number ``k'`` of 40 ms frames (640 samples)
    from 1 to ``K``; ``k' < K`` scores a stream's last samples (a short clip, the end of a
    file) over the ``left`` cached frames plus its own. A partial chunk *ends* a stream: the
    state it returns must not be continued, since ``mel_sums``/``valid`` hold one slot per
    chunk and assume every previous chunk owned ``4K`` log-mel frames (its frame caches do
    keep the last ``left`` frames, so only those slots are off). A whole chunk computes
    exactly what it did before partial chunks existed.
    """

    positions: torch.Tensor  # [K, d] chunk-local sinusoids (a buffer)

    def __init__(self, model: QualityModel, chunk_frames: int | None = None) -> None:
        super().__init__()
        check_streamable(model)
        self.model = model.eval()
        s = model.cfg.streaming
        self.k = chunk_frames or s.chunk_frames
        if s.left_frames % self.k:
            raise ValueError(f"chunk of {self.k} frames does not divide left_frames {s.left_frames}")
        self.left = s.left_frames
        self.n_left = s.left_frames // self.k
        enc = model.cfg.encoder
        self.n_heads, self.d_head = enc.n_heads, enc.d_model // enc.n_heads
        self.tail = tail_samples(model)
        self.chunk_samples = chunk_samples(model, self.k)
        self.register_buffer(
            "positions", sinusoidal_positions(self.k, enc.d_model, torch.device("cpu")), persistent=False
        )
        n_mels = model.cfg.frontend.n_mels
        self.states = (
            StateSpec("tail", (self.tail,)),
            StateSpec("mel_sums", (self.n_left, n_mels)),
            StateSpec("valid", (self.n_left,)),
            StateSpec("kv", (enc.n_layers, 2, enc.n_heads, self.left, self.d_head)),
            StateSpec("conv", (enc.n_layers, enc.conv_kernel - 1, enc.d_model)),
            StateSpec("head", (self.left, model.cfg.head.pool_hidden)),
        )

    def init_state(self, batch: int = 1) -> list[torch.Tensor]:
        return [torch.zeros(batch, *s.shape) for s in self.states]

    def _block(
        self,
        block: ConformerBlock,
        x: torch.Tensor,
        kv: torch.Tensor,
        conv: torch.Tensor,
        key_keep: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One block on ``x [B, K, d]`` with its caches ``kv [B, 2, H, left, dh]``,
        ``conv [B, k-1, d]``; ``key_keep [B, left + K]`` bool."""
        b, k, d = x.shape
        x = x + 0.5 * block.ff1(x)
        att = block.attn
        qkv = att.qkv(att.norm(x)).reshape(b, k, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        keys = torch.cat([kv[:, 0], qkv[1]], dim=2)  # [B, H, left + K, dh]
        values = torch.cat([kv[:, 1], qkv[2]], dim=2)
        scores = (qkv[0] @ keys.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))
        scores = scores.masked_fill(~key_keep[:, None, None, :], torch.finfo(scores.dtype).min)
        y = (torch.softmax(scores, dim=-1) @ values).transpose(1, 2).reshape(b, k, d)
        x = x + att.out(y)
        cm = block.conv
        g = nn.functional.glu(cm.pointwise_in(cm.norm(x)), dim=-1)
        g_all = torch.cat([conv, g], dim=1)  # [B, k-1 + K, d]
        y = cm.depthwise(g_all.transpose(1, 2)).transpose(1, 2)
        x = x + cm.pointwise_out(nn.functional.silu(cm.depth_norm(y)))
        x = block.norm(x + 0.5 * block.ff2(x))
        new_kv = torch.stack([keys[:, :, k:], values[:, :, k:]], dim=1)
        return x, new_kv, g_all[:, k:]

    def forward(
        self,
        audio: torch.Tensor,
        tail: torch.Tensor,
        mel_sums: torch.Tensor,
        valid: torch.Tensor,
        kv: torch.Tensor,
        conv: torch.Tensor,
        head: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        model, big_k = self.model, self.k
        b = audio.shape[0]
        seg = torch.cat([tail, audio], dim=1)
        mel = raw_logmel(model, seg)  # [B, 4k' + 3, n_mels]
        n_own = mel.shape[1] - SUB_CONTEXT  # 4k': log-mel frames this chunk owns
        owned = mel[:, :n_own].sum(dim=1)  # [B, n_mels]
        # previous whole chunks count 4K frames each; (v + 1) 4K = v 4K + 4K exactly in float
        count = valid.sum(dim=1, keepdim=True) * (4 * big_k) + n_own
        level = (mel_sums.sum(dim=1) + owned) / count
        if model.cfg.frontend.cms:
            mel = mel - level[:, None, :]
        enc = model.encoder
        x = enc.subsampling(mel)  # [B, k', d]
        k = x.shape[1]
        x = x + self.positions[None, :k]
        keep_prev = (valid > 0.5)[:, :, None].expand(b, self.n_left, big_k).reshape(b, self.left)
        key_keep = torch.cat([keep_prev, torch.ones_like(x[:, :, 0], dtype=torch.bool)], dim=1)
        outputs, new_kv, new_conv = [], [], []
        for i, block in enumerate(enc.blocks):
            x, kv_i, conv_i = self._block(block, x, kv[:, i], conv[:, i], key_keep)
            outputs.append(x)
            new_kv.append(kv_i)
            new_conv.append(conv_i)
        h = torch.cat([head, _fused(model, outputs)], dim=1)  # [B, left + K, P]
        scores = _readout(model, _pool(model, h, key_keep), level)
        return (
            scores,
            seg[:, -self.tail :],
            torch.cat([mel_sums, owned[:, None]], dim=1)[:, 1:],
            torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1)[:, 1:],
            torch.stack(new_kv, dim=1),
            torch.stack(new_conv, dim=1),
            h[:, k:],
        )
