"""Apply the third rule (results/v13/SELECTION-stream.md) to results/v13/stream/; every row is printed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

D = Path(__file__).resolve().parent / "stream"
VIEWS = ("p835-wb", "p835-fb", "p835-nb", "vmos24-t3")
INCUMBENT, CANDIDATE = "v061-stream", "v061-stream-hinge"


def main() -> None:
    level = json.loads((D / "level-agreement-fresh.json").read_text(encoding="utf-8"))["models"]
    ref, cand = (next(v for k, v in level.items() if k.endswith(name)) for name in
                 ("livesqa-small-stream.onnx", "livesqa-small-stream-hinge.onnx"))
    drop = 1 - cand["rmse"]["loud"] / ref["rmse"]["loud"]
    pcc: dict[tuple[str, str], float] = {}
    with (D / "eval" / "eval.csv").open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r.get("dimension", "mos") == "mos" and r["model"] in (INCUMBENT, CANDIDATE) and r["dataset"] in VIEWS:
                pcc[(r["model"], r["dataset"])] = float(r["pcc"])
    same = all(abs(pcc[(CANDIDATE, v)] - pcc[(INCUMBENT, v)]) <= 0.001 for v in VIEWS)
    sane = "6/6 checks passed" in (D / "sanity.txt").read_text(encoding="utf-8")
    print("# Third rule: 0.6.2's LOUD hinge on the streaming file\n")
    print("| check | 0.6.1-stream | candidate | holds? |\n|---|---:|---:|---|")
    print(f"| (a) fresh sweep LOUD RMSE (drop >= 20 %) | {ref['rmse']['loud']:.3f} | {cand['rmse']['loud']:.3f} "
          f"({-100 * drop:+.1f} %) | {'yes' if drop >= 0.2 else 'no'} |")
    for d in ("mos", "noi", "col", "dis"):
        print(f"| fresh sweep {d.upper()} RMSE | {ref['rmse'][d]:.3f} | {cand['rmse'][d]:.3f} | |")
    for v in VIEWS:
        print(f"| (b) {v} MOS PCC | {pcc[(INCUMBENT, v)]:.3f} | {pcc[(CANDIDATE, v)]:.3f} | |")
    print(f"| (b) all four within 0.001 | | | {'yes' if same else 'no'} |")
    print(f"| (c) strict sanity | | {'6/6' if sane else 'fails'} | {'yes' if sane else 'no'} |")
    win = drop >= 0.2 and same and sane
    print(f"\nwinner: {CANDIDATE if win else 'none (0.6.1-stream stays)'}")


if __name__ == "__main__":
    main()
