"""The level sweep (`python -m train level-sweep`): talkers from whisper-quiet to a hot, clipping input.

Why: the students rate a clean talker at -56 dBFS MOS 3.3 and LOUD 3.2 where their teacher NISQA
says 1.9 and 1.4 (``python -m train sanity --teacher-reference``), and the corpus holds few quiet
or hot clips (``results/v8/level.md``). A quiet talker (a phone held away from the mouth) and a
hot input (a loud talker on a gain set too high) are real-call faults. This set spreads the
active speech level uniformly over ``LEVELS_DBFS`` so the teachers' verdict on level can be
learnt and measured, apart from everything else.

Each 4 s clip: one talker of the split at a drawn active level; half are otherwise clean, 30 %
carry a noise file of the split at 5-30 dB SNR (the noise scales with the talker: the whole
pickup is quiet or hot), 20 % go through a real codec (G.711 A-law, AMR-WB, Opus) after the
level is set. Levels above about -12 dBFS clip at full scale, as a 16-bit input does. Splits are
the simulator's (``train.sim_catalogue``): train and val to fit, test to measure.
Written with a corpus manifest, so ``python -m train label`` gives both teachers' labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from livesqa.errors import ConfigError
from train import degrade as dg
from train.asr_data import resolve_data_root
from train.codecs import CODECS, codec_roundtrip
from train.sim_catalogue import Utterance, build_catalogue
from train.simulate import _load, write_clip, write_manifest

SAMPLE_RATE_HZ = 16000
CLIP_S = 4.0
LEVELS_DBFS = (-66.0, -6.0)  # active speech level, drawn uniformly
CODEC_CHOICES = (("g711-alaw", ""), ("amr-wb", "12.65k"), ("opus", "16k"))
DEFAULT_COUNTS = {"train": 900, "val": 150, "test": 240}


def talker_window(speech: list[Utterance], n_samples: int, rng: np.random.Generator) -> tuple[Utterance, np.ndarray]:
    """One utterance of the split, drawn by ``rng``, and a random ``n_samples`` of it (zero-padded
    when shorter): the talker of one clip. Shared with ``train.nb_sweep``; the draw order is fixed so
    both sets rebuild identically."""
    utt = speech[int(rng.integers(len(speech)))]
    wav = _load(utt.path, SAMPLE_RATE_HZ)
    if len(wav) < n_samples:
        wav = np.concatenate([wav, np.zeros(n_samples - len(wav), np.float32)])
    start = int(rng.integers(0, len(wav) - n_samples + 1))
    return utt, wav[start: start + n_samples]


def render(x: np.ndarray, level_dbfs: float, noise: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """4 s of speech -> (the clip at ``level_dbfs`` active level, its condition label)."""
    sr = SAMPLE_RATE_HZ
    y = dg.set_level(x, sr, level_dbfs)
    kind = rng.random()
    if kind < 0.3:
        snr = float(rng.uniform(5, 30))
        y = dg.add_noise(y, noise, snr, sr, rng)
        return dg.saturate(y), f"level:{level_dbfs:.0f}dBFS+noise@{snr:.0f}dB"
    if kind < 0.5:
        name, bitrate = CODEC_CHOICES[int(rng.integers(len(CODEC_CHOICES)))]
        y = codec_roundtrip(dg.saturate(y), sr, CODECS[name], bitrate)
        return dg.saturate(y), f"level:{level_dbfs:.0f}dBFS+{name}"
    return dg.saturate(y), f"level:{level_dbfs:.0f}dBFS"


def build(out_dir: Path, data_root: Path, counts: dict[str, int], seed: int = 13) -> Path:
    """Write the clips and their manifest (unlabelled); an existing manifest is kept as it is."""
    from tqdm import tqdm

    manifest = out_dir / "manifest.csv"
    if manifest.is_file():
        return manifest
    cat = build_catalogue(data_root)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(split, i) for split, n in counts.items() for i in range(n)]
    n_samples = int(CLIP_S * SAMPLE_RATE_HZ)
    for k, (split, i) in enumerate(tqdm(jobs, desc="level sweep", unit="clip")):
        rng = np.random.default_rng([seed, k])
        speech, noises = cat.speech[split], cat.noise[split]
        utt, x = talker_window(speech, n_samples, rng)
        level = float(rng.uniform(*LEVELS_DBFS))
        noise_path = noises[int(rng.integers(len(noises)))]
        y, cond = render(x, level, _load(noise_path, SAMPLE_RATE_HZ), rng)
        name = f"{split}_{i:04d}.flac"
        write_clip(out_dir / "clips" / name, y, SAMPLE_RATE_HZ)
        rows.append({"db": "levelsweep", "con": f"{level:.1f}", "filepath_deg": f"clips/{name}",
                     "filename_deg": name, "source": f"{utt.corpus}:{utt.utt_id}", "split": split,
                     "condition": cond, "speaker": utt.speaker, "duration_s": f"{CLIP_S:.3f}",
                     "noise_file": str(Path(noise_path).relative_to(data_root)) if "noise" in cond else ""})
    write_manifest(manifest, rows)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train level-sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="cache/levelsweep")
    parser.add_argument("--train", type=int, default=DEFAULT_COUNTS["train"], help="clips of train-split talkers")
    parser.add_argument("--val", type=int, default=DEFAULT_COUNTS["val"], help="clips of val-split talkers")
    parser.add_argument("--test", type=int, default=DEFAULT_COUNTS["test"], help="clips of test-split talkers")
    parser.add_argument("--seed", type=int, default=13, help="another seed draws other clips (a fresh test set)")
    parser.add_argument("--data-root")
    args = parser.parse_args(argv)
    counts = {s: n for s, n in (("train", args.train), ("val", args.val), ("test", args.test)) if n > 0}
    if not counts:
        raise ConfigError("nothing to make: every split count is 0")
    manifest = build(Path(args.out_dir), resolve_data_root(args.data_root), counts, args.seed)
    print(f"wrote {manifest}; label it with `python -m train label --manifest {manifest} "
          "--teachers nisqa,distillmos --mos-combination mean --no-dnsmos`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
