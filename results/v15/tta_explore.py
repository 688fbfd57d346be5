"""Label-free exploration: does averaging a model over sub-hop shifts of its input follow the teachers better?

    python results/v15/tta_explore.py exported/livesqa-small.onnx > results/v15/tta-explore.md

Why: on VoiceMOS t3 0.6.2 follows its own MOS target at PCC 0.92 over all clips but only 0.72
inside one enhancement system and talker (results/v15/vmos-systems.md): the fine ranking is
where the student is noisy. The log-mel frontend has a 10 ms hop, so shifting a window by a few
milliseconds gives the model a different frame grid of the same audio; if the student's error
is partly sensitivity to that grid, the mean over K shifts is a cheaper ensemble than a second
model. This measures it on audio with teacher labels only (no human rating): the real-chain set,
the WebRTC chain set and the replay clips' validation split. MOS target = 2/3 NISQA + 1/3
DistillMOS, the student's own; NOI/COL/DIS/LOUD against NISQA.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from livesqa.scoring import OnnxScorer

SETS = {
    "real-chain": ("cache/realchain/manifest.csv", None),
    "webrtc-chain": ("cache/realchain-webrtc/manifest.csv", None),
    "replay val": ("cache/replay14/manifest.csv", "val"),
}
SHIFT_SETS = {"K=1 (no shift)": [0], "K=2 (0, 5 ms)": [0, 80], "K=4 (0..7.5 ms)": [0, 40, 80, 120],
              "K=4 (0..30 ms)": [0, 160, 320, 480]}
DIMS = ["mos", "noi", "col", "dis", "loud"]


def load(manifest: str, split: str | None) -> tuple[list[np.ndarray], np.ndarray]:
    root = Path(manifest).parent
    wavs, targets = [], []
    with open(manifest, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if split and r["split"] != split:
                continue
            x, sr = sf.read(str(root / r["filepath_deg"]), dtype="float32")
            assert sr == 16000
            mos = (2 * float(r["nisqa_mos"]) + float(r["distillmos_mos"])) / 3
            wavs.append(x if x.ndim == 1 else x.mean(1))
            targets.append([mos, *(float(r[d]) for d in DIMS[1:])])
    return wavs, np.array(targets)


def scores(scorer: OnnxScorer, wavs: list[np.ndarray], shifts: list[int]) -> np.ndarray:
    top = max(shifts)
    out = []
    for x in wavs:
        n = len(x) - top
        batch = np.stack([x[s:s + n] for s in shifts]).astype(np.float32)
        out.append(scorer.score(batch).mean(0))
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    args = ap.parse_args()
    scorer = OnnxScorer.load(args.model)
    print(f"# Sub-hop shift averaging, label-free ({args.model})\n")
    print("Made by `python results/v15/tta_explore.py " + args.model + "`. Cells: PCC / RMSE with "
          "the teacher target. Every K scores windows shortened by the largest shift, so K=1 differs "
          "from the full clip by at most 30 ms.\n")
    for name, (manifest, split) in SETS.items():
        wavs, y = load(manifest, split)
        print(f"## {name} ({len(wavs)} clips)\n")
        print("| shifts | " + " | ".join(d.upper() for d in DIMS) + " |")
        print("|---|" + "---:|" * len(DIMS))
        for label, shifts in SHIFT_SETS.items():
            s = scores(scorer, wavs, shifts)
            cells = [f"{np.corrcoef(s[:, i], y[:, i])[0, 1]:.3f} / {np.sqrt(np.mean((s[:, i] - y[:, i]) ** 2)):.3f}"
                     for i in range(len(DIMS))]
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main()
