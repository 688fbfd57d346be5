"""The transcribed-speech manifest for CTC pretraining (`python -m train asr-manifest`).

Why a manifest: the ASR loader should not know where each corpus keeps its texts. This
stage gathers speechocean762 (Kaldi ``text``/``utt2spk``, ``audio/<utt>.opus``) and
Debian's asterisk prompts (one studio speaker, 8 kHz) into one CSV,
``cache/asr/manifest.csv``, with columns ``path,text,speaker,split,duration_s,source``.

``path`` is absolute and points at the original file (8 kHz prompts stay 8 kHz; the
loader resamples with :func:`livesqa.audio.read_audio`). Texts are normalised to the
CTC alphabet of ``train.text``: upper-case A–Z, space and apostrophe, digits spelled out.
Splits are speaker-disjoint: speechocean762's own train/test folders, asterisk to train.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from livesqa.errors import AudioInputError, ConfigError
from train.manifest_lock import write_csv_atomic

MANIFEST_COLUMNS = ("path", "text", "speaker", "split", "duration_s", "source")
ASTERISK_PACKAGES = ("asterisk-core-sounds-en-wav", "asterisk-core-sounds-en")
ASTERISK_SOUNDS = Path("usr/share/asterisk/sounds/en_US_f_Allison")
ASTERISK_TEXTS = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_SPEAKER = "asterisk-allison"
T = TypeVar("T")
DEFAULT_DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

_ONES = ["ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN", "ELEVEN", "TWELVE", "THIRTEEN", "FOURTEEN", "FIFTEEN", "SIXTEEN", "SEVENTEEN", "EIGHTEEN", "NINETEEN"]
_TENS = ["_", "_", "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY"]
_SYMBOLS = {"*": " STAR ", "#": " POUND ", "&": " AND ", "%": " PERCENT ", "@": " AT ",
            "+": " PLUS ", "$": " DOLLAR ", "=": " EQUALS "}


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` section: where sources are and where manifests go (relative to the cwd)."""

    data_root: str = ""  # empty: $LIVESQA_DATA_ROOT or ../shared/data beside the repo
    cache_dir: str = "cache"
    asr_manifest: str = "cache/asr/manifest.csv"
    sim_manifest: str = "cache/sim/manifest.csv"  # read by finetune/evaluate; simulate writes it
    include_asterisk: bool = True


def resolve_data_root(explicit: str | None = None) -> Path:
    """``--data-root`` > ``$LIVESQA_DATA_ROOT`` > ``../shared/data`` next to the repository."""
    root = explicit or os.environ.get("LIVESQA_DATA_ROOT") or str(DEFAULT_DATA_ROOT)
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"data root {path} is not a directory (set --data-root or LIVESQA_DATA_ROOT)")
    return path


def spell_number(n: int) -> str:
    """Cardinal English words for 0 <= n < 10**9, e.g. 342 -> 'THREE HUNDRED FORTY TWO'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, word in ((10**6, "MILLION"), (1000, "THOUSAND"), (100, "HUNDRED")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{spell_number(head)} {word}" + ("" if rest == 0 else " " + spell_number(rest))
    raise ValueError(f"number out of range: {n}")


def _spell_digit_run(match: re.Match[str]) -> str:
    token = match.group(0)
    if "." in token:
        whole, frac = token.split(".", 1)
        return f" {spell_number(int(whole))} POINT {' '.join(_ONES[int(d)] for d in frac)} "
    if len(token) >= 4 or token.startswith("0") and len(token) > 1:
        # extensions, PINs and phone numbers are read digit by digit on a phone line
        return " " + " ".join(_ONES[int(d)] for d in token) + " "
    return f" {spell_number(int(token))} "


def normalize_text(text: str) -> str:
    """Map free text to the CTC alphabet: A–Z, apostrophe, single spaces; digits spelled out.

    Bracketed stage directions (``[beep]``, ``(10 seconds of silence)``, ``<beep>``) are
    dropped because they are not spoken.
    """
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>", " ", text)
    text = re.sub(r"\d+\.\d+|\d+", _spell_digit_run, text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = text.upper().replace("’", "'")
    text = re.sub(r"[^A-Z']+", " ", text)
    text = re.sub(r" '+|'+ |^'+|'+$", " ", f" {text} ")  # quotes, not apostrophes inside words
    return " ".join(text.split())


def _read_kaldi_map(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition(" ")
            if "\t" in key:
                key, _, value = line.rstrip("\n").partition("\t")
            if key:
                out[key] = value.strip()
    return out


def duration_s(path: Path) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception as e:  # soundfile raises several unrelated types
        raise AudioInputError(f"{path}: cannot read audio header ({e})") from e


def speechocean_rows(data_root: Path) -> Iterator[dict[str, str]]:
    """speechocean762 utterances; its train/test folders are already speaker-disjoint."""
    base = data_root / "speech" / "speechocean762"
    for split in ("train", "test"):
        folder = base / split
        if not (folder / "text").is_file():
            raise ConfigError(f"speechocean762 {split} texts missing: {folder / 'text'}")
        texts = _read_kaldi_map(folder / "text")
        speakers = _read_kaldi_map(folder / "utt2spk")
        for utt in sorted(texts):
            audio = folder / "audio" / f"{utt}.opus"
            text = normalize_text(texts[utt])
            if not text or not audio.is_file():
                continue
            yield {"path": str(audio), "text": text, "speaker": f"so762-{speakers[utt]}",
                   "split": split, "duration_s": f"{duration_s(audio):.3f}",
                   "source": "speechocean762"}


def fetch_asterisk(cache_dir: Path) -> Path:
    """Unpack the asterisk prompt packages into ``cache_dir/asterisk`` (once) and return it.

    Uses ``apt-get download`` + ``dpkg-deb -x`` so nothing is installed system-wide.
    """
    target = cache_dir / "asterisk"
    if (target / ASTERISK_TEXTS).is_file() and (target / ASTERISK_SOUNDS).is_dir():
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise ConfigError(
            "asterisk prompts need apt-get and dpkg-deb (Debian); unpack "
            f"{' '.join(ASTERISK_PACKAGES)} into {target} by hand or pass --no-asterisk"
        )
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="asterisk-") as tmp:
        try:
            subprocess.run(["apt-get", "download", *ASTERISK_PACKAGES], cwd=tmp, check=True,
                           capture_output=True, text=True)
            for deb in sorted(Path(tmp).glob("*.deb")):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True,
                               capture_output=True, text=True)
        except subprocess.CalledProcessError as e:
            raise ConfigError(
                f"cannot fetch asterisk prompts ({e.stderr.strip()[-200:]}); "
                "try `apt-get update` or pass --no-asterisk"
            ) from e
    return target


def parse_asterisk_texts(lines: Sequence[str]) -> dict[str, str]:
    """``name: text`` lines (``;`` comments) -> {prompt name: normalised text}, non-empty only."""
    out: dict[str, str] = {}
    for line in lines:
        if line.startswith(";") or ":" not in line:
            continue
        name, _, text = line.partition(":")
        name = name.strip()
        norm = normalize_text(text)
        if name and norm and not name.startswith("silence/"):
            out[name] = norm
    return out


def asterisk_rows(root: Path) -> Iterator[dict[str, str]]:
    """The asterisk prompts that have both a text and a WAV file; all in train (one speaker)."""
    with gzip.open(root / ASTERISK_TEXTS, "rt", encoding="utf-8", errors="replace") as f:
        texts = parse_asterisk_texts(f.read().splitlines())
    sounds = root / ASTERISK_SOUNDS
    for name in sorted(texts):
        audio = sounds / f"{name}.wav"
        if audio.is_file():
            yield {"path": str(audio.resolve()), "text": texts[name], "speaker": ASTERISK_SPEAKER,
                   "split": "train", "duration_s": f"{duration_s(audio):.3f}",
                   "source": "asterisk"}


def write_manifest(rows: Sequence[dict[str, str]], path: Path) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a manifest."""
    write_csv_atomic(path, MANIFEST_COLUMNS, rows)


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Rows of an ASR manifest as dicts (strings), in file order."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def build_manifest(cfg: DataConfig) -> list[dict[str, str]]:
    """All rows: speechocean762 train/test, then asterisk prompts (train)."""
    data_root = resolve_data_root(cfg.data_root or None)
    rows = list(speechocean_rows(data_root))
    if cfg.include_asterisk:
        rows.extend(asterisk_rows(fetch_asterisk(Path(cfg.cache_dir))))
    return rows


def load_stage_config(config_path: str | None, overrides: Sequence[str], section: str,
                      cls: type[T]) -> T:
    """Build a stage's frozen config from ``[section]`` of a TOML file (+ ``--set`` overrides)."""
    if config_path is None and not overrides:
        return cls()
    from train.config import apply_override, build, load_toml

    mapping: dict[str, Any] = {}
    if config_path:
        mapping = load_toml(config_path, overrides)
    else:
        for item in overrides:
            apply_override(mapping, item)
    return build(cls, mapping.get(section, {}), prefix=f"{section}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train asr-manifest", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="training TOML; reads its [data] section")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE")
    parser.add_argument("--data-root", help="shared data folder (default $LIVESQA_DATA_ROOT or ../shared/data)")
    parser.add_argument("--out", help="manifest path (default cache/asr/manifest.csv)")
    parser.add_argument("--no-asterisk", action="store_true", help="skip the asterisk prompts")
    args = parser.parse_args(argv)
    cfg = load_stage_config(args.config, args.overrides, "data", DataConfig)
    cfg = dataclasses.replace(
        cfg,
        data_root=args.data_root or cfg.data_root,
        asr_manifest=args.out or cfg.asr_manifest,
        include_asterisk=cfg.include_asterisk and not args.no_asterisk,
    )
    rows = build_manifest(cfg)
    write_manifest(rows, Path(cfg.asr_manifest))
    for split in ("train", "test"):
        part = [r for r in rows if r["split"] == split]
        hours = sum(float(r["duration_s"]) for r in part) / 3600
        print(f"{split}: {len(part)} utterances, {hours:.2f} h, "
              f"{len({r['speaker'] for r in part})} speakers")
    print(f"wrote {cfg.asr_manifest}")
    return 0
