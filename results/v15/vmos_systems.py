"""Per-system view of VoiceMOS 2024 track 3: where do the students lose to NISQA?

    python results/v15/vmos_systems.py exported/livesqa-small.onnx runs/ft-v14-lwf-h/best.pt ... \
        > results/v15/vmos-systems.md

Why: every fine-tune since session 14 lost VoiceMOS t3 (enhanced noisy speech, 7 enhancement
systems x 2 talkers) against 0.6.2, and 0.6.2 trails NISQA there (MOS PCC 0.724 vs 0.785). A single
PCC cannot say whether a student ranks the *systems* wrongly (an across-system scale error, as on
NOIZEUS) or the clips inside each system. This splits the PCC into across-system (PCC of the 7
system means, and of the 14 system-talker means) and within-system (mean of the 14 PCCs inside one
system and one talker), and lists each scorer's system means beside the listeners'. Diagnostic
only: no model is selected on it. The teachers' scores come from the evaluation cache
(``cache/eval``), written by ``python -m train evaluate``.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from train.asr_data import resolve_data_root
from train.scorers import model_scorer

LABELS = "dev/voicemos24-track3/labels.csv"
CACHE = {"NISQA": "cache/eval/nisqa/vmos24-t3.csv", "DistillMOS": "cache/eval/distillmos/vmos24-t3.csv"}


def pcc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def cached(path: str) -> dict[str, float]:
    with open(path, newline="", encoding="utf-8") as f:
        return {Path(r["file"]).name: float(r["mos"]) for r in csv.DictReader(f)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="ONNX files or checkpoints")
    args = ap.parse_args()
    root = resolve_data_root(None)
    with (root / LABELS).open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    files = [r["file"] for r in rows]
    ovrl = np.array([float(r["ovrl"]) for r in rows])
    system = [re.match(r"(p\d+)_(sys\d+)_", n).group(2) for n in files]
    talker = [re.match(r"(p\d+)_", n).group(1) for n in files]
    scores: dict[str, np.ndarray] = {}
    for name, path in CACHE.items():
        c = cached(path)
        scores[name] = np.array([c[n] for n in files])
    scores["NISQA+DistillMOS 2:1"] = (2 * scores["NISQA"] + scores["DistillMOS"]) / 3
    for m in args.models:
        s = model_scorer(m)
        out = []
        for n in files:
            wav, sr = sf.read(str(root / "dev/voicemos24-track3" / n), dtype="float32")
            out.append(s.score(wav if wav.ndim == 1 else wav.mean(1), sr)[0])
        scores[m] = np.array(out)
    systems = sorted(set(system))
    cells = sorted(set(zip(system, talker)))
    sys_idx = {k: np.array([i for i, s in enumerate(system) if s == k]) for k in systems}
    cell_idx = {k: np.array([i for i, c in enumerate(zip(system, talker)) if c == k]) for k in cells}

    def means(x: np.ndarray, idx: dict) -> np.ndarray:
        return np.array([x[v].mean() for v in idx.values()])

    print("# VoiceMOS 2024 track 3 by enhancement system: MOS against listeners' OVRL\n")
    print("Made by `python results/v15/vmos_systems.py " + " ".join(args.models) + "`. "
          "280 clips, 7 systems x 2 talkers (p232, p257). Across-system: PCC of the 7 system means "
          "(and of the 14 system-talker means). Within: mean of the 14 PCCs inside one system and "
          "one talker (19-21 clips each). RMSE after a linear fit of the scorer to OVRL over all clips.\n")
    print("| scorer | all clips | across 7 systems | across 14 cells | within cells | fitted RMSE |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, x in scores.items():
        within = np.mean([pcc(x[v], ovrl[v]) for v in cell_idx.values()])
        fit = np.polyval(np.polyfit(x, ovrl, 1), x)
        rmse = float(np.sqrt(np.mean((fit - ovrl) ** 2)))
        print(f"| {name} | {pcc(x, ovrl):.3f} | {pcc(means(x, sys_idx), means(ovrl, sys_idx)):.3f} | "
              f"{pcc(means(x, cell_idx), means(ovrl, cell_idx)):.3f} | {within:.3f} | {rmse:.3f} |")
    print("\nSystem means (MOS; listeners' OVRL first):\n")
    print("| system | listeners | " + " | ".join(scores) + " |")
    print("|---|---:|" + "---:|" * len(scores))
    for k in systems:
        v = sys_idx[k]
        print(f"| {k} | {ovrl[v].mean():.2f} | " + " | ".join(f"{x[v].mean():.2f}" for x in scores.values()) + " |")
    print("\nPer-clip scores beside listeners: `results/v15/vmos-systems.csv`.")
    out = Path("results/v15/vmos-systems.csv")
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "system", "talker", "ovrl", *scores])
        for i, n in enumerate(files):
            w.writerow([n, system[i], talker[i], ovrl[i], *(f"{x[i]:.4f}" for x in scores.values())])


if __name__ == "__main__":
    main()
