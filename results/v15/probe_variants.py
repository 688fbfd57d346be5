"""Does session 15's VoIP symptom probe show the hidden set's symptom when its files are narrowband or quieter?

    python results/v15/probe_variants.py cache/old/livesqa-small-0.4.0.onnx exported/livesqa-small.onnx \
        > results/v15/probe-variants.md

Why: on the hidden real-VoIP set 0.4.0 scored chopped and clipped speech about one MOS below NISQA
on the same 16 kHz windows, but on session 15's probe (files of 8 s at -26 dBFS, wideband) it stays
within +-0.5 of NISQA in every cell (results/v12/voip-symptom-probe.md), and `livesqa file` gives
the same numbers as direct scoring (checked in session 18). Two properties of a real test bed the
probe does not have: speech that went through a narrowband (8 kHz) path before the 16 kHz file, and
a different presentation level. This re-scores the probe's own files (``cache/v12probe``) after an
8 kHz round trip (soxr) and after -10 dB of gain, NISQA and each model on the same 4 s windows at a
1 s hop, file = mean of windows. Label-free: no human rating.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from livesqa.audio import resample
from train.asr_data import resolve_data_root
from train.scorers import DistillMosScorer, NisqaScorer, model_scorer

SR = 16000
VARIANTS = {  # id -> (title, transform)
    "wb": ("as rendered (wideband, -26 dBFS)", lambda x: x),
    "nb": ("8 kHz round trip", lambda x: resample(resample(x, SR, 8000), 8000, SR)),
    "quiet": ("-10 dB gain", lambda x: (x * 10 ** (-10 / 20)).astype(np.float32)),
}


def windows(x: np.ndarray) -> list[np.ndarray]:
    w = 4 * SR
    return [x] if len(x) <= w else [x[s:s + w] for s in range(0, len(x) - w + 1, SR)]


def offset_table(ref_name: str, ref: np.ndarray, scores: dict[str, np.ndarray], names: list[str],
                 groups: np.ndarray, pcc_with: str) -> None:
    """Per condition: the reference's mean MOS and each scorer's mean minus it; then PCC / RMSE over all files."""
    print(f"| condition | {ref_name} | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for g in dict.fromkeys(groups):
        m = groups == g
        print(f"| {g} | {ref[m].mean():.2f} | " + " | ".join(f"{(scores[k][m] - ref[m]).mean():+.2f}" for k in names) + " |")
    print(f"| **all files: PCC with {pcc_with} / RMSE** | | " + " | ".join(
        f"{np.corrcoef(scores[k], ref)[0, 1]:.3f} / {np.sqrt(np.mean((scores[k] - ref) ** 2)):.3f}" for k in names) + " |\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--probe", type=Path, default=Path("cache/v12probe"))
    ap.add_argument("--groups", type=Path, default=Path("results/v12/probe-scores.csv"))
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated ids of VARIANTS to run (wb, nb, quiet)")
    ap.add_argument("--distillmos", action="store_true",
                    help="also score DistillMOS and compare with the students' own target, 2/3 NISQA + 1/3 DistillMOS")
    args = ap.parse_args()
    chosen = args.variants.split(",")
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: unknown {unknown} (choose from {list(VARIANTS)})")
    with args.groups.open(newline="", encoding="utf-8") as f:
        rows = [(r["file"], r["group"]) for r in csv.DictReader(f)]
    audio = [sf.read(str(args.probe / n), dtype="float32")[0] for n, _ in rows]
    groups = np.array([g for _, g in rows])
    scorers = [NisqaScorer(resolve_data_root(None) / "weights/nisqa/nisqa.tar", "NISQA")]
    if args.distillmos:
        scorers.append(DistillMosScorer())
        scorers[-1].name = "DistillMOS"
    scorers += [model_scorer(m) for m in args.models]
    print("# The VoIP symptom probe, narrowband and quieter\n")
    print("Made by `python results/v15/probe_variants.py " + " ".join(args.models) + "` on the "
          f"{len(rows)} files of `cache/v12probe`. Cells: NISQA's mean MOS, then each model's mean MOS "
          "minus NISQA's on the same windows.\n")
    for key in chosen:
        label, fn = VARIANTS[key]
        xs = [fn(x) for x in audio]
        sc = {s.name: np.array([np.mean([s.score(w, SR)[0] for w in windows(x)]) for x in xs]) for s in scorers}
        nis = sc["NISQA"]
        others = [k for k in sc if k != "NISQA"]
        print(f"## {label}\n")
        offset_table("NISQA", nis, sc, others, groups, "NISQA")
        if "DistillMOS" in sc:
            print(f"Against the students' own target (2/3 NISQA + 1/3 DistillMOS), {label}:\n")
            offset_table("target", (2 * nis + sc["DistillMOS"]) / 3, sc, [k for k in others if k != "DistillMOS"],
                         groups, "the target")

if __name__ == "__main__":
    main()
