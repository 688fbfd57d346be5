"""The simulated corpus (`python -m train simulate`), in the spirit of NISQA_TRAIN_SIM.

Each clip is 4–8 s of one speaker (utterances joined by short pauses), degraded by a
chain of one to three distortions from different families (noise, acoustics, filtering,
level, clipping, codec, loss), or left clean (~8 %). Everything about clip ``i`` follows
from ``numpy.random.default_rng(seed_i)`` with ``seed_i`` derived from the global seed
and ``i``, so a clip can be regenerated alone. Speakers and noise files are split into
train/val/test by a hash of their name, so test shares neither with train.

Output: ``<out_dir>/clips/cNNNNNN.flac`` (16 kHz mono 16-bit) and ``<out_dir>/manifest.csv``
(NISQA corpus layout plus our columns, see :data:`MANIFEST_COLUMNS`), appended row by row
so an interrupted run resumes where it stopped. Scores are left empty for `label`.
"""

from __future__ import annotations

import argparse
import csv
import functools
import logging
import multiprocessing as mp
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from livesqa.audio import read_audio
from livesqa.errors import AudioInputError, ConfigError
from train import callsim as cs
from train import degrade as dg
from train import plc
from train.asr_data import load_stage_config, resolve_data_root
from train.codecs import codec_roundtrip, ffmpeg_decode, usable_codecs
from train.manifest_lock import manifest_locked
from train.sim_catalogue import Catalogue, Utterance, build_catalogue, split_of

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = (
    "db", "con", "filepath_deg", "filename_deg", "source", "mos", "noi", "col", "dis", "loud",
    "split", "condition", "speaker", "noise_file", "seed", "duration_s", "teacher",
    "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "nisqa_mos", "distillmos_mos",
)
SPLITS = ("train", "val", "test")

# family -> (weight, kinds with weights); one kind per family in a chain
FAMILIES: dict[str, tuple[float, dict[str, float]]] = {
    "noise": (0.26, {"noise": 0.8, "babble": 0.2}),
    "codec": (0.18, {"codec": 1.0}),
    "loss": (0.15, {"plc": 0.75, "timeclip": 0.25}),
    "filter": (0.13, {"nb": 0.35, "wb": 0.15, "lp": 0.2, "irs": 0.15, "eq": 0.15}),
    "acoustic": (0.11, {"reverb": 0.7, "echo": 0.3}),
    "level": (0.10, {"quiet": 0.5, "loud": 0.5}),
    "clipping": (0.07, {"clip": 1.0}),
}
# added in session 2 (P.810 MNRU: signal-correlated noise, the reference distortion of P.835
# tests); drawn only from clip index ``signal_from_clip`` on, so clips made before keep
# their exact draws and a rebuild reproduces them
FAMILIES_V2: dict[str, tuple[float, dict[str, float]]] = {**FAMILIES, "signal": (0.12, {"mnru": 1.0})}
# session 7 (the real-calls issue): impairments rendered as real calls produce them
# (train/callsim.py, train/plc.py), weighted towards what the real-call sets hold; the older
# kinds stay so the student keeps what it knew. Chosen with ``families = "v3"``.
FAMILIES_V3: dict[str, tuple[float, dict[str, float]]] = {
    "noise": (0.22, {"noise": 0.5, "babble": 0.1, "ns": 0.28, "agc": 0.12}),
    "talker": (0.10, {"talker": 1.0}),
    "echo": (0.10, {"talkecho": 0.45, "farecho": 0.55}),
    "loss": (0.17, {"geloss": 0.3, "opusplc": 0.3, "amrplc": 0.2, "timeclip": 0.2}),
    "clipping": (0.11, {"clip": 0.25, "hot": 0.55, "overload": 0.2}),
    "codec": (0.12, {"codec": 1.0}),
    "filter": (0.07, {"nb": 0.35, "wb": 0.15, "lp": 0.2, "irs": 0.15, "eq": 0.15}),
    "acoustic": (0.05, {"reverb": 1.0}),
    "level": (0.04, {"quiet": 0.5, "loud": 0.5}),
    "signal": (0.04, {"mnru": 1.0}),
}
FAMILY_TABLES = {"v1": FAMILIES, "v2": FAMILIES_V2, "v3": FAMILIES_V3}
# the order a real call applies them in: room, other voices and noise at the microphone, echo
# and its suppressor, noise suppression and AGC, device, gain and clipping, codec, network
STAGE_ORDER = ("reverb", "talker", "echo", "talkecho", "farecho", "mnru", "noise", "babble", "ns", "agc", "nb", "wb", "lp",
               "irs", "eq", "quiet", "loud", "clip", "hot", "overload", "codec", "plc", "geloss", "opusplc", "amrplc",
               "timeclip")
CHAIN_LENGTH_P = (0.55, 0.30, 0.15)


@dataclass(frozen=True)
class SimulateConfig:
    """The ``[simulate]`` section."""

    data_root: str = ""
    out_dir: str = "cache/sim"
    n_clips: int = 12000
    seed: int = 20230820
    workers: int = 1
    sample_rate_hz: int = 16000
    min_clip_s: float = 4.0
    max_clip_s: float = 8.0
    clean_fraction: float = 0.08
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    signal_from_clip: int = 10000  # clips from this index on may draw the "signal" family (MNRU)
    # "v1"/"v2": the original catalogue (v2 from signal_from_clip on); "v3": real-call impairments
    families: str = "v2"
    # share of clips exactly max_clip_s long; the rest are uniform in [min_clip_s, max_clip_s]
    # (v3 corpora are the training crops themselves, so teacher labels describe what the student sees)
    fixed_length_fraction: float = 0.0
    extra_speech: str = ""  # index.csv of `python -m train extra-speech` (more talkers; empty = none)

def clip_seed(global_seed: int, index: int) -> int:
    """The per-clip seed: a 63-bit integer derived from (global seed, clip index)."""
    return int(np.random.SeedSequence([global_seed, index]).generate_state(2, np.uint64)[0] >> 1)


@functools.lru_cache(maxsize=48)
def _load(path: str, sample_rate_hz: int) -> np.ndarray:
    try:
        return read_audio(path, sample_rate_hz)
    except AudioInputError:
        # a few Ogg/Opus files (shared noise/blanket) trip libsndfile; ffmpeg decodes them
        audio = ffmpeg_decode(path, sample_rate_hz)
        if len(audio) == 0:
            raise
        return audio


def _assemble(cat: Catalogue, split: str, cfg: SimulateConfig,
              rng: np.random.Generator) -> tuple[np.ndarray, list[Utterance]]:
    """4–8 s of one speaker: shuffled utterances with 0.15–0.5 s pauses, cut to a random length."""
    sr = cfg.sample_rate_hz
    pool = cat.speech[split]
    first = pool[int(rng.integers(len(pool)))]
    same = [u for u in cat.by_speaker[first.speaker] if u is not first]
    order = [first] + [same[i] for i in rng.permutation(len(same))]
    if cfg.fixed_length_fraction > 0 and rng.random() < cfg.fixed_length_fraction:
        target = int(cfg.max_clip_s * sr)
    else:
        target = int(rng.uniform(cfg.min_clip_s, cfg.max_clip_s) * sr)
    parts: list[np.ndarray] = []
    used: list[Utterance] = []
    total = 0
    for utt in order:
        wav = _load(utt.path, sr)
        if len(wav) > target and not parts:  # one long utterance: a random window of it
            start = int(rng.integers(0, len(wav) - target + 1))
            wav = wav[start: start + target]
        if parts:
            pause = np.zeros(int(rng.uniform(0.15, 0.5) * sr), np.float32)
            parts.append(pause)
            total += len(pause)
        parts.append(wav)
        used.append(utt)
        total += len(wav)
        if total >= target:
            break
    audio = np.concatenate(parts)[:target]
    min_n = int(cfg.min_clip_s * sr)
    if len(audio) < min_n:
        audio = np.concatenate([audio, np.zeros(min_n - len(audio), np.float32)])
    return audio.astype(np.float32), used


def _choose_chain(rng: np.random.Generator, clean_fraction: float,
                  families_table: dict[str, tuple[float, dict[str, float]]] = FAMILIES) -> list[str]:
    if rng.random() < clean_fraction:
        return []
    n = int(rng.choice(len(CHAIN_LENGTH_P), p=CHAIN_LENGTH_P)) + 1
    names = list(families_table)
    weights = np.array([families_table[f][0] for f in names])
    families = rng.choice(names, size=n, replace=False, p=weights / weights.sum())
    kinds = []
    for fam in families:
        options = families_table[str(fam)][1]
        p = np.array(list(options.values()))
        kinds.append(str(rng.choice(list(options), p=p / p.sum())))
    return sorted(kinds, key=STAGE_ORDER.index)


def _apply(kind: str, x: np.ndarray, ctx: dict[str, object], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Apply one degradation kind; returns (audio, its readable condition token)."""
    sr: int = ctx["sr"]  # type: ignore[assignment]
    cat: Catalogue = ctx["cat"]  # type: ignore[assignment]
    split: str = ctx["split"]  # type: ignore[assignment]
    if kind == "noise":
        noise_path = cat.noise[split][int(rng.integers(len(cat.noise[split])))]
        snr = float(rng.uniform(-5, 40))
        ctx["noise_file"] = str(Path(noise_path).relative_to(cat.data_root))
        return dg.add_noise(x, _load(noise_path, sr), snr, sr, rng), f"noise:{Path(noise_path).stem}@{snr:.0f}dB"
    if kind == "babble":
        others = [u for u in cat.speech[split] if u.speaker != ctx["speaker"]]
        n = int(rng.integers(3, 7))
        talkers = [_load(others[int(i)].path, sr) for i in rng.choice(len(others), n, replace=False)]
        snr = float(rng.uniform(0, 35))
        return dg.add_noise(x, dg.babble(talkers, len(x), rng), snr, sr, rng), f"babble:{n}talkers@{snr:.0f}dB"
    if kind == "nb":
        return dg.narrowband(x, sr), "band:nb300-3400"
    if kind == "wb":
        return dg.wideband(x, sr), "band:wb100-7000"
    if kind == "lp":
        cutoff = float(rng.uniform(1500, 6000))
        return dg.bandpass(x, sr, None, cutoff), f"band:lp{cutoff:.0f}Hz"
    if kind == "irs":
        return dg.irs_like(x, sr), "filter:irs-like"
    if kind == "eq":
        return dg.random_eq(x, sr, rng), "filter:eq"
    if kind == "quiet":
        level = float(rng.uniform(-55, -38))
        return dg.set_level(x, sr, level), f"level:{level:.0f}dBFS"
    if kind == "loud":
        level = float(rng.uniform(-12, -2))
        return dg.saturate(dg.set_level(x, sr, level)), f"level:{level:.0f}dBFS"
    if kind == "clip":
        frac = float(np.exp(rng.uniform(np.log(0.001), np.log(0.2))))
        # a clipped input stage is followed by gain back to talking level (AGC)
        level = dg.active_level_db(x, sr)
        return dg.set_level(dg.clip(x, frac), sr, level), f"clip:{100 * frac:.1f}%"
    if kind == "codec":
        codecs = ctx["codecs"]
        assert isinstance(codecs, dict)
        if not codecs:
            return x, "codec:none"
        codec = codecs[sorted(codecs)[int(rng.integers(len(codecs)))]]
        rate = codec.bitrates[int(rng.integers(len(codec.bitrates)))]
        return codec_roundtrip(x, sr, codec, rate), f"codec:{codec.name}" + (f"@{rate}" if rate else "")
    if kind == "plc":
        rate = float(np.exp(rng.uniform(np.log(0.01), np.log(0.3))))
        method = str(rng.choice(["zero", "fade", "repeat"]))
        burst = float(rng.uniform(1.0, 3.0))
        y, _ = dg.packet_loss(x, sr, rate, rng, method, 20.0, burst)  # type: ignore[arg-type]
        return y, f"loss:{method}@{100 * rate:.0f}%"
    if kind == "timeclip":
        n = int(rng.integers(1, 4))
        return dg.time_clip(x, sr, n, rng), f"timeclip:{n}x"
    if kind == "reverb":
        if cat.irs and rng.random() < 0.2:
            ir_path = cat.irs[int(rng.integers(len(cat.irs)))]
            return dg.reverberate(x, _load(ir_path, sr)), f"reverb:ir-{Path(ir_path).stem}"
        rt60 = float(rng.uniform(0.2, 1.0))
        return dg.reverberate(x, dg.room_rir(sr, rng, rt60)), f"reverb:room@{rt60:.1f}s"
    if kind == "mnru":
        q = float(rng.uniform(5, 40))
        return dg.mnru(x, q, rng), f"mnru:Q{q:.0f}dB"
    if kind == "echo":
        delay = float(rng.uniform(40, 400))
        att = float(rng.uniform(6, 30))
        n = int(rng.integers(1, 4))
        return dg.echo(x, sr, delay, att, n), f"echo:{delay:.0f}ms@-{att:.0f}dBx{n}"
    return _apply_call(kind, x, ctx, rng)


def _other_voices(ctx: dict[str, object], rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """``n`` utterances of other talkers of the same split (each a different speaker)."""
    cat: Catalogue = ctx["cat"]  # type: ignore[assignment]
    others = [u for u in cat.speech[str(ctx["split"])] if u.speaker != ctx["speaker"]]
    picked: list[np.ndarray] = []
    seen: set[str] = set()
    for i in rng.permutation(len(others)):
        u = others[int(i)]
        if u.speaker in seen:
            continue
        seen.add(u.speaker)
        picked.append(_load(u.path, int(ctx["sr"])))  # type: ignore[call-overload]
        if len(picked) == n:
            break
    return picked


def _echo_through_device(x: np.ndarray, source: np.ndarray, sr: int, rng: np.random.Generator,
                         suppressor_p: float, name: str) -> tuple[np.ndarray, str]:
    """``x`` plus ``source`` returning through a device's echo path (20-600 ms, 0-40 dB return
    loss), then a residual-echo suppressor with probability ``suppressor_p``."""
    delay, erl = float(rng.uniform(20, 600)), float(rng.uniform(0, 40))
    e = cs.echo_path(source, sr, delay, erl, rng)
    y = x + e
    res = rng.random() < suppressor_p
    if res:
        y = cs.residual_echo_suppressor(y, e, float(rng.uniform(0.5, 1.0)))
    return y.astype(np.float32), f"{name}:{delay:.0f}ms@-{erl:.0f}dB" + ("+res" if res else "")


def _apply_call(kind: str, x: np.ndarray, ctx: dict[str, object], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The real-call kinds of :data:`FAMILIES_V3` (train/callsim.py, train/plc.py)."""
    sr: int = ctx["sr"]  # type: ignore[assignment]
    if kind == "talker":
        n = 1 if rng.random() < 0.7 else 2
        rel = [float(rng.uniform(0, 20)) for _ in range(n)]
        y = cs.competing_talker(x, _other_voices(ctx, rng, n), sr, rel, rng)
        return y, f"talker:{n}x@-{min(rel):.0f}dB"
    if kind == "talkecho":  # the talker's own voice returning through a device (talker echo)
        return _echo_through_device(x, x, sr, rng, 0.4, "echo")
    if kind == "farecho":  # another talker's voice leaking back through a device (residual echo, double talk)
        far = _other_voices(ctx, rng, 1)
        if not far:
            return x, "farecho:none"
        far_track = dg.fit_length(far[0], len(x), rng)
        far_track = dg.set_level(far_track, sr, dg.active_level_db(x, sr)) if np.any(far_track) else far_track
        return _echo_through_device(x, far_track, sr, rng, 0.6, "farecho")
    if kind in ("ns", "agc"):
        cat: Catalogue = ctx["cat"]  # type: ignore[assignment]
        split = str(ctx["split"])
        noise_path = cat.noise[split][int(rng.integers(len(cat.noise[split])))]
        ctx["noise_file"] = str(Path(noise_path).relative_to(cat.data_root))
        snr = float(rng.uniform(-5, 20) if kind == "ns" else rng.uniform(5, 30))
        noisy = dg.add_noise(x, _load(noise_path, sr), snr, sr, rng)
        if kind == "ns":
            over, floor = float(rng.uniform(1.0, 4.0)), float(rng.uniform(-30, -8))
            return cs.noise_suppressor(noisy, over, floor), f"ns:{Path(noise_path).stem}@{snr:.0f}dB/a{over:.1f}"
        gain = float(rng.uniform(10, 30))
        return cs.agc(noisy, sr, -20.0, gain, float(rng.uniform(0.3, 2.0))), f"agc:{Path(noise_path).stem}@{snr:.0f}dB+{gain:.0f}"
    if kind == "hot":
        how = str(rng.choice(["hard", "soft", "limiter"], p=[0.5, 0.25, 0.25]))
        level = dg.active_level_db(x, sr)
        gain = float(rng.uniform(-level - 24, -level + 6))  # active level -24..+6 dBFS after the gain
        y = cs.limiter(x, sr, gain, how)
        if rng.random() < 0.5:  # a later stage (AGC, mixer) brings the level back down
            y = dg.set_level(y, sr, float(rng.uniform(-30, -20)))
        return y, f"hot:{how}+{gain:.0f}dB"
    if kind == "overload":  # a hot signal into a real encoder: it saturates at its 16-bit input
        codecs = ctx["codecs"]
        assert isinstance(codecs, dict)
        gain = float(rng.uniform(6, 24))
        hot = dg.gain_db(dg.set_level(x, sr, -20.0), gain)
        if not codecs:
            return dg.saturate(hot), f"overload:+{gain:.0f}dB"
        codec = codecs[sorted(codecs)[int(rng.integers(len(codecs)))]]
        rate = codec.bitrates[int(rng.integers(len(codec.bitrates)))]
        return codec_roundtrip(dg.saturate(hot), sr, codec, rate), f"overload:{codec.name}+{gain:.0f}dB"
    if kind in ("geloss", "opusplc", "amrplc"):
        rate = float(np.exp(rng.uniform(np.log(0.01), np.log(0.3))))
        burst = float(rng.choice([1.0, rng.uniform(1.5, 4.0)]))
        if kind == "geloss":
            frame_ms = float(rng.choice([10.0, 20.0, 30.0, 40.0, 60.0]))
            method = str(rng.choice(["zero", "fade", "repeat"]))
            frame = round(frame_ms * sr / 1000)
            lost = plc.gilbert_elliott_mask(len(x) // frame, rate, burst, rng)
            return dg.conceal(x, lost, frame, method), f"loss:{method}{frame_ms:.0f}ms@{100 * rate:.0f}%b{burst:.1f}"  # type: ignore[arg-type]
        if kind == "opusplc":
            frame_ms = int(rng.choice([10, 20, 20, 40, 60]))
            bitrate = int(rng.choice([8000, 12000, 16000, 24000, 32000]))
            lost = plc.gilbert_elliott_mask(int(np.ceil(len(x) / (sr * frame_ms / 1000))), rate, burst, rng)
            y = plc.opus_with_loss(x, sr, lost, bitrate, frame_ms)
            return y, f"opusplc:{bitrate // 1000}k/{frame_ms}ms@{100 * rate:.0f}%b{burst:.1f}"
        amr_rate = str(rng.choice(["5.9k", "7.4k", "10.2k", "12.2k"]))
        lost = plc.gilbert_elliott_mask(int(np.ceil(len(x) / (sr * 0.02))) + 2, rate, burst, rng)
        return plc.amr_with_loss(x, sr, lost, "amr-nb", amr_rate), f"amrplc:nb{amr_rate}@{100 * rate:.0f}%b{burst:.1f}"
    raise ValueError(f"unknown degradation kind {kind!r}")


def make_clip(index: int, cfg: SimulateConfig, cat: Catalogue,
              codecs: dict[str, object]) -> tuple[np.ndarray, dict[str, str]]:
    """Clip ``index``: (audio float32 at ``cfg.sample_rate_hz``, its manifest row sans scores)."""
    seed = clip_seed(cfg.seed, index)
    rng = np.random.default_rng(seed)
    u = rng.random()
    split = "test" if u < cfg.test_fraction else "val" if u < cfg.test_fraction + cfg.val_fraction else "train"
    audio, used = _assemble(cat, split, cfg, rng)
    audio = dg.set_level(audio, cfg.sample_rate_hz, float(rng.uniform(-32, -20)))
    ctx: dict[str, object] = {"sr": cfg.sample_rate_hz, "cat": cat, "split": split,
                              "speaker": used[0].speaker, "codecs": codecs, "noise_file": ""}
    tokens = []
    if cfg.families not in FAMILY_TABLES:
        raise ConfigError(f"[simulate].families = {cfg.families!r}; known: {', '.join(FAMILY_TABLES)}")
    if cfg.families == "v3":
        table = FAMILIES_V3
    else:
        table = FAMILIES_V2 if index >= cfg.signal_from_clip else FAMILIES
    for kind in _choose_chain(rng, cfg.clean_fraction, table):
        audio, token = _apply(kind, audio, ctx, rng)
        tokens.append(token)
    audio = dg.saturate(audio)
    name = f"c{index:06d}.flac"
    row = {
        "db": f"livesqa_sim_{split}", "con": str(index), "filepath_deg": f"clips/{name}",
        "filename_deg": name, "source": "+".join(f"{u.corpus}:{u.utt_id}" for u in used),
        "split": split, "condition": "+".join(tokens) or "clean", "speaker": used[0].speaker,
        "noise_file": str(ctx["noise_file"]), "seed": str(seed),
        "duration_s": f"{len(audio) / cfg.sample_rate_hz:.3f}",
    }
    return audio, {c: row.get(c, "") for c in MANIFEST_COLUMNS}


def write_clip(path: Path, audio: np.ndarray, sample_rate_hz: int) -> None:
    """A corpus clip as 16-bit FLAC, whole or not at all (written aside, then renamed), so a
    resumed run never finds half a clip."""
    import soundfile as sf

    tmp = path.with_name(path.stem + ".tmp.flac")
    sf.write(str(tmp), audio, sample_rate_hz, subtype="PCM_16", format="FLAC")
    os.replace(tmp, path)


def write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    """A whole corpus manifest (:data:`MANIFEST_COLUMNS`), written aside, then renamed."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


_WORKER: dict[str, object] = {}


def _init_worker(cfg: SimulateConfig, cat: Catalogue) -> None:
    logging.getLogger("train.codecs").setLevel(logging.ERROR)  # the parent already warned
    _WORKER.update(cfg=cfg, cat=cat, codecs=usable_codecs())


def _work(index: int) -> dict[str, str]:
    cfg: SimulateConfig = _WORKER["cfg"]  # type: ignore[assignment]
    audio, row = make_clip(index, cfg, _WORKER["cat"], _WORKER["codecs"])  # type: ignore[arg-type]
    write_clip(Path(cfg.out_dir) / row["filepath_deg"], audio, cfg.sample_rate_hz)
    return row


def done_indices(manifest: Path) -> set[int]:
    """Clip indices already listed in a manifest (those are skipped on resume)."""
    if not manifest.is_file():
        return set()
    with manifest.open(newline="", encoding="utf-8") as f:
        return {int(r["con"]) for r in csv.DictReader(f) if r.get("con", "").isdigit()}


def run(cfg: SimulateConfig, progress: bool = True) -> Path:
    """Generate the missing clips of ``range(cfg.n_clips)``; returns the manifest path."""
    from tqdm import tqdm

    out = Path(cfg.out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    done = done_indices(manifest)  # once: the manifest is read per clip otherwise (O(n^2))
    todo = [i for i in range(cfg.n_clips) if i not in done]
    cat = build_catalogue(resolve_data_root(cfg.data_root or None), cfg.val_fraction, cfg.test_fraction,
                          Path(cfg.extra_speech) if cfg.extra_speech else None)
    with manifest_locked(manifest):
        if not manifest.is_file():
            with manifest.open("w", newline="", encoding="utf-8") as f:
                csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS).writeheader()
    bar = tqdm(total=cfg.n_clips, initial=cfg.n_clips - len(todo), unit="clip",
               disable=not progress, desc="simulate")
    with manifest.open(newline="", encoding="utf-8") as f:
        fields = next(csv.reader(f), None) or list(MANIFEST_COLUMNS)  # an older manifest keeps its columns
    for row in _results(cfg, cat, todo):
        # reopen per row under the lock: the labeller may have replaced the file meanwhile
        with manifest_locked(manifest), manifest.open("a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=fields, extrasaction="ignore").writerow(row)
        bar.update(1)
    bar.close()
    return manifest


def _results(cfg: SimulateConfig, cat: Catalogue, todo: list[int]) -> Iterator[dict[str, str]]:
    usable_codecs()  # warn about missing encoders once, in the parent
    if cfg.workers <= 1:
        _init_worker(cfg, cat)
        yield from map(_work, todo)
        return
    with mp.get_context("spawn").Pool(cfg.workers, _init_worker, (cfg, cat)) as pool:
        yield from pool.imap_unordered(_work, todo, chunksize=4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="training TOML; reads its [simulate] section")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--data-root")
    parser.add_argument("--out-dir")
    parser.add_argument("--n-clips", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = load_stage_config(args.config, args.overrides, "simulate", SimulateConfig)
    given = {k: v for k, v in {"data_root": args.data_root, "out_dir": args.out_dir,
                                "n_clips": args.n_clips, "workers": args.workers,
                                "seed": args.seed}.items() if v is not None}
    cfg = SimulateConfig(**{**base.__dict__, **given})
    manifest = run(cfg)
    print(f"wrote {manifest} ({len(done_indices(manifest))} clips)")
    return 0


__all__ = ["MANIFEST_COLUMNS", "SPLITS", "SimulateConfig", "clip_seed", "make_clip", "run", "split_of"]
