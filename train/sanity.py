"""Monotonicity checks of a quality model on controlled degradations (`python -m train sanity`).

Why: PCC on a test set can look fine while a model ignores a whole dimension. These checks
degrade clean speech of held-out speakers in one controlled way at a time (with the same
``train.degrade`` functions that built the corpus) and ask whether the right score moves
the right way:

- clean speech scores high (mean MOS >= ``clean_min_mos``);
- noise lowers NOI and MOS monotonically as the SNR falls;
- packet loss lowers DIS monotonically as the loss rate rises;
- narrowband (300-3400 Hz) lowers COL;
- a very quiet and a clipped-loud level both lower LOUD.

"Monotonic" = each step may rise by at most ``tolerance`` and the last point must be
``tolerance`` below the first. Scores are means over ``n_clips`` clips. Writes
``results/sanity/sanity.md`` and ``sanity.json``; ``--strict`` exits 1 on any failure.
``--teacher-reference`` adds NISQA's scores of the very same signals, so a reader can
tell a model's fault from a property of the clips (e.g. how "clean" the clean speech is).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from livesqa.spec import DIMENSIONS
from train import degrade
from train.asr_data import resolve_data_root
from train.data import read_asr_manifest
from train.rundir import load_section, stage_parser
from train.scorers import FileScorer, model_scorer

SR = 16000
NOMINAL_DBFS = -26.0  # ITU-T P.56 style nominal active speech level


@dataclass(frozen=True)
class SanityConfig:
    """``[sanity]``: which clips, which degradation levels, how strict."""

    model: str = ""  # checkpoint or ONNX (the --model option wins)
    manifest: str = ""  # ASR manifest; empty: [data].asr_manifest, else cache/asr/manifest.csv
    n_clips: int = 8
    noise_file: str = ""  # empty: seeded pink noise
    snr_db: tuple[float, ...] = (40.0, 20.0, 10.0, 5.0, 0.0)
    loss_rates: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)
    quiet_dbfs: float = -56.0
    loud_gain_db: float = 30.0  # added to the nominal level, then clipped at full scale
    tolerance: float = 0.05
    clean_min_mos: float = 3.5
    out_dir: str = "results/sanity"
    device: str = "cpu"
    seed: int = 0
    nisqa_weights: str = "weights/nisqa/nisqa.tar"  # relative to the data root (--teacher-reference)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    values: dict[str, float] = field(default_factory=dict)


def decreasing(values: Sequence[float], tolerance: float) -> bool:
    """Non-increasing within ``tolerance`` per step, and an overall drop of more than it."""
    v = list(values)
    steps_ok = all(b <= a + tolerance for a, b in itertools.pairwise(v))
    return steps_ok and v[-1] < v[0] - tolerance


def pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise by spectral shaping of white noise, unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n_samples))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n_samples)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def clean_clips(cfg: SanityConfig, resolved: dict[str, Any], data_root: str | None) -> list[np.ndarray]:
    """``n_clips`` test-split utterances at the nominal level: seeded, one per speaker before repeats."""
    manifest = Path(cfg.manifest or resolved.get("data", {}).get("asr_manifest", "cache/asr/manifest.csv"))
    rng = np.random.default_rng(cfg.seed)
    if manifest.is_file():
        items = read_asr_manifest(manifest, "test")
        order = [items[i] for i in rng.permutation(len(items))]
        seen: set[str] = set()
        firsts: list[Path] = []
        repeats: list[Path] = []
        for it in order:
            (repeats if it.speaker in seen else firsts).append(it.path)
            seen.add(it.speaker)
        paths = firsts + repeats
    else:
        found = sorted((resolve_data_root(data_root) / "speech/speechocean762/test/audio").glob("*.opus"))
        paths = [found[i] for i in rng.permutation(len(found))]
    if not paths:
        raise ConfigError(f"no clean test speech found (manifest {manifest} or the data root)")
    chosen = paths[: cfg.n_clips]
    return [degrade.set_level(read_audio(p, SR), SR, NOMINAL_DBFS) for p in chosen]


def conditions(cfg: SanityConfig, clean: np.ndarray, noise: np.ndarray | None, seed: int) -> dict[str, np.ndarray]:
    """Every degraded version of one clip, keyed by a readable condition name."""
    out = {"clean": clean}
    for snr in cfg.snr_db:
        rng = np.random.default_rng((seed, 1))
        n = noise if noise is not None else pink_noise(clean.size, rng)
        out[f"noise@{snr:g}dB"] = degrade.add_noise(clean, n, snr, SR, rng)
    for rate in cfg.loss_rates:
        out[f"loss@{rate:g}"] = degrade.packet_loss(clean, SR, rate, np.random.default_rng((seed, 2)))[0]
    out["narrowband"] = degrade.narrowband(clean, SR)
    out["quiet"] = degrade.set_level(clean, SR, cfg.quiet_dbfs)
    out["loud-clipped"] = degrade.saturate(degrade.gain_db(clean, cfg.loud_gain_db))
    return out


def run_checks(cfg: SanityConfig, mean: dict[str, dict[str, float]]) -> list[Check]:
    """Pass/fail per check from the mean scores ``{condition: {dimension: score}}``."""
    tol = cfg.tolerance
    noise_keys = [f"noise@{s:g}dB" for s in cfg.snr_db]
    loss_keys = [f"loss@{r:g}" for r in cfg.loss_rates]
    checks = [Check("clean scores high", mean["clean"]["mos"] >= cfg.clean_min_mos,
                    f"clean MOS {mean['clean']['mos']:.2f} (bar: >= {cfg.clean_min_mos})", dict(mean["clean"]))]
    for dim in ("noi", "mos"):
        vals = [mean[k][dim] for k in noise_keys]
        checks.append(Check(f"noise lowers {dim.upper()}", decreasing(vals, tol),
                            f"{dim.upper()} vs SNR {list(cfg.snr_db)} dB: " + ", ".join(f"{v:.2f}" for v in vals),
                            dict(zip(noise_keys, vals))))
    vals = [mean[k]["dis"] for k in loss_keys]
    checks.append(Check("packet loss lowers DIS", decreasing(vals, tol),
                        f"DIS vs loss rate {list(cfg.loss_rates)}: " + ", ".join(f"{v:.2f}" for v in vals),
                        dict(zip(loss_keys, vals))))
    c, nb = mean["clean"]["col"], mean["narrowband"]["col"]
    checks.append(Check("narrowband lowers COL", nb < c - tol, f"COL clean {c:.2f} -> narrowband {nb:.2f}",
                        {"clean": c, "narrowband": nb}))
    ld, q, lo = mean["clean"]["loud"], mean["quiet"]["loud"], mean["loud-clipped"]["loud"]
    checks.append(Check("extreme level lowers LOUD", q < ld - tol and lo < ld - tol,
                        f"LOUD nominal {ld:.2f}, quiet {q:.2f}, loud+clipped {lo:.2f}",
                        {"clean": ld, "quiet": q, "loud-clipped": lo}))
    return checks


def score_conditions(cfg: SanityConfig, scorer: FileScorer, clips: list[np.ndarray],
                     noise: np.ndarray | None) -> dict[str, dict[str, float]]:
    sums: dict[str, np.ndarray] = {}
    for i, clip in enumerate(clips):
        for name, wav in conditions(cfg, clip, noise, cfg.seed * 1000 + i).items():
            sums[name] = sums.get(name, 0.0) + scorer.score(np.asarray(wav, np.float32), SR)
    return {name: dict(zip(DIMENSIONS, (s / len(clips)).tolist())) for name, s in sums.items()}


def _table(mean: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| condition | " + " | ".join(d.upper() for d in DIMENSIONS) + " |",
             "|---|" + "---:|" * len(DIMENSIONS)]
    return lines + [f"| {name} | " + " | ".join(f"{row[d]:.2f}" for d in DIMENSIONS) + " |"
                    for name, row in mean.items()]


def report(model: str, mean: dict[str, dict[str, float]], checks: list[Check], n_clips: int,
           reference: dict[str, dict[str, float]] | None = None) -> str:
    lines = [f"# Sanity checks: `{model}`", "", f"Mean scores over {n_clips} clean test clips and their degradations.",
             "", *_table(mean)]
    lines += ["", "| check | result | detail |", "|---|---|---|"]
    lines += [f"| {c.name} | {'PASS' if c.passed else 'FAIL'} | {c.detail} |" for c in checks]
    if reference:
        lines += ["", "The teacher, NISQA v2, on the very same signals (for reference; not checked):", "",
                  *_table(reference)]
    passed = sum(c.passed for c in checks)
    return "\n".join(lines + ["", f"{passed}/{len(checks)} checks passed."]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("sanity", "monotonicity checks of a model on synthetic degradations")
    parser.add_argument("--model", help="checkpoint (.pt) or exported ONNX file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a check fails")
    parser.add_argument("--teacher-reference", action="store_true",
                        help="also score the same signals with NISQA (from the data root), for reference")
    args = parser.parse_args(argv)
    resolved, cfg = load_section(args.config, args.overrides, "sanity", SanityConfig)
    model = args.model or cfg.model
    if not model:
        raise ConfigError("no model: pass --model exported/X.onnx (or a checkpoint)")
    scorer = model_scorer(model, cfg.device)
    noise = read_audio(cfg.noise_file, SR) if cfg.noise_file else None
    clips = clean_clips(cfg, resolved, args.data_root)
    mean = score_conditions(cfg, scorer, clips, noise)
    checks = run_checks(cfg, mean)
    reference = None
    if args.teacher_reference:
        from train.scorers import NisqaScorer

        teacher = NisqaScorer(resolve_data_root(args.data_root) / cfg.nisqa_weights)
        reference = score_conditions(cfg, teacher, clips, noise)
    text = report(model, mean, checks, len(clips), reference)
    print(text)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sanity.md").write_text(text, encoding="utf-8")
    (out / "sanity.json").write_text(json.dumps({
        "model": model, "n_clips": len(clips), "config": asdict(cfg), "scores": mean,
        "checks": [asdict(c) for c in checks], "passed": all(c.passed for c in checks),
        "teacher_reference": reference,
    }, indent=1, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v)), encoding="utf-8")
    print(f"wrote {out / 'sanity.md'} and {out / 'sanity.json'}")
    return 1 if args.strict and not all(c.passed for c in checks) else 0
