"""Could the ConferencingSpeech 2022 NISQA checkpoints serve as a second MOS teacher?

Why: every training label comes from one teacher (NISQA v2), so the student inherits its
errors. ``weights/cs22-nisqa/`` holds two MOS-only models of the NISQA architecture
(Apache-2.0). A second teacher only helps if it is about as good as the first on human
ratings, so this scores both on the three human-rated views (P.835 16 kHz, 48 kHz, and the
NOIZEUS conditions) beside NISQA v2, MOS PCC against OVRL. P.835 is for model selection
only; nothing here trains on it.

    python results/eval/second_teacher.py > results/eval/second_teacher.md

NISQA v2's scores come from (and extend) the evaluate stage's cache, ``cache/eval/nisqa/``.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livesqa.audio import resample
from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from train.evaluate import EvaluateConfig, human_rated_set, score_set
from train.scorers import NisqaScorer
from train.teachers import NISQA_DEFAULT_RATE_HZ, NisqaTeacher

MOS = DIMENSIONS.index("mos")


class NisqaMosOnly(NisqaTeacher):
    """A MOS-only NISQA checkpoint (model ``NISQA``) behind the evaluate stage's scorer API."""

    def __init__(self, weights_path: Path) -> None:  # not super(): that one insists on NISQA_DIM
        import torch
        from nisqa import NISQA_lib

        torch.set_num_threads(1)
        checkpoint = torch.load(str(weights_path), map_location="cpu", weights_only=False)
        self.args = dict(checkpoint["args"])
        wanted = inspect.signature(NISQA_lib.NISQA.__init__).parameters
        self.model = NISQA_lib.NISQA(**{k: v for k, v in self.args.items() if k in wanted})
        self.model.load_state_dict(checkpoint["model_state_dict"], strict=True)
        self.model.eval()
        self.device = "cpu"
        self.sample_rate_hz = int(self.args.get("ms_sr") or NISQA_DEFAULT_RATE_HZ)
        self.name = weights_path.stem
        self._lib = NISQA_lib

    def score(self, wav: npt.NDArray[np.float32], sample_rate_hz: int) -> np.ndarray:  # type: ignore[override]
        import torch

        audio = resample(np.asarray(wav, np.float32), sample_rate_hz, self.sample_rate_hz)
        segments, n_wins = self._lib.segment_specs(
            "<array>", self.melspec(audio), self.args["ms_seg_length"], self.args["ms_seg_hop_length"],
            self.args["ms_max_segments"])
        with torch.inference_mode():
            mos = float(self.model(segments[None], torch.as_tensor([int(n_wins)]))[0, 0])
        out = np.full(len(DIMENSIONS), np.nan)
        out[MOS] = mos
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    root = resolve_data_root(args.data_root)
    cfg = EvaluateConfig()
    scorers = [(NisqaScorer(root / cfg.nisqa_weights), Path(cfg.cache_dir) / "nisqa")]
    scorers += [(NisqaMosOnly(w), None) for w in sorted((root / "weights/cs22-nisqa").glob("*.tar"))]
    sets = ["p835-wb", "p835-fb", "p835-nb"]
    print("| teacher | " + " | ".join(f"{s} MOS PCC" for s in sets) + " |")
    print("| --- |" + " --- |" * len(sets))
    for scorer, cache in scorers:
        cells = []
        for name in sets:
            ds = human_rated_set(name, root, cfg)
            scores = score_set(scorer, ds, None if cache is None else cache / f"{name}.csv")
            x, y = ds.aggregate(scores)[:, MOS], ds.aggregate(ds.targets)[:, MOS]
            cells.append(f"{np.corrcoef(x, y)[0, 1]:.3f}")
        print(f"| {scorer.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
