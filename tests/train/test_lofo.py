"""Leave-one-family-out: condition parsing and the filtered manifests (train/lofo.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from train.agreement import families_of, group_of
from train.lofo import CONTROL, filtered_manifest, held_out_rows


def test_families_ignore_plus_signs_inside_parameters() -> None:
    assert families_of("reverb:room@0.4s+overload:g711-alaw+18dB") == {"acoustic", "clipping"}
    assert families_of("echo:44ms@-8dB+res+hot:limiter+31dB") == {"echo", "clipping"}
    assert families_of("agc:crowded-bar@21dB+15+timeclip:1x") == {"noise", "loss"}
    assert families_of("clean") == set() and families_of("real:aec-x-doubletalk") == set()
    # a single family with '+' in its parameters is that family, not "mixed"
    assert group_of("sim-test", {"condition": "echo:44ms@-8dB+res"}) == "echo"
    assert group_of("sim-test", {"condition": "clean"}) == "clean"


def _corpus(tmp_path: Path) -> Path:
    rows = [("train", "opusplc:24k/20ms@5%b1.0"), ("train", "noise:cafe@10dB"),
            ("train", "noise:cafe@5dB+loss:zero20ms@3%b2.0"), ("val", "opusplc:16k/20ms@9%b1.0"),
            ("test", "talker:1@-6dB+amrplc:nb7.4k@5%b1.0"), ("test", "noise:street@0dB"),
            ("train", "real:aec-x-farend")]
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["filepath_deg", "split", "condition", "mos"])
        w.writeheader()
        w.writerows({"filepath_deg": f"clips/c{i}.flac", "split": s, "condition": c, "mos": "3.0"}
                    for i, (s, c) in enumerate(rows))
    return path


def test_filtered_manifest_drops_the_family_from_train_only(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    out = filtered_manifest(corpus, "loss")
    assert out.parent == corpus.parent  # relative clip paths still resolve
    with out.open() as f:
        kept = [r["filepath_deg"] for r in csv.DictReader(f)]
    # train clips 0 and 2 hold a loss kind; val (3) and test (4) keep theirs; real rows stay
    assert kept == ["clips/c1.flac", "clips/c3.flac", "clips/c4.flac", "clips/c5.flac", "clips/c6.flac"]
    with filtered_manifest(corpus, CONTROL).open() as f:
        assert len(list(csv.DictReader(f))) == 7


def test_held_out_rows_are_test_clips_with_the_family(tmp_path: Path) -> None:
    rows = held_out_rows(_corpus(tmp_path), "loss", max_rows=0)
    assert [r["filepath_deg"] for r in rows] == ["clips/c4.flac"]


def test_unknown_family_is_a_clear_error(tmp_path: Path) -> None:
    from livesqa.errors import ConfigError
    from train.lofo import main

    with pytest.raises(ConfigError, match="--families"):
        main(["--corpus", str(_corpus(tmp_path)), "--families", "loss,bogus"])
