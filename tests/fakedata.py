"""A tiny fake ``../shared/data`` root for simulator tests: tone "talkers" and white-noise files.

Why: the simulators (``train.simulate``, ``train.enhanced``) only need the catalogue's layout
(speechocean762 folders with ``utt2spk``, ``noise/<kind>/*.wav``); a few seconds of synthetic
audio per file exercise splitting, resume and manifests without the real corpus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def tone_speech(seconds: float, f0: float) -> np.ndarray:
    """A 3 Hz amplitude-modulated tone: speech-like level statistics, known content."""
    t = np.arange(int(seconds * SR)) / SR
    return (0.1 * np.sin(2 * np.pi * f0 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def make_fake_data_root(root: Path, speakers: int = 40, noises: int = 40) -> Path:
    """Write the fake data root under ``root`` and return it."""
    folder = root / "speech" / "speechocean762" / "train"
    (folder / "audio").mkdir(parents=True)
    lines = []
    for s in range(speakers):
        for u in range(3):
            utt = f"{s:04d}{u:04d}"
            sf.write(folder / "audio" / f"{utt}.opus", tone_speech(2.0 + u, 100 + 5 * s), SR,
                     format="OGG", subtype="OPUS")
            lines.append(f"{utt} {s:04d}")
    (folder / "utt2spk").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    for i in range(noises):
        path = root / "noise" / f"kind{i % 4}" / f"n{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.05 * rng.standard_normal(SR * 3)).astype(np.float32), SR)
    return root
