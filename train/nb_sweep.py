"""The narrowband-path set (`python -m train nb-sweep`): faults made at the device, heard through a telephone band.

Why: through an 8 kHz round trip of session 15's VoIP probe files, the students score hard-clipped
speech about one MOS above NISQA (+0.9 at +20 dB of input gain, +1.1 at +30 dB) and long repeated
chops +0.75, where on the same files left wideband they are within +-0.5
(``results/v15/probe-variants.md``). A hot microphone or a lossy link on a PSTN, G.711 or AMR-NB
leg is an everyday real call, and the corpus rarely holds a device fault followed by a narrowband
path: the simulator's chains apply its ``nb`` filter *before* clipping, so the clipping's
harmonics stay in the band the student hears. This set renders the order a real call has.

Each 4 s clip: one talker of the split at an active level of -36..-16 dBFS, then one fault at the
device (hot input gain into a hard/soft clipper or a peak limiter, 40 %; frames of 10-80 ms lost at
1-30 %, random or bursty, by zero insertion, fade or repetition, 30 %; noise at 0-25 dB SNR, 15 %;
none, 15 %; ``--faults`` changes the shares and can add MNRU at Q 5-40 dB), then the path: 70 % narrowband (G.711 A-/mu-law, AMR-NB at a drawn rate, GSM, or a
300-3400 Hz band through 8 kHz), 30 % wideband as a control (AMR-WB, G.722 or none). Splits are the
simulator's (``train.sim_catalogue``). Written with a corpus manifest, so ``python -m train label``
gives both teachers' labels and ``python -m train self-label`` a model's own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from livesqa.audio import resample
from livesqa.errors import ConfigError
from train import callsim as cs
from train import degrade as dg
from train import plc
from train.asr_data import resolve_data_root
from train.codecs import CODECS, codec_roundtrip
from train.level_sweep import talker_window
from train.sim_catalogue import build_catalogue
from train.simulate import _load, write_clip, write_manifest

SAMPLE_RATE_HZ = 16000
CLIP_S = 4.0
LEVELS_DBFS = (-36.0, -16.0)
NB_PATHS = (("g711-alaw", ""), ("g711-ulaw", ""), ("amr-nb", None), ("gsm", ""), ("band", ""))
WB_PATHS = (("amr-wb", None), ("g722", "64k"), ("none", ""))
DEFAULT_COUNTS = {"train": 2000, "val": 200, "test": 300}
FAULTS = ("hot", "loss", "noise", "none", "mnru")
DEFAULT_FAULT_SHARES = (0.4, 0.3, 0.15, 0.15, 0.0)
MNRU_Q_DB = (5.0, 40.0)


def fault_thresholds(shares: tuple[float, ...] = DEFAULT_FAULT_SHARES) -> tuple[float, float, float, float]:
    """Cumulative shares of hot, loss, noise and mnru (none takes the rest): where one uniform draw falls.

    Four shares leave mnru out (session 18's sets); the order keeps those sets' draws unchanged."""
    if len(shares) == 4:
        shares = (*shares, 0.0)
    if len(shares) != len(FAULTS) or any(s < 0 for s in shares) or sum(shares) <= 0:
        raise ConfigError(f"--faults: four or five shares >= 0 for {', '.join(FAULTS)}, e.g. 0.4,0.3,0.15,0.15")
    total = sum(shares)
    hot, loss, noise, _none, mnru = (s / total for s in shares)
    return hot, hot + loss, hot + loss + noise, hot + loss + noise + mnru


def device_fault(x: np.ndarray, noise: np.ndarray, rng: np.random.Generator,
                 thresholds: tuple[float, float, float, float] = (0.4, 0.7, 0.85, 0.85)) -> tuple[np.ndarray, str]:
    """One fault at the talker's device (or none) -> (audio, label); ``thresholds`` from fault_thresholds."""
    sr = SAMPLE_RATE_HZ
    u = rng.random()
    if u < thresholds[0]:
        how = str(rng.choice(["hard", "soft", "limiter"], p=[0.6, 0.2, 0.2]))
        level = dg.active_level_db(x, sr)
        gain = float(rng.uniform(-level - 20, -level + 12))  # active level -20..+12 dBFS after the gain
        y = cs.limiter(x, sr, gain, how)
        if rng.random() < 0.5:  # a later stage brings it back to talking level
            y = dg.set_level(y, sr, float(rng.uniform(-30, -20)))
        return y, f"hot:{how}@{level + gain:+.0f}dBFS"
    if u < thresholds[1]:
        frame_ms = float(rng.choice([10.0, 20.0, 40.0, 60.0, 80.0]))
        rate = float(np.exp(rng.uniform(np.log(0.01), np.log(0.3))))
        burst = float(rng.choice([1.0, rng.uniform(1.5, 4.0)]))
        method = str(rng.choice(["zero", "fade", "repeat"]))
        frame = round(frame_ms * sr / 1000)
        lost = plc.gilbert_elliott_mask(len(x) // frame, rate, burst, rng)
        return dg.conceal(x, lost, frame, method), f"loss:{method}{frame_ms:.0f}ms@{100 * rate:.0f}%b{burst:.1f}"  # type: ignore[arg-type]
    if u < thresholds[2]:
        snr = float(rng.uniform(0, 25))
        return dg.add_noise(x, noise, snr, sr, rng), f"noise@{snr:.0f}dB"
    if u < thresholds[3]:  # speech-correlated noise (P.810 MNRU): a signal distortion that is not clipping
        q = float(rng.uniform(*MNRU_Q_DB))
        return dg.mnru(x, q, rng).astype(np.float32), f"mnru@Q{q:.0f}dB"
    return x, "none"


RENDERS = ("v1", "v2")


def below_full_scale(x: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """A gain that brings the peak to ``peak`` when it is above (never a clip)."""
    top = float(np.max(np.abs(x))) if len(x) else 0.0
    return (x * (peak / top)).astype(np.float32) if top > peak else x.astype(np.float32)


def path(x: np.ndarray, rng: np.random.Generator, render: str = "v1") -> tuple[np.ndarray, str]:
    """The link after the device: narrowband (70 %) or a wideband control (see the module's renders)."""
    if render not in RENDERS:
        raise ConfigError(f"--render {render!r}: choose from {RENDERS}")
    sr = SAMPLE_RATE_HZ
    table = NB_PATHS if rng.random() < 0.7 else WB_PATHS
    name, bitrate = table[int(rng.integers(len(table)))]
    x = dg.saturate(x)
    if name == "none":
        return x, "wb:none"
    codec = None if name == "band" else CODECS[name]
    if codec is not None and bitrate is None:
        bitrate = codec.bitrates[int(rng.integers(len(codec.bitrates)))]
    label = "nb:band300-3400" if codec is None else \
        f"{'nb' if codec.rate_hz == 8000 else 'wb'}:{name}{'@' + bitrate if bitrate else ''}"
    if render == "v2" and (codec is None or codec.rate_hz == 8000):
        x8 = dg.saturate(resample(dg.narrowband(x, sr) if codec is None else x, sr, 8000))  # a 16-bit 8 kHz leg
        y8 = x8 if codec is None else codec_roundtrip(x8, 8000, codec, bitrate or "")
        return below_full_scale(resample(y8, 8000, sr)), label
    if codec is None:
        return resample(resample(dg.narrowband(x, sr), sr, 8000), 8000, sr), label
    y = codec_roundtrip(x, sr, codec, bitrate or "")
    return (below_full_scale(y) if render == "v2" else y), label


def build(out_dir: Path, data_root: Path, counts: dict[str, int], seed: int = 18, render: str = "v1",
          fault_shares: tuple[float, ...] = DEFAULT_FAULT_SHARES) -> Path:
    """Write the clips and their manifest (unlabelled); an existing manifest is kept as it is."""
    thresholds = fault_thresholds(fault_shares)
    from tqdm import tqdm

    manifest = out_dir / "manifest.csv"
    if manifest.is_file():
        return manifest
    cat = build_catalogue(data_root)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(split, i) for split, n in counts.items() for i in range(n)]
    n_samples = int(CLIP_S * SAMPLE_RATE_HZ)
    for k, (split, i) in enumerate(tqdm(jobs, desc="narrowband-path set", unit="clip")):
        rng = np.random.default_rng([seed, k])
        speech, noises = cat.speech[split], cat.noise[split]
        utt, x = talker_window(speech, n_samples, rng)
        x = dg.set_level(x, SAMPLE_RATE_HZ, float(rng.uniform(*LEVELS_DBFS)))
        noise_path = noises[int(rng.integers(len(noises)))]
        y, fault = device_fault(x, _load(noise_path, SAMPLE_RATE_HZ), rng, thresholds)
        y, link = path(y, rng, render)
        name = f"{split}_{i:04d}.flac"
        write_clip(out_dir / "clips" / name, dg.saturate(y), SAMPLE_RATE_HZ)
        rows.append({"db": "nbsweep" if render == "v1" else f"nbsweep-{render}", "con": fault.split(":")[0].split("@")[0], "filepath_deg": f"clips/{name}",
                     "filename_deg": name, "source": f"{utt.corpus}:{utt.utt_id}", "split": split,
                     "condition": f"{fault}+{link}", "speaker": utt.speaker, "duration_s": f"{CLIP_S:.3f}",
                     "noise_file": str(Path(noise_path).relative_to(data_root)) if fault.startswith("noise") else ""})
    write_manifest(manifest, rows)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train nb-sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="cache/nbsweep")
    parser.add_argument("--train", type=int, default=DEFAULT_COUNTS["train"], help="clips of train-split talkers")
    parser.add_argument("--val", type=int, default=DEFAULT_COUNTS["val"], help="clips of val-split talkers")
    parser.add_argument("--test", type=int, default=DEFAULT_COUNTS["test"], help="clips of test-split talkers")
    parser.add_argument("--seed", type=int, default=18, help="another seed draws other clips (a fresh test set)")
    parser.add_argument("--render", default="v1", choices=RENDERS,
                        help="v1: back to 16 kHz through ffmpeg and clipped (session 18's first set); v2: the "
                             "narrowband leg at 8 kHz, soxr to 16 kHz, a gain instead of a clip")
    parser.add_argument("--faults", default=",".join(str(v) for v in DEFAULT_FAULT_SHARES),
                        help="shares of the device faults hot,loss,noise,none[,mnru] (default 0.4,0.3,0.15,0.15,0)")
    parser.add_argument("--data-root")
    args = parser.parse_args(argv)
    try:
        shares = tuple(float(v) for v in args.faults.split(","))
    except ValueError:
        raise ConfigError(f"--faults {args.faults!r}: four numbers separated by commas") from None
    counts = {s: n for s, n in (("train", args.train), ("val", args.val), ("test", args.test)) if n > 0}
    if not counts:
        raise ConfigError("nothing to make: every split count is 0")
    manifest = build(Path(args.out_dir), resolve_data_root(args.data_root), counts, args.seed, args.render,
                     shares)
    print(f"wrote {manifest}; label it with `python -m train label --manifest {manifest} "
          "--teachers nisqa,distillmos --mos-combination mean --no-dnsmos`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
