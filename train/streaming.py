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


def _readout(model: QualityModel, pooled: torch.Tensor, level: torch.Tensor,
             power_sums: torch.Tensor | None = None) -> torch.Tensor:
    """Scores from pooled statistics, the window's mean log-mel and, for a head with a level
    hinge, the window's power sums ``[N, 2]`` (sum of 10 ms frame powers, sum of their squares)."""
    head = model.quality_head
    extra = None if head.level is None else head.level(level / LEVEL_SCALE)
    if head.hinge is not None:
        if power_sums is None:
            raise ValueError("this head has a level hinge (model.head.level_hinge): pass power_sums")
        hinge = head.hinge(power_level_db(power_sums))
        extra = hinge if extra is None else extra + hinge
    return head.probe.readout(pooled, extra)


def chunk_power_sums(model: QualityModel, audio: torch.Tensor) -> torch.Tensor:
    """``[B, samples]`` -> ``[B, 2]``: the sum of its 10 ms frame powers and of their squares (what
    ``train.frontend.power_weighted_level_db`` reads, kept per chunk so a window's is a sum)."""
    frame = model.frontend.hop_samples
    p = torch.nn.functional.avg_pool1d((audio * audio).unsqueeze(1), frame, frame).squeeze(1)
    return torch.stack([p.sum(dim=1), (p * p).sum(dim=1)], dim=1)


def power_level_db(power_sums: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` power sums -> the power-weighted level in dBFS ``[...]``, as the windowed model."""
    return 10.0 * (torch.log10(power_sums[..., 1] + 1e-20) - torch.log10(power_sums[..., 0] + 1e-10))


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
    power = None
    if model.quality_head.hinge is not None:  # the window's power sums, chunk by chunk like the level
        own = [chunk_power_sums(model, wav[:, tail: tail + n * step].reshape(b * n, step)).reshape(b, n, 2)] if n else []
        if k_part:
            own.append(chunk_power_sums(model, wav[:, tail + n * step: tail + n * step + k_part * SAMPLES_PER_FRAME])[:, None])
        pcum = torch.cumsum(torch.cat(own, dim=1), dim=1)
        power = pcum - torch.where((start > 0)[None, :, None], pcum[:, before], 0.0)  # [B, n_rows, 2]
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
        power = None if power is None else power[:, rows]
        n_rows = int(idx.shape[0])
    keep = (chunk_of[None, :] <= idx[:, None]) & (chunk_of[None, :] >= idx[:, None] - n_left)
    t = n_frames_enc
    pooled = _pool(
        model,
        h[:, None].expand(b, n_rows, t, h.shape[-1]).reshape(b * n_rows, t, -1),
        keep[None].expand(b, n_rows, t).reshape(b * n_rows, t),
    )
    return _readout(model, pooled, level.reshape(b * n_rows, -1),
                    None if power is None else power.reshape(b * n_rows, 2)).reshape(b, n_rows, -1)


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

    ``per_layer_state``: the key, value and conv caches are one state tensor per layer
    (``keys{i}``, ``values{i}`` ``[H, left, dh]``, ``conv{i}`` ``[k-1, d]``) instead of the
    stacked ``kv [L, 2, H, left, dh]`` and ``conv [L, k-1, d]``: the same numbers, but the
    ONNX graph no longer splits and re-stacks ~5 MB of state per call of 8 streams
    (``python -m train export-streaming`` writes this layout; older files are stacked).
    """

    positions: torch.Tensor  # [K, d] chunk-local sinusoids (a buffer)

    def __init__(
        self, model: QualityModel, chunk_frames: int | None = None, per_layer_state: bool = False
    ) -> None:
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
        self.states: tuple[StateSpec, ...] = (
            StateSpec("tail", (self.tail,)),
            StateSpec("mel_sums", (self.n_left, n_mels)),
            StateSpec("valid", (self.n_left,)),
        )
        self.n_layers = enc.n_layers
        self.per_layer_state = per_layer_state
        if per_layer_state:  # one tensor per layer and cache: no split/stack of a stacked state
            self.states += (
                *(StateSpec(f"keys{i}", (enc.n_heads, self.left, self.d_head)) for i in range(enc.n_layers)),
                *(StateSpec(f"values{i}", (enc.n_heads, self.left, self.d_head)) for i in range(enc.n_layers)),
                *(StateSpec(f"conv{i}", (enc.conv_kernel - 1, enc.d_model)) for i in range(enc.n_layers)),
            )
        else:
            self.states += (
                StateSpec("kv", (enc.n_layers, 2, enc.n_heads, self.left, self.d_head)),
                StateSpec("conv", (enc.n_layers, enc.conv_kernel - 1, enc.d_model)),
            )
        self.states += (StateSpec("head", (self.left, model.cfg.head.pool_hidden)),)
        self.hinge = model.quality_head.hinge is not None
        if self.hinge:  # the previous chunks' power sums, for the level hinge (only then: old layouts stay)
            self.states += (StateSpec("power_sums", (self.n_left, 2)),)

    def init_state(self, batch: int = 1) -> list[torch.Tensor]:
        return [torch.zeros(batch, *s.shape) for s in self.states]

    def _block(
        self,
        block: ConformerBlock,
        x: torch.Tensor,
        keys_in: torch.Tensor,
        values_in: torch.Tensor,
        conv: torch.Tensor,
        key_bias: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One block on ``x [B, K, d]`` with its caches ``keys_in``, ``values_in``
        ``[B, H, left, dh]`` and ``conv [B, k-1, d]``; returns ``x`` and the three new caches.

        ``key_bias [B, 1, 1, left + K]``: 0 for a kept key, the dtype's minimum for a masked
        one, added to the scores: after the softmax the same as ``masked_fill`` (the chunk's
        own keys are always kept), and one broadcast Add in ONNX is cheaper than a Where.
        Rows run as 2-D ``[B*K, d]`` so each Linear exports as one Gemm with its bias.

        The depthwise conv runs as a 2-D conv over ``[B, d, 1, k-1 + K]`` with the same
        weights (``[d, 1, 1, kernel]``): the same sums, but onnxruntime's NCHWc depthwise
        kernel takes it, ~5x faster than its 1-D grouped conv (results/streaming/profile-v10.md)."""
        b, k, d = x.shape
        x = x.reshape(b * k, d)
        x = x + 0.5 * block.ff1(x)
        att = block.attn
        qkv = att.qkv(att.norm(x)).reshape(b, k, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        keys = torch.cat([keys_in, qkv[1]], dim=2)  # [B, H, left + K, dh]
        values = torch.cat([values_in, qkv[2]], dim=2)
        scores = (qkv[0] @ keys.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))
        scores = scores + key_bias
        y = (torch.softmax(scores, dim=-1) @ values).transpose(1, 2).reshape(b * k, d)
        x = x + att.out(y)
        cm = block.conv
        g = nn.functional.glu(cm.pointwise_in(cm.norm(x)), dim=-1).reshape(b, k, d)
        g_all = torch.cat([conv, g], dim=1)  # [B, k-1 + K, d]
        dw = cm.depthwise
        y = nn.functional.conv2d(
            g_all.transpose(1, 2).unsqueeze(2), dw.weight.unsqueeze(2), dw.bias, groups=dw.groups
        ).squeeze(2).transpose(1, 2).reshape(b * k, d)
        x = x + cm.pointwise_out(nn.functional.silu(cm.depth_norm(y)))
        x = block.norm(x + 0.5 * block.ff2(x)).reshape(b, k, d)
        return x, keys[:, :, k:], values[:, :, k:], g_all[:, k:]

    def forward(
        self,
        audio: torch.Tensor,
        tail: torch.Tensor,
        mel_sums: torch.Tensor,
        valid: torch.Tensor,
        *caches: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """``caches``: ``kv, conv, head`` (stacked), or with ``per_layer_state``
        ``keys0..keysN-1, values0..valuesN-1, conv0..convN-1, head``; the outputs follow
        :attr:`states` in the same order, after ``scores``."""
        model, big_k, n_layers = self.model, self.k, self.n_layers
        power_in = caches[-1] if self.hinge else None
        if self.hinge:
            caches = caches[:-1]
        head = caches[-1]
        if self.per_layer_state:
            keys_in = list(caches[:n_layers])
            values_in = list(caches[n_layers : 2 * n_layers])
            conv_in = list(caches[2 * n_layers : 3 * n_layers])
        else:
            kv, conv = caches[0], caches[1]
            keys_in = [kv[:, i, 0] for i in range(n_layers)]
            values_in = [kv[:, i, 1] for i in range(n_layers)]
            conv_in = [conv[:, i] for i in range(n_layers)]
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
        key_bias = torch.zeros_like(key_keep, dtype=x.dtype).masked_fill(
            ~key_keep, torch.finfo(x.dtype).min
        )[:, None, None, :]
        outputs, new_keys, new_values, new_conv = [], [], [], []
        for i, block in enumerate(enc.blocks):
            x, k_i, v_i, conv_i = self._block(block, x, keys_in[i], values_in[i], conv_in[i], key_bias)
            outputs.append(x)
            new_keys.append(k_i)
            new_values.append(v_i)
            new_conv.append(conv_i)
        h = torch.cat([head, _fused(model, outputs)], dim=1)  # [B, left + K, P]
        own_power = chunk_power_sums(model, audio) if power_in is not None else None
        window_power = None if power_in is None or own_power is None else power_in.sum(dim=1) + own_power
        scores = _readout(model, _pool(model, h, key_keep), level, window_power)
        if self.per_layer_state:
            layer_states: tuple[torch.Tensor, ...] = (*new_keys, *new_values, *new_conv)
        else:
            new_kv = [torch.stack([a, v], dim=1) for a, v in zip(new_keys, new_values)]
            layer_states = (torch.stack(new_kv, dim=1), torch.stack(new_conv, dim=1))
        return (
            scores,
            seg[:, -self.tail :],
            torch.cat([mel_sums, owned[:, None]], dim=1)[:, 1:],
            torch.cat([valid, torch.ones_like(valid[:, :1])], dim=1)[:, 1:],
            *layer_states,
            h[:, k:],
            *(() if power_in is None or own_power is None else
              (torch.cat([power_in, own_power[:, None]], dim=1)[:, 1:],)),
        )
