"""Speech-detector benchmark: speech in noise must be scored, everything else must not.

Usage (from the repository root; music from Debian, see results/vad/README.md)::

    python results/vad/bench_vad.py --split val  --moh /tmp/moh/usr/share/asterisk/moh --out results/vad/val.md
    python results/vad/bench_vad.py --split test --moh /tmp/moh/usr/share/asterisk/moh --out results/vad/test.md

Positives: clean utterances of the split's held-out speakers (``train.sim_catalogue``:
LibriSpeech test-other excerpts and speechocean762, disjoint from training), each with
1.5 s of noise before and 5 s after, mixed with the split's noise files at -5, 0, 5, 10
and 20 dB SNR (active speech level at -26 dBFS minus noise RMS). Windows are the
runtime's (4 s, 1 s hop, ``livesqa.windowing.Windower``), the detectors the runtime's
(``livesqa.gating.StreamGate``). A window "has speech" when at least 20 % of its 20 ms
frames of the *clean* source are within 20 dB of its active level; a window with
none is noise only; windows in between are left out of both counts.

Negatives: the split's noise files alone at -20 and -45 dBFS; every noise file of the
corpus alone at -30 dBFS (a wider check: it includes the café and babble recordings);
hold music; tones (dial, ringback, busy, DTMF, fax, sine, sweep, 50 Hz hum); digital
silence and dither; comfort noise (white, pink, brown at -50 and -65 dBFS).

With ``--speech-model FILE`` (a model exported with a speech head, ``python -m train
speech-head``) the "model" detector is added: the runtime's rule ``model p>=T r>=R``
(``livesqa.gating.MODEL_THRESHOLD`` / ``MODEL_MIN_RATIO``), and with ``--grid`` its own grid,
ranked the same way; its cost is measured in the same interleaved loop.

Rules: the energy VAD as configured; Silero as the runtime uses it (a 32 ms frame is
active at speech probability >= 0.15, a window is speech with >= 10 % active frames: the
pair that ``--grid`` ranks first on the val split, by its worst cell, then its next worst);
and Silero at its usual frame threshold 0.5. Cost: the detector per 1 s hop and the
model per 4 s window, interleaved, one thread, the process pinned to one core.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from livesqa.audio import read_audio
from livesqa.errors import AudioInputError
from livesqa.gating import MODEL_MIN_RATIO, MODEL_THRESHOLD, GateConfig, StreamGate
from livesqa.types import AudioChunk
from livesqa.windowing import Windower
from train import degrade as dg
from train.codecs import ffmpeg_decode
from train.sim_catalogue import build_catalogue

SR = 16000
WINDOW = 4 * SR
HOP = SR
SNRS = (-5, 0, 5, 10, 20)
TALK_DBFS = -26.0
PAD_S = (1.5, 5.0)  # noise alone before and after the talker
# (frame threshold, window ratio): the runtime's default first, then Silero's usual 0.5
SILERO_RULES = ((0.15, 0.1), (0.5, 0.1), (0.5, 0.2))
RUNTIME_RULE = "silero p>=0.15 r>=0.1"
GRID = [(t, r) for t in (0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5)
        for r in (0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2)]
ENERGY = GateConfig(detector="energy")
# the "model" detector (a quality model's own speech output, --speech-model): the runtime's
# rule (livesqa.gating.MODEL_THRESHOLD / MODEL_MIN_RATIO, chosen on val by --grid)
MODEL_RULES = ((MODEL_THRESHOLD, MODEL_MIN_RATIO),)
MODEL_RUNTIME_RULE = f"model p>={MODEL_THRESHOLD} r>={MODEL_MIN_RATIO}"
MODEL_GRID = [(t, r) for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
              for r in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)]


def _load(path: str, rate: int) -> np.ndarray:
    """Mono float32; ffmpeg decodes the few Opus files libsndfile trips on."""
    try:
        return read_audio(path, rate)
    except AudioInputError:
        return ffmpeg_decode(path, rate)


def windows_of(x: np.ndarray, chunk: int = 320) -> Iterator[tuple[int, np.ndarray]]:
    """The runtime's windows of ``x`` (fed in 20 ms chunks, as a WebRTC track delivers)."""
    win = Windower(WINDOW, HOP)
    for i in range(0, len(x), chunk):
        for w in win.push(AudioChunk(i, x[i: i + chunk].astype(np.float32))):
            yield w.start_sample, w.samples.copy()
    tail = win.flush()
    if tail is not None:
        yield tail.start_sample, tail.samples.copy()


SPEECH_MODEL = None  # OnnxScorer of a model with a speech output (--speech-model), or None


def measure(x: np.ndarray) -> list[tuple[int, float, np.ndarray, np.ndarray | None]]:
    """Per window: start sample, energy-VAD speech ratio, Silero frame probabilities and the
    speech model's frame probabilities (None without ``--speech-model``)."""
    energy = StreamGate(ENERGY, SR)
    silero = StreamGate(GateConfig(), SR)
    out = []
    for start, w in windows_of(x):
        ratio = energy.analyze(start, w).speech_ratio
        assert silero._vad is not None
        mp = None if SPEECH_MODEL is None else SPEECH_MODEL.score_with_speech(w[None, :])[1][0]
        out.append((start, ratio, silero._vad.window_probs(start, w), mp))
    return out


def decisions(ratio_energy: float, probs: np.ndarray, grid: bool = False,
              model_probs: np.ndarray | None = None) -> dict[str, bool]:
    out = {"energy": ratio_energy >= ENERGY.ratio_needed and ratio_energy > 0}
    for thr, r in (GRID if grid else SILERO_RULES):
        frac = float((probs >= thr).mean()) if probs.size else 0.0
        out[f"silero p>={thr} r>={r}"] = frac >= r and frac > 0
    if model_probs is not None:
        for thr, r in (MODEL_GRID if grid else MODEL_RULES):
            frac = float((model_probs >= thr).mean()) if model_probs.size else 0.0
            out[f"model p>={thr} r>={r}"] = frac >= r and frac > 0
    return out


def clean_activity(clean: np.ndarray) -> np.ndarray:
    """20 ms frames of the clean source within 20 dB of its active level (ground truth)."""
    frame = SR // 50
    n = len(clean) // frame
    e = 10 * np.log10(np.mean(clean[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1)
                      + 1e-12)
    return e >= dg.active_level_db(clean, SR) - 20.0


def positives(cat, split: str, n_so: int, rng: np.random.Generator, counts: dict,
              grid: bool) -> None:
    utts = [u for u in cat.speech[split] if u.corpus == "librispeech"]
    so = [u for u in cat.speech[split] if u.corpus != "librispeech"]
    utts += [so[i] for i in rng.choice(len(so), size=min(n_so, len(so)), replace=False)]
    noises = [_load(p, SR) for p in cat.noise[split]]
    before, after = (np.zeros(int(s * SR), np.float32) for s in PAD_S)
    for k, u in enumerate(utts):
        clean = dg.set_level(np.concatenate([before, _load(u.path, SR), after]), SR, TALK_DBFS)
        active = clean_activity(clean)
        for snr in SNRS:
            noise = noises[(k + snr) % len(noises)]
            mix = dg.saturate(dg.add_noise(clean, noise, float(snr), SR, rng))
            for start, er, probs, mp in measure(mix):
                f0, f1 = start // (SR // 50), (start + WINDOW) // (SR // 50)
                truth = float(active[f0:f1].mean())
                kind = "speech" if truth >= 0.2 else ("noise only" if truth == 0 else None)
                if kind is None:
                    continue
                for rule, yes in decisions(er, probs, grid, mp).items():
                    counts[(f"{kind} @ {snr:+d} dB", rule)].append(yes)
                    if kind == "speech" and rule in (RUNTIME_RULE, MODEL_RUNTIME_RULE):
                        counts[("by noise", snr, Path(cat.noise[split][(k + snr) % len(noises)]).stem,
                                rule)].append(yes)
    counts["_utterances"] = len(utts)


def tone(freqs: tuple[float, ...], seconds: float, on_s: float | None = None,
         off_s: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f * t) for f in freqs)
    if on_s is not None:
        x = x * ((t % (on_s + off_s)) < on_s)
    return x


def dtmf(seconds: float, rng: np.random.Generator) -> np.ndarray:
    lows, highs = (697, 770, 852, 941), (1209, 1336, 1477)
    parts = []
    while sum(len(p) for p in parts) < seconds * SR:
        parts += [tone((rng.choice(lows), rng.choice(highs)), 0.1), np.zeros(int(0.1 * SR))]
    return np.concatenate(parts)[: int(seconds * SR)]


def coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power ~ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.arange(1, len(spec)) ** (exponent / 2)
    spec[0] = 0
    return np.fft.irfft(spec, n)


def at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    return dg.gain_db(x.astype(np.float32), dbfs - dg.rms_db(x)).astype(np.float32)


def negatives(cat, split: str, moh: Path | None, rng: np.random.Generator) -> Iterator[tuple[str, str, np.ndarray]]:
    """(category, item, audio) of signals without speech."""
    for p in cat.noise[split]:
        x = _load(p, SR)[: 60 * SR]
        for level in (-20.0, -45.0):
            yield f"held-out noise at {level:.0f} dBFS", Path(p).stem, at_dbfs(x, level)
    every = sorted(set().union(*cat.noise.values()))
    for p in every:
        yield "every noise file at -30 dBFS", Path(p).stem, at_dbfs(_load(p, SR)[: 30 * SR], -30.0)
    if moh is not None:
        for p in sorted(moh.glob("*.g722")):
            raw = subprocess.run(["ffmpeg", "-v", "error", "-f", "g722", "-i", str(p), "-t", "60", "-ac",
                                  "1", "-ar", str(SR), "-f", "f32le", "-"], check=True,
                                 capture_output=True).stdout
            yield "music (hold music)", p.stem, at_dbfs(np.frombuffer(raw, np.float32), -26.0)
    s = 20.0
    tones = {
        "dial tone 350+440": tone((350, 440), s),
        "ringback 440+480 2/4 s": tone((440, 480), s, 2.0, 4.0),
        "busy 480+620 0.5/0.5 s": tone((480, 620), s, 0.5, 0.5),
        "DTMF digits": dtmf(s, rng),
        "fax CNG 1100 Hz": tone((1100,), s, 0.5, 3.0),
        "sine 1 kHz": tone((1000,), s),
        "hum 50 Hz + harmonics": tone((50, 100, 150, 250), s),
        "sweep 100-4000 Hz": np.sin(2 * np.pi * np.cumsum(np.geomspace(100, 4000, int(s * SR))) / SR),
    }
    for name, x in tones.items():
        yield "tones at -20 dBFS", name, at_dbfs(x, -20.0)
    n = int(s * SR)
    yield "silence", "digital zero", np.zeros(n, np.float32)
    yield "silence", "dither -90 dBFS", at_dbfs(rng.standard_normal(n), -90.0)
    for name, e in (("white", 0.0), ("pink", 1.0), ("brown", 2.0)):
        for level in (-50.0, -65.0):
            yield "comfort noise", f"{name} {level:.0f} dBFS", at_dbfs(coloured(n, e, rng), level)


def cost(model: Path, minutes: float = 2.0) -> dict[str, float]:
    """CPU ms per 1 s hop: Silero, energy VAD; per 4 s window: the model (interleaved).

    With ``--speech-model`` also, interleaved in the same loop: the speech model scoring a
    window with its speech output (the "model" gate's whole cost: scores + verdict) and
    without it (scores only), so its detector costs the difference.

    Thread CPU time, not wall time: the machine may be shared (a training job), and
    preemption would otherwise be charged to whichever step was running.
    """
    from livesqa.gating import model_verdict
    from livesqa.scoring import OnnxScorer

    rng = np.random.default_rng(1)
    x = (rng.standard_normal(int(minutes * 60 * SR)) * 0.05).astype(np.float32)
    wins = list(windows_of(x))
    scorer = OnnxScorer.load(model)
    from livesqa.vad import SILERO_FULL_ONNX, SileroSession, StreamVad

    silero, energy = StreamGate(GateConfig(), SR), StreamGate(ENERGY, SR)
    whole = StreamGate(GateConfig(), SR)  # the same gate on the graph as shipped (STFT inside): before session 16
    whole._vad = StreamVad(SileroSession(SILERO_FULL_ONNX))
    gate = StreamGate(GateConfig(detector="model"), SR)
    times: dict[str, list[float]] = defaultdict(list)
    for start, w in wins[:5]:
        scorer.score(w[None, :])
        if SPEECH_MODEL is not None:
            SPEECH_MODEL.score_with_speech(w[None, :])
    clock = time.thread_time
    for start, w in wins:
        t0 = clock()
        silero.analyze(start, w)
        t1 = clock()
        energy.analyze(start, w)
        t2 = clock()
        scorer.score(w[None, :])
        t3 = clock()
        whole.analyze(start, w)
        t4 = clock()
        scorer.score(w[None, :])
        t5 = clock()
        times["silero"].append(t1 - t0)
        times["energy"].append(t2 - t1)
        times["model"].append(t3 - t2)
        times["silero whole graph"].append(t4 - t3)
        times["model"].append(t5 - t4)
        if SPEECH_MODEL is not None:
            t4 = clock()
            _, probs = SPEECH_MODEL.score_with_speech(w[None, :])
            model_verdict(gate.analyze(start, w), probs[0], gate.config)
            t5 = clock()
            SPEECH_MODEL.score(w[None, :])
            t6 = clock()
            times["speech model, scores + speech + verdict"].append(t5 - t4)
            times["speech model, scores only"].append(t6 - t5)
    return {k: 1000 * float(np.mean(v)) for k, v in times.items()}


def ranked_rules(grid: list[tuple[float, float]], prefix: str, counts: dict, neg: dict,
                 categories: list[str]) -> list[tuple[list[float], float, float, list[float]]]:
    """Every (threshold, ratio) by its worst cell, then its next worst (leximin)."""
    ranked = []
    for t, r in grid:
        rule = f"{prefix} p>={t} r>={r}"
        cells = [100 * np.mean(counts[(f"speech @ {snr:+d} dB", rule)]) for snr in SNRS]
        cells += [100 - 100 * np.mean(counts[(f"noise only @ {snr:+d} dB", rule)]) for snr in SNRS]
        cells += [100 - 100 * np.mean(neg[(c, rule)]) for c in categories]
        ranked.append((sorted(cells), t, r, cells))
    ranked.sort(key=lambda x: x[0], reverse=True)
    return ranked


def pct(v: list[bool], positive: bool) -> str:
    hits = sum(v) if positive else len(v) - sum(v)
    return f"{100 * hits / len(v):.1f} ({hits}/{len(v)})" if v else "–"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--split", default="test", choices=("val", "test"))
    ap.add_argument("--moh", type=Path, help="folder of Asterisk hold-music .g722 files")
    ap.add_argument("--speechocean", type=int, default=40, help="speechocean762 utterances to add")
    ap.add_argument("--model", type=Path, default=ROOT / "exported" / "livesqa-small.onnx")
    ap.add_argument("--grid", action="store_true",
                    help="also rank every (threshold, ratio) pair by its worst cell (for choosing on val)")
    ap.add_argument("--speech-model", type=Path,
                    help="a model with a speech output (python -m train speech-head): adds the 'model' detector")
    ap.add_argument("--model-rule", type=float, nargs=2, metavar=("THRESHOLD", "RATIO"),
                    help="the model detector's rule to report (default: the runtime's; e.g. one chosen on val)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    global SPEECH_MODEL, MODEL_RULES, MODEL_RUNTIME_RULE
    if args.model_rule is not None:
        t, r = args.model_rule
        MODEL_RULES = ((t, r),)
        MODEL_RUNTIME_RULE = f"model p>={t:g} r>={r:g}"
    if args.speech_model is not None:
        from livesqa.scoring import OnnxScorer

        SPEECH_MODEL = OnnxScorer.load(args.speech_model)
        if not SPEECH_MODEL.has_speech:
            ap.error(f"{args.speech_model} has no speech output")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = np.random.default_rng(14)
    cat = build_catalogue(Path(args.data_root))
    counts: dict = defaultdict(list)
    positives(cat, args.split, args.speechocean, rng, counts, args.grid)
    neg: dict = defaultdict(list)
    neg_items: dict = defaultdict(list)
    for category, item, x in negatives(cat, args.split, args.moh, rng):
        per_rule: dict[str, list[bool]] = defaultdict(list)
        for _, er, probs, mp in measure(x):
            for rule, yes in decisions(er, probs, args.grid, mp).items():
                neg[(category, rule)].append(yes)
                per_rule[rule].append(yes)
        neg_items[category].append((item, {r: sum(v) for r, v in per_rule.items()},
                                    len(next(iter(per_rule.values())))))
    rules = ["energy"] + [f"silero p>={t} r>={r}" for t, r in SILERO_RULES]
    if SPEECH_MODEL is not None:
        rules.append(MODEL_RUNTIME_RULE)
    ms = cost(args.model)
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                         text=True).stdout.split(":")[-1].strip()
    lines = [f"# Speech detector benchmark, {args.split} split",
             "",
             f"Made by `python results/vad/bench_vad.py --split {args.split} --moh ... --out ...` on "
             f"{cpu} ({platform.machine()}), one core. {counts['_utterances']} utterances of the "
             f"split's held-out speakers, {len(cat.noise[args.split])} held-out noise files; 4 s "
             "windows, 1 s hop. Cells: % of windows (count)."
             + ("" if SPEECH_MODEL is None else
                f" `model` = the speech output of `{args.speech_model.name}` "
                f"({SPEECH_MODEL.spec.name} {SPEECH_MODEL.spec.version}): 40 ms frames, the "
                "window's frames at p >= threshold over all its frames >= ratio."),
             "",
             "## Windows with speech scored (higher is better; goal >= 95 %)",
             "",
             "| SNR | " + " | ".join(rules) + " |",
             "| --- |" + " --- |" * len(rules)]
    for snr in SNRS:
        lines.append(f"| {snr:+d} dB | " + " | ".join(pct(counts[(f'speech @ {snr:+d} dB', r)], True)
                                                   for r in rules) + " |")
    for runtime_rule in [RUNTIME_RULE] + ([MODEL_RUNTIME_RULE] if SPEECH_MODEL is not None else []):
        stems = sorted({key[2] for key in counts if isinstance(key, tuple) and key[0] == "by noise"
                        and key[3] == runtime_rule})
        lines += ["", f"Windows with speech scored by `{runtime_rule}` (a runtime rule), per noise file:",
                  "", "| noise file | " + " | ".join(f"{snr:+d} dB" for snr in SNRS) + " |",
                  "| --- |" + " --- |" * len(SNRS)]
        for stem in stems:
            lines.append(f"| {stem} | " + " | ".join(pct(counts[("by noise", snr, stem, runtime_rule)], True)
                                                    for snr in SNRS) + " |")
    lines += ["", "## Windows without speech said 'no speech' (higher is better; goal >= 95 %)", "",
              "| signal | " + " | ".join(rules) + " |", "| --- |" + " --- |" * len(rules)]
    for snr in SNRS:
        key = f"noise only @ {snr:+d} dB"
        lines.append(f"| noise before/after the talker, {snr:+d} dB | "
                     + " | ".join(pct(counts[(key, r)], False) for r in rules) + " |")
    for category in neg_items:
        lines.append(f"| {category} | " + " | ".join(pct(neg[(category, r)], False) for r in rules) + " |")
    if args.grid:
        grids = [("silero", GRID)] + ([("model", MODEL_GRID)] if SPEECH_MODEL is not None else [])
        for prefix, grid in grids:
            ranked = ranked_rules(grid, prefix, counts, neg, list(neg_items))
            lines += ["", f"## {prefix}: every (frame threshold, window ratio), best worst cell first "
                      "(ties: next worst)", "",
                      "| threshold | ratio | worst cell | speech -5/0/5/10/20 dB | no speech: around the "
                      "talker -5/0/5/10/20 dB, then per signal as above |",
                      "| --- | --- | --- | --- | --- |"]
            for worst, t, r, cells in ranked[:12]:
                lines.append(f"| {t} | {r} | {worst[0]:.1f} | " + " / ".join(f"{c:.1f}" for c in cells[:5])
                             + " | " + " / ".join(f"{c:.1f}" for c in cells[5:]) + " |")
    lines += ["", "Items where a rule scored any window (windows scored / windows):", ""]
    shown = set(rules)
    for category, items in neg_items.items():
        for item, hits, n in items:
            bad = {r: h for r, h in hits.items() if h and r in shown}
            if bad:
                lines.append(f"- {category} / {item}: " + ", ".join(f"{r} {h}/{n}" for r, h in bad.items()))
    lines += ["", "## Cost (mean thread CPU time over 2 min of audio, one thread, pinned to one core, "
              "interleaved)", "",
              "| what | ms | share of the model's window |", "| --- | --- | --- |",
              f"| model `{args.model.name}`, per 4 s window | {ms['model']:.2f} | 100 % |",
              f"| Silero VAD, per 1 s hop (31 new frames; numpy STFT + the graph after it, the runtime's) | "
              f"{ms['silero']:.2f} | {100 * ms['silero'] / ms['model']:.1f} % |",
              f"| Silero VAD, the same on the whole graph (STFT inside; the runtime before session 16) | "
              f"{ms['silero whole graph']:.2f} | {100 * ms['silero whole graph'] / ms['model']:.1f} % |",
              f"| energy VAD, per 4 s window | {ms['energy']:.2f} | {100 * ms['energy'] / ms['model']:.1f} % |"]
    if SPEECH_MODEL is not None:
        both, only = ms["speech model, scores + speech + verdict"], ms["speech model, scores only"]
        lines += [f"| speech model `{args.speech_model.name}`, scores only, per 4 s window | {only:.2f} | "
                  f"{100 * only / ms['model']:.1f} % |",
                  f"| speech model, scores + speech output + window verdict | {both:.2f} | "
                  f"{100 * both / ms['model']:.1f} % |",
                  f"| **model detector** (the difference: what the gate adds to scoring a window) | "
                  f"{both - only:.2f} | {100 * (both - only) / ms['model']:.1f} % |",
                  "", "The model detector needs the model on every window (Silero skips it on windows "
                  "without speech), so on a silent stretch the whole model is the gate's cost."]
    load = os.getloadavg()
    lines += ["", f"Load average at the end of the run: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
              "(1 / 5 / 15 min; the 2-core machine is shared with a training job)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
