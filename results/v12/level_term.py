"""How much of each NOIZEUS condition's MOS comes through the head's linear level term?

    python results/v12/level_term.py runs/v060/best.pt runs/ft-v11-crops/last.pt > results/v12/level-term.md

Why: the quality head adds a linear term on the utterance's mean log-mel (80 values: the level and
long-term spectrum that CMS removes) to the MOS logit. That term sees a recording's band, device
colouring and noise spectrum directly, so a fine-tune on device-coloured real recordings can move
it for a whole type of audio at once: a cross-type scale error like the one the v11 candidates
show on NOIZEUS (``results/v11/noizeus-conditions.md``). This splits each model's MOS logit into
the encoder path and the level term, per condition, with no training.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from livesqa.spec import DIMENSIONS
from train.asr_data import resolve_data_root
from livesqa.audio import read_audio
from train.checkpoint import load_model
from train.evaluate import HUMAN_SETS, NOIZEUS_SET, EvaluateConfig, _natural_key, human_rated_set
from train.heads import LEVEL_SCALE


def split_logits(model, wav: np.ndarray) -> tuple[float, float]:
    """(encoder-path MOS logit, level-term MOS logit) of one clip."""
    mos = DIMENSIONS.index("mos")
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(wav, np.float32))[None]
        _, _, level, blocks, lengths = model._run(x, None)
        head = model.quality_head
        total = head.logits(blocks, lengths, level)[0, mos].item()
        lvl = head.level(level / LEVEL_SCALE)[0, mos].item() if head.level is not None else 0.0
    return total - lvl, lvl


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="windowed checkpoints")
    args = p.parse_args()
    root = resolve_data_root(None)
    ds = human_rated_set(NOIZEUS_SET, root, EvaluateConfig())
    groups = np.array(ds.groups)
    names = sorted(set(groups), key=_natural_key)
    human = ds.aggregate(ds.targets)[:, DIMENSIONS.index("mos")]
    wavs = [read_audio(str(f), 16000) for f in ds.files]
    print(f"# NOIZEUS: the MOS logit split into encoder path and level term ({len(wavs)} files)\n")
    print("Cells per condition: mean encoder-path logit / mean level-term logit. The last rows: PCC of "
          "each part with the listeners over the 12 condition means, and the spread (max - min) of each "
          "part's condition means.\n")
    parts = {}
    for path in args.models:
        model, _, _ = load_model(path)
        model.eval()
        arr = np.array([split_logits(model, w) for w in wavs])
        parts[path] = np.array([arr[groups == g].mean(axis=0) for g in names])
    print("| condition | listeners | " + " | ".join(f"{m} enc / level" for m in parts) + " |")
    print("|---|---:|" + "---:|" * len(parts))
    for i, g in enumerate(names):
        print(f"| {g} | {human[i]:.2f} | " + " | ".join(f"{v[i, 0]:+.2f} / {v[i, 1]:+.2f}" for v in parts.values()) + " |")
    print("| PCC with listeners | | " + " | ".join(
        f"{np.corrcoef(v[:, 0], human)[0, 1]:.3f} / {np.corrcoef(v[:, 1], human)[0, 1]:.3f}" for v in parts.values()) + " |")
    print("| spread | | " + " | ".join(
        f"{np.ptp(v[:, 0]):.2f} / {np.ptp(v[:, 1]):.2f}" for v in parts.values()) + " |")
    all_views(args.models, root)


def all_views(models: list[str], root) -> None:
    """MOS PCC with the listeners on every human-rated view: whole logit, encoder path, level term."""
    mos = DIMENSIONS.index("mos")
    print("\n## Every human-rated view: MOS PCC of the whole logit / the encoder path alone / the level term alone\n")
    print("| view | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    loaded = [load_model(m)[0].eval() for m in models]
    for name in HUMAN_SETS:
        ds = human_rated_set(name, root, EvaluateConfig())
        human = ds.aggregate(ds.targets)[:, mos]
        wavs = [read_audio(str(f), 16000) for f in ds.files]
        cells = []
        for model in loaded:
            arr = ds.aggregate(np.array([split_logits(model, w) for w in wavs]))
            cells.append(" / ".join(f"{np.corrcoef(v, human)[0, 1]:.3f}" for v in (arr.sum(1), arr[:, 0], arr[:, 1])))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
