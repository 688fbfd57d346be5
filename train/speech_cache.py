"""Rendered speech windows on disk: audio, talker activity and a frozen teacher's scores.

Why audio and not encoder features (as ``speech-head`` caches): the joint stage
(``python -m train speech-joint``) trains the encoder, so its features change at every step;
what stays fixed is the window itself (``train.speech_data``: talkers decoded, noise mixed,
codec round trips, ~0.1-0.5 s of CPU each) and the frozen input model's five scores on it.
Both are made once, so a rerun of training with other settings costs training only.

Layout under ``ROOT/<data key>/``: ``part-XXXX.npz`` holds windows ``PART*X ..`` (audio
float32 concatenated with offsets, the mel-frame activity of the clean talker, the kind);
``teacher-<weights key>/part-XXXX.npy`` their teacher scores ``[n, 5]``, so another input
checkpoint reuses the audio. Files are written to a temporary name and renamed: an
interrupted render resumes at the first missing part, and a part left shorter by a run with
fewer ``--windows`` is rendered again.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from livesqa.errors import ConfigError
from train.model import QualityModel
from train.speech_data import SpeechWindow, encoder_labels

PART = 100  # windows per part file
CACHE_VERSION = 1  # bump when a part's layout changes


@dataclass(frozen=True)
class WindowSet:
    """Cached windows in memory. Window ``k`` (id ``index[k]``) is
    ``audio[offsets[k]:offsets[k+1]]``; its mel-frame activity likewise with ``act_offsets``."""

    index: np.ndarray  # [N] int64 window ids (the WindowMaker's index)
    offsets: np.ndarray  # [N+1] int64
    audio: np.ndarray  # float32 [sum of lengths]
    act_offsets: np.ndarray  # [N+1] int64
    active: np.ndarray  # float32 [sum of mel frames], 0/1 per 25 ms frame
    kinds: np.ndarray  # [N] str
    teacher: np.ndarray  # [N, 5] float32: the frozen input model's scores

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        """Samples per window ``[N]``."""
        return np.diff(self.offsets)

    @property
    def held_out(self) -> np.ndarray:
        """``[N]`` bool: window id % 10 == 0 (never trained on; the same rule as speech-head)."""
        return self.index % 10 == 0

    def wav(self, k: int) -> np.ndarray:
        return self.audio[self.offsets[k]: self.offsets[k + 1]]

    def labels(self, k: int, n_frames: int) -> np.ndarray:
        """Soft labels of window ``k``'s ``n_frames`` encoder frames."""
        return encoder_labels(self.active[self.act_offsets[k]: self.act_offsets[k + 1]], n_frames)


def data_key(settings: dict[str, Any]) -> str:
    """Folder name of a window series: its settings (seed, split, call path, data version)."""
    text = json.dumps({**settings, "cache_version": CACHE_VERSION}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def teacher_key(model: QualityModel) -> str:
    """Every weight and the config of the teacher (its scores are what is cached)."""
    h = hashlib.sha1(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


PART_KEYS = ("index", "offsets", "audio", "act_offsets", "active", "kinds")


def _read_part(path: Path, keys: Sequence[str] = PART_KEYS) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in keys}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ConfigError(f"{path}: not a speech-joint cache part ({e}); delete it to render it again") from e
    return data


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` under a temporary name, then renamed (no half-written part)."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # (numpy's stub reads **arrays as allow_pickle)
    tmp.replace(path)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def render_parts(maker: Callable[[int], SpeechWindow], n_windows: int, folder: Path,
                 progress: bool = True) -> list[Path]:
    """Render windows ``0 .. n_windows-1`` into parts (finished parts are kept)."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    bar = tqdm(total=n_windows, desc="speech-joint windows", unit="win", disable=not progress)
    for k in range(-(-n_windows // PART)):
        path = folder / f"part-{k:04d}.npz"
        want = np.arange(k * PART, min(n_windows, (k + 1) * PART))
        if path.is_file():
            have = _read_part(path, ("index",))["index"]
            if len(have) >= len(want) and np.array_equal(have[: len(want)], want):
                paths.append(path)
                bar.update(len(want))
                continue
            if not np.array_equal(have, want[: len(have)]):
                raise ConfigError(f"{path}: holds windows {have[:1]}.. not {want[:1]}..; delete it")
            # a shorter part from a run with fewer windows: rendered again whole
        wins = []
        for i in want:
            wins.append(maker(int(i)))
            bar.update(1)
        _atomic_savez(path, index=want.astype(np.int64),
                      offsets=np.cumsum([0] + [len(w.audio) for w in wins]).astype(np.int64),
                      audio=np.concatenate([w.audio for w in wins]).astype(np.float32),
                      act_offsets=np.cumsum([0] + [len(w.active) for w in wins]).astype(np.int64),
                      active=np.concatenate([w.active for w in wins]).astype(np.float32),
                      kinds=np.array([w.kind for w in wins]))
        paths.append(path)
    bar.close()
    return paths


@torch.no_grad()
def teacher_scores(teacher: QualityModel, audio: Sequence[np.ndarray]) -> np.ndarray:
    """``[n, 5]``: the teacher (eval mode) on each window alone, as the runtime sees it."""
    teacher.eval()
    return np.stack([teacher(torch.from_numpy(np.ascontiguousarray(a))[None])[0].numpy()
                     for a in audio]).astype(np.float32)


def score_parts(teacher: QualityModel, parts: list[Path], folder: Path, progress: bool = True) -> list[Path]:
    """Teacher scores beside each part (``folder/part-XXXX.npy``; finished ones are kept)."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for part in tqdm(parts, desc="teacher scores", unit="part", disable=not progress):
        path = folder / (part.stem + ".npy")
        data = _read_part(part)
        n = len(data["index"])
        if path.is_file():
            try:
                ok = np.load(path, allow_pickle=False).shape == (n, teacher.cfg.head.n_outputs)
            except (OSError, ValueError):
                ok = False
            if ok:
                out.append(path)
                continue
        off = data["offsets"]
        scores = teacher_scores(teacher, [data["audio"][off[j]: off[j + 1]] for j in range(n)])
        _atomic_save(path, scores)
        out.append(path)
    return out


def load_windows(parts: list[Path], scores: list[Path], n_windows: int) -> WindowSet:
    """The first ``n_windows`` windows of the parts, with their teacher scores."""
    index, audio, active, kinds, teach = [], [], [], [], []
    lengths, act_lengths = [], []
    for part, sp in zip(parts, scores, strict=True):
        d = _read_part(part)
        s = np.load(sp, allow_pickle=False)
        keep = d["index"] < n_windows
        off, aoff = d["offsets"], d["act_offsets"]
        for j in np.flatnonzero(keep):
            audio.append(d["audio"][off[j]: off[j + 1]])
            active.append(d["active"][aoff[j]: aoff[j + 1]])
            lengths.append(off[j + 1] - off[j])
            act_lengths.append(aoff[j + 1] - aoff[j])
        index.append(d["index"][keep])
        kinds.append(d["kinds"][keep])
        teach.append(s[keep])
    return WindowSet(
        index=np.concatenate(index).astype(np.int64),
        offsets=np.cumsum([0] + lengths).astype(np.int64),
        audio=np.concatenate(audio).astype(np.float32),
        act_offsets=np.cumsum([0] + act_lengths).astype(np.int64),
        active=np.concatenate(active).astype(np.float32),
        kinds=np.concatenate(kinds),
        teacher=np.concatenate(teach).astype(np.float32),
    )


def build_window_cache(maker: Callable[[int], SpeechWindow], teacher: QualityModel, n_windows: int,
                       root: Path, settings: dict[str, Any], progress: bool = True) -> tuple[WindowSet, Path]:
    """Render (or reuse) ``n_windows`` windows and the teacher's scores; returns them and
    the folder they are cached in."""
    folder = root / data_key(settings)
    parts = render_parts(maker, n_windows, folder, progress)
    scores = score_parts(teacher, parts, folder / f"teacher-{teacher_key(teacher)}", progress)
    return load_windows(parts, scores, n_windows), folder
