"""Label-free probe of issue #13's symptom: does a student score chopped and clipped speech below its teacher?

    python results/v12/voip_symptom_probe.py --out-dir cache/v12probe \
        exported/livesqa-small.onnx runs/ft-v11-crops/last.pt > results/v12/voip-symptom-probe.md

Why: on the hidden real-VoIP set, 0.4.0 scored chopped and clipped speech about one MOS point
below NISQA on the same 4 s, 16 kHz windows, while noise was about right. The label-free sets
(real-chain, simulated test split) show offsets of only -0.1 to -0.3 on their loss and clipping
families, so either later models fixed it or those sets render chops and clipping differently
from real calls. This renders both the ways a VoIP test bed does, with no human label and no
dev-set audio: test-split talkers, files of 8 s at -26 dBFS; chops of 20/40/60 ms at 2-4 per
second by zero insertion, by deletion (the samples are removed, the file gets shorter) and by
repetition of the previous segment; clipping after 10/20/30 dB of gain, left hot or brought back
to -26 dBFS; noise and a competing talker as controls. Every model and NISQA v2 score the same
4 s windows at a 1 s hop and the file is the mean of its windows (the issue's teacher row);
DistillMOS scores the same windows. The files are kept under ``--out-dir`` so ``livesqa file``
can be run on them too (its speech gate may drop windows).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from livesqa.spec import DIMENSIONS
from train import callsim as cs
from train import degrade as dg
from train.asr_data import resolve_data_root
from train.scorers import DistillMosScorer, NisqaScorer, model_scorer
from train.sim_catalogue import build_catalogue
from train.simulate import _load

SR = 16000
FILE_S = 8.0
WIN_S, HOP_S = 4.0, 1.0
CHOPS = [(20, 2), (40, 3), (60, 4)]  # (chop ms, chops per second)
GAINS = [10, 20, 30]


def talker_file(rng: np.random.Generator, utts: list, n: int) -> np.ndarray:
    """One test-split talker's utterances joined by 0.2 s pauses up to ``n`` samples, -26 dBFS active."""
    spk = utts[int(rng.integers(len(utts)))].speaker
    own = [u for u in utts if u.speaker == spk]
    parts: list[np.ndarray] = []
    while sum(len(p) for p in parts) < n:
        parts += [_load(own[int(rng.integers(len(own)))].path, SR), np.zeros(int(0.2 * SR), np.float32)]
    return dg.set_level(np.concatenate(parts)[:n], SR, -26.0)


def chop(x: np.ndarray, ms: int, per_s: int, how: str, rng: np.random.Generator) -> np.ndarray:
    """``per_s`` chops of ``ms`` per second at random places (one per 1/per_s slot, no overlap)."""
    seg, slot = ms * SR // 1000, SR // per_s
    starts = [s + int(rng.integers(0, slot - seg)) for s in range(slot, len(x) - slot, slot)]
    if how == "delete":
        keep = np.ones(len(x), bool)
        for s in starts:
            keep[s: s + seg] = False
        return x[keep]
    y = x.copy()
    for s in starts:
        y[s: s + seg] = 0.0 if how == "zero" else x[s - seg: s]
    return y


def conditions(per_cell: int, seed: int) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    cat = build_catalogue(resolve_data_root(None))
    utts, noises = cat.speech["test"], cat.noise["test"]
    n = int(FILE_S * SR)
    out = []
    for _ in range(per_cell):
        x = talker_file(rng, utts, n)
        out.append(("clean", x))
        for how in ("zero", "delete", "repeat"):
            for ms, per_s in CHOPS:
                out.append((f"chop {how} {ms}ms x{per_s}/s", chop(x, ms, per_s, how, rng)))
        for g in GAINS:
            hot = cs.limiter(x, SR, float(g), "hard")
            out.append((f"clip hot +{g}dB", hot))
            out.append((f"clip renorm +{g}dB", dg.set_level(hot, SR, -26.0)))
        for snr in (5, 15):
            noise = _load(noises[int(rng.integers(len(noises)))], SR)
            out.append((f"noise {snr}dB", dg.saturate(dg.add_noise(x, noise, float(snr), SR, rng))))
        other = talker_file(rng, utts, n)
        out.append(("talker -10dB", dg.saturate(cs.competing_talker(x, [other], SR, [10.0], rng))))
    return out


def windows(x: np.ndarray) -> list[np.ndarray]:
    w, h = int(WIN_S * SR), int(HOP_S * SR)
    if len(x) <= w:
        return [x]
    return [x[s: s + w] for s in range(0, len(x) - w + 1, h)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="ONNX files or checkpoints")
    p.add_argument("--per-cell", type=int, default=8)
    p.add_argument("--seed", type=int, default=20261207)
    p.add_argument("--out-dir", type=Path, default=Path("cache/v12probe"))
    p.add_argument("--no-distillmos", action="store_true")
    args = p.parse_args()
    mos = DIMENSIONS.index("mos")
    data = conditions(args.per_cell, args.seed)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for i, (g, x) in enumerate(data):
        sf.write(args.out_dir / f"p{i:04d}.wav", x, SR, subtype="PCM_16")
    scorers = [NisqaScorer(resolve_data_root(None) / "weights/nisqa/nisqa.tar", "NISQA")]
    if not args.no_distillmos:
        scorers.append(DistillMosScorer())
        scorers[-1].name = "DistillMOS"
    scorers += [model_scorer(m) for m in args.models]
    scores: dict[str, np.ndarray] = {}
    for s in scorers:
        scores[s.name] = np.array([np.mean([s.score(w, SR) for w in windows(x)], axis=0) for _, x in data])
    with (args.out_dir / "scores.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["file", "group", *[f"{k}:{d}" for k in scores for d in DIMENSIONS]])
        for i, (g, _) in enumerate(data):
            wr.writerow([f"p{i:04d}.wav", g, *[f"{scores[k][i, j]:.4f}" for k in scores for j in range(len(DIMENSIONS))]])
    groups = np.array([g for g, _ in data])
    nisqa = scores["NISQA"][:, mos]
    students = [k for k in scores if k not in ("NISQA", "DistillMOS")]
    print(f"# VoIP symptom probe: {len(data)} files of {FILE_S:.0f} s, {args.per_cell} per cell, test-split talkers\n")
    print("Every score is the mean over 4 s windows at a 1 s hop. Cells: NISQA v2's mean MOS, then each "
          "other scorer's mean MOS minus NISQA's on the same files.\n")
    others = [k for k in scores if k != "NISQA"]
    print("| condition | NISQA | " + " | ".join(others) + " |")
    print("|---|---:|" + "---:|" * len(others))
    for name in dict.fromkeys(groups):
        m = groups == name
        print(f"| {name} | {nisqa[m].mean():.2f} | "
              + " | ".join(f"{(scores[k][m, mos] - nisqa[m]).mean():+.2f}" for k in others) + " |")
    print("\nAcross all files: MOS PCC with NISQA and RMSE (the across-type agreement the hidden set measures).\n")
    print("| scorer | PCC | RMSE |")
    print("|---|---:|---:|")
    for k in others:
        v = scores[k][:, mos]
        print(f"| {k} | {np.corrcoef(v, nisqa)[0, 1]:.3f} | {np.sqrt(np.mean((v - nisqa) ** 2)):.3f} |")
    print(f"\nstudents: {', '.join(students)}")


if __name__ == "__main__":
    main()
