"""Where the energy of NOIZEUS's MNRU conditions sits, beside the repair's simulated MNRU through a phone path.

    python results/v16/noizeus_bands.py > results/v16/noizeus-bands.md

A diagnostic for the third rule's open question (why teacher-labelled MNRU did not move NOIZEUS's
MNRU series): the share of each file's power (Welch, 1024 points) in four bands, in dB of the total,
averaged per condition. Reads the dev view's audio only; no model and no rating.
"""

from __future__ import annotations

import csv
import glob
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from train.asr_data import resolve_data_root

BANDS_HZ = ((0, 300), (300, 3400), (3400, 4000), (4000, 8000))


def band_shares_db(x: np.ndarray, sr: int) -> list[float]:
    f, p = signal.welch(x, sr, nperseg=1024)
    return [float(10 * np.log10(p[(f >= lo) & (f < hi)].sum() / p.sum() + 1e-12)) for lo, hi in BANDS_HZ]


def mean_bands(paths: list[str]) -> np.ndarray:
    return np.mean([band_shares_db(*sf.read(p, dtype="float32")) for p in paths], axis=0)


def main() -> None:
    root = resolve_data_root(None) / "dev" / "p835" / "degraded_NB_16KHz"
    rows: list[tuple[str, int, np.ndarray]] = []
    for c, what in (("c1", "MNRU Q8"), ("c2", "MNRU Q16"), ("c3", "MNRU Q24"), ("c5", "MNRU Q40 (near clean)"),
                    ("c7", "noise 10 dB")):
        files = sorted(glob.glob(str(root / f"*_{c}_*.flac")))
        rows.append((f"NOIZEUS {c}: {what}", len(files), mean_bands(files)))
    sim = Path("cache/nbmnru")
    clips = list(csv.DictReader((sim / "manifest-w23.csv").open(newline="", encoding="utf-8")))
    for label, keep in (("ours: MNRU Q10-19 then a narrowband path", lambda c: c.startswith("mnru@Q1")),
                        ("ours: clean, then a narrowband path", lambda c: c.startswith("none"))):
        picked = [str(sim / r["filepath_deg"]) for r in clips if keep(r["condition"]) and "+nb:" in r["condition"]][:40]
        rows.append((label, len(picked), mean_bands(picked)))
    print("# Power by band, dB of each file's total (mean per condition)\n")
    print("Made by `python results/v16/noizeus_bands.py`.\n")
    print("| audio | files | " + " | ".join(f"{lo}-{hi} Hz" for lo, hi in BANDS_HZ) + " |")
    print("|---|---:|" + "---:|" * len(BANDS_HZ))
    for label, n, b in rows:
        print(f"| {label} | {n} | " + " | ".join(f"{v:.1f}" for v in b) + " |")


if __name__ == "__main__":
    main()
