"""Teacher agreement on the narrowband-path set: overall and per device fault x band (session 18's rule (a)).

    python results/v15/nb_agreement.py runs/v060-hinge-loud/best.pt runs/ft-v15-nb-h/best.pt ... \
        --manifest cache/nbsweep-test/manifest-w23.csv --json results/v15/nb/nb-fresh.json > results/v15/nb/nb-fresh.md

Each 4 s clip is one window. Targets are the manifest's: MOS = 2/3 NISQA + 1/3 DistillMOS, the
other four NISQA's. Groups: the device fault (hot, loss, noise, none) and the path (nb, wb).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from livesqa.spec import DIMENSIONS
from train.scorers import model_scorer


def group(condition: str) -> str:
    fault, link = condition.rsplit("+", 1)  # a hot fault's level may carry a sign: hot:hard@+7dBFS+nb:gsm
    return f"{fault.split(':')[0].split('@')[0]} / {link.split(':')[0]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--predictions", type=Path, help="also save targets and each model's scores (.npz) for a paired bootstrap")
    args = ap.parse_args()
    with args.manifest.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == args.split]
    y = np.array([[float(r[d]) for d in DIMENSIONS] for r in rows])
    groups = np.array([group(r["condition"]) for r in rows])
    audio = [sf.read(str(args.manifest.parent / r["filepath_deg"]), dtype="float32") for r in rows]
    out: dict[str, dict[str, object]] = {}
    saved: dict[str, np.ndarray] = {"target": y}
    for m in args.models:
        s = model_scorer(m)
        pred = np.array([s.score(x, sr) for x, sr in audio])
        saved[Path(m).parent.name] = pred
        res: dict[str, object] = {}
        for i, d in enumerate(DIMENSIONS):
            res[f"{d}_pcc"] = float(np.corrcoef(pred[:, i], y[:, i])[0, 1])
            res[f"{d}_rmse"] = float(np.sqrt(np.mean((pred[:, i] - y[:, i]) ** 2)))
        res["mos_offset_by_group"] = {g: float((pred[groups == g, 0] - y[groups == g, 0]).mean())
                                      for g in sorted(set(groups))}
        out[m] = res
    print(f"# Narrowband-path set, {args.split} split: teacher agreement ({len(rows)} clips)\n")
    print(f"Made by `python results/v15/nb_agreement.py {' '.join(args.models)} --manifest {args.manifest}`.\n")
    print("| model | " + " | ".join(f"{d.upper()} PCC / RMSE" for d in DIMENSIONS) + " |")
    print("|---|" + "---:|" * len(DIMENSIONS))
    for m, r in out.items():
        print(f"| {m} | " + " | ".join(f"{r[f'{d}_pcc']:.3f} / {r[f'{d}_rmse']:.3f}" for d in DIMENSIONS) + " |")
    names = sorted(set(groups))
    print("\nMOS offset against the target (model minus target), by device fault / path:\n")
    print("| group | clips | target MOS | " + " | ".join(out) + " |")
    print("|---|---:|---:|" + "---:|" * len(out))
    for g in names:
        m = groups == g
        print(f"| {g} | {int(m.sum())} | {y[m, 0].mean():.2f} | "
              + " | ".join(f"{r['mos_offset_by_group'][g]:+.2f}" for r in out.values()) + " |")  # type: ignore[index]
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.predictions:
        np.savez(args.predictions, **saved)


if __name__ == "__main__":
    main()
