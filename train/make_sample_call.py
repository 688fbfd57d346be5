"""Make the demo call ``livesqa/assets/sample_call.flac`` and its expected scores.

``python -m train.make_sample_call`` builds the audio from real read speech and writes
``sample_call.json`` (sections and the shipped model's scores) and ``sample_call.md``
(the same, for people). ``--scores-only`` keeps the audio and rescores it with
``--model`` (do that whenever a new model ships).

Why real speech: synthetic espeak speech scored MOS 2.1 in its *clean* section, so a
newcomer's first run suggested the model was broken (issue #14). The speech is one
LibriSpeech talker (test-other, speaker 2033; CC BY 4.0), the competing talker another
(speaker 2414): of the ten test-other talkers these two have the lowest recording noise
floor (10th-percentile 20 ms frame level 62 and 47 dB below the active speech level;
speaker 1998's is only 21 dB below, which the model rightly hears as noise). The café
noise is blanket's "Coffee Shop" recording (public domain); all from ``../shared/data``.
Six labelled sections of one call, each degraded one way:
clean, café noise, packet loss, narrowband, competing talker, too quiet.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livesqa.errors import ConfigError
from train import degrade as dg

FloatArray = npt.NDArray[np.float32]
SR = 16000
SEED = 14
SECTION_S = 9.0
TALK_LEVEL_DBFS = -26.0
ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "livesqa" / "assets"
TALKER = "speech/librispeech-excerpts/librispeech_test-other/2033"
OTHER_TALKER = "speech/librispeech-excerpts/librispeech_test-other/2414"
CAFE = "noise/blanket/coffee-shop.opus"
CREDIT = ("Speech: LibriSpeech (Panayotov et al., 2015; www.openslr.org/12), test-other speakers "
          "2033 and 2414, CC BY 4.0, cut, mixed and degraded here. Café noise: \"Coffee Shop\" "
          "(\"Restaurant Ambiance\" by stephan, soundbible.com), public domain.")


@dataclass(frozen=True)
class Section:
    name: str
    what: str  # what a listener (and the model) should notice
    lowest: str  # the dimension this section should be lowest in ("" = MOS below clean only)


SECTIONS = (
    Section("clean", "clean wideband speech at a normal level (-26 dBFS): the reference", ""),
    Section("café noise", "a coffee-shop recording (chatter, dishes) at 5 dB SNR", "noi"),
    Section("packet loss", "20 % of 20 ms packets lost in bursts, lost packets silent", "dis"),
    Section("narrowband", "telephone band 300-3400 Hz through 8 kHz sampling", "col"),
    Section("competing talker", "a second talker 6 dB below the first (crosstalk)", ""),
    Section("too quiet", "the talker at -50 dBFS active level", "loud"),
)


def data_root(text: str | None) -> Path:
    root = Path(text or os.environ.get("LIVESQA_DATA_ROOT") or ROOT.parent / "shared" / "data")
    if not (root / TALKER).is_dir():
        raise ConfigError(f"{root / TALKER}: not found (pass --data-root, see ../shared/data/README.md)")
    return root


def read(path: Path) -> FloatArray:
    """Mono float32 at 16 kHz; ffmpeg decodes the few Opus files libsndfile trips on."""
    from livesqa.audio import read_audio
    from livesqa.errors import AudioInputError
    from train.codecs import ffmpeg_decode

    try:
        return read_audio(path, SR)
    except AudioInputError:
        return ffmpeg_decode(path, SR)


def talk(folder: Path, seconds: float) -> FloatArray:
    """The folder's utterances in name order, 0.3 s apart, at the talk level, ``seconds`` long."""
    pause = np.zeros(int(0.3 * SR), np.float32)
    parts: list[FloatArray] = []
    for p in sorted(folder.glob("*.opus")):
        parts += [dg.set_level(read(p), SR, TALK_LEVEL_DBFS), pause]
        if sum(len(x) for x in parts) >= seconds * SR:
            break
    x = np.concatenate(parts)
    if len(x) < seconds * SR:
        raise ConfigError(f"{folder}: only {len(x) / SR:.1f} s of speech, need {seconds:.0f} s")
    return x[: int(seconds * SR)]


def build(root: Path) -> tuple[FloatArray, list[tuple[Section, float, float]]]:
    """The call audio (float32, 16 kHz) and (section, start_s, end_s) for each section."""
    rng = np.random.default_rng(SEED)
    n = int(SECTION_S * SR)
    speech = talk(root / TALKER, SECTION_S * len(SECTIONS))
    other = talk(root / OTHER_TALKER, SECTION_S)
    cafe = read(root / CAFE)
    fade = np.linspace(0.0, 1.0, int(0.02 * SR), dtype=np.float32)
    parts, table = [], []
    for k, section in enumerate(SECTIONS):
        x = speech[k * n: (k + 1) * n].copy()
        if section.name == "café noise":
            x = dg.add_noise(x, cafe, 5.0, SR, rng)
        elif section.name == "packet loss":
            x, _ = dg.packet_loss(x, SR, 0.2, rng, "zero", 20.0, 2.0)
        elif section.name == "narrowband":
            x = dg.narrowband(x, SR)
        elif section.name == "competing talker":
            x = x + dg.gain_db(other, -6.0)
        elif section.name == "too quiet":
            x = dg.gain_db(x, -50.0 - TALK_LEVEL_DBFS)
        x[: fade.size] *= fade  # no click at the section boundary
        x[-fade.size:] *= fade[::-1]
        parts.append(x.astype(np.float32))
        table.append((section, k * SECTION_S, (k + 1) * SECTION_S))
    return dg.saturate(np.concatenate(parts)), table


def section_scores(audio: FloatArray, table: list[tuple[Section, float, float]], model: Path
                   ) -> list[dict[str, object]]:
    """Mean scores per section over the runtime's windows (4 s, 1 s hop) lying inside it."""
    from livesqa.gating import GateConfig, StreamGate
    from livesqa.scoring import OnnxScorer
    from livesqa.spec import DIMENSIONS
    from livesqa.types import AudioChunk
    from livesqa.windowing import Windower

    scorer = OnnxScorer.load(model)
    spec = scorer.spec
    windower = Windower(spec.window_samples, SR)
    gate = StreamGate(GateConfig(), SR)
    rows: list[tuple[float, float, np.ndarray | None]] = []
    for w in windower.push(AudioChunk(0, audio)):
        speech = gate.analyze(w.start_sample, w.samples).is_speech
        scores = scorer.score(w.samples[None, :])[0] if speech else None
        rows.append((w.start_sample / SR, w.end_sample / SR, scores))
    out = []
    for section, a, b in table:
        inside = [r for r in rows if r[0] >= a and r[1] <= b]
        scored = [r[2] for r in inside if r[2] is not None]
        mean = np.mean(scored, axis=0) if scored else [None] * len(DIMENSIONS)
        out.append({"section": section.name, "what": section.what, "lowest": section.lowest,
                    "start_s": a, "end_s": b, "windows": len(inside), "scored": len(scored),
                    **{d: (None if v is None else round(float(v), 2)) for d, v in zip(DIMENSIONS, mean)}})
    return out


def ordering_checks(rows: list[dict[str, object]]) -> list[tuple[str, bool, str]]:
    """What a listener expects: (check, holds, numbers). Clean above all on MOS; each
    degraded section with a ``lowest`` dimension below every other section in it."""
    by = {str(r["section"]): r for r in rows}
    clean = by["clean"]
    out = []
    for r in rows:
        if r is clean:
            continue
        ok = float(clean["mos"]) > float(r["mos"])  # type: ignore[arg-type]
        out.append((f"clean above {r['section']} on MOS", ok,
                    f"clean {clean['mos']:.2f} vs {r['section']} {r['mos']:.2f}"))
    for r in rows:
        dim = str(r["lowest"])
        if not dim:
            continue
        others = [o for o in rows if o is not r]
        low = min(others, key=lambda o: float(o[dim]))  # type: ignore[arg-type]
        ok = float(r[dim]) < float(low[dim])  # type: ignore[arg-type]
        out.append((f"{r['section']} lowest on {dim.upper()}", ok,
                    f"{r['section']} {r[dim]:.2f}, lowest other: {low['section']} {low[dim]:.2f}"))
    return out


def sidecar(rows: list[dict[str, object]], model: str) -> str:
    fmt = lambda v: "–" if v is None else f"{v:.2f}"
    lines = [
        "# sample_call.flac: what you are hearing, and what the model should say",
        "",
        "`livesqa replay` plays this 54 s call. It is one real talker reading, in six labelled "
        "sections of 9 s, each degraded one way, so each score moves on its own. Made by "
        "`python -m train.make_sample_call` (16 kHz mono FLAC).",
        "",
        f"Expected scores below: the mean over the 4 s windows (1 s hop) that lie inside each "
        f"section, from **{model}**, written by the same script "
        "(`python -m train.make_sample_call --scores-only` after a new model ships). "
        "`tests/test_sample_call.py` checks the order a listener would expect: clean above "
        "every other section on MOS, and each degraded section lowest in its own dimension "
        "(**bold**). The live dashboard's values differ a little at section edges, where a "
        "window spans two sections.",
        "",
        "| section | seconds | what changes | windows scored | MOS | NOI | COL | DIS | LOUD |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = []
        for d in ("mos", "noi", "col", "dis", "loud"):
            v = fmt(r[d])  # type: ignore[arg-type]
            cells.append(f"**{v}**" if d == r["lowest"] else v)
        lines.append(f"| {r['section']} | {r['start_s']:.0f}–{r['end_s']:.0f} | {r['what']} | "
                     f"{r['scored']}/{r['windows']} | " + " | ".join(cells) + " |")
    checks = ordering_checks(rows)
    failed = [(name, detail) for name, ok, detail in checks if not ok]
    lines += ["", f"With {model}, {len(checks) - len(failed)} of {len(checks)} order checks hold."]
    lines += [f"**Fails: {name}** ({detail})." for name, detail in failed]
    lines += ["", "Dimensions: MOS overall, NOI noisiness, COL coloration, DIS discontinuity, "
              "LOUD loudness; 1–5, higher is better.", "", "Credits: " + CREDIT]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.make_sample_call",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ASSETS / "sample_call.flac"))
    parser.add_argument("--data-root", help="../shared/data (or $LIVESQA_DATA_ROOT)")
    parser.add_argument("--model", default=str(ROOT / "exported" / "livesqa-small.onnx"),
                        help="the model whose scores the sidecar states")
    parser.add_argument("--scores-only", action="store_true",
                        help="keep the audio, only rescore it and rewrite the sidecars")
    args = parser.parse_args(argv)
    import soundfile as sf

    out = Path(args.out)
    table_path = out.with_suffix(".json")
    if args.scores_only:
        if not out.is_file() or not table_path.is_file():
            raise ConfigError(f"{out} or {table_path} missing: build the call first (no --scores-only)")
        audio = sf.read(str(out), dtype="float32")[0]
        by_name = {s.name: s for s in SECTIONS}
        table = [(by_name[r["section"]], r["start_s"], r["end_s"])
                 for r in json.loads(table_path.read_text(encoding="utf-8"))["sections"]]
    else:
        audio, table = build(data_root(args.data_root))
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out), audio, SR, subtype="PCM_16", format="FLAC")
        audio = sf.read(str(out), dtype="float32")[0]  # score what ships (16-bit)
    from livesqa.spec import read_spec

    spec = read_spec(Path(args.model))
    model = f"{spec.name} {spec.version}"
    rows = section_scores(audio, table, Path(args.model))
    table_path.write_text(json.dumps({"model": model, "credit": CREDIT, "sections": rows},
                                     indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(sidecar(rows, model), encoding="utf-8")
    print(sidecar(rows, model))
    print(f"wrote {out} ({len(audio) / SR:.1f} s, {out.stat().st_size / 1024:.0f} KiB), "
          f"{table_path.name}, {out.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
