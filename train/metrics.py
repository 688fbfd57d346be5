"""Evaluation metrics: PCC and RMSE for quality scores, CER/WER and greedy CTC decoding.

Why numpy only: the same functions score torch checkpoints, ONNX files and the peer
models (NISQA, DNSMOS) in ``train.evaluate``, so they take plain arrays. Missing labels
are NaN and are dropped pairwise, never imputed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from train.text import BLANK, decode

ArrayLike = npt.ArrayLike


def _paired(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Flatten to float64 and keep only the positions where both values are finite."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in size: {p.shape} vs {t.shape}")
    keep = np.isfinite(p) & np.isfinite(t)
    return p[keep], t[keep]


def pcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Pearson correlation over finite pairs; NaN when fewer than 2 pairs or a constant side."""
    p, t = _paired(pred, target)
    if p.size < 2:
        return float("nan")
    dp, dt = p - p.mean(), t - t.mean()
    denom = float(np.sqrt((dp * dp).sum() * (dt * dt).sum()))
    if denom == 0.0:
        return float("nan")
    return float((dp * dt).sum() / denom)


def rmse(pred: ArrayLike, target: ArrayLike) -> float:
    """Root mean squared error over finite pairs; NaN when there are none."""
    p, t = _paired(pred, target)
    if p.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((p - t) ** 2)))


def per_dimension(
    pred: ArrayLike, target: ArrayLike, names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """``pred``/``target`` [N, K] -> ``{name: {"pcc", "rmse", "n"}}`` for each column."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.ndim != 2 or p.shape != t.shape or p.shape[1] != len(names):
        raise ValueError(f"want [N, {len(names)}] arrays, got {p.shape} and {t.shape}")
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        n = int((np.isfinite(p[:, k]) & np.isfinite(t[:, k])).sum())
        out[name] = {"pcc": pcc(p[:, k], t[:, k]), "rmse": rmse(p[:, k], t[:, k]), "n": n}
    return out


def edit_distance(ref: Sequence[object], hyp: Sequence[object]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def error_rate(refs: Sequence[Sequence[object]], hyps: Sequence[Sequence[object]]) -> float:
    """Corpus error rate: total edits / total reference length (NaN for empty references)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    total = sum(len(r) for r in refs)
    return float(edits / total) if total else float("nan")


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Character error rate over a corpus (spaces count as characters)."""
    return error_rate(list(refs), list(hyps))


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Word error rate over a corpus (whitespace-split words)."""
    return error_rate([r.split() for r in refs], [h.split() for h in hyps])


def greedy_ctc_decode(log_probs: ArrayLike, lengths: ArrayLike | None = None) -> list[str]:
    """Best path decoding: argmax per frame, collapse repeats, drop blanks.

    ``log_probs`` [B, F, vocab] (any monotone scores; a torch tensor works via
    ``.detach().cpu()`` first); ``lengths`` [B] valid frames, default all.
    """
    scores = np.asarray(log_probs)
    if scores.ndim != 3:
        raise ValueError(f"log_probs must be [B, F, vocab], got shape {scores.shape}")
    best = scores.argmax(axis=-1)
    n_frames = (
        np.full(best.shape[0], best.shape[1]) if lengths is None else np.asarray(lengths)
    )
    texts: list[str] = []
    for row, n in zip(best, n_frames):
        path = row[: int(n)]
        if path.size == 0:
            texts.append("")
            continue
        keep = np.ones(path.size, dtype=bool)
        keep[1:] = path[1:] != path[:-1]
        texts.append(decode([int(i) for i in path[keep] if i != BLANK]))
    return texts
