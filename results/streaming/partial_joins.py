"""Side check for the file protocol: should a long file's final partial row join its mean?

``CheckpointScorer._streaming_file_score`` averages the rows whose window is whole and uses
the final partial row only for a file shorter than one window. This scores the alternative
(the partial row, whose window is the left context plus under 1 s, joins the mean of a longer
file) on the same sets and prints MOS PCC of both with a paired bootstrap (10,000 resamples,
seed 0 per set), so the choice is measured rather than assumed.

    python results/streaming/partial_joins.py --checkpoint runs/ft-v7-stream2k/best.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from livesqa.audio import resample
from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from train.evaluate import EvaluateConfig, _load_native, human_rated_set
from train.scorers import CheckpointScorer, streaming_file_rows
from train.streaming import chunked_forward, stream_rows


def pcc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc, yc = x - x.mean(-1, keepdims=True), y - y.mean(-1, keepdims=True)
    return (xc * yc).sum(-1) / np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="runs/ft-v7-stream2k/best.pt")
    p.add_argument("--sets", nargs="+", default=["vmos24-t3", "p835-wb", "p835-fb", "p835-nb"])
    p.add_argument("--resamples", type=int, default=10000)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    scorer = CheckpointScorer(args.checkpoint)
    s = scorer.cfg.streaming
    first_whole = s.left_frames // s.chunk_frames
    mos = DIMENSIONS.index("mos")
    root = resolve_data_root(None)
    print("| view | shipped: partial row for short files only | partial row joins every mean | "
          "difference (95% CI) | files whose score changes |")
    print("|---|---:|---:|---|---:|")
    for name in args.sets:
        ds = human_rated_set(name, root, EvaluateConfig())
        shipped, joined, changed = [], [], 0
        for path in ds.files:
            wav, rate = _load_native(path)
            x = torch.from_numpy(np.ascontiguousarray(resample(wav, rate, 16000), np.float32))[None]
            n_whole, k_part = stream_rows(scorer.model, x.shape[1], s.chunk_frames)
            with torch.no_grad():
                rows = chunked_forward(scorer.model, x, s.chunk_frames, final_partial=True)[0]
            shipped.append(streaming_file_rows(rows, first_whole, n_whole).mean(0).numpy())
            if n_whole > first_whole and k_part > 0:
                joined.append(rows[first_whole:].mean(0).numpy())
                changed += 1
            else:
                joined.append(shipped[-1])
        a = ds.aggregate(np.stack(shipped))[:, mos]
        b = ds.aggregate(np.stack(joined))[:, mos]
        t = ds.aggregate(ds.targets)[:, mos]
        idx = np.random.default_rng(0).integers(0, len(t), size=(args.resamples, len(t)))
        d = pcc(b[idx], t[idx]) - pcc(a[idx], t[idx])
        lo, hi = np.percentile(d, [2.5, 97.5])
        pa, pb = float(pcc(a, t)), float(pcc(b, t))
        print(f"| {name} | {pa:.3f} | {pb:.3f} | {pb - pa:+.3f} ({lo:+.3f} to {hi:+.3f}) | "
              f"{changed} of {len(ds.files)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
