"""Does scoring a stream's final partial chunk help a streaming model on the human-rated views?

Why one script instead of `python -m train evaluate` plus `results/eval/paired_bootstrap.py`:
on a 2-core host shared with a training job, each of those scores every model on every file
again. This scores each file once per model (the same scorers: ``train.scorers.CheckpointScorer``,
the sets, aggregation and metrics of ``train.evaluate``), caches the per-file rows under
``OUT/scores/`` (a killed run resumes), and prints both tables: PCC/RMSE per dimension (as
``evaluate``) and MOS PCC with a paired bootstrap (as ``paired_bootstrap.py``: 10,000 resamples
of files, or of NOIZEUS condition means; one generator seeded 0 per set) against the
windowed model and against the streaming model without its final partial chunk.

The two streaming rows are one checkpoint under two file protocols
(``CheckpointScorer._streaming_file_score``): ``whole chunks`` (before: the last partial second
of a clip is never heard) and ``+ final partial`` (a clip shorter than one window, ~4.05 s, is
scored by its final partial chunk's row; longer files are unchanged, so their row is copied
rather than computed twice).

    python results/streaming/partial_eval.py --out results/streaming/partial-eval \
        --sets vmos24-t3 p835-wb p835-fb p835-nb            # checkpoints, torch
    python results/streaming/partial_eval.py --windowed exported/livesqa-small.onnx \
        --whole OLD-livesqa-small-stream.onnx --partial exported/livesqa-small-stream.onnx  # ORT
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from livesqa.audio import resample
from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from train.evaluate import EvalSet, EvaluateConfig, human_rated_set, score_set
from train.metrics import per_dimension
from train.scorers import CheckpointScorer, FileScorer, OnnxStreamingFileScorer, model_scorer


def pcc(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation (``results/eval/paired_bootstrap.py``'s)."""
    xc = x - x.mean(-1, keepdims=True)
    yc = y - y.mean(-1, keepdims=True)
    return (xc * yc).sum(-1) / np.sqrt((xc**2).sum(-1) * (yc**2).sum(-1))


def _key(wav: np.ndarray, rate: int) -> str:
    return f"{rate}:{wav.size}:{hashlib.sha1(np.ascontiguousarray(wav).tobytes()).hexdigest()}"


class Memo:
    """A scorer that remembers its rows by audio content (so the other protocol can reuse them)."""

    def __init__(self, scorer: FileScorer) -> None:
        self.scorer, self.name, self.rows = scorer, scorer.name, {}

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        row = self.scorer.score(wav, sample_rate_hz)
        self.rows[_key(wav, sample_rate_hz)] = row
        return row


def stream_layout(scorer: FileScorer) -> tuple[int, int, int, int]:
    """(rate, tail, chunk, first chunk with a whole window) of a streaming scorer."""
    if isinstance(scorer, OnnxStreamingFileScorer):
        lay = scorer._scorer.layout
        return scorer.sample_rate_hz, lay.tail_samples, lay.chunk_samples, scorer._first_whole
    assert isinstance(scorer, CheckpointScorer)
    from train.streaming import chunk_samples, tail_samples

    s = scorer.cfg.streaming
    return (scorer.sample_rate_hz, tail_samples(scorer.model),
            chunk_samples(scorer.model, s.chunk_frames), s.left_frames // s.chunk_frames)


class WithPartial:
    """The streaming model with its final partial chunk; a file with a whole window has the
    same score under both protocols (the partial row does not join the mean), so its row is
    taken from ``whole`` when it has it (same weights: checked by the caller)."""

    def __init__(self, scorer: FileScorer, whole: Memo) -> None:
        self.scorer, self.whole, self.name = scorer, whole, scorer.name
        self._rate, self._tail, self._chunk, self._first_whole = stream_layout(scorer)
        self.computed = 0

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        n = resample(wav, sample_rate_hz, self._rate).shape[0]
        cached = self.whole.rows.get(_key(wav, sample_rate_hz))
        if (n - self._tail) // self._chunk > self._first_whole and cached is not None:
            return cached
        self.computed += 1
        return self.scorer.score(wav, sample_rate_hz)


def load(path: str, name: str, final_partial: bool = True) -> FileScorer:
    """An ONNX file through the runtime (a streaming file's spec decides whether it scores
    partial chunks), or a checkpoint in torch (``final_partial`` for a streaming one)."""
    if path.endswith(".onnx"):
        scorer = model_scorer(path)
        scorer.name = name
        return scorer
    return CheckpointScorer(path, name=name, final_partial=final_partial)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windowed", default="runs/soup-v040-v7/best.pt", help="checkpoint or ONNX")
    p.add_argument("--whole", default="runs/ft-v7-stream2k/best.pt",
                   help="the streaming model, whole chunks only: a checkpoint, or an ONNX file "
                        "exported before partial chunks")
    p.add_argument("--partial", default="runs/ft-v7-stream2k/best.pt",
                   help="the same weights with partial chunks: a checkpoint or a new ONNX file")
    p.add_argument("--label", default="ft-v7-stream2k", help="the streaming rows' name")
    p.add_argument("--sets", nargs="+", default=["vmos24-t3", "p835-wb", "p835-fb", "p835-nb"])
    p.add_argument("--out", default="results/streaming/partial-eval")
    p.add_argument("--resamples", type=int, default=10000)
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    if not all(m.endswith(".onnx") for m in (args.windowed, args.whole, args.partial)):
        import torch

        torch.set_num_threads(1)
    cfg = EvaluateConfig()
    root = resolve_data_root(args.data_root)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    windowed = load(args.windowed, Path(args.windowed).parent.name if args.windowed.endswith(".pt")
                    else Path(args.windowed).stem)
    whole = Memo(load(args.whole, f"{args.label} whole chunks", final_partial=False))
    partial = WithPartial(load(args.partial, f"{args.label} + final partial"), whole)
    models = [(windowed, "windowed"), (whole, "stream-whole"), (partial, "stream-partial")]
    mos = DIMENSIONS.index("mos")
    csv_rows = ["dataset,model,dimension,pcc,rmse,n"]
    for name in args.sets:
        ds: EvalSet = human_rated_set(name, root, cfg)
        preds: dict[str, np.ndarray] = {}
        for scorer, tag in models:
            preds[scorer.name] = ds.aggregate(score_set(scorer, ds, out / "scores" / tag / f"{name}.csv"))
        target = ds.aggregate(ds.targets)
        unit = "condition means" if ds.groups else "files"
        lines = [f"\n## {name} ({len(target)} {unit})\n",
                 "| model | " + " | ".join(f"{d} PCC / RMSE" for d in DIMENSIONS) + " |",
                 "|---|" + "---:|" * len(DIMENSIONS)]
        for k, v in preds.items():
            r = per_dimension(v, target, DIMENSIONS)
            lines.append(f"| {k} | " + " | ".join(f"{r[d]['pcc']:.3f} / {r[d]['rmse']:.3f}" for d in DIMENSIONS) + " |")
            csv_rows += [f"{name},{k},{d},{r[d]['pcc']:.4f},{r[d]['rmse']:.4f},{r[d]['n']}" for d in DIMENSIONS]
        rng = np.random.default_rng(0)
        t = target[:, mos]
        idx = rng.integers(0, len(t), size=(args.resamples, len(t)))
        boot = {k: pcc(v[idx, mos], t[idx]) for k, v in preds.items()}
        for ref in (windowed.name, whole.name):
            lines += [f"\nMOS PCC vs OVRL, {args.resamples} paired resamples, minus {ref}:\n",
                      "| model | PCC | 95% CI | difference | 95% CI | P(better) |",
                      "|---|---:|---:|---:|---:|---:|"]
            for k, v in preds.items():
                d = boot[k] - boot[ref]
                lo, hi = np.percentile(boot[k], [2.5, 97.5])
                dlo, dhi = np.percentile(d, [2.5, 97.5])
                point = float(pcc(v[:, mos], t))
                lines.append(f"| {k} | {point:.3f} | {lo:.3f}–{hi:.3f} | "
                             f"{point - float(pcc(preds[ref][:, mos], t)):+.3f} | {dlo:+.3f}–{dhi:+.3f} | "
                             f"{float((d > 0).mean()):.2f} |")
        text = "\n".join(lines)
        print(text, flush=True)
        with (out / "eval.md").open("a", encoding="utf-8") as f:
            f.write(text + "\n")
    (out / "eval.csv").write_text("\n".join(csv_rows) + "\n", encoding="utf-8")
    print(f"\nfinal-partial rows computed: {partial.computed}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
