"""Noisy speech through real noise suppressors (`python -m train enhanced`): a training family.

Why: on VoiceMOS 2024 track 3 (enhanced noisy speech) 0.5.0 agrees with its own teacher only
at PCC 0.90 (RMSE 0.50), while on the simulated corpus it agrees far better. The simulator's
one suppressor is its own spectral subtraction (``callsim.noise_suppressor``); real calls pass
through neural and spectral-gating suppressors whose artefacts differ (gated speech onsets,
over-suppressed consonants, residual bursts). Here train/val-split talkers in train/val-split
noise go through suppressors this project does not implement:

- ``rnnoise``: RNNoise (the recurrent-network suppressor of many VoIP stacks; the library
  inside the ``pyrnnoise`` wheel, loaded with ctypes, 48 kHz, 10 ms frames);
- ``nr-stationary`` / ``nr-nonstationary``: ``noisereduce`` spectral gating (MIT);
- ``anlmdn`` / ``afwtdn``: ffmpeg's non-local-means and wavelet denoisers.

(ffmpeg's ``afftdn`` is left out on purpose: it is a held-out family of the real-chain
agreement set, ``train.realchain``.) A third of the clips then pass a real codec. Clips are
1.5-4 s, so the labels (``python -m train label``) are on exactly what the student trains on.
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import importlib.util
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from livesqa.audio import resample
from livesqa.errors import ConfigError
from train import degrade as dg
from train.asr_data import resolve_data_root
from train.codecs import CODECS, align_to, codec_roundtrip
from train.realchain import ffmpeg_filter
from train.sim_catalogue import build_catalogue
from train.simulate import MANIFEST_COLUMNS, _load, write_clip, write_manifest

SAMPLE_RATE_HZ = 16000
RNNOISE_RATE_HZ = 48000
SUPPRESSORS = ("rnnoise", "nr-stationary", "nr-nonstationary", "anlmdn", "afwtdn")
POST_CODECS = (("opus", "16k"), ("opus", "24k"), ("amr-wb", "12.65k"), ("amr-wb", "23.85k"), ("g722", "64k"))


@lru_cache(maxsize=1)
def _rnnoise_lib() -> ctypes.CDLL:
    """librnnoise from the ``pyrnnoise`` wheel, without importing the package (its ``__init__``
    pulls a media stack we do not need)."""
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the rnnoise suppressor needs the pyrnnoise wheel: pip install --no-deps pyrnnoise")
    path = Path(next(iter(spec.submodule_search_locations))) / "librnnoise.so"
    if not path.is_file():
        raise ConfigError(f"{path}: librnnoise not found in the pyrnnoise wheel")
    lib = ctypes.CDLL(str(path))
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    lib.rnnoise_get_frame_size.restype = ctypes.c_int
    lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                          ctypes.POINTER(ctypes.c_float)]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    return lib


def rnnoise(x: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """RNNoise on a mono float clip (any rate; it runs at 48 kHz); same length out.

    RNNoise works on 16-bit-scaled floats and delays its output by two frames (20 ms, measured
    by cross-correlation in the test); both are undone.
    """
    lib = _rnnoise_lib()
    n = lib.rnnoise_get_frame_size()
    y48 = resample(x, sample_rate_hz, RNNOISE_RATE_HZ) * 32768.0
    frames = -(-(len(y48) + 2 * n) // n)
    padded = np.zeros(frames * n, np.float32)
    padded[: len(y48)] = y48
    out = np.zeros_like(padded)
    state = lib.rnnoise_create(None)
    try:
        buf_in, buf_out = np.zeros(n, np.float32), np.zeros(n, np.float32)
        p_in = buf_in.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        p_out = buf_out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        for i in range(frames):
            buf_in[:] = padded[i * n: (i + 1) * n]
            lib.rnnoise_process_frame(state, p_out, p_in)
            out[i * n: (i + 1) * n] = buf_out
    finally:
        lib.rnnoise_destroy(state)
    y = out[2 * n: 2 * n + len(y48)] / 32768.0  # two frames of algorithmic delay
    z = resample(y, RNNOISE_RATE_HZ, sample_rate_hz)
    res = np.zeros(len(x), np.float32)
    res[: min(len(x), len(z))] = z[: len(x)]
    return res


def spectral_gate(x: np.ndarray, sample_rate_hz: int, stationary: bool, strength: float) -> np.ndarray:
    """``noisereduce`` spectral gating; ``strength`` (0-1) is its ``prop_decrease``."""
    import noisereduce

    y = noisereduce.reduce_noise(y=x, sr=sample_rate_hz, stationary=stationary, prop_decrease=strength,
                                 n_jobs=1)
    return np.asarray(y, np.float32)[: len(x)]


def suppress(kind: str, noisy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One real suppressor with a random setting; returns (audio, condition tag)."""
    sr = SAMPLE_RATE_HZ
    if kind == "rnnoise":
        passes = 1 if rng.random() < 0.75 else 2  # twice: the over-suppressed end of the range
        y = noisy
        for _ in range(passes):
            y = rnnoise(y, sr)
        return y, f"rnnoise x{passes}"
    if kind in ("nr-stationary", "nr-nonstationary"):
        strength = float(rng.uniform(0.6, 1.0))
        return spectral_gate(noisy, sr, kind == "nr-stationary", strength), f"{kind}/{strength:.2f}"
    if kind == "anlmdn":
        s = float(np.exp(rng.uniform(np.log(30.0), np.log(10000.0))))
        # the filter delays its output (128 samples here): aligned back onto the input
        return align_to(noisy, ffmpeg_filter(noisy, sr, f"anlmdn=s={s:.1f}:p=0.004:r=0.01"), sr), f"anlmdn/{s:.0f}"
    if kind == "afwtdn":
        sigma = float(np.exp(rng.uniform(np.log(0.01), np.log(0.15))))
        return align_to(noisy, ffmpeg_filter(noisy, sr, f"afwtdn=sigma={sigma:.4f}:percent=90"), sr), \
            f"afwtdn/{sigma:.3f}"
    raise ValueError(f"unknown suppressor {kind!r}")


def render(speech: np.ndarray, noise: np.ndarray, rng: np.random.Generator,
           suppressors: tuple[str, ...] = SUPPRESSORS) -> tuple[np.ndarray, str]:
    """Speech (active level about -26 dBFS) in noise at -5..25 dB SNR, a suppressor, and a codec
    for a third of the clips; the level then drawn from -38..-18 dBFS."""
    sr = SAMPLE_RATE_HZ
    snr = float(rng.uniform(-5.0, 25.0))
    noisy = dg.add_noise(speech, noise, snr, sr, rng)
    kind = suppressors[int(rng.integers(len(suppressors)))]
    y, tag = suppress(kind, noisy, rng)
    cond = f"{tag}@{snr:.0f}dB"
    if rng.random() < 1 / 3:
        name, rate = POST_CODECS[int(rng.integers(len(POST_CODECS)))]
        y = codec_roundtrip(y, sr, CODECS[name], rate)
        cond += f"+{name}:{rate}"
    level = float(rng.uniform(-38.0, -18.0))
    if np.max(np.abs(y)) > 0:
        y = dg.gain_db(y, level - dg.active_level_db(y, sr))
    return dg.saturate(y), cond


def build(out_dir: Path, data_root: Path, n_clips: int, seed: int = 20261203,
          val_fraction: float = 0.1, progress: Callable[[int], object] | None = None,
          seconds: tuple[float, float] = (1.5, 4.0)) -> Path:
    """Write ``n_clips`` clips and an unlabelled manifest. Each finished clip's row is appended
    to ``manifest.partial.csv`` at once, so a rerun resumes where it stopped."""
    manifest = out_dir / "manifest.csv"
    if manifest.is_file():
        return manifest
    cat = build_catalogue(data_root)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    partial = out_dir / "manifest.partial.csv"
    done: dict[str, dict[str, str]] = {}
    if partial.is_file():
        with partial.open(newline="", encoding="utf-8") as f:
            done = {r["filename_deg"]: r for r in csv.DictReader(f)}
    with partial.open("a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        if not done:
            writer.writeheader()
        rows: list[dict[str, str]] = []
        for k in range(n_clips):
            name = f"enh_{k:05d}.flac"
            if name in done and (out_dir / "clips" / name).is_file():
                rows.append(done[name])
                if progress is not None:
                    progress(1)
                continue
            split = "val" if k % round(1 / val_fraction) == 0 else "train"
            rng = np.random.default_rng([seed, k])
            utt = cat.speech[split][int(rng.integers(len(cat.speech[split])))]
            wav = _load(utt.path, SAMPLE_RATE_HZ)
            n = int(float(rng.uniform(*seconds)) * SAMPLE_RATE_HZ)
            if len(wav) < n:
                wav = np.concatenate([wav, np.zeros(n - len(wav), np.float32)])
            start = int(rng.integers(0, len(wav) - n + 1))
            x = dg.set_level(wav[start: start + n], SAMPLE_RATE_HZ, -26.0)
            noise_path = cat.noise[split][int(rng.integers(len(cat.noise[split])))]
            y, cond = render(x, _load(noise_path, SAMPLE_RATE_HZ), rng)
            write_clip(out_dir / "clips" / name, y, SAMPLE_RATE_HZ)
            row = {"db": "enhanced", "con": cond.split("@")[0].split(" ")[0].split("/")[0],
                   "filepath_deg": f"clips/{name}", "filename_deg": name,
                   "source": f"{utt.corpus}:{utt.utt_id}", "split": split, "condition": cond,
                   "speaker": utt.speaker, "duration_s": f"{n / SAMPLE_RATE_HZ:.3f}",
                   "noise_file": str(Path(noise_path).relative_to(data_root)), "seed": str(seed)}
            writer.writerow(row)
            f.flush()
            rows.append(row)
            if progress is not None:
                progress(1)
    write_manifest(manifest, rows)
    partial.unlink()
    return manifest


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    parser = argparse.ArgumentParser(prog="python -m train enhanced", description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="cache/enh", help="clips/ and manifest.csv go here")
    parser.add_argument("--n-clips", type=int, default=1600)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--data-root")
    parser.add_argument("--seconds", type=float, nargs=2, default=(1.5, 4.0), metavar=("MIN", "MAX"),
                        help="clip length range (default 1.5 4.0; longer clips for streaming distillation)")
    args = parser.parse_args(argv)
    if args.n_clips < 1:
        raise ConfigError(f"--n-clips must be at least 1, not {args.n_clips}")
    if not 1.0 <= args.seconds[0] <= args.seconds[1]:
        raise ConfigError(f"--seconds {args.seconds[0]:g} {args.seconds[1]:g}: need 1 <= MIN <= MAX")
    with tqdm(total=args.n_clips, desc="enhanced speech", unit="clip") as bar:
        manifest = build(Path(args.out_dir), resolve_data_root(args.data_root), args.n_clips, args.seed,
                         progress=bar.update, seconds=tuple(args.seconds))
    print(f"wrote {manifest}; label it with `python -m train label --manifest {manifest} "
          "--teachers nisqa,distillmos --mos-combination mean --no-dnsmos`")
    return 0
