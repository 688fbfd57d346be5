"""`python -m train card`: the model card written beside an exported model.

Why: a shipped model must say what it is, what it was trained on, the licence that follows
from its data and teachers, and how well and how fast it measured — from the result files the
stages wrote, never from numbers typed by hand. Writes ``<model>.md`` (for people) and
``<model>.card.json`` (for tools) next to the ONNX file.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from livesqa.spec import DIMENSION_TITLES, read_spec

#: Licences of what the shipped model was made from (see ../shared/data/README.md).
DATA_LICENCES: tuple[tuple[str, str, str], ...] = (
    ("speechocean762 (speech, transcripts)", "ASR pretraining; clean sources", "free for commercial and non-commercial use"),
    ("LibriSpeech excerpts", "clean sources for simulation", "CC BY 4.0"),
    ("Asterisk core sounds (en)", "ASR pretraining", "CC BY-SA 3.0 (Debian asterisk-core-sounds-en)"),
    ("Moodist / Blanket noise", "background noise", "Pixabay Content License, CC0, CC BY, CC BY-SA (per file)"),
    ("audiomentations impulse responses", "reverberation", "MIT"),
    ("NISQA v2 weights (teacher labels)", "training targets", "CC BY-NC-SA 4.0 (non-commercial)"),
    ("DistillMOS weights (PyPI distillmos)", "second MOS teacher of v3-corpus models (not of 0.4.0)", "MIT"),
    ("AEC Challenge baseline recordings", "teacher-labelled windows in the v3 corpus (not in 0.4.0)", "MIT"),
    ("Asterisk core sounds fr/es/it/ru (G.722)", "more clean talkers in the v3 corpus (not in 0.4.0)", "CC BY-SA 3.0"),
    ("Fish Fillets NG voice data (cs, nl)", "more clean talkers in the v3 corpus (not in 0.4.0)", "GPL-2"),
    ("DNSMOS (speechmos)", "comparison only, not a target", "MIT"),
)

LICENCE_NOTE = (
    "The weights are distilled from NISQA v2's outputs (for models of the v3 corpus, MOS is the mean of "
    "NISQA v2 and DistillMOS, MIT), and NISQA v2's weights are licensed CC BY-NC-SA 4.0: "
    "this model inherits **CC BY-NC-SA 4.0 (non-commercial, share-alike)**. Commercial use needs a "
    "model trained on labels with a permissive licence (e.g. your own human ratings through "
    "`train/nisqa_corpus.py`). CC BY attributions: LibriSpeech (Panayotov et al.), the noise "
    "recordings' authors (see ../shared/data/noise/*/ licensing files)."
)


def _read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else ""


def _asr_summary(metrics_csv: Path) -> dict[str, Any]:
    if not metrics_csv.is_file():
        return {}
    with metrics_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    best = min(rows, key=lambda r: float(r["test_cer"]))
    # elapsed_s restarts at 0 in each resumed invocation: add up the segments
    total_s, prev = 0.0, 0.0
    for r in rows:
        elapsed = float(r["elapsed_s"])
        if elapsed < prev:
            total_s += prev
        prev = elapsed
    total_s += prev
    return {
        "best_test_cer": float(best["test_cer"]),
        "best_test_wer": float(best["test_wer"]),
        "epochs_done": float(rows[-1]["epochs_done"]),
        "steps": int(rows[-1]["step"]),
        "train_minutes": round(total_s / 60.0, 1),
    }


def _probing_table(probing_csv: Path) -> str:
    if not probing_csv.is_file():
        return ""
    with probing_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    layers = sorted({int(r["layer"]) for r in rows})
    dims = [d for d in DIMENSION_TITLES if any(r["dimension"] == d for r in rows)]
    pcc = {(int(r["layer"]), r["dimension"]): float(r["pcc"]) for r in rows}
    lines = ["| layer | " + " | ".join(DIMENSION_TITLES[d] for d in dims) + " |"]
    lines.append("| --- " * (len(dims) + 1) + "|")
    for layer in layers:
        name = "0 (log-mel)" if layer == 0 else str(layer)
        cells = [f"{pcc.get((layer, d), float('nan')):.3f}" for d in dims]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_card(model: Path, results: Path, asr_metrics: Path, recipe: str,
               probing_dir: Path | None = None, asr_fallback: Path | None = None) -> tuple[str, dict[str, Any]]:
    """Markdown and JSON card for ``model`` from the result files under ``results``.

    ``probing_dir`` holds the probe of this model's own encoder (default ``results/probing``).
    Limits that belong to one model, not to the method, are Markdown bullets in
    ``<model>.limits.md`` beside it: they change when the model does, so they are not code.
    """
    spec = read_spec(model)
    probing_dir = probing_dir or results / "probing"
    own_limits = _read_text(model.with_suffix(".limits.md"))
    config = json.loads(spec.extra.get("model_config", "{}"))
    export = json.loads(_read_text(model.with_suffix(".export.json")) or "{}")
    asr = _asr_summary(asr_metrics)
    if not asr and asr_fallback is not None and asr_fallback.is_file():
        # the ASR run lives in an ignored folder; the previous card of the same encoder kept its figures
        asr = json.loads(asr_fallback.read_text(encoding="utf-8")).get("asr_pretraining", {})
    enc = config.get("encoder", {})
    facts: dict[str, Any] = {
        "spec": json.loads(spec.to_json()),
        "architecture": config,
        "n_params": spec.extra.get("n_params", ""),
        "asr_pretraining": asr,
        "export": export,
        "licence": spec.licence,
        "data": [{"source": s, "use": u, "licence": lic} for s, u, lic in DATA_LICENCES],
    }
    md = [
        f"# Model card: {spec.name} {spec.version}",
        "",
        spec.description or "livesqa quality model.",
        "",
        "## What it is",
        (f"- Input: mono float32 audio at {spec.sample_rate_hz} Hz, window {spec.window_s:g} s "
        f"(recommended hop {spec.hop_s:g} s); output: {', '.join(spec.output_names)} on "
        f"{spec.score_min:g}–{spec.score_max:g}."),
        (f"- Architecture: log-mel front end inside the graph (80 bins, 25/10 ms, CMS) → Conformer "
        f"encoder ({enc.get('n_layers')} blocks, d={enc.get('d_model')}, {enc.get('n_heads')} heads, "
        f"kernel {enc.get('conv_kernel')}) → attention over layers → attentive statistical pooling → "
        f"5 sigmoid heads scaled to 1–5; {facts['n_params']} parameters."),
        f"- Training data: {spec.training_data}",
        f"- Licence: {spec.licence}",
        "",
        "## Licence",
        LICENCE_NOTE,
        "",
        "| data | used for | licence |",
        "| --- | --- | --- |",
        *[f"| {s} | {u} | {lic} |" for s, u, lic in DATA_LICENCES],
        "",
    ]
    if asr:
        md += [
            "## ASR pretraining (CTC, greedy decoding, held-out speakers)",
            (f"CER {asr['best_test_cer']:.3f}, WER {asr['best_test_wer']:.3f} after "
            f"{asr['epochs_done']:.2f} epochs ({asr['steps']} steps, {asr['train_minutes']} min on CPU)."),
            "",
        ]
    sections = (
        ("Evaluation (PCC / RMSE, the paper's Tables 2–4 layout)", results / "eval" / "eval.md"),
        ("Teacher-student agreement off the simulator (label-free)", results / "agreement" / "agreement.md"),
        ("Sanity checks on synthetic degradations", results / "sanity" / "sanity.md"),
        ("Speed (one CPU thread, side by side in one run)", results / "bench" / "bench.md"),
    )
    probing = _probing_table(probing_dir / "probing.csv")
    if probing:
        md += ["## Probing (PCC per encoder layer, frozen ASR encoder)", probing,
               "", f"Plot: `{probing_dir / 'probing.png'}`.", ""]
    for title, path in sections:
        text = _read_text(path)
        if text:
            md += [f"## {title}", text.replace("\n# ", "\n### "), ""]
            if path.with_suffix(".png").is_file():
                md += [f"Plot: `{path.with_suffix('.png')}`.", ""]
    if export:
        md += ["## Export parity", "```json", json.dumps(export.get("parity", export), indent=2), "```", ""]
    md += ["## How it was made", "```", recipe.strip(), "```", ""]
    md += [
        "## Known limits",
        ("- Trained on degradations labelled by teachers (NISQA v2; in the v3 corpus MOS is the mean of "
        "NISQA v2 and DistillMOS), not on human ratings: it learns their judgement, including their errors."),
        ("- Clean sources are read English (speechocean762: Mandarin-L1 learners, about half children; "
        "LibriSpeech excerpts): other languages, spontaneous or far-field speech are less covered."),
        "- CPU-only training at small scale (minutes per stage): see the tables above for what that bought.",
        *([own_limits] if own_limits else []),
        "",
    ]
    return "\n".join(md), facts


def _stash(text: str) -> Path:
    """A copy of a card.json in a temp file (the card being rewritten may be that very file)."""
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".card.json")
    with open(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train card", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="exported ONNX model")
    p.add_argument("--results", default="results", help="folder with eval/, sanity/, bench/, probing/")
    p.add_argument("--asr-metrics", default="runs/asr-small/metrics.csv", help="the encoder's ASR run")
    p.add_argument("--probing", default="", help="probe of the encoder (default: RESULTS/probing)")
    p.add_argument("--asr-from-card", default="", help="a card.json whose asr_pretraining to reuse when "
                   "--asr-metrics is absent (same encoder, run folder gone)")
    p.add_argument("--recipe", default="train/build_default_model.sh", help="script that rebuilt it")
    args = p.parse_args(argv)
    model = Path(args.model)
    recipe_path = Path(args.recipe)
    recipe = _read_text(recipe_path) if recipe_path.is_file() else args.recipe
    fallback = Path(args.asr_from_card) if args.asr_from_card else None
    fallback_text = fallback.read_text(encoding="utf-8") if fallback and fallback.is_file() else ""
    md, facts = build_card(model, Path(args.results), Path(args.asr_metrics), recipe,
                           Path(args.probing) if args.probing else None,
                           _stash(fallback_text) if fallback_text else None)
    model.with_suffix(".md").write_text(md, encoding="utf-8")
    model.with_suffix(".card.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {model.with_suffix('.md')} and {model.with_suffix('.card.json')}")
    return 0
