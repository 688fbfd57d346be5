"""Issue #14 follow-up: cheaper Silero variants and smarter window rules, chosen on val.

Usage (from the repository root; music as in ``bench_vad.py``)::

    python results/vad/explore_vad.py --moh /tmp/moh/usr/share/asterisk/moh \
        --silero8k DIR/silero_vad.onnx --out results/vad/explore.md
    # explore_subset.md: the same on a subset, run first while the machine was overloaded
    python results/vad/explore_vad.py --moh ... --silero8k ... --utterances 20 \
        --speechocean 8 --max-seconds 10 --cache /tmp/subset.pkl --out results/vad/explore_subset.md

``DIR/silero_vad.onnx``: from the silero-vad 6.2.3 wheel (``pip download silero-vad --no-deps``,
unzip, ``silero_vad/data/``); only the cost table uses it. About 3 minutes on the quiet
2-core AMD EPYC.

The signals are ``bench_vad.py``'s, drawn in the same order from the same seed (same
utterances, noise files, SNRs, tones, music), for both splits, except that each noise file
used for mixing is read up to its first 60 s, so the noise excerpts differ from
``bench_vad.py``'s (the runtime's rule scores 79.7 % of speech windows at -5 dB on test here,
77.0 % in ``test.md``: the spread one draw of excerpts makes). Each detector's 32 ms frame
probabilities are computed once per signal on the stream's frame grid (frame ``k`` covers
samples ``[512 k, 512 (k + 1))``, the LSTM state carried from frame to frame: what
``livesqa.vad.StreamVad`` computes however the stream is chunked) and sliced into the
runtime's windows (4 s, 1 s hop, ``livesqa.windowing.Windower``). Every window rule is then
a function of one window's frame probabilities, so it is as chunking-independent as the
probabilities are.

Detectors:

- ``seq16``: the bundled 16 kHz sequence export, every frame (the runtime today);
- ``seq16/2``: the same on every other frame (even ``k``), the LSTM state carried across
  the skipped frame and each probability held for the next frame (half the frames run);
- ``seq16-hp`` (session 14): ``seq16`` on the signal after a 4th-order Butterworth high-pass at
  250 Hz (``HIGHPASS_HZ``), a cheap front end against low-frequency noise;
- ``v6-8k``: Silero v6's 8 kHz mode (``silero_vad.onnx`` from the silero-vad 6.2.3 wheel,
  MIT; 256-sample frames with 32 samples of context, one ONNX call per frame), on the
  signal resampled to 8 kHz: cost only (``--silero8k``). It has no sequence export, so each
  32 ms frame is one ONNX call, and the calls' overhead made it about twice the cost of
  the 16 kHz sequence export (31 % of the model's window against 16 %); its detection was
  not measured.

Window rules (``p``: the window's frame probabilities): ``ratio t r``: at least ``r`` of the
frames have ``p >= t`` (the runtime's rule); ``top k t``: the mean of the ``k`` largest ``p``
is ``>= t``; ``smax m t``: the largest ``m``-frame moving average of ``p`` is ``>= t``.
Choice: on the val split only, per detector, the rule with the best worst cell, then the
next worst (the cells: speech at each SNR, noise before/after the talker at each SNR, each
kind of signal without speech); the test split is reported for the chosen rules untouched.
Cost: thread CPU time per 1 s hop of each detector beside the model's 4 s window,
interleaved, one thread, pinned to one core.
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_vad as bv

from livesqa.vad import CONTEXT, FRAME, SileroSession
from train import degrade as dg
from train.sim_catalogue import build_catalogue

SR = bv.SR
_BENCH_LOAD = bv._load  # bench_vad's whole-file loader (collect() may swap in load_head)
DETECTORS = ("seq16", "seq16/2", "v6-8k", "seq16-hp")
HIGHPASS_HZ = 250.0  # seq16-hp: Silero on the signal above this (session 14)
THRESHOLDS = (0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
RATIOS = (0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2)
TOPK = (2, 4, 8, 12, 25)
SMAX = (3, 5, 9, 15)
RUNTIME_RULE = ("ratio", 0.1, 0.15)  # (family, parameter, threshold)


class Silero8k:
    """Silero v6's 8 kHz mode, one call per 256-sample frame (what its own wrapper does)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.sr = np.array(8000, dtype=np.int64)

    def probs(self, x8: np.ndarray, state: np.ndarray | None = None,
              context: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(x8) // 256
        state = np.zeros((2, 1, 128), np.float32) if state is None else state
        context = np.zeros(32, np.float32) if context is None else context
        out = np.empty(n, np.float32)
        buf = np.empty((1, 288), np.float32)
        for k in range(n):
            buf[0, :32] = context
            buf[0, 32:] = x8[256 * k: 256 * (k + 1)]
            p, state = self.session.run(None, {"input": buf, "state": state, "sr": self.sr})
            out[k] = float(p.reshape(-1)[0])
            context = buf[0, -32:].copy()
        return out, state, context


def seq_frames(x: np.ndarray) -> np.ndarray:
    """``[n, 576]``: each 512-sample frame with the 64 samples before it (zeros at the start)."""
    n = len(x) // FRAME
    frames = np.zeros((n, CONTEXT + FRAME), np.float32)
    frames[:, CONTEXT:] = x[: n * FRAME].reshape(n, FRAME)
    if n > 1:
        frames[1:, :CONTEXT] = frames[:-1, -CONTEXT:]
    return frames


def frame_probs(x: np.ndarray, seq: SileroSession) -> dict[str, np.ndarray]:
    """Every detector's probability of each frame ``k`` of the 16 kHz signal ``x``."""
    frames = seq_frames(x.astype(np.float32))
    n = frames.shape[0]
    z = np.zeros((1, 1, 128), np.float32)
    out: dict[str, np.ndarray] = {}
    if n == 0:
        return {d: np.zeros(0, np.float32) for d in DETECTORS[:2]}
    out["seq16"], _, _ = seq.run(frames, z, z.copy())
    half, _, _ = seq.run(frames[::2], z, z.copy())
    out["seq16/2"] = np.repeat(half, 2)[:n]
    out["seq16-hp"], _, _ = seq.run(seq_frames(highpass(x)), z, z.copy())
    return out


def highpass(x: np.ndarray) -> np.ndarray:
    """``x`` through a 4th-order Butterworth high-pass at ``HIGHPASS_HZ`` (causal, as a runtime
    front end would be): the noises that hide a talker at -5 dB (beehive hum, waves, sheep
    pens) put most of their energy below the talker's formants."""
    from scipy.signal import butter, sosfilt

    return sosfilt(butter(4, HIGHPASS_HZ, "highpass", fs=SR, output="sos"), x).astype(np.float32)


def window_slices(x: np.ndarray) -> list[tuple[int, int, int]]:
    """(start sample, first frame, end frame) of the runtime's windows of ``x``."""
    out = []
    for start, w in bv.windows_of(x, chunk=max(len(x), 1)):  # the windower is chunking-free
        k0 = -(-start // FRAME)
        k1 = (start + len(w)) // FRAME
        out.append((start, k0, k1))
    return out


def load_head(path: str, rate: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of a file, decoded and resampled (not the whole file)."""
    import soundfile as sf

    from livesqa.audio import downmix, resample

    try:
        with sf.SoundFile(str(path)) as f:
            data = f.read(frames=int(seconds * f.samplerate), dtype="float32", always_2d=True)
            native = f.samplerate
        return resample(downmix(data), int(native), rate)
    except Exception:  # noqa: BLE001  (the few Opus files libsndfile trips on)
        return _BENCH_LOAD(path, rate)[: int(seconds * rate)]


def collect(split: str, data_root: Path, moh: Path | None, n_so: int, n_libri: int | None,
            max_s: float | None) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(cell, {detector: frame probabilities}) per window, for the split's signals.

    ``n_libri``/``max_s`` (optional) take the first ``n_libri`` LibriSpeech utterances and cut
    every signal without a talker to ``max_s`` seconds: a subset, for a machine too busy for
    the whole set (the noise draws then differ from bench_vad's).
    """
    rng = np.random.default_rng(14)  # bench_vad's seed and draw order: the same signals
    cat = build_catalogue(data_root)
    seq = SileroSession.shared()
    rows: list[tuple[str, dict[str, np.ndarray]]] = []
    utts = [u for u in cat.speech[split] if u.corpus == "librispeech"][:n_libri]
    so = [u for u in cat.speech[split] if u.corpus != "librispeech"]
    utts += [so[i] for i in rng.choice(len(so), size=min(n_so, len(so)), replace=False)]
    noises = [load_head(p, SR, 60.0) for p in cat.noise[split]]
    before, after = (np.zeros(int(s * SR), np.float32) for s in bv.PAD_S)
    for k, u in enumerate(utts):
        clean = dg.set_level(np.concatenate([before, bv._load(u.path, SR), after]), SR,
                             bv.TALK_DBFS)
        active = bv.clean_activity(clean)
        for snr in bv.SNRS:
            noise = noises[(k + snr) % len(noises)]
            mix = dg.saturate(dg.add_noise(clean, noise, float(snr), SR, rng))
            probs = frame_probs(mix, seq)
            for start, k0, k1 in window_slices(mix):
                f0, f1 = start // (SR // 50), (start + bv.WINDOW) // (SR // 50)
                truth = float(active[f0:f1].mean())
                kind = "speech" if truth >= 0.2 else ("noise only" if truth == 0 else None)
                if kind is not None:
                    rows.append((f"{kind} @ {snr:+d} dB", {d: p[k0:k1] for d, p in probs.items()}))
        print(f"{split}: utterance {k + 1}/{len(utts)}", file=sys.stderr, flush=True)
    if max_s:  # decode only what is kept of each signal without a talker
        bv._load = lambda p, rate: load_head(p, rate, max_s)  # type: ignore[assignment]
    for category, _item, x in bv.negatives(cat, split, moh, rng):
        x = np.asarray(x, np.float32)[: int(max_s * SR) if max_s else None]
        probs = frame_probs(x, seq)
        for _start, k0, k1 in window_slices(x):
            rows.append((category, {d: p[k0:k1] for d, p in probs.items()}))
    print(f"{split}: {len(rows)} windows", file=sys.stderr, flush=True)
    return rows


# --- rules ---------------------------------------------------------------------------------


def rules() -> list[tuple[str, float, float]]:
    out = [("ratio", r, t) for t in THRESHOLDS for r in RATIOS]
    out += [("top", k, t) for t in THRESHOLDS for k in TOPK]
    out += [("smax", m, t) for t in THRESHOLDS for m in SMAX]
    return out


def rule_name(rule: tuple[str, float, float]) -> str:
    family, param, t = rule
    return {"ratio": f"ratio r>={param} p>={t}", "top": f"top-{param} mean >= {t}",
            "smax": f"max {param}-frame mean >= {t}"}[family]


def features(p: np.ndarray) -> dict[str, np.ndarray | float]:
    """What every rule needs of one window: sorted probabilities, smoothed maxima."""
    desc = np.sort(p)[::-1] if p.size else np.zeros(1, np.float32)
    feats: dict[str, np.ndarray | float] = {"desc": desc, "n": float(max(p.size, 1))}
    c = np.concatenate([[0.0], np.cumsum(p, dtype=np.float64)])
    for m in SMAX:
        feats[f"smax{m}"] = float(np.max((c[m:] - c[:-m]) / m)) if p.size >= m else 0.0
    return feats


def decide(f: dict, rule: tuple[str, float, float]) -> bool:
    family, param, t = rule
    desc = f["desc"]
    if family == "ratio":
        count = int(np.searchsorted(-desc, -t, side="right"))  # frames with p >= t
        return count > 0 and count / f["n"] >= param
    if family == "top":
        return float(desc[: int(param)].mean()) >= t
    return f[f"smax{int(param)}"] >= t


def cells_of(rows, detector: str, rule, feats) -> dict[str, tuple[int, int]]:
    """cell -> (windows decided right, windows)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (cell, _), f in zip(rows, feats[detector], strict=True):
        yes = decide(f, rule)
        right = yes if cell.startswith("speech") else not yes
        out[cell][0] += int(right)
        out[cell][1] += 1
    return {c: (v[0], v[1]) for c, v in out.items()}


def leximin_key(cells: dict[str, tuple[int, int]]) -> list[float]:
    return sorted(100.0 * a / b for a, b in cells.values())


def cost(model: Path, s8: Silero8k | None, seconds: float = 40.0) -> dict[str, float]:
    """Thread CPU ms: each detector per 1 s hop (its new frames), the model per 4 s window."""
    from livesqa.gating import GateConfig, StreamGate
    from livesqa.scoring import OnnxScorer

    rng = np.random.default_rng(1)
    x = (rng.standard_normal(int(seconds * SR)) * 0.05).astype(np.float32)
    wins = list(bv.windows_of(x))
    scorer = OnnxScorer.load(model)
    gate = StreamGate(GateConfig(), SR)
    seq = SileroSession.shared()
    frames = seq_frames(x)
    for _, w in wins[:3]:
        scorer.score(w[None, :])
    z = np.zeros((1, 1, 128), np.float32)
    state16 = (z, z.copy())
    state8: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    times: dict[str, list[float]] = defaultdict(list)
    clock = time.thread_time
    done = 0  # frames run so far (the hop's new frames are those ending inside its window)
    from livesqa.audio import StreamingResampler

    rs = StreamingResampler(SR, 8000)
    fed = 0
    pending8 = np.zeros(0, np.float32)
    for start, w in wins:
        end_frame = (start + len(w)) // FRAME
        new = frames[done:end_frame]
        t0 = clock()
        gate.analyze(start, w)  # the runtime's gate (seq16, every frame)
        t1 = clock()
        sel = new[(done % 2)::2]  # the even frames k among the new ones
        if len(sel):
            _, h, c = seq.run(sel, *state16)
            state16 = (h, c)
        t2 = clock()
        if s8 is not None:
            hop = x[fed: start + len(w)]
            fed = start + len(w)
            pending8 = np.concatenate([pending8, rs.process(hop)])
            n8 = len(pending8) // 256
            if n8:
                _, st, ctx = s8.probs(pending8[: n8 * 256], *state8)
                state8 = (st, ctx)
                pending8 = pending8[n8 * 256:]
        t3 = clock()
        scorer.score(w[None, :])
        t4 = clock()
        done = end_frame
        times["seq16"].append(t1 - t0)
        times["seq16/2"].append(t2 - t1)
        times["v6-8k"].append(t3 - t2)
        times["model"].append(t4 - t3)
    return {k: 1000 * float(np.mean(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--moh", type=Path)
    ap.add_argument("--silero8k", type=Path, help="silero_vad.onnx (v6) for the 8 kHz detector")
    ap.add_argument("--speechocean", type=int, default=40)
    ap.add_argument("--model", type=Path, default=ROOT / "exported" / "livesqa-small.onnx")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/livesqa-vad-explore.pkl"),
                    help="frame probabilities per split, cost (reused when they exist)")
    ap.add_argument("--utterances", type=int, help="only the first N LibriSpeech utterances")
    ap.add_argument("--max-seconds", type=float, help="cut signals without a talker to this")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    s8 = Silero8k(args.silero8k) if args.silero8k else None
    data: dict = {}
    for split in ("val", "test"):
        cache = args.cache.with_suffix(f".{split}.pkl")
        if cache.exists():
            data[split] = pickle.loads(cache.read_bytes())
        else:
            data[split] = collect(split, args.data_root, args.moh, args.speechocean,
                                  args.utterances, args.max_seconds)
            cache.write_bytes(pickle.dumps(data[split]))
        report(args, data)  # val's choice is written before test is computed
    cache = args.cache.with_suffix(".cost.pkl")
    if cache.exists():
        data["cost"] = pickle.loads(cache.read_bytes())
    else:
        data["cost"] = cost(args.model, s8)
        data["cost"]["load"] = os.getloadavg()[0]  # right after measuring
        cache.write_bytes(pickle.dumps(data["cost"]))
    report(args, data)
    return 0


def report(args: argparse.Namespace, data: dict) -> None:
    """Write ``--out`` from what is computed so far (val's choice first, then test, then cost)."""
    detectors = [d for d in DETECTORS if d in data["val"][0][1]]
    splits = [sp for sp in ("val", "test") if sp in data]
    feats = {split: {d: [features(p[d]) for _, p in data[split]] for d in detectors}
             for split in splits}
    lines = ["# Speech detector: cheaper Silero variants and window rules (issue #14)", "",
             "Made by `python results/vad/explore_vad.py --moh ... --silero8k ... --out ...` "
             f"({platform.machine()}, one core); see the script's docstring for the detectors, "
             "rules and the choice. Choice on val only; test untouched. Cells: % of windows "
             "decided right (speech scored, or no speech said 'no speech').", ""]
    cellnames = sorted({c for c, _ in data["val"]},
                       key=lambda c: (not c.startswith("speech"), not c.startswith("noise only"),
                                      c))
    chosen = []
    for d in detectors:
        ranked = []
        for rule in rules():
            cells = cells_of(data["val"], d, rule, feats["val"])
            ranked.append((leximin_key(cells), rule, cells))
        ranked.sort(key=lambda r: r[0], reverse=True)
        lines += [f"## {d}: the 8 best rules on val (worst cell first)", "",
                  "| rule | worst | 2nd | 3rd | speech -5 dB | noise after talker -5 dB |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for key, rule, cells in ranked[:8]:
            sp = cells["speech @ -5 dB"]
            na = cells["noise only @ -5 dB"]
            lines.append(f"| {rule_name(rule)} | {key[0]:.1f} | {key[1]:.1f} | {key[2]:.1f} | "
                         f"{100 * sp[0] / sp[1]:.1f} | {100 * na[0] / na[1]:.1f} |")
        best_by_family = {}
        for key, rule, _ in ranked:
            best_by_family.setdefault(rule[0], rule)
        lines += ["", "Best of each family on val: " + "; ".join(
            f"{rule_name(r)}" for r in best_by_family.values()), ""]
        chosen.append((d, ranked[0][1]))
        if d == "seq16":
            chosen.append((d, RUNTIME_RULE))
            for fam, r in best_by_family.items():
                if r != ranked[0][1]:
                    chosen.append((d, r))
    for split in splits:
        lines += [f"## {split} split: each detector's val choice, the runtime's rule, the best "
                  "of the other rule families on val", "",
                  "| cell | " + " | ".join(f"{d} {rule_name(r)}"
                                         + (" (runtime)" if (d, r) == ("seq16", RUNTIME_RULE)
                                            else "") for d, r in chosen) + " |",
                  "| --- |" + " --- |" * len(chosen)]
        per = [cells_of(data[split], d, r, feats[split]) for d, r in chosen]
        for c in cellnames:
            lines.append(f"| {c} | " + " | ".join(
                f"{100 * p[c][0] / p[c][1]:.1f} ({p[c][0]}/{p[c][1]})" for p in per) + " |")
        lines.append("| worst cell | " + " | ".join(f"{leximin_key(p)[0]:.1f}" for p in per)
                     + " |")
        lines.append("")
    if args.utterances or args.max_seconds:
        lines.insert(3, f"Subset (a machine too busy for the whole set): the first "
                        f"{args.utterances} LibriSpeech utterances + {args.speechocean} "
                        f"speechocean762 per split, signals without a talker cut to "
                        f"{args.max_seconds} s.")
    ms = data.get("cost")
    if ms is None:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True,
                         text=True).stdout.split(":")[-1].strip()
    load = ms.get("load", 4.1)  # 4.1: the first subset run's, read when its file was written
    lines += [f"## Cost (thread CPU time, 40 s of audio, interleaved, one thread, {cpu}; "
              f"1-minute load average {load:.1f} on 2 cores right after)", "",
              "| what | ms | share of the model's window |", "| --- | --- | --- |",
              f"| model `{args.model.name}`, per 4 s window | {ms['model']:.2f} | 100 % |"]
    for d in [k for k in DETECTORS if k in ms]:  # "load" is not a detector
        what = {"seq16": "runtime gate (seq16, every frame) per 1 s hop",
                "seq16/2": "seq16 on every other frame, per 1 s hop",
                "v6-8k": "v6 8 kHz, resampling + one call per frame, per 1 s hop"}[d]
        lines.append(f"| {what} | {ms[d]:.2f} | {100 * ms[d] / ms['model']:.1f} % |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
