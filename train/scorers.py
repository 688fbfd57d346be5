"""One interface over every model that evaluate and sanity compare: ours and the peers.

Why: Tables 2-4 put our checkpoints, our ONNX exports, NISQA and DNSMOS side by side on
the same files; each is wrapped as a :class:`FileScorer` that takes a whole mono clip at
its own rate and returns five scores in ``DIMENSIONS`` order (NaN where the model has no
comparable output: DNSMOS maps OVRL->MOS, BAK->NOI, SIG->COL and nothing else).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from livesqa.audio import resample
from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS

#: DNSMOS P.835 output -> our dimension (the comparable columns only).
DNSMOS_TO_DIMENSION = {"ovrl": "mos", "bak": "noi", "sig": "col"}


class FileScorer(Protocol):
    """Scores one whole clip; ``name`` labels its row in the tables."""

    name: str

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """Mono float32 ``[samples]`` at ``sample_rate_hz`` -> ``[5]`` float (NaN = no output)."""
        ...


class CheckpointScorer:
    """A ``train.checkpoint`` quality model, run in torch on the whole clip in one pass."""

    def __init__(self, path: str | Path, device: str = "cpu", name: str | None = None,
                 final_partial: bool = True) -> None:
        import torch

        from train.checkpoint import load_model

        self._torch = torch
        self.path = Path(path)
        self.model, self.cfg, ckpt = load_model(self.path)
        if ckpt.get("stage") != "quality":
            raise ConfigError(f"{self.path}: is a {ckpt.get('stage')!r} checkpoint, not a quality model")
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   "cpu" if device == "auto" else device)
        self.model.to(self.device).eval()
        self.sample_rate_hz = self.cfg.frontend.sample_rate_hz
        self.final_partial = final_partial  # streaming models: score a file's last partial chunk
        # runs/X/best.pt is "X"; runs/X/last.pt is "X@last" (both may be rows of one table)
        self.name = name or (self.path.parent.name if self.path.stem == "best" else
                             f"{self.path.parent.name}@last" if self.path.stem == "last" else self.path.stem)

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        x = resample(wav, sample_rate_hz, self.sample_rate_hz)
        batch = self._torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(self.device)
        with self._torch.no_grad():
            if self.cfg.streaming.enabled:
                return self._streaming_file_score(batch)
            out = self.model(batch)
        return out[0].float().cpu().numpy().astype(np.float64)

    def _streaming_file_score(self, batch: Any) -> np.ndarray:
        """A streaming model's file score (:func:`streaming_file_rows`): the mean of its scores
        after every chunk whose window (chunk + left context, 4 s) is whole, as ``livesqa file``
        averages the 4 s windows of a windowed model; a file shorter than one window gets its
        last row, which is the final partial chunk's when at least one 40 ms frame follows the
        last whole chunk (so the row covers the whole clip). Why: ``forward`` alone scores only
        a file's last 4 s, and a short clip's last whole chunk misses up to 1 s of it."""
        from train.streaming import chunked_forward, stream_rows

        s = self.cfg.streaming
        n_whole, k_part = stream_rows(self.model, int(batch.shape[1]), s.chunk_frames)
        first_whole = s.left_frames // s.chunk_frames
        # the partial row never joins a mean of whole windows: score it only when it is used
        partial = self.final_partial and n_whole <= first_whole and k_part > 0
        if n_whole < 1 and not partial:
            raise ConfigError(f"{self.name}: audio shorter than one chunk")
        scores = chunked_forward(self.model, batch, s.chunk_frames, final_partial=partial)[0]
        use = streaming_file_rows(scores, first_whole, n_whole)
        return use.mean(dim=0).float().cpu().numpy().astype(np.float64)


def streaming_file_rows(scores: Any, first_whole: int, n_whole: int) -> Any:
    """The rows of a streaming model's file score, shared by the torch and ONNX scorers.

    ``scores [n_rows, 5]``: one row per whole chunk, then (optionally) the final partial
    chunk's. Rows ``first_whole..n_whole-1`` see a whole window (their chunk plus the left
    context); their mean is the file score. A file with none (shorter than ~4.05 s) gets its
    last row: the final partial chunk's if scored, else the last whole chunk's. The partial row
    never joins the mean: its window is shorter than the model's, and a long file's score stays
    what it was before partial chunks existed.
    """
    if n_whole > first_whole:
        return scores[first_whole:n_whole]
    return scores[-1:]


class OnnxFileScorer:
    """An exported ONNX model through the runtime's own scorer (one thread, spec-checked)."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        from livesqa.scoring import OnnxScorer

        self.path = Path(path)
        self._scorer = OnnxScorer.load(self.path)
        self.sample_rate_hz = self._scorer.spec.sample_rate_hz
        self.name = name or f"{self.path.stem} (onnx)"

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        x = resample(wav, sample_rate_hz, self.sample_rate_hz)
        return self._scorer.score(np.ascontiguousarray(x, np.float32)[None])[0].astype(np.float64)


class OnnxStreamingFileScorer:
    """An exported *streaming* ONNX model through the runtime's ``livesqa.streaming``: the file
    score is :meth:`CheckpointScorer._streaming_file_score`'s (:func:`streaming_file_rows`), so
    a quantised or re-exported file compares with its checkpoint on the dev sets. A file whose
    spec lacks ``min_chunk_samples`` (exported before partial chunks) scores whole chunks only,
    as the runtime does with it."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        import json

        from livesqa.streaming import StreamingScorer

        self.path = Path(path)
        self._scorer = StreamingScorer.load(self.path)
        spec = self._scorer.spec
        raw = json.loads(spec.extra["streaming"])
        self._first_whole = int(raw["left_frames"]) // int(raw["chunk_frames"])
        self.sample_rate_hz = spec.sample_rate_hz
        self.name = name or f"{self.path.stem} (onnx)"

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        x = np.ascontiguousarray(resample(wav, sample_rate_hz, self.sample_rate_hz), np.float32)
        self._scorer.reset("file")
        self._scorer.push("file", x, 0)
        scores = []
        while "file" in self._scorer.due():
            scores.append(self._scorer.run(["file"])["file"].scores)
        n_whole = len(scores)
        if n_whole <= self._first_whole:  # the partial row is used only here (see the rows)
            last = self._scorer.flush("file")
            if last is not None:
                scores.append(last.scores)
        self._scorer.close("file")
        if not scores:
            raise ConfigError(f"{self.name}: audio shorter than one chunk")
        use = streaming_file_rows(np.stack(scores), self._first_whole, n_whole)
        return np.mean(use, axis=0).astype(np.float64)


class NisqaScorer:
    """A NISQA checkpoint (``train.teachers``), reordered to DIMENSIONS; NaN where it has no output."""

    def __init__(self, weights_path: str | Path, name: str = "NISQA") -> None:
        from train.teachers import NisqaTeacher

        self._teacher = NisqaTeacher(weights_path)
        self.name = name

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        out = self._teacher.score(np.asarray(wav, np.float32), sample_rate_hz)
        return np.array([float(out.get(d, math.nan)) for d in DIMENSIONS])


class DnsmosScorer:
    """DNSMOS P.835 (``train.teachers``): OVRL, BAK, SIG in the MOS, NOI, COL columns."""

    name = "DNSMOS"

    def __init__(self) -> None:
        from train.teachers import DnsmosTeacher

        self._teacher = DnsmosTeacher()

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        out = self._teacher.score(np.asarray(wav, np.float32), sample_rate_hz)
        row = np.full(len(DIMENSIONS), math.nan)
        for key, dim in DNSMOS_TO_DIMENSION.items():
            row[DIMENSIONS.index(dim)] = float(out[key])
        return row


class DistillMosScorer:
    """DistillMOS (``train.teachers``): MOS only; NaN in the other columns."""

    name = "DistillMOS"

    def __init__(self) -> None:
        from train.teachers import DistillMosTeacher

        self._teacher = DistillMosTeacher()

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        row = np.full(len(DIMENSIONS), math.nan)
        row[DIMENSIONS.index("mos")] = self._teacher.score(np.asarray(wav, np.float32), sample_rate_hz)["mos"]
        return row


class MeanMosScorer:
    """The teacher combination the student learns: MOS = mean of the scorers' MOS, the other
    dimensions from the first scorer (NISQA). Scores are cached per scorer, so this adds no cost."""

    def __init__(self, scorers: list[FileScorer], name: str) -> None:
        self.scorers = scorers
        self.name = name

    def combine(self, rows: list[np.ndarray]) -> np.ndarray:
        out = np.array(rows[0], dtype=np.float64)
        k = DIMENSIONS.index("mos")
        out[..., k] = np.mean([r[..., k] for r in rows], axis=0)
        return out

    def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        return self.combine([s.score(wav, sample_rate_hz) for s in self.scorers])


def model_scorer(path: str | Path, device: str = "cpu") -> FileScorer:
    """``*.onnx`` -> :class:`OnnxFileScorer` (or :class:`OnnxStreamingFileScorer` when its spec
    says streaming); anything else -> :class:`CheckpointScorer`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model not found: {p}")
    if p.suffix != ".onnx":
        return CheckpointScorer(p, device)
    from livesqa.spec import read_spec
    from livesqa.streaming import STREAMING_KIND, model_kind

    return OnnxStreamingFileScorer(p) if model_kind(read_spec(p)) == STREAMING_KIND else OnnxFileScorer(p)
