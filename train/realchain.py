"""The "real-chain" set (`python -m train realchain`): held-out speech through real software.

Why: teacher-student agreement on the simulator's own test split says little about real
calls, because the student learnt exactly those renders. This set is made by software the
simulator does not call, or by a real codec path with settings and talkers it never
trained on, on test-split talkers and noise only:

- ``amrwb-plc``: AMR-WB (12.65 kbit/s) with bursty frame loss concealed by the decoder's
  bad-frame handling (training uses AMR-NB only);
- ``opus-plc``: libopus at 10-14 kbit/s with bursty loss and libopus concealment;
- ``afftdn``: noisy speech through ffmpeg's FFT denoiser (a real noise suppressor; training
  uses its own spectral subtraction);
- ``alimiter``: a hot input through ffmpeg's look-ahead limiter (training uses its own);
- ``hot-amrwb``: a hot input saturating the 16-bit input of a real AMR-WB encoder;
- ``clean``: the same talkers unprocessed (the top of the scale);
- ``webrtc-ns`` (opt-in, ``--chains``): noisy speech through WebRTC's own noise suppressor, levels
  1-4 (the audio processing module that WebRTC calls run; ``webrtc-noise-gain``'s build of it);
- ``webrtc-agc`` (opt-in): a quiet talker in noise through WebRTC's adaptive digital gain control,
  which lifts speech and the noise in its pauses over the seconds it adapts.

The two WebRTC chains are a separate set (``--chains webrtc-ns,webrtc-agc --out-dir ...``) so the
default set, and every number measured on it, stays as it was.

Clips are 4 s, written with a corpus manifest (``<out>/manifest.csv``, the simulator's
columns) so ``python -m train label`` gives them both teachers' labels.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import numpy as np

from livesqa.audio import float32_to_pcm16, pcm16_to_float32
from livesqa.errors import ConfigError
from train import degrade as dg
from train import plc
from train.asr_data import resolve_data_root
from train.codecs import CODECS, codec_roundtrip
from train.sim_catalogue import build_catalogue
from train.simulate import _load, write_clip, write_manifest

SAMPLE_RATE_HZ = 16000
CLIP_S = 4.0
CHAINS = ("clean", "amrwb-plc", "opus-plc", "afftdn", "alimiter", "hot-amrwb")
WEBRTC_CHAINS = ("webrtc-ns", "webrtc-agc")
APM_FRAME = 160  # WebRTC's audio processing takes 10 ms frames of 16 kHz 16-bit mono


def ffmpeg_filter(x: np.ndarray, sample_rate_hz: int, filters: str) -> np.ndarray:
    """Run ``x`` through an ffmpeg audio filter graph (16-bit in and out), same length."""
    try:
        raw = subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "s16le", "-ar", str(sample_rate_hz),
             "-ac", "1", "-i", "pipe:0", "-af", filters, "-f", "s16le", "-ac", "1", "-ar", str(sample_rate_hz),
             "pipe:1"], input=float32_to_pcm16(x).tobytes(), capture_output=True, check=True).stdout
    except (FileNotFoundError, subprocess.CalledProcessError) as e:
        raise ConfigError(f"ffmpeg filter {filters!r} failed: {e}") from e
    y = pcm16_to_float32(np.frombuffer(raw, np.int16))
    out = np.zeros(len(x), np.float32)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def webrtc_apm(x: np.ndarray, auto_gain_dbfs: int, noise_suppression: int) -> np.ndarray:
    """``x`` (16 kHz) through WebRTC's audio processing module: high-pass, noise suppression
    level 0-4 (0 = off) and adaptive digital gain to ``auto_gain_dbfs`` (0 = off). Same length:
    a final partial 10 ms frame passes unprocessed, as the module's own tool does."""
    try:
        from webrtc_noise_gain import AudioProcessor
    except ImportError as e:
        raise ConfigError("the WebRTC chains need webrtc-noise-gain: pip install -e '.[train]'") from e
    apm = AudioProcessor(int(auto_gain_dbfs), int(noise_suppression))
    pcm = float32_to_pcm16(x)
    out = pcm.copy()
    for i in range(len(pcm) // APM_FRAME):
        frame = slice(i * APM_FRAME, (i + 1) * APM_FRAME)
        out[frame] = np.frombuffer(apm.Process10ms(pcm[frame].tobytes()).audio, np.int16)
    return pcm16_to_float32(out)


def render(chain: str, x: np.ndarray, noise: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One chain applied to 4 s of speech at about -26 dBFS; returns (audio, condition)."""
    sr = SAMPLE_RATE_HZ
    if chain == "clean":
        return x, "clean"
    if chain in ("amrwb-plc", "opus-plc"):
        rate = float(np.exp(rng.uniform(np.log(0.02), np.log(0.3))))
        burst = float(rng.uniform(1.0, 3.0))
        if chain == "amrwb-plc":
            lost = plc.gilbert_elliott_mask(int(CLIP_S * 50) + 2, rate, burst, rng)
            return plc.amr_with_loss(x, sr, lost, "amr-wb", "12.65k"), f"amrwb-plc@{100 * rate:.0f}%"
        bitrate = int(rng.choice([10000, 12000, 14000]))
        lost = plc.gilbert_elliott_mask(int(CLIP_S * 50) + 1, rate, burst, rng)
        return plc.opus_with_loss(x, sr, lost, bitrate, 20), f"opus-plc:{bitrate // 1000}k@{100 * rate:.0f}%"
    if chain == "afftdn":
        snr = float(rng.uniform(0, 15))
        noisy = dg.add_noise(x, noise, snr, sr, rng)
        nr = float(rng.uniform(12, 60))
        return ffmpeg_filter(noisy, sr, f"afftdn=nr={nr:.0f}:nf=-30:tn=1"), f"afftdn@{snr:.0f}dB/nr{nr:.0f}"
    if chain == "alimiter":
        gain = float(rng.uniform(12, 30))
        hot = np.clip(dg.gain_db(x, gain), -4.0, 4.0)  # float headroom before the limiter
        y = ffmpeg_filter(hot / 4.0, sr, f"volume=4,alimiter=limit=0.9:attack={rng.uniform(1, 10):.1f}:release=50")
        return dg.set_level(y, sr, -26.0), f"alimiter+{gain:.0f}dB"
    if chain == "hot-amrwb":
        gain = float(rng.uniform(10, 26))
        return codec_roundtrip(dg.saturate(dg.gain_db(x, gain)), sr, CODECS["amr-wb"], "12.65k"), f"hot-amrwb+{gain:.0f}dB"
    if chain == "webrtc-ns":
        snr = float(rng.uniform(0, 15))
        level = int(rng.integers(1, 5))
        return webrtc_apm(dg.add_noise(x, noise, snr, sr, rng), 0, level), f"webrtc-ns@{snr:.0f}dB/L{level}"
    if chain == "webrtc-agc":
        # this build's gain starts at +7 dB and adapts upward only for talkers above about
        # -44 dBFS; its target setting made no difference on test signals, so it is fixed
        talker = float(rng.uniform(-42, -26))
        snr = float(rng.uniform(10, 30))
        noisy = dg.add_noise(dg.set_level(x, sr, talker), noise, snr, sr, rng)
        return webrtc_apm(noisy, 3, 0), f"webrtc-agc@{talker:.0f}dBFS/{snr:.0f}dB"
    raise ValueError(f"unknown chain {chain!r}")


def build(out_dir: Path, data_root: Path, per_chain: int = 40, seed: int = 7,
          chains: tuple[str, ...] = CHAINS) -> Path:
    """Write the clips and their manifest (unlabelled); reruns keep what exists."""
    from tqdm import tqdm

    manifest = out_dir / "manifest.csv"
    if manifest.is_file():
        return manifest
    cat = build_catalogue(data_root)
    speech, noises = cat.speech["test"], cat.noise["test"]
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(c, i) for c in chains for i in range(per_chain)]
    for chain, i in tqdm(jobs, desc="real-chain set", unit="clip"):
        # a clip's seed is its place in every chain's list, so the default six are as before
        rng = np.random.default_rng([seed, (CHAINS + WEBRTC_CHAINS).index(chain) * per_chain + i])
        utt = speech[int(rng.integers(len(speech)))]
        wav = _load(utt.path, SAMPLE_RATE_HZ)
        n = int(CLIP_S * SAMPLE_RATE_HZ)
        if len(wav) < n:
            wav = np.concatenate([wav, np.zeros(n - len(wav), np.float32)])
        start = int(rng.integers(0, len(wav) - n + 1))
        x = dg.set_level(wav[start: start + n], SAMPLE_RATE_HZ, -26.0)
        noise_path = noises[int(rng.integers(len(noises)))]
        y, cond = render(chain, x, _load(noise_path, SAMPLE_RATE_HZ), rng)
        name = f"{chain}_{i:03d}.flac"
        write_clip(out_dir / "clips" / name, dg.saturate(y), SAMPLE_RATE_HZ)
        rows.append({"db": "realchain", "con": chain, "filepath_deg": f"clips/{name}", "filename_deg": name,
                     "source": f"{utt.corpus}:{utt.utt_id}", "split": "test", "condition": cond,
                     "speaker": utt.speaker, "duration_s": f"{CLIP_S:.3f}",
                     "noise_file": str(Path(noise_path).relative_to(data_root)) if chain in ("afftdn", *WEBRTC_CHAINS) else ""})
    write_manifest(manifest, rows)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train realchain", description=__doc__.split("\n")[0])
    parser.add_argument("--out-dir", default="cache/realchain")
    parser.add_argument("--per-chain", type=int, default=40)
    parser.add_argument("--chains", default=",".join(CHAINS),
                        help=f"comma-separated chains (default the set's six; also {', '.join(WEBRTC_CHAINS)})")
    parser.add_argument("--data-root")
    args = parser.parse_args(argv)
    chains = tuple(c.strip() for c in args.chains.split(",") if c.strip())
    unknown = [c for c in chains if c not in CHAINS + WEBRTC_CHAINS]
    if unknown or not chains:
        raise ConfigError(f"--chains: unknown {unknown or 'empty'}; choose from {', '.join(CHAINS + WEBRTC_CHAINS)}")
    manifest = build(Path(args.out_dir), resolve_data_root(args.data_root), args.per_chain, chains=chains)
    print(f"wrote {manifest}; label it with `python -m train label --manifest {manifest} "
          "--teachers nisqa,distillmos --mos-combination mean`")
    return 0
