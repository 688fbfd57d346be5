"""PCC/RMSE tables in the paper's layout (`python -m train evaluate`).

Why: Tables 2-4 compare models per dimension per dataset; the same layout here puts our
checkpoints (or ONNX exports) beside NISQA and DNSMOS on the same files:

- ``sim-test``: the simulated test split against its teacher labels (all five dimensions;
  when NISQA labelled the corpus its row is the teacher itself, an upper bound);
- ``p835-wb``: the human-rated ITU-T P.835 set, 16 kHz wideband files;
- ``p835-fb``: the same conditions at 48 kHz, resampled by each model's own input path.
  On P.835, MOS is compared with ``ovrl``, NOI with ``bak`` and COL with ``sig``.
- ``p835-nb``: 96 NOIZEUS files (other talkers, other source corpus, narrowband speech at
  16 kHz) in 12 conditions, rated per condition only (sheet ``NOIZEUS`` of the xlsx). Each
  model's file scores are averaged per condition, and PCC/RMSE are taken over the 12
  condition means, as ITU-T P.1401 does for per-condition statistics: an independent
  second look at the selection metric, though 12 points make a wide interval.

Each file is scored whole, in one pass. Peer scores are cached in ``cache/eval/`` (one
CSV per peer and dataset) so reruns only score our models. Writes ``results/eval/eval.csv``
(dataset, model, dimension, pcc, rmse, n), ``eval.md`` and ``eval.png`` (PCC bars).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from livesqa.audio import read_audio
from livesqa.errors import ConfigError, LivesqaError
from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from train.data import manifest_teachers, read_quality_manifest
from train.eval_plot import write_eval_plot
from train.finetune import sim_manifest
from train.metrics import per_dimension
from train.rundir import load_section, stage_parser
from train.scorers import (
    DistillMosScorer,
    DnsmosScorer,
    FileScorer,
    MeanMosScorer,
    NisqaScorer,
    model_scorer,
)

#: P.835 rating -> our dimension.
P835_TO_DIMENSION = {"ovrl": "mos", "bak": "noi", "sig": "col"}
P835_SETS = {"p835-wb": "degraded_WB_16KHz", "p835-fb": "degraded_fullband_48KHz"}
NOIZEUS_SET = "p835-nb"
NOIZEUS_FOLDER = "degraded_NB_16KHz"
NOIZEUS_SHEET = "NOIZEUS"
#: NOIZEUS sheet column -> our dimension (same mapping as P835_TO_DIMENSION).
NOIZEUS_COLUMNS = {"MOS_OVRL": "mos", "MOS_BAK": "noi", "MOS_SIG": "col"}
VOICEMOS_SET = "vmos24-t3"
VOICEMOS_LABELS = "dev/voicemos24-track3/labels.csv"
#: every human-rated development view, in table order (selection reads all of them)
HUMAN_SETS = ("p835-wb", "p835-fb", "p835-nb", VOICEMOS_SET)


@dataclass(frozen=True)
class EvaluateConfig:
    """``[evaluate]``: models, peers, datasets and where results go."""

    models: tuple[str, ...] = ("runs/ft-asr-la/best.pt", "runs/ft-asr-last/best.pt", "runs/ft-scratch-la/best.pt")
    peers: tuple[str, ...] = ("nisqa", "dnsmos")
    datasets: tuple[str, ...] = ("sim-test", "p835-wb", "p835-fb", "p835-nb")
    manifest: str = ""  # empty: <[simulate].out_dir>/manifest.csv
    p835_labels: str = "dev/p835/labels.csv"  # relative to the data root
    p835_workbook: str = "dev/p835/CSP835_Ref_Conditions.xlsx"  # per-condition NOIZEUS ratings
    voicemos_labels: str = VOICEMOS_LABELS  # relative to the data root
    nisqa_weights: str = "weights/nisqa/nisqa.tar"  # relative to the data root
    max_clips: int = 0  # cap on sim-test clips (0 = all)
    out_dir: str = "results/eval"
    cache_dir: str = "cache/eval"
    device: str = "cpu"


@dataclass
class EvalSet:
    """Files with their native rate and targets ``[N, 5]`` (NaN = no label for that dimension)."""

    name: str
    files: list[Path]
    targets: np.ndarray
    note: str = ""
    groups: list[str] | None = None  # condition per file: metrics over condition means

    def aggregate(self, values: np.ndarray) -> np.ndarray:
        """Per-file ``[N, K]`` values (scores or targets) as metrics see them: unchanged, or
        one mean row per condition (natural order: c1, c2, ..., c10) when grouped."""
        if self.groups is None:
            return values
        names = sorted(set(self.groups), key=_natural_key)
        index = np.array([names.index(g) for g in self.groups])
        values = np.asarray(values, np.float64)
        return np.stack([values[index == k].mean(axis=0) for k in range(len(names))])


def _natural_key(name: str) -> tuple[str, int]:
    digits = re.search(r"(\d+)$", name)
    return (name[: digits.start()] if digits else name, int(digits.group(1)) if digits else -1)


def sim_test_set(manifest: Path, max_clips: int) -> EvalSet:
    items = read_quality_manifest(manifest, "test")
    if max_clips > 0 and len(items) > max_clips:
        items = [items[i] for i in np.linspace(0, len(items) - 1, max_clips).round().astype(int)]
    if not items:
        raise ConfigError(f"{manifest}: no labelled clips in the test split")
    teachers = manifest_teachers(manifest)
    note = f"targets are teacher labels ({', '.join(teachers) or 'unknown teacher'})"
    return EvalSet("sim-test", [it.path for it in items], np.array([it.targets for it in items]), note)


def _p835_targets(row: dict[str, str]) -> np.ndarray:
    """One rated file's targets: MOS <- ovrl, NOI <- bak, COL <- sig, the rest NaN."""
    t = np.full(len(DIMENSIONS), math.nan)
    for key, dim in P835_TO_DIMENSION.items():
        t[DIMENSIONS.index(dim)] = float(row[key])
    return t


def p835_set(labels_csv: Path, name: str) -> EvalSet:
    """One folder of the P.835 set; MOS <- ovrl, NOI <- bak, COL <- sig, the rest NaN."""
    if not labels_csv.is_file():
        raise ConfigError(f"P.835 labels not found: {labels_csv}")
    files, targets = [], []
    with labels_csv.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["set"] != P835_SETS[name]:
                continue
            files.append(labels_csv.parent / row["file"])
            targets.append(_p835_targets(row))
    if not files:
        raise ConfigError(f"{labels_csv}: no rows for set {P835_SETS[name]}")
    return EvalSet(name, files, np.array(targets), "human P.835 ratings: MOS=ovrl, NOI=bak, COL=sig")


def voicemos_set(labels_csv: Path) -> EvalSet:
    """VoiceMOS 2024 track 3: 280 short enhanced clips; MOS <- ovrl, NOI <- bak, COL <- sig."""
    if not labels_csv.is_file():
        raise ConfigError(f"VoiceMOS track 3 labels not found: {labels_csv}")
    files, targets = [], []
    with labels_csv.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            files.append(labels_csv.parent / row["file"])
            targets.append(_p835_targets(row))
    if not files:
        raise ConfigError(f"{labels_csv}: no rows")
    return EvalSet(VOICEMOS_SET, files, np.array(targets),
                   "human P.835-style ratings of enhanced noisy speech, most clips 1.4-3 s: "
                   "MOS=ovrl, NOI=bak, COL=sig")


def noizeus_set(workbook: Path) -> EvalSet:
    """NOIZEUS files of the P.835 folder, each with its condition's ratings (sheet NOIZEUS)."""
    if not workbook.is_file():
        raise ConfigError(f"P.835 workbook not found: {workbook}")
    try:
        import openpyxl
    except ImportError as e:
        raise ConfigError("the p835-nb set reads an xlsx: pip install openpyxl (in the [train] extra)") from e
    book = openpyxl.load_workbook(workbook, read_only=True, data_only=True)
    try:
        if NOIZEUS_SHEET not in book.sheetnames:
            raise ConfigError(f"{workbook}: no sheet {NOIZEUS_SHEET!r} (has {book.sheetnames})")
        table = list(book[NOIZEUS_SHEET].iter_rows(values_only=True))
    finally:
        book.close()  # read-only workbooks keep the file open until closed
    if not table:
        raise ConfigError(f"{workbook}: sheet {NOIZEUS_SHEET} is empty")
    rows = iter(table)
    header = [str(c) if c is not None else "" for c in next(rows)]
    missing = [c for c in ("condition_name", *NOIZEUS_COLUMNS) if c not in header]
    if missing:
        raise ConfigError(f"{workbook}: sheet {NOIZEUS_SHEET} lacks columns {missing}")
    ratings: dict[str, np.ndarray] = {}
    for row in rows:
        cond = row[header.index("condition_name")]
        if not isinstance(cond, str) or not re.fullmatch(r"c\d+", cond):
            break  # the condition table ends at the first blank row (plots follow)
        t = np.full(len(DIMENSIONS), math.nan)
        for column, dim in NOIZEUS_COLUMNS.items():
            t[DIMENSIONS.index(dim)] = float(row[header.index(column)])
        ratings[cond] = t
    files, groups = [], []
    for path in sorted((workbook.parent / NOIZEUS_FOLDER).glob("*.flac")):
        cond = re.search(r"_(c\d+)_", path.name)
        if cond and cond.group(1) in ratings:
            files.append(path)
            groups.append(cond.group(1))
    if not files:
        raise ConfigError(f"{workbook.parent / NOIZEUS_FOLDER}: no files of a rated condition")
    return EvalSet(NOIZEUS_SET, files, np.array([ratings[g] for g in groups]),
                   f"human P.835 ratings per condition (NOIZEUS, {len(set(groups))} conditions): "
                   "PCC/RMSE over condition means; MOS=ovrl, NOI=bak, COL=sig", groups)


def _load_native(path: Path) -> tuple[np.ndarray, int]:
    rate = int(sf.info(str(path)).samplerate)
    return read_audio(path, rate), rate


def score_set(scorer: FileScorer, ds: EvalSet, cache_csv: Path | None = None) -> np.ndarray:
    """Scores ``[N, 5]`` for every file; with ``cache_csv``, reuse and extend cached rows."""
    cached: dict[str, list[float]] = {}
    if cache_csv is not None and cache_csv.is_file():
        with cache_csv.open(newline="", encoding="utf-8") as f:
            cached = {r["file"]: [float(r[d]) for d in DIMENSIONS] for r in csv.DictReader(f)}
    out = np.zeros((len(ds.files), len(DIMENSIONS)))
    fresh: list[tuple[str, np.ndarray]] = []
    for i, path in enumerate(tqdm(ds.files, desc=f"{scorer.name} on {ds.name}", leave=False, disable=None)):
        key = str(path)
        if key in cached:
            out[i] = cached[key]
            continue
        wav, rate = _load_native(path)
        out[i] = scorer.score(wav, rate)
        fresh.append((key, out[i]))
    if cache_csv is not None and fresh:
        cache_csv.parent.mkdir(parents=True, exist_ok=True)
        new = not cache_csv.is_file()
        with cache_csv.open("a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["file", *DIMENSIONS])
            writer.writerows([k, *(f"{v:.6f}" for v in row)] for k, row in fresh)
    return out


def peer_or_model_scores(scorer: FileScorer, is_peer: bool, ds: EvalSet, cache_dir: Path) -> np.ndarray:
    """Per-file scores; peers are cached per peer and set, a combination from its parts' caches."""
    if isinstance(scorer, MeanMosScorer):
        return scorer.combine([peer_or_model_scores(s, True, ds, cache_dir) for s in scorer.scorers])
    cache = cache_dir / scorer.name.lower() / f"{ds.name}.csv" if is_peer else None
    return score_set(scorer, ds, cache)


def markdown_table(ds: EvalSet, results: dict[str, dict[str, dict[str, float]]]) -> str:
    """Rows = models, columns = PCC and RMSE per dimension that has labels in ``ds``."""
    dims = [d for k, d in enumerate(DIMENSIONS) if np.isfinite(ds.targets[:, k]).any()]
    head = "| model | " + " | ".join(f"{d.upper()} PCC | {d.upper()} RMSE" for d in dims) + " |"
    size = f"{len(ds.files)} files" + (f", {len(set(ds.groups))} conditions" if ds.groups else "")
    lines = [f"### {ds.name} ({size})", "", f"_{ds.note}_", "", head,
             "|---|" + "---:|---:|" * len(dims)]
    for model, table in results.items():
        cells = []
        for d in dims:
            cells += [_cell(table[d]["pcc"]), _cell(table[d]["rmse"])]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "–"


def build_scorers(cfg: EvaluateConfig, models: Sequence[str], data_root: Path | None, log: Any) -> list[tuple[FileScorer, bool]]:
    """(scorer, is_peer) for every model file that exists and every peer that loads."""
    scorers: list[tuple[FileScorer, bool]] = []
    for m in models:
        if not Path(m).is_file():
            log(f"skip model {m}: not found")
            continue
        scorers.append((model_scorer(m, cfg.device), False))
    for peer in cfg.peers:
        try:
            if peer == "nisqa":
                if data_root is None:
                    raise ConfigError("no data root for the NISQA weights")
                scorers.append((NisqaScorer(data_root / cfg.nisqa_weights), True))
            elif peer == "dnsmos":
                scorers.append((DnsmosScorer(), True))
            elif peer == "distillmos":
                scorers.append((DistillMosScorer(), True))
            elif peer == "nisqa+distillmos":  # the students' MOS target: built from cached peer rows
                if data_root is None:
                    raise ConfigError("no data root for the NISQA weights")
                parts: list[FileScorer] = [NisqaScorer(data_root / cfg.nisqa_weights), DistillMosScorer()]
                scorers.append((MeanMosScorer(parts, "NISQA+DistillMOS"), True))
            else:
                raise ConfigError(f"unknown peer {peer!r} (nisqa, dnsmos, distillmos, nisqa+distillmos)")
        except (LivesqaError, ImportError) as e:
            log(f"skip peer {peer}: {e}")
    return scorers


def human_rated_set(name: str, data_root: Path, cfg: EvaluateConfig) -> EvalSet:
    """One of the human-rated sets by name: ``p835-nb`` (NOIZEUS, from the workbook) or a P.835 folder."""
    if name == NOIZEUS_SET:
        return noizeus_set(data_root / cfg.p835_workbook)
    if name == VOICEMOS_SET:
        return voicemos_set(data_root / cfg.voicemos_labels)
    return p835_set(data_root / cfg.p835_labels, name)


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser("evaluate", "PCC/RMSE tables on the simulated test split and the P.835 set")
    parser.add_argument("--model", action="append", default=[], help="checkpoint or ONNX file (repeatable; "
                        "replaces [evaluate].models)")
    args = parser.parse_args(argv)
    resolved, cfg = load_section(args.config, args.overrides, "evaluate", EvaluateConfig)
    models = args.model or list(cfg.models)
    data_root: Path | None
    try:
        data_root = resolve_data_root(args.data_root)
    except ConfigError:
        data_root = None
    datasets: list[EvalSet] = []
    for name in cfg.datasets:
        if name == "sim-test":
            datasets.append(sim_test_set(Path(sim_manifest(resolved, cfg.manifest)), cfg.max_clips))
        elif name in P835_SETS or name in (NOIZEUS_SET, VOICEMOS_SET):
            if data_root is None:
                raise ConfigError("the P.835 sets need the data root (--data-root or LIVESQA_DATA_ROOT)")
            datasets.append(human_rated_set(name, data_root, cfg))
        else:
            known = ", ".join(["sim-test", *P835_SETS, NOIZEUS_SET, VOICEMOS_SET])
            raise ConfigError(f"unknown dataset {name!r}; known: {known}")
    scorers = build_scorers(cfg, models, data_root, print)
    if not scorers:
        raise ConfigError("nothing to evaluate: no model file found and no peer available")

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    sections = ["# Evaluation: PCC and RMSE per dimension", ""]
    for ds in datasets:
        results: dict[str, dict[str, dict[str, float]]] = {}
        for scorer, is_peer in scorers:
            scores = ds.aggregate(peer_or_model_scores(scorer, is_peer, ds, Path(cfg.cache_dir)))
            results[scorer.name] = per_dimension(scores, ds.aggregate(ds.targets), DIMENSIONS)
            for d in DIMENSIONS:
                r = results[scorer.name][d]
                rows.append({"dataset": ds.name, "model": scorer.name, "dimension": d,
                             "pcc": r["pcc"], "rmse": r["rmse"], "n": r["n"]})
        sections.append(markdown_table(ds, results))
        print(sections[-1])
    with (out / "eval.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["dataset", "model", "dimension", "pcc", "rmse", "n"])
        writer.writeheader()
        writer.writerows({**r, "pcc": f"{r['pcc']:.4f}", "rmse": f"{r['rmse']:.4f}"} for r in rows)
    (out / "eval.md").write_text("\n".join(sections) + f"\n\nconfig: `{asdict(cfg)}`\n", encoding="utf-8")
    plotted = write_eval_plot(rows, out / "eval.png")
    print(f"wrote {out / 'eval.csv'}, {out / 'eval.md'}" + (f" and {out / 'eval.png'}" if plotted else ""))
    return 0
