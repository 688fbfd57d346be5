"""Datasets over the two manifests, length-bucketed batching and padding collate.

Why bucketing by length: clips are padded to the longest in their batch, so grouping
similar lengths wastes little compute on 2 CPU cores; the ASR stage sizes batches by
padded seconds (``max_batch_s``) instead of a count, so long utterances do not blow up
memory. Batch order depends only on (seed, epoch), so a resumed run can skip exactly
the batches it already saw.

Manifests (written by ``train.asr_data`` / ``train.simulate``):

- ASR ``cache/asr/manifest.csv``: ``path,text,speaker,split,duration_s,source``.
- quality ``cache/sim/manifest.csv`` (NISQA corpus layout): ``filepath_deg`` plus the
  targets ``mos,noi,col,dis,loud`` (empty = missing label -> NaN -> masked) and ``split``.

Relative audio paths are resolved against the manifest's folder.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from livesqa.audio import float32_to_pcm16, pcm16_to_float32, read_audio
from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train.text import encode


@dataclass(frozen=True)
class AsrItem:
    path: Path
    text: str
    speaker: str
    duration_s: float


@dataclass(frozen=True)
class QualityItem:
    path: Path
    targets: tuple[float, ...]  # DIMENSIONS order; NaN = missing label
    duration_s: float
    split: str
    condition: str


def _rows(manifest: str | Path, required: Sequence[str]) -> tuple[Path, list[dict[str, str]]]:
    path = Path(manifest)
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}: manifest lacks columns {missing}")
        return path.parent, list(reader)


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def _float_or_nan(value: str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan


def read_asr_manifest(manifest: str | Path, split: str | None = None) -> list[AsrItem]:
    """Rows of the ASR manifest (optionally one split) with a non-empty transcript."""
    base, rows = _rows(manifest, ("path", "text", "split", "duration_s"))
    return [
        AsrItem(_resolve(base, r["path"]), r["text"], r.get("speaker", ""), float(r["duration_s"]))
        for r in rows
        if (split is None or r["split"] == split) and encode(r["text"])
    ]


def read_quality_manifest(
    manifest: str | Path, split: str | None = None, *, labelled_only: bool = True
) -> list[QualityItem]:
    """Rows of the simulated (or NISQA) corpus manifest, targets in DIMENSIONS order.

    ``labelled_only`` drops rows where every target is missing (not yet labelled).
    """
    base, rows = _rows(manifest, ("filepath_deg", *DIMENSIONS))
    items: list[QualityItem] = []
    for r in rows:
        if split is not None and r.get("split", "") != split:
            continue
        targets = tuple(_float_or_nan(r[d]) for d in DIMENSIONS)
        if labelled_only and all(math.isnan(t) for t in targets):
            continue
        items.append(
            QualityItem(
                path=_resolve(base, r["filepath_deg"]),
                targets=targets,
                duration_s=_float_or_nan(r.get("duration_s")),
                split=r.get("split", ""),
                condition=r.get("condition", r.get("con", "")),
            )
        )
    return items


def manifest_teachers(manifest: str | Path) -> list[str]:
    """The distinct non-empty ``teacher`` values of a quality manifest (who made the labels)."""
    with Path(manifest).open(newline="", encoding="utf-8") as f:
        return sorted({r.get("teacher") or "" for r in csv.DictReader(f)} - {""})


class _AudioCache:
    """Decoded clips kept as int16 in memory (half the size of float32) after first use."""

    def __init__(self, sample_rate_hz: int, enabled: bool) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.enabled = enabled
        self._store: dict[Path, np.ndarray] = {}

    def load(self, path: Path) -> np.ndarray:
        """Mono float32 [samples] at ``sample_rate_hz``."""
        hit = self._store.get(path)
        if hit is not None:
            return pcm16_to_float32(hit)
        wav = read_audio(path, self.sample_rate_hz)
        if self.enabled:
            self._store[path] = float32_to_pcm16(wav)
        return wav


class AsrDataset(Dataset[tuple[np.ndarray, list[int]]]):
    """(waveform float32 [samples], label indices) per utterance."""

    def __init__(self, items: Sequence[AsrItem], sample_rate_hz: int, cache: bool = True) -> None:
        self.items = list(items)
        self._audio = _AudioCache(sample_rate_hz, cache)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[int]]:
        item = self.items[index]
        return self._audio.load(item.path), encode(item.text)

    def durations_s(self) -> list[float]:
        return [it.duration_s for it in self.items]


def random_crop(wav: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``n_samples`` window of ``wav``; shorter clips are returned whole."""
    if wav.shape[0] <= n_samples:
        return wav
    start = int(rng.integers(0, wav.shape[0] - n_samples + 1))
    return wav[start : start + n_samples]


class QualityDataset(Dataset[tuple[np.ndarray, np.ndarray]]):
    """(waveform float32 [samples], targets float32 [5] with NaN for missing).

    ``crop_s`` > 0 takes a random window of that length (training augmentation; the
    runtime scores fixed windows). The crop depends on (seed, epoch, index) only, so
    it is reproducible; call :meth:`set_epoch` each epoch.
    """

    def __init__(
        self,
        items: Sequence[QualityItem],
        sample_rate_hz: int,
        *,
        crop_s: float = 0.0,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        self.items = list(items)
        self.sample_rate_hz = sample_rate_hz
        self.crop_samples = round(crop_s * sample_rate_hz)
        self.seed = seed
        self.epoch = 0
        self._audio = _AudioCache(sample_rate_hz, cache)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        item = self.items[index]
        wav = self._audio.load(item.path)
        if self.crop_samples > 0:
            wav = random_crop(wav, self.crop_samples, np.random.default_rng((self.seed, self.epoch, index)))
        return wav, np.asarray(item.targets, dtype=np.float32)

    def durations_s(self) -> list[float]:
        """Clip lengths, capped at the crop length (that is what gets padded)."""
        crop_s = self.crop_samples / self.sample_rate_hz if self.crop_samples else math.inf
        return [min(it.duration_s, crop_s) if math.isfinite(it.duration_s) else 0.0 for it in self.items]


def length_batches(
    durations_s: Sequence[float],
    *,
    batch_size: int | None = None,
    max_batch_s: float | None = None,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
) -> list[list[int]]:
    """Group indices of similar length into batches; batch order shuffled per (seed, epoch).

    Exactly one of ``batch_size`` (clips per batch) or ``max_batch_s`` (padded seconds
    per batch: clips x longest clip) must be given. Shuffling jitters the sort key a
    little so that batch membership also changes between epochs.
    """
    if (batch_size is None) == (max_batch_s is None):
        raise ValueError("give exactly one of batch_size or max_batch_s")
    dur = np.asarray(durations_s, dtype=np.float64)
    rng = np.random.default_rng((seed, epoch))
    key = dur * (1.0 + 0.1 * rng.random(dur.size)) if shuffle else dur
    order = np.argsort(key, kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0.0
    for idx in order.tolist():
        longest_if_added = max(longest, float(dur[idx]))
        full = (
            len(current) >= batch_size
            if batch_size is not None
            else bool(current) and (len(current) + 1) * longest_if_added > float(max_batch_s)  # type: ignore[arg-type]
        )
        if full:
            batches.append(current)
            current, longest_if_added = [], float(dur[idx])
        current.append(idx)
        longest = longest_if_added
    if current:
        batches.append(current)
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def iterate_batches(batches: Sequence[list[int]], start: int = 0) -> Iterator[list[int]]:
    """Batches from index ``start`` on (used to resume mid-epoch)."""
    yield from batches[start:]


def _pad(wavs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([w.shape[0] for w in wavs], dtype=torch.int64)
    out = torch.zeros(len(wavs), int(lengths.max()), dtype=torch.float32)
    for i, w in enumerate(wavs):
        out[i, : w.shape[0]] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    return out, lengths


@dataclass
class AsrBatch:
    wav: torch.Tensor  # [B, T] float32, zero padded
    wav_lengths: torch.Tensor  # [B] int64 samples
    labels: torch.Tensor  # [sum of label lengths] int64, concatenated (CTC layout)
    label_lengths: torch.Tensor  # [B] int64

    def to(self, device: torch.device) -> AsrBatch:
        return AsrBatch(*(t.to(device) for t in (self.wav, self.wav_lengths, self.labels, self.label_lengths)))


@dataclass
class QualityBatch:
    wav: torch.Tensor  # [B, T] float32, zero padded
    wav_lengths: torch.Tensor  # [B] int64 samples
    targets: torch.Tensor  # [B, 5] float32, 0 where missing
    mask: torch.Tensor  # [B, 5] bool, True where a label exists

    def to(self, device: torch.device) -> QualityBatch:
        return QualityBatch(*(t.to(device) for t in (self.wav, self.wav_lengths, self.targets, self.mask)))


def collate_asr(samples: Sequence[tuple[np.ndarray, list[int]]]) -> AsrBatch:
    wav, wav_lengths = _pad([s[0] for s in samples])
    labels = torch.tensor([i for s in samples for i in s[1]], dtype=torch.int64)
    label_lengths = torch.tensor([len(s[1]) for s in samples], dtype=torch.int64)
    return AsrBatch(wav, wav_lengths, labels, label_lengths)


def collate_quality(samples: Sequence[tuple[np.ndarray, np.ndarray]]) -> QualityBatch:
    wav, wav_lengths = _pad([s[0] for s in samples])
    raw = torch.from_numpy(np.stack([s[1] for s in samples]).astype(np.float32))
    mask = torch.isfinite(raw)
    return QualityBatch(wav, wav_lengths, torch.where(mask, raw, torch.zeros_like(raw)), mask)
