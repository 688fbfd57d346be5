"""What the simulator may draw from: clean utterances, noise files and IRs, split by name.

Why a hash split: the assignment of a speaker or noise file to train/val/test must not
change when files are added or the corpus size changes, and test must share no speaker
and no noise recording with train. A stable hash of the name does both.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from livesqa.errors import ConfigError

SPLITS = ("train", "val", "test")
EXCLUDED_NOISE_DIRS = ("binaural",)  # synthetic beat tones: not a background a call meets


@dataclass(frozen=True)
class Utterance:
    path: str
    speaker: str
    corpus: str
    utt_id: str


@dataclass(frozen=True)
class Catalogue:
    """Per-split speech and noise, plus IR files (all splits) and a speaker index."""

    data_root: Path
    speech: dict[str, list[Utterance]]
    noise: dict[str, list[str]]
    irs: list[str]
    by_speaker: dict[str, list[Utterance]] = field(default_factory=dict)


def split_of(name: str, val_fraction: float = 0.1, test_fraction: float = 0.1) -> str:
    """train/val/test from a stable hash of ``name`` (independent of Python's hash seed)."""
    u = int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def _speechocean(root: Path) -> list[Utterance]:
    out = []
    for folder in sorted((root / "speech" / "speechocean762").glob("*/")):
        spk_file = folder / "utt2spk"
        if not spk_file.is_file():
            continue
        for line in spk_file.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and (folder / "audio" / f"{parts[0]}.opus").is_file():
                out.append(Utterance(str(folder / "audio" / f"{parts[0]}.opus"), f"so762-{parts[1]}",
                                     "speechocean762", parts[0]))
    return out


def _librispeech(root: Path) -> list[Utterance]:
    # LibriSpeech names are <speaker>-<chapter>-<utterance>
    return [Utterance(str(p), f"ls-{p.stem.split('-')[0]}", "librispeech", p.stem)
            for p in sorted((root / "speech" / "librispeech-excerpts").rglob("*.opus"))]


def _extra(index_csv: Path) -> list[Utterance]:
    """Talkers converted by ``python -m train extra-speech`` (``index.csv``: path,speaker,corpus)."""
    import csv

    if not index_csv.is_file():
        raise ConfigError(f"extra speech index not found: {index_csv} (run `python -m train extra-speech`)")
    with index_csv.open(newline="", encoding="utf-8") as f:
        return [Utterance(str(index_csv.parent / r["path"]), r["speaker"], r["corpus"], Path(r["path"]).stem)
                for r in csv.DictReader(f)]


def build_catalogue(data_root: Path, val_fraction: float = 0.1, test_fraction: float = 0.1,
                    extra_speech: Path | None = None) -> Catalogue:
    """Scan ``data_root`` (layout of ../shared/data/README.md) in a deterministic order,
    plus the talkers of an ``extra-speech`` index when given."""
    utterances = _speechocean(data_root) + _librispeech(data_root)
    if extra_speech is not None:
        utterances += _extra(extra_speech)
    if not utterances:
        raise ConfigError(f"no clean speech under {data_root / 'speech'}")
    speech: dict[str, list[Utterance]] = {s: [] for s in SPLITS}
    by_speaker: dict[str, list[Utterance]] = {}
    for utt in utterances:
        speech[split_of(utt.speaker, val_fraction, test_fraction)].append(utt)
        by_speaker.setdefault(utt.speaker, []).append(utt)
    noise: dict[str, list[str]] = {s: [] for s in SPLITS}
    for p in sorted((data_root / "noise").rglob("*")):
        if p.suffix.lower() not in {".opus", ".wav", ".flac", ".ogg"}:
            continue
        rel = p.relative_to(data_root / "noise")
        if any(part in EXCLUDED_NOISE_DIRS for part in rel.parts):
            continue
        noise[split_of(str(rel), val_fraction, test_fraction)].append(str(p))
    empty = [s for s in SPLITS if not speech[s] or not noise[s]]
    if empty:
        raise ConfigError(f"splits {empty} get no speech or no noise files under {data_root}")
    irs = sorted(str(p) for p in (data_root / "ir").glob("*.wav"))
    return Catalogue(data_root, speech, noise, irs, by_speaker)
