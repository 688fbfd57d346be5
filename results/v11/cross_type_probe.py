"""Label-free probe of cross-type scaling: does the student rank MNRU against noise as its teachers do?

    python results/v11/cross_type_probe.py runs/v060/best.pt runs/ft-v11-crops/last.pt ... > results/v11/cross-type-probe.md

Why: per NOIZEUS condition (``noizeus-conditions.md``) the students rate 0 dB noise too high
relative to moderate MNRU, while their MOS target does not. This asks the same question with
no human label and no dev-set audio: held-out (test-split) talkers and noise files, 4 s clips,
MNRU alone (Q = 8..40 dB) and noise alone (SNR 0..30 dB), each wideband and narrowband (noise
added before the telephone band, as on a handset). Per level it prints the MOS target
(2/3 NISQA v2 + 1/3 DistillMOS, as the students were trained) and each student's mean MOS
minus it; a student whose offset differs between the MNRU rows and the noise rows scales the
two types apart, which costs PCC across types however well it ranks within each.
"""

from __future__ import annotations

import argparse

import numpy as np

from livesqa.spec import DIMENSIONS
from train import degrade as dg
from train.asr_data import resolve_data_root
from train.scorers import DistillMosScorer, NisqaScorer, model_scorer
from train.sim_catalogue import build_catalogue
from train.simulate import _load

SR = 16000
CLIP_S = 4.0
LEVELS = [("mnru", q) for q in (8, 16, 24, 32, 40)] + [("noise", s) for s in (0, 10, 20, 30)]


def clips(per_level: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """(group, 4 s clip) for every band x level, test-split talkers and noise files only."""
    rng = np.random.default_rng(seed)
    cat = build_catalogue(resolve_data_root(None))
    utts = [u for u in cat.speech["test"]]
    noises = cat.noise["test"]
    n = int(CLIP_S * SR)
    out = []
    for band in ("wb", "nb"):
        for kind, level in LEVELS:
            for _ in range(per_level):
                wav = _load(utts[int(rng.integers(len(utts)))].path, SR)
                wav = dg.set_level(np.pad(wav, (0, max(0, n - len(wav))))[:n], SR, -26.0)
                if kind == "mnru":
                    wav = dg.mnru(wav, float(level), rng)
                else:
                    wav = dg.add_noise(wav, _load(noises[int(rng.integers(len(noises)))], SR), float(level), SR, rng)
                if band == "nb":
                    wav = dg.narrowband(wav, SR)
                out.append((f"{band} {kind} {level}", dg.saturate(wav)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--per-level", type=int, default=12)
    p.add_argument("--seed", type=int, default=20261207)
    args = p.parse_args()
    mos = DIMENSIONS.index("mos")
    data = clips(args.per_level, args.seed)
    nisqa = NisqaScorer(resolve_data_root(None) / "weights/nisqa/nisqa.tar")
    distill = DistillMosScorer()
    target = np.array([2 / 3 * nisqa.score(x, SR)[mos] + 1 / 3 * distill.score(x, SR)[mos] for _, x in data])
    preds = {}
    for path in args.models:
        s = model_scorer(path)
        preds[s.name] = np.array([s.score(x, SR)[mos] for _, x in data])
    groups = [g for g, _ in data]
    names = list(dict.fromkeys(groups))
    print(f"# Cross-type probe: {len(data)} clips of 4 s, {args.per_level} per level, test-split talkers and noise\n")
    print("Cells: the MOS target (2/3 NISQA v2 + 1/3 DistillMOS) and each student's mean MOS minus it.\n")
    print("| band, type, level | target | " + " | ".join(preds) + " |")
    print("|---|---:|" + "---:|" * len(preds))
    g = np.array(groups)
    for name in names:
        m = g == name
        print(f"| {name} | {target[m].mean():.2f} | " + " | ".join(f"{(v[m] - target[m]).mean():+.2f}" for v in preds.values()) + " |")
    print("\nPer band: PCC with the target over all clips, and the mean offset on MNRU minus that on noise "
          "(0 = the two types on the teachers' common scale).\n")
    print("| band | " + " | ".join(f"{k} PCC | {k} MNRU-noise" for k in preds) + " |")
    print("|---|" + "---:|---:|" * len(preds))
    for band in ("wb", "nb"):
        b = np.array([x.startswith(band) for x in groups])
        mn = np.array([" mnru " in x for x in groups])
        cells = []
        for v in preds.values():
            d = v - target
            cells += [f"{np.corrcoef(v[b], target[b])[0, 1]:.3f}", f"{d[b & mn].mean() - d[b & ~mn].mean():+.2f}"]
        print(f"| {band} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
