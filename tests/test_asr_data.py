"""ASR manifest text normalisation and asterisk text parsing (torch-free)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from train.asr_data import (
    MANIFEST_COLUMNS,
    DataConfig,
    build_manifest,
    normalize_text,
    parse_asterisk_texts,
    spell_number,
    write_manifest,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "ZERO"), (13, "THIRTEEN"), (40, "FORTY"), (342, "THREE HUNDRED FORTY TWO"),
     (1005, "ONE THOUSAND FIVE"), (2_000_017, "TWO MILLION SEVENTEEN")],
)
def test_spell_number(n: int, words: str) -> None:
    assert spell_number(n) == words


def test_normalize_text_maps_to_ctc_alphabet() -> None:
    assert normalize_text("Please press 1, or 8 to exit.") == "PLEASE PRESS ONE OR EIGHT TO EXIT"
    assert normalize_text("a 28.8 kilobit modem") == "A TWENTY EIGHT POINT EIGHT KILOBIT MODEM"
    assert normalize_text("dial 1234") == "DIAL ONE TWO THREE FOUR"
    assert normalize_text("press * then #") == "PRESS STAR THEN POUND"
    assert normalize_text("You'd say 'hi' [beep] (silence)") == "YOU'D SAY HI"
    assert set(normalize_text("Ünïcode—dash; x")) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")


def test_parse_asterisk_texts_drops_non_speech() -> None:
    lines = ["; header", "beep: [this is a simple beep tone]", "silence/1: (1 second of silence)",
             "digits/10: ten", "vm-intro: Leave a message. (simple tone sound plays)"]
    assert parse_asterisk_texts(lines) == {"digits/10": "TEN", "vm-intro": "LEAVE A MESSAGE"}


def test_manifest_from_fake_speechocean(tmp_path: Path) -> None:
    for split, spk in (("train", "0001"), ("test", "0002")):
        folder = tmp_path / "speech" / "speechocean762" / split
        (folder / "audio").mkdir(parents=True)
        (folder / "text").write_text(f"{spk}0001\tWE CALL IT 3\n")
        (folder / "utt2spk").write_text(f"{spk}0001 {spk}\n")
        sf.write(folder / "audio" / f"{spk}0001.opus", np.zeros(16000, np.float32), 16000,
                 format="OGG", subtype="OPUS")
    rows = build_manifest(DataConfig(data_root=str(tmp_path), include_asterisk=False))
    assert [(r["split"], r["speaker"], r["text"]) for r in rows] == [
        ("train", "so762-0001", "WE CALL IT THREE"), ("test", "so762-0002", "WE CALL IT THREE")]
    assert abs(float(rows[0]["duration_s"]) - 1.0) < 0.05
    out = tmp_path / "m.csv"
    write_manifest(rows, out)
    with out.open() as f:
        assert tuple(csv.DictReader(f).fieldnames or ()) == MANIFEST_COLUMNS
