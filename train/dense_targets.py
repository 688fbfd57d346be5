"""Per-second targets for dense streaming distillation (`python -m train dense-targets`).

Why: a streaming model scores a file as the mean of all its rows (the 1, 2 and 3 s prefixes,
then 4 s windows sliding by 1 s), but a clip-level target only teaches its last row. Here every
whole-second row ``c`` of a clip gets the *windowed* model's five scores on exactly the audio
that row's window covers: ``wav[max(0, e - window) : e]`` with ``e = tail + (c + 1) hop`` (the
streaming framing of :mod:`train.streaming`: a ``tail`` of 720 samples primes the state, then
1 s chunks). Rows ``c < 3`` are prefixes of 1-3 s, which the windowed model scores as short
clips. No teacher and no human label is involved: the targets are one shipped ONNX file's
outputs, so a rerun reproduces them.

Output: ``<out>/targets-K-of-N.npz`` per shard, with ``path`` (clip paths as given by the
manifests, resolved), ``split``, ``offset`` and ``scores [rows, 5]`` (row ``c`` of clip ``i`` is
``scores[offset[i] + c]``). A finished shard is skipped on a rerun.
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from train.teachers import parse_shard

SAMPLE_RATE_HZ = 16000
TAIL_SAMPLES = 720  # train.streaming.tail_samples for the 25 ms / 10 ms front end
HOP_SAMPLES = 16000  # 1 s rows: chunks of 25 encoder frames
WINDOW_SAMPLES = 64000  # the windowed model's 4 s window
MIN_ROWS = 1


@dataclass(frozen=True)
class Clip:
    path: Path
    split: str


def row_ends(n_samples: int, tail: int = TAIL_SAMPLES, hop: int = HOP_SAMPLES) -> list[int]:
    """The last sample (exclusive) of each whole-second row of a stream of ``n_samples``."""
    n = max(n_samples - tail, 0) // hop
    return [tail + (c + 1) * hop for c in range(n)]


def row_windows(wav: np.ndarray, window: int = WINDOW_SAMPLES) -> list[np.ndarray]:
    """The audio each row's window covers (a prefix for the first rows)."""
    return [wav[max(0, e - window) : e] for e in row_ends(len(wav))]


def read_clips(manifests: list[Path]) -> list[Clip]:
    """Every row of the manifests (``filepath_deg`` relative to its manifest, ``split``)."""
    clips: list[Clip] = []
    for m in manifests:
        if not m.is_file():
            raise ConfigError(f"manifest not found: {m}")
        with m.open(newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                clips.append(Clip((m.parent / r["filepath_deg"]).resolve(), r.get("split") or "train"))
    return clips


class WindowedTeacher:
    """The windowed ONNX model, one thread; scores a list of windows (batched by length)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        from livesqa.spec import read_spec

        spec = read_spec(path)
        if spec.extra.get("kind") == "streaming":
            raise ConfigError(f"{path}: a streaming model; the targets come from a windowed one")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.name = f"{spec.name} {spec.version}"

    def score(self, windows: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(windows), 5), dtype=np.float32)
        by_len: dict[int, list[int]] = {}
        for i, w in enumerate(windows):
            by_len.setdefault(len(w), []).append(i)
        for idx in by_len.values():
            batch = np.stack([windows[i] for i in idx]).astype(np.float32)
            out[idx] = self.session.run(None, {self.input: batch})[0]
        return out


def build_shard(clips: list[Clip], teacher: WindowedTeacher, out: Path, progress: bool = True) -> int:
    """Score every row of ``clips`` and write ``out`` (npz); returns the number of rows."""
    from tqdm import tqdm

    paths, splits, offsets, scores = [], [], [], []
    total = 0
    for clip in tqdm(clips, desc=f"targets {out.name}", unit="clip", disable=not progress):
        wav = read_audio(clip.path, SAMPLE_RATE_HZ)
        windows = row_windows(wav)
        if len(windows) < MIN_ROWS:
            continue  # shorter than tail + 1 s: no whole row
        paths.append(str(clip.path))
        splits.append(clip.split)
        offsets.append(total)
        scores.append(teacher.score(windows))
        total += len(windows)
    tmp = out.with_suffix(".partial.npz")
    np.savez(tmp, path=np.array(paths), split=np.array(splits), offset=np.array(offsets, dtype=np.int64),
             scores=np.concatenate(scores) if scores else np.zeros((0, 5), np.float32),
             teacher=np.array(teacher.name))
    tmp.replace(out)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train dense-targets", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", action="append", required=True, type=Path,
                        help="corpus manifest (repeat for several); clips shorter than 1.045 s are skipped")
    parser.add_argument("--model", type=Path, default=Path("exported/livesqa-small.onnx"),
                        help="the windowed ONNX model whose scores are the targets")
    parser.add_argument("--out-dir", type=Path, default=Path("cache/dense-targets"))
    parser.add_argument("--shard", default="0/1", help="K/N: this process scores every N-th clip from K")
    args = parser.parse_args(argv)
    k, n = parse_shard(args.shard, "--shard")
    if not args.model.is_file():
        raise ConfigError(f"--model {args.model}: not found")
    clips = read_clips(args.manifest)[k::n]
    out = args.out_dir / f"targets-{k}-of-{n}.npz"
    if out.is_file():
        print(f"{out}: done already")
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows = build_shard(clips, WindowedTeacher(args.model), out)
    print(f"wrote {out}: {len(clips)} clips, {rows} rows")
    return 0
