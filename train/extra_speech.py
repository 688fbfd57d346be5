"""More clean talkers from Debian packages (`python -m train extra-speech`).

Why: the shared corpora hold 250 speechocean762 learners (half of them children) and 261
LibriSpeech readers. Debian ships studio recordings of other voices and languages, which
``../shared/data/README.md`` names as allowed sources: four ``asterisk-core-sounds-*-g722``
voices (fr, es, it, ru; G.722 wideband; CC BY-SA 3.0) and the voice-acted dialogue of
``fillets-ng-data-cs`` / ``-nl`` (Czech and Dutch actors; GPL-2). They are fetched with
``apt-get download``, unpacked with ``dpkg-deb -x`` (nothing is installed), decoded to
16 kHz mono FLAC under ``<cache>/extra-speech/`` and listed in ``index.csv``
(``path,speaker,corpus``) for the simulator. Nothing here is committed.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from livesqa.errors import ConfigError

PACKAGES = ("asterisk-core-sounds-fr-g722", "asterisk-core-sounds-es-g722", "asterisk-core-sounds-it-g722",
            "asterisk-core-sounds-ru-g722", "fillets-ng-data-cs", "fillets-ng-data-nl")
LICENCES = {"asterisk": "CC BY-SA 3.0 (Debian asterisk-core-sounds-*-g722)",
            "fillets": "GPL-2 (Debian fillets-ng-data-cs, -nl)"}
MIN_SECONDS = 0.8  # single words and letters make choppy clips
MAX_SECONDS = 120.0  # a FLAC without a sample count in its header reads as absurdly long: skip it


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    except FileNotFoundError as e:
        raise ConfigError(f"{cmd[0]} not found") from e
    except subprocess.CalledProcessError as e:
        raise ConfigError(f"{' '.join(cmd[:3])} failed: {e.stderr.decode(errors='replace')[-300:]}") from e


def sources(root: Path) -> list[tuple[Path, str, str, list[str]]]:
    """(file, speaker, corpus, ffmpeg input args) for every voice file under an unpacked tree."""
    out: list[tuple[Path, str, str, list[str]]] = []
    for voice in sorted((root / "usr/share/asterisk/sounds").glob("*_*_*_*")):
        for f in sorted(voice.glob("*.g722")):  # top level only: digits/ and letters/ are single words
            out.append((f, f"ast-{voice.name}", "asterisk", ["-f", "g722"]))
    for f in sorted((root / "usr/share/games/fillets-ng/sound").rglob("*.ogg")):
        lang = f.parent.name
        parts = f.stem.split("-")
        if lang in {"cs", "nl"} and len(parts) >= 3:
            out.append((f, f"fil-{lang}-{parts[1]}", "fillets", []))
    return out


def build(out_dir: Path, debs_dir: Path | None = None) -> Path:
    """Fetch, unpack and convert; returns the index. Resumes: converted files are kept."""
    import soundfile as sf
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="livesqa-debs-") as tmp:
        debs = debs_dir or Path(tmp)
        missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
        if missing:
            _run(["apt-get", "download", *missing], cwd=debs)
        tree = Path(tmp) / "tree"
        for deb in sorted(debs.glob("*.deb")):
            if deb.name.split("_")[0] in PACKAGES:
                _run(["dpkg-deb", "-x", str(deb), str(tree)])
        def convert(item: tuple[Path, str, str, list[str]]) -> dict[str, str] | None:
            src, speaker, corpus, args = item
            dest = out_dir / corpus / speaker / (src.stem + ".flac")
            if not dest.is_file():
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp_dest = dest.with_suffix(".tmp.flac")
                _run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args, "-i", str(src),
                      "-ac", "1", "-ar", "16000", "-sample_fmt", "s16", str(tmp_dest)])
                tmp_dest.replace(dest)
            if not MIN_SECONDS <= sf.info(str(dest)).duration <= MAX_SECONDS:
                return None
            return {"path": str(dest.relative_to(out_dir)), "speaker": speaker, "corpus": corpus}

        items = sources(tree)
        # ffmpeg start-up dominates these short files: a few in flight at once
        with ThreadPoolExecutor(max_workers=4) as pool:
            done = list(tqdm(pool.map(convert, items), total=len(items), desc="extra speech", unit="file"))
        rows = [r for r in done if r is not None]
    index = out_dir / "index.csv"
    with index.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "speaker", "corpus"])
        writer.writeheader()
        writer.writerows(rows)
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train extra-speech", description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="cache/extra-speech")
    parser.add_argument("--debs", help="folder with already downloaded .deb files (default: apt-get download)")
    args = parser.parse_args(argv)
    index = build(Path(args.out_dir), Path(args.debs) if args.debs else None)
    with index.open(encoding="utf-8") as f:
        n = sum(1 for _ in f) - 1
    print(f"wrote {index} ({n} files)")
    return 0
