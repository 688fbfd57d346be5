"""Teacher models that label the simulated corpus (`python -m train label`).

Why teachers: we have no human ratings for simulated clips, so NISQA v2 (five
dimensions) gives the training targets and DNSMOS (P.835 SIG/BAK/OVRL) gives a second
opinion to compare against. NISQA's own code (PyPI ``nisqa``) builds the network from
the arguments stored in its checkpoint; we reuse its model class and segmenting, feed it
arrays instead of files, and reorder its outputs (mos, noi, dis, col, loud) to ours
(:data:`livesqa.spec.DIMENSIONS`: mos, noi, col, dis, loud).

The ``label`` stage fills ``mos..loud`` (NISQA, clipped to 1–5) and ``dnsmos_*`` (by
default only on val/test, where evaluation compares against it) of a manifest in place:
rows already labelled are skipped, and the file is rewritten atomically every few
hundred clips, so it can be stopped and resumed.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from livesqa.audio import read_audio, resample
from livesqa.errors import ConfigError, ModelSpecError
from livesqa.spec import DIMENSIONS
from train.asr_data import load_stage_config, resolve_data_root
from train.manifest_lock import manifest_locked, write_csv_atomic

log = logging.getLogger(__name__)

NISQA_OUTPUT_ORDER = ("mos", "noi", "dis", "col", "loud")  # the order NISQA_DIM emits
# what each NISQA model class emits, by the ``model`` argument its checkpoint stores
NISQA_OUTPUTS: dict[str, tuple[str, ...]] = {"NISQA_DIM": NISQA_OUTPUT_ORDER, "NISQA": ("mos",)}
# NISQA's checkpoints leave ms_sr unset (librosa then keeps the file's rate), but it was
# trained on 48 kHz files and its 20 ms window is defined in seconds, so the mel level
# depends on the rate: feed 48 kHz, as its reference pipeline's default does.
NISQA_DEFAULT_RATE_HZ = 48000
DNSMOS_RATE_HZ = 16000
DNSMOS_KEYS = ("sig", "bak", "ovrl", "p808")


class NisqaTeacher:
    """NISQA v2 (NISQA_DIM, or a MOS-only NISQA) on CPU, one thread; ``score`` returns our
    dimension order."""

    def __init__(self, weights_path: str | Path, device: str = "cpu") -> None:
        import torch

        try:
            from nisqa import NISQA_lib
        except ImportError as e:
            raise ConfigError("the NISQA teacher needs `pip install --no-deps nisqa` and librosa") from e
        path = Path(weights_path)
        if not path.is_file():
            raise ModelSpecError(f"NISQA weights not found: {path}")
        torch.set_num_threads(1)
        try:
            checkpoint = torch.load(str(path), map_location=device, weights_only=False)
        except Exception as e:  # torch raises several unrelated types for bad files
            raise ModelSpecError(f"{path}: not a NISQA checkpoint ({e})") from e
        self.args: dict[str, Any] = dict(checkpoint["args"])
        kind = self.args.get("model")
        if kind not in NISQA_OUTPUTS:
            raise ModelSpecError(f"{path}: model {kind!r} is neither NISQA_DIM (five dimensions) nor NISQA (MOS)")
        self._outputs = NISQA_OUTPUTS[kind]
        # the dimensions this checkpoint scores, in our order
        self.dimensions: tuple[str, ...] = tuple(d for d in DIMENSIONS if d in self._outputs)
        model_cls = getattr(NISQA_lib, kind)
        wanted = inspect.signature(model_cls.__init__).parameters
        self.model = model_cls(**{k: v for k, v in self.args.items() if k in wanted})
        self.model.load_state_dict(checkpoint["model_state_dict"], strict=True)
        self.model.eval().to(device)
        self.device = device
        self.sample_rate_hz = int(self.args.get("ms_sr") or NISQA_DEFAULT_RATE_HZ)
        self.name = f"{'nisqa-dim' if kind == 'NISQA_DIM' else 'nisqa-mos'}({path.name})"
        self._lib = NISQA_lib

    def melspec(self, wav: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """NISQA's mel spectrogram [n_mels, frames] (dB) of audio already at ``sample_rate_hz``."""
        import librosa

        a, sr = self.args, self.sample_rate_hz
        mel = librosa.feature.melspectrogram(
            y=wav, sr=sr, n_fft=a["ms_n_fft"], hop_length=int(sr * a["ms_hop_length"]),
            win_length=int(sr * a["ms_win_length"]), window="hann", center=True, pad_mode="reflect",
            power=1.0, n_mels=a["ms_n_mels"], fmin=0.0, fmax=a["ms_fmax"], htk=False, norm="slaney")
        return np.asarray(librosa.amplitude_to_db(mel, ref=1.0, amin=1e-4, top_db=80.0), np.float32)

    def score(self, wav: npt.NDArray[np.float32], sample_rate_hz: int) -> dict[str, float]:
        """Scores of one mono clip, keys :attr:`dimensions` (mos, noi, col, dis, loud for
        NISQA_DIM; mos alone for a MOS-only NISQA), 1–5 scale, unclipped."""
        import torch

        audio = resample(np.asarray(wav, np.float32), sample_rate_hz, self.sample_rate_hz)
        spec = self.melspec(audio)
        segments, n_wins = self._lib.segment_specs(
            "<array>", spec, self.args["ms_seg_length"], self.args["ms_seg_hop_length"],
            self.args["ms_max_segments"])
        with torch.inference_mode():
            out = self.model(segments[None].to(self.device), torch.as_tensor([int(n_wins)]))
        values = dict(zip(self._outputs, out[0].cpu().numpy().tolist(), strict=True))
        return {k: float(values[k]) for k in self.dimensions}


class DnsmosTeacher:
    """DNSMOS P.835 (+ P.808) through PyPI ``speechmos``'s ONNX files, one thread each."""

    def __init__(self, personalized: bool = False) -> None:
        import onnxruntime as ort

        try:
            from speechmos import dnsmos
        except ImportError as e:
            raise ConfigError("the DNSMOS teacher needs `pip install --no-deps speechmos` and librosa") from e
        base = Path(dnsmos.__file__).parent
        primary = base / ("pdnsmos_models" if personalized else "dnsmos_models") / "sig_bak_ovr.onnx"
        p808 = base / "dnsmos_models" / "model_v8.onnx"
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._model = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)  # its __init__ makes all-core sessions
        self._model.primary_model_path = str(primary)
        self._model.onnx_sess = ort.InferenceSession(str(primary), opts, providers=["CPUExecutionProvider"])
        self._model.p808_onnx_sess = ort.InferenceSession(str(p808), opts, providers=["CPUExecutionProvider"])
        self.personalized = personalized
        self.name = "dnsmos-p835" + ("-personalized" if personalized else "")

    def score(self, wav: npt.NDArray[np.float32], sample_rate_hz: int) -> dict[str, float]:
        """Keys sig, bak, ovrl, p808 (1–5). Clips under 9 s are looped by DNSMOS itself."""
        audio = np.clip(resample(np.asarray(wav, np.float32), sample_rate_hz, DNSMOS_RATE_HZ), -1, 1)
        out = self._model(audio, DNSMOS_RATE_HZ, self.personalized)
        return {"sig": float(out["sig_mos"]), "bak": float(out["bak_mos"]),
                "ovrl": float(out["ovrl_mos"]), "p808": float(out["p808_mos"])}


class DistillMosTeacher:
    """DistillMOS (MIT; weights inside the PyPI ``distillmos`` wheel): MOS only, 16 kHz.

    Why a second MOS teacher: it was distilled from an XLS-R model trained on many human-rated
    corpora, so its errors differ from NISQA's; on real calls the mean of the two tracks
    listeners better than either. It peak-normalises its input, so it cannot judge level.
    Its ``sqa.py`` imports ``torchaudio`` at module level without using it, and no
    torchaudio wheel matches torch 2.13: an empty stand-in module is registered if needed.
    About 0.19 s per clip of up to 7.7 s on one thread (it pads shorter clips to 7.68 s).
    """

    sample_rate_hz = 16000
    dimensions: tuple[str, ...] = ("mos",)

    def __init__(self) -> None:
        import importlib.util
        import sys
        import types

        import torch

        if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
            sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
        try:
            import contextlib
            import io

            import distillmos
        except ImportError as e:
            raise ConfigError("the DistillMOS teacher needs `pip install --no-deps distillmos xls-r-sqa`") from e
        torch.set_num_threads(1)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints where its weights came from
            self.model = distillmos.ConvTransformerSQAModel().eval()
        self.name = "distillmos"
        self._torch = torch

    def score(self, wav: npt.NDArray[np.float32], sample_rate_hz: int) -> dict[str, float]:
        """``{"mos": value}`` on the 1–5 scale."""
        audio = resample(np.asarray(wav, np.float32), sample_rate_hz, self.sample_rate_hz)
        with self._torch.inference_mode():
            out = self.model(self._torch.from_numpy(np.ascontiguousarray(audio))[None])
        return {"mos": float(out.reshape(-1)[0])}


@dataclass(frozen=True)
class LabelConfig:
    """The ``[label]`` section."""

    manifest: str = "cache/sim/manifest.csv"
    nisqa_weights: str = ""  # empty: <data root>/weights/nisqa/nisqa.tar
    data_root: str = ""
    dnsmos: bool = True
    # DNSMOS is a comparison, not a target: by default only where evaluate reads it ("all" = every split)
    dnsmos_splits: str = "val,test"
    flush_every: int = 200  # clips between atomic rewrites of the manifest
    # which teachers this process runs ("nisqa", "distillmos" or both, comma-separated); two
    # processes with one teacher each can label one manifest side by side (rows merge under a lock)
    teachers: str = "nisqa"
    # the MOS target: "nisqa" (NISQA v2's MOS) or "mean" (of NISQA's and DistillMOS's, once both exist)
    mos_combination: str = "nisqa"
    follow: int = 0  # keep polling until this many rows are labelled (the simulator is still appending)
    # "K/N": this process labels only the rows whose path hashes to K mod N, so N processes of one
    # teacher share a manifest without doing a row twice ("" = every row)
    shard: str = ""


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def combined_mos(row: dict[str, str], combination: str) -> str:
    """The MOS target of a row from its teachers' columns ('' while a needed teacher is missing)."""
    nisqa, distill = row.get("nisqa_mos", ""), row.get("distillmos_mos", "")
    if combination == "nisqa":
        return nisqa
    if combination == "mean":
        return f"{(float(nisqa) + float(distill)) / 2:.4f}" if nisqa and distill else ""
    raise ConfigError(f"[label].mos_combination = {combination!r} (nisqa or mean)")


def _write_merged(path: Path, labels: dict[str, dict[str, str]], combination: str = "") -> None:
    """Re-read the manifest (rows may have been appended meanwhile), merge labels, replace it;
    with ``combination``, recompute ``mos`` from the teachers' columns of every row."""
    with manifest_locked(path):  # the simulator or another labeller may be writing
        fields, rows = _read(path)
        for row in rows:
            row.update(labels.get(row["filepath_deg"], {}))
            if combination and "nisqa_mos" in fields:
                row["mos"] = combined_mos(row, combination)
        write_csv_atomic(path, fields, rows)


def _wants_dnsmos(row: dict[str, str], cfg: LabelConfig) -> bool:
    splits = {s.strip() for s in cfg.dnsmos_splits.split(",")}
    return cfg.dnsmos and ("all" in splits or row.get("split", "") in splits)


def _teachers(cfg: LabelConfig) -> set[str]:
    names = {t.strip() for t in cfg.teachers.split(",") if t.strip()}
    unknown = names - {"nisqa", "distillmos"}
    if unknown or not names:
        raise ConfigError(f"[label].teachers = {cfg.teachers!r}: use nisqa, distillmos or both")
    return names


def parse_shard(shard: str, option: str = "[label].shard") -> tuple[int, int]:
    """``"K/N"`` -> (K, N); ``""`` -> (0, 1). Bad values are a ConfigError naming ``option``."""
    if not shard:
        return 0, 1
    try:
        k, n = (int(v) for v in shard.split("/"))
    except ValueError:
        raise ConfigError(f"{option} = {shard!r}: use K/N, e.g. 0/2") from None
    if not 0 <= k < n:
        raise ConfigError(f"{option} = {shard!r}: K must be in 0..N-1")
    return k, n


def in_shard(row: dict[str, str], shard: tuple[int, int]) -> bool:
    """Whether a row belongs to this process's shard (a stable hash of its clip path)."""
    k, n = shard
    return n == 1 or zlib.crc32(row["filepath_deg"].encode()) % n == k


def label_order(row: dict[str, str]) -> int:
    """A row's place in the labelling order: a stable hash of its clip path (another hash than
    ``in_shard``'s), so a labeller stopped early has labelled a random subset of the manifest,
    not its first families (manifests list clips family by family)."""
    return zlib.crc32(b"order:" + row["filepath_deg"].encode())


def _needs(row: dict[str, str], cfg: LabelConfig, has_split_columns: bool) -> bool:
    names = _teachers(cfg)
    if "nisqa" in names:
        done = row.get("nisqa_mos") if has_split_columns else row.get("mos")
        if not done or (_wants_dnsmos(row, cfg) and not row.get("dnsmos_ovrl")):
            return True
    return "distillmos" in names and not row.get("distillmos_mos")


def label(cfg: LabelConfig, progress: bool = True) -> int:
    """Fill teacher scores into ``cfg.manifest``; returns the number of clips labelled now.

    With ``cfg.follow`` it keeps polling (every 20 s) until that many rows carry this
    process's labels, so it can run beside a simulator that is still appending clips."""
    import time

    from tqdm import tqdm

    path = Path(cfg.manifest)
    if not path.is_file():
        raise ConfigError(f"manifest not found: {path} (run `python -m train simulate` first)")
    fields, rows = _read(path)
    missing = [c for c in ("filepath_deg", *DIMENSIONS, "teacher") if c not in fields]
    names = _teachers(cfg)
    if "distillmos" in names or cfg.mos_combination != "nisqa":
        missing += [c for c in ("nisqa_mos", "distillmos_mos") if c not in fields]
    if missing:
        raise ConfigError(f"{path}: manifest lacks columns {missing}")
    split_columns = "nisqa_mos" in fields
    combination = cfg.mos_combination if split_columns else ""
    if combination:
        combined_mos({}, combination)  # validates the name before any work
    shard = parse_shard(cfg.shard)
    nisqa = dns = distill = None
    if "nisqa" in names:
        weights = cfg.nisqa_weights or str(resolve_data_root(cfg.data_root or None) / "weights/nisqa/nisqa.tar")
        nisqa = NisqaTeacher(weights)
        if nisqa.dimensions != DIMENSIONS:
            raise ConfigError(f"{weights}: labels need all five dimensions; this checkpoint scores only "
                              f"{', '.join(nisqa.dimensions)} (use NISQA v2's nisqa.tar)")
        dns = DnsmosTeacher() if cfg.dnsmos else None
    if "distillmos" in names:
        distill = DistillMosTeacher()
    # the NISQA process names the teachers (two processes may label one manifest side by side)
    provenance = ""
    if nisqa is not None:
        provenance = nisqa.name + (f"+{dns.name}" if dns else "") + (
            "+distillmos(mos=mean)" if combination == "mean" else "")
    total = 0
    while True:
        todo = sorted((r for r in rows if in_shard(r, shard) and _needs(r, cfg, split_columns)), key=label_order)
        labels: dict[str, dict[str, str]] = {}
        for i, row in enumerate(tqdm(todo, desc="label", unit="clip", disable=not progress), 1):
            new: dict[str, str] = {"teacher": provenance} if provenance else {}
            if nisqa is not None:
                wav = read_audio(path.parent / row["filepath_deg"], nisqa.sample_rate_hz)
                # NISQA can overshoot 1..5 a little; targets live on the students' sigmoid range
                scores = {k: f"{np.clip(v, 1.0, 5.0):.4f}" for k, v in nisqa.score(wav, nisqa.sample_rate_hz).items()}
                new.update({k: v for k, v in scores.items() if k != "mos"})
                new["nisqa_mos" if split_columns else "mos"] = scores["mos"]
                if dns is not None and _wants_dnsmos(row, cfg):
                    d = dns.score(wav, nisqa.sample_rate_hz)
                    new.update({f"dnsmos_{k}": f"{d[k]:.4f}" for k in ("sig", "bak", "ovrl") if f"dnsmos_{k}" in fields})
            if distill is not None:
                wav16 = read_audio(path.parent / row["filepath_deg"], distill.sample_rate_hz)
                new["distillmos_mos"] = f"{np.clip(distill.score(wav16, distill.sample_rate_hz)['mos'], 1.0, 5.0):.4f}"
            labels[row["filepath_deg"]] = new
            if i % cfg.flush_every == 0:
                _write_merged(path, labels, combination)
        if labels or combination:
            _write_merged(path, labels, combination)
        total += len(labels)
        fields, rows = _read(path)
        done = sum(1 for r in rows if not _needs(r, cfg, split_columns))
        if cfg.follow <= 0 or done >= cfg.follow:
            return total
        time.sleep(20)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train label", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="training TOML; reads its [label] section")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--manifest", help="corpus manifest to fill (default cache/sim/manifest.csv)")
    parser.add_argument("--nisqa-weights")
    parser.add_argument("--data-root")
    parser.add_argument("--no-dnsmos", action="store_true")
    parser.add_argument("--teachers", help="nisqa, distillmos or nisqa,distillmos (default [label].teachers)")
    parser.add_argument("--mos-combination", choices=["nisqa", "mean"])
    parser.add_argument("--follow", type=int, help="poll until this many rows are labelled")
    parser.add_argument("--shard", help="K/N: label only this process's share of the rows (N processes, one teacher)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_stage_config(args.config, args.overrides, "label", LabelConfig)
    cfg = dataclasses.replace(
        cfg, manifest=args.manifest or cfg.manifest, nisqa_weights=args.nisqa_weights or cfg.nisqa_weights,
        data_root=args.data_root or cfg.data_root, dnsmos=cfg.dnsmos and not args.no_dnsmos,
        teachers=args.teachers or cfg.teachers, mos_combination=args.mos_combination or cfg.mos_combination,
        follow=args.follow if args.follow is not None else cfg.follow, shard=args.shard or cfg.shard)
    n = label(cfg)
    print(f"labelled {n} clips in {cfg.manifest}")
    return 0
