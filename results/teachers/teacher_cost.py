"""What each teacher costs: CPU time per clip on one thread, side by side in one run.

    python results/teachers/teacher_cost.py --clips 20 > results/teachers/teacher_cost.md

Scores the same clips (4 s and 2 s windows of held-out speech) with NISQA v2 (five dimensions,
fed 48 kHz as its reference pipeline), DistillMOS (MOS; pads clips to 7.68 s) and DNSMOS P.835,
interleaved clip by clip so machine load hits all alike. Reports process CPU time (not wall
time) per clip and the real-time factor; the labelling budget of a corpus follows from it.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time

from livesqa.audio import read_audio
from train.asr_data import resolve_data_root
from train.teachers import DistillMosTeacher, DnsmosTeacher, NisqaTeacher


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except StopIteration:
        return platform.processor() or "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    root = resolve_data_root(args.data_root)
    files = sorted((root / "speech" / "librispeech-excerpts").rglob("*.opus"))[: args.clips]
    teachers = {"NISQA v2": NisqaTeacher(root / "weights" / "nisqa" / "nisqa.tar"),
                "DistillMOS": DistillMosTeacher(), "DNSMOS P.835": DnsmosTeacher()}
    for length_s in (4.0, 2.0):
        clips = [read_audio(f, 16000)[: int(length_s * 16000)] for f in files]
        for t in teachers.values():  # warm-up
            t.score(clips[0], 16000)
        cpu = {k: 0.0 for k in teachers}
        for clip in clips:
            for name, t in teachers.items():
                start = time.process_time()
                t.score(clip, 16000)
                cpu[name] += time.process_time() - start
        print(f"\n### {len(clips)} clips of {length_s:g} s, one thread, {cpu_name()}\n")
        print("| teacher | CPU ms per clip | real-time factor | CPU hours per 10,000 clips |")
        print("|---|---:|---:|---:|")
        for name, total in cpu.items():
            ms = 1000 * total / len(clips)
            print(f"| {name} | {ms:.0f} | {length_s * 1000 / ms:.0f} | {ms * 10000 / 3.6e6:.2f} |")


if __name__ == "__main__":
    main()
