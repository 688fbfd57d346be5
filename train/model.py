"""QualityModel: log-mel -> Conformer encoder -> (CTC head | quality head).

One module serves every stage: ASR pretraining uses :meth:`QualityModel.ctc_log_probs`,
probing uses :meth:`QualityModel.encode` (all layers), fine-tuning and export use
:meth:`QualityModel.forward` (waveform in, five scores out, order ``livesqa.spec.DIMENSIONS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train.config import ModelConfig
from train.conformer import ConformerEncoder
from train.frontend import LogMel, power_weighted_level_db
from train.heads import QualityHead
from train.speech_head import SpeechHead


@dataclass
class EncoderOutput:
    """``layers[0]``: log-mel ``[B, F, n_mels]`` (10 ms); ``layers[i]``: block i ``[B, F', d]``
    (40 ms). ``lengths[i]``: valid frames of ``layers[i]``, ``[B]`` int64."""

    layers: list[torch.Tensor]
    lengths: list[torch.Tensor]


class QualityModel(nn.Module):
    """Waveform ``[B, T]`` float32 at ``frontend.sample_rate_hz`` -> scores ``[B, 5]`` in [1, 5]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        enc = cfg.encoder
        self.frontend = LogMel(cfg.frontend)
        self.encoder = ConformerEncoder(cfg.frontend.n_mels, enc)
        self.ctc_head = nn.Linear(enc.d_model, cfg.vocab_size)
        self.quality_head = QualityHead(enc.d_model, enc.n_layers, cfg.head, cfg.frontend.n_mels)
        # optional per-frame speech presence (model.speech_head); None keeps old state dicts exact
        self.speech_head = (SpeechHead(enc.d_model, enc.n_layers, context=cfg.speech_context)
                            if cfg.speech_head else None)

    def features(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``[B, F, n_mels]`` and valid frames ``[B]``."""
        feats, lengths = self.frontend(wav, wav_lengths)
        assert lengths is not None
        return feats, lengths

    def _run(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor | None
    ) -> tuple[
        torch.Tensor, torch.Tensor | None, torch.Tensor, list[torch.Tensor], torch.Tensor | None
    ]:
        """(log-mel, its lengths, mean log-mel [B, n_mels], block outputs, their lengths)."""
        feats, feat_lengths, level = self.frontend.analyse(wav, wav_lengths)
        blocks, lengths = self.encoder(feats, feat_lengths)
        return feats, feat_lengths, level, blocks, lengths

    def encode(self, wav: torch.Tensor, wav_lengths: torch.Tensor | None = None) -> EncoderOutput:
        """Every layer's output (log-mel first) with valid lengths, for probing and analysis."""
        if wav_lengths is None:
            wav_lengths = torch.full(
                (wav.shape[0],), wav.shape[1], dtype=torch.long, device=wav.device
            )
        feats, feat_lengths, _, blocks, lengths = self._run(wav, wav_lengths)
        assert feat_lengths is not None and lengths is not None
        return EncoderOutput(
            layers=[feats, *blocks], lengths=[feat_lengths] + [lengths] * len(blocks)
        )

    def ctc_log_probs(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probabilities ``[B, F', vocab]`` (blank = 0) and output lengths ``[B]``."""
        _, _, _, blocks, lengths = self._run(wav, wav_lengths)
        assert lengths is not None
        return torch.log_softmax(self.ctc_head(blocks[-1]), dim=-1), lengths

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``[B, n_outputs]`` (mos, noi, col, dis, loud); ``wav_lengths=None``: full rows.

        A streaming model (``model.streaming.enabled``) scores each row's last whole chunk with
        chunk masks (``train.streaming``); in training the chunk size is drawn per batch from
        ``streaming.dynamic_chunks`` so one model serves several chunk sizes.
        """
        s = self.cfg.streaming
        if s.enabled:
            from train.streaming import last_chunk_scores

            k = s.chunk_frames
            if self.training and s.dynamic_chunks:
                k = s.dynamic_chunks[int(torch.randint(len(s.dynamic_chunks), ()).item())]
            return last_chunk_scores(self, wav, wav_lengths, k)
        _, _, level, blocks, lengths = self._run(wav, wav_lengths)
        return self.quality_head(blocks, lengths, level, self.level_db(wav, wav_lengths))

    def level_db(self, wav: torch.Tensor, wav_lengths: torch.Tensor | None) -> torch.Tensor | None:
        """The power-weighted level ``[B]`` the head's level hinge reads; None without one."""
        if self.quality_head.hinge is None:
            return None
        return power_weighted_level_db(wav, wav_lengths, self.frontend.hop_samples)

    def scores_and_speech(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[B, 5]`` and per-frame speech probabilities ``[B, F']`` (40 ms frames) from
        one encoder pass; needs ``model.speech_head``."""
        if self.speech_head is None:
            raise ValueError("this model has no speech head (model.speech_head=false)")
        _, _, level, blocks, lengths = self._run(wav, wav_lengths)
        return self.quality_head(blocks, lengths, level, self.level_db(wav, wav_lengths)), self.speech_head(blocks)

    def n_params(self, part: str | None = None) -> int:
        """Parameter count of the whole model or one submodule (e.g. ``"encoder"``)."""
        module = self if part is None else getattr(self, part)
        return sum(p.numel() for p in module.parameters())
