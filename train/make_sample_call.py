"""Make the demo file ``livesqa/assets/sample_call.flac`` (`python -m train.make_sample_call`).

Why synthetic: the demo ships inside the package, so it must contain nothing from
``../shared/data`` (licences) — speech comes from espeak-ng, the café noise is made here
(pink noise, a babble of reversed synthetic voices, cup clinks). Five sections of one
"call" show each score moving on its own: clean, noisy café, packet loss, narrowband,
too quiet. The section table goes to a Markdown sidecar next to the audio.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from livesqa.audio import read_audio
from livesqa.errors import ConfigError
from train import degrade as dg

FloatArray = npt.NDArray[np.float32]
SR = 16000
SEED = 7
TALK_LEVEL_DBFS = -26.0
ASSETS = Path(__file__).resolve().parent.parent / "livesqa" / "assets"

SENTENCES = (
    "Hello, thanks for joining the call. Can you hear me clearly?",
    "I wanted to go over the numbers for the third quarter before Friday.",
    "Sales in the northern region grew by about twelve percent.",
    "The new support process cut waiting times almost in half.",
    "Let us schedule a follow up meeting for next Tuesday at ten.",
    "Sorry, could you repeat that? The line seems to be breaking up.",
    "I think we are nearly done. Please send the slides afterwards.",
    "One more thing: the budget review moved to the end of the month.",
    "Could you ask the design team for the updated drawings?",
    "Great, talk to you soon, and have a good weekend.",
)
BABBLE_TEXT = ("We should order more coffee for the office.", "Did you see the game last night?",
               "The train was late again this morning.", "I will have the soup and a sandwich.")


@dataclass(frozen=True)
class Section:
    name: str
    what: str  # what a listener (and the model) should notice


SECTIONS = (
    Section("clean", "clean wideband speech at a normal level: the reference for the others"),
    Section("noisy café", "synthetic café noise (pink noise, babble, clinks) at 5 dB SNR: NOI and MOS drop"),
    Section("packet loss", "20 % of 20 ms packets lost in bursts, zero insertion: DIS and MOS drop"),
    Section("narrowband", "telephone band 300–3400 Hz through 8 kHz sampling: COL and MOS drop"),
    Section("too quiet", "the talker at −52 dBFS active level: LOUD and MOS drop"),
)


def speak(text: str, voice: str = "en-us+klatt4", speed_wpm: int = 155, pitch: int = 50) -> FloatArray:
    """espeak-ng speech as mono float32 at 16 kHz."""
    if shutil.which("espeak-ng") is None:
        raise ConfigError("espeak-ng not found; install it (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="livesqa-tts-") as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "-w", str(wav),
                        text], check=True, capture_output=True)
        return read_audio(wav, SR)


def cafe_noise(n_samples: int, rng: np.random.Generator) -> FloatArray:
    """Pink noise + reversed synthetic babble + occasional cup clinks, all made here."""
    white = rng.standard_normal(n_samples)
    spectrum = np.fft.rfft(white)
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))  # 1/f power
    pink = np.fft.irfft(spectrum, n_samples).astype(np.float32)
    voices = [speak(t, v, 170, p)[::-1].copy() for t, v, p in
              zip(BABBLE_TEXT, ("en-gb", "en-us", "en-gb-scotland", "en-us"), (30, 70, 45, 85), strict=True)]
    babble = dg.babble(voices, n_samples, rng)
    clinks = np.zeros(n_samples, np.float32)
    t = np.arange(int(0.15 * SR)) / SR
    for start in rng.integers(0, n_samples - len(t), size=max(1, n_samples // (2 * SR))):
        f = rng.uniform(2500, 5000)
        clinks[start: start + len(t)] += (np.sin(2 * np.pi * f * t) * np.exp(-t * 40)).astype(np.float32)
    mix = dg.gain_db(pink, -dg.rms_db(pink) - 30) + babble + dg.gain_db(clinks, -30 - dg.rms_db(clinks) + 6)
    return mix.astype(np.float32)


def build() -> tuple[FloatArray, list[tuple[Section, float, float]]]:
    """The call audio (float32, 16 kHz) and (section, start_s, end_s) for each section."""
    rng = np.random.default_rng(SEED)
    pause = np.zeros(int(0.35 * SR), np.float32)
    clips = [dg.set_level(speak(s), SR, TALK_LEVEL_DBFS) for s in SENTENCES]
    per_section = np.array_split(np.arange(len(clips)), len(SECTIONS))
    audio_parts: list[FloatArray] = []
    table = []
    start = 0.0
    for section, idx in zip(SECTIONS, per_section, strict=True):
        x = np.concatenate([np.concatenate([clips[i], pause]) for i in idx])
        if section.name == "noisy café":
            x = dg.add_noise(x, cafe_noise(len(x), rng), 5.0, SR, rng)
        elif section.name == "packet loss":
            x, _ = dg.packet_loss(x, SR, 0.2, rng, "zero", 20.0, 2.0)
        elif section.name == "narrowband":
            x = dg.narrowband(x, SR)
        elif section.name == "too quiet":
            x = dg.set_level(x, SR, -52.0)
        audio_parts.append(x)
        table.append((section, start, start + len(x) / SR))
        start += len(x) / SR
    return dg.saturate(np.concatenate(audio_parts)), table


def sidecar(table: list[tuple[Section, float, float]]) -> str:
    intro = ("A synthetic demo call made by `python -m train.make_sample_call`: espeak-ng speech, "
             "noise synthesised in code, degraded with `train.degrade`. Nothing in it comes from "
             "recorded corpora. 16 kHz mono 16-bit FLAC.")
    caveat = ("Formant-synthesised speech sounds robotic, so absolute MOS is low even in the clean "
              "section (NISQA gives it about 1.5–2); watch how each dimension moves between sections.")
    lines = ["# sample_call.flac", "", intro, "", caveat, "",
             "| section | start s | end s | what changes |", "| --- | --- | --- | --- |"]
    lines += [f"| {s.name} | {a:.1f} | {b:.1f} | {s.what} |" for s, a, b in table]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.make_sample_call", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ASSETS / "sample_call.flac"))
    args = parser.parse_args(argv)
    import soundfile as sf

    audio, table = build()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out), audio, SR, subtype="PCM_16", format="FLAC")
    out.with_suffix(".md").write_text(sidecar(table), encoding="utf-8")
    print(f"wrote {out} ({len(audio) / SR:.1f} s, {out.stat().st_size / 1024:.0f} KiB) and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
