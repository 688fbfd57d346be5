"""The NISQA corpus loader on a tiny fake corpus written by the test (torch-free)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livesqa.errors import ConfigError
from train.nisqa_corpus import corpus_rows, main, split_of_db
from train.simulate import MANIFEST_COLUMNS

HEADER = ["db", "con", "file", "con_description", "filename_deg", "filename_ref", "source", "lang",
          "votes", "mos", "noi", "col", "dis", "loud", "filepath_deg", "filepath_ref"]


def _fake_corpus(root: Path) -> None:
    entries = [
        ("NISQA_TRAIN_SIM", "1", "noise:white@5dB", "4.1", "2.2", "3.3", "4.4", "3.9", 1.5),
        ("NISQA_VAL_LIVE", "7", "live call", "3.0", "", "", "", "", 2.0),
        ("NISQA_TEST_FOR", "2", "forensic", "2.5", "1.9", "nan", "4.0", "3.1", 1.0),
        ("NISQA_TRAIN_SIM", "3", "unrated", "", "", "", "", "", 1.0),
    ]
    rows = []
    for i, (db, con, desc, mos, noi, col, dis, loud, secs) in enumerate(entries):
        rel = f"{db}/deg/f{i}.wav"
        (root / db / "deg").mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, np.zeros(int(48000 * secs), np.float32), 48000)
        rows.append([db, con, f"f{i}", desc, f"f{i}.wav", "", "src", "en", "5", mos, noi, col, dis,
                     loud, rel, ""])
    with (root / "NISQA_corpus_file.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)


def test_split_of_db() -> None:
    assert split_of_db("NISQA_TRAIN_SIM") == "train"
    assert split_of_db("NISQA_VAL_LIVE") == "val"
    assert split_of_db("NISQA_TEST_P501") == "test"
    with pytest.raises(ConfigError):
        split_of_db("SOMETHING_ELSE")


def test_rows_map_ratings_splits_and_paths(tmp_path: Path) -> None:
    _fake_corpus(tmp_path)
    rows = corpus_rows(tmp_path)
    assert [r["split"] for r in rows] == ["train", "val", "test"]  # the unrated row is dropped
    first = rows[0]
    assert (first["mos"], first["noi"], first["col"], first["dis"], first["loud"]) == (
        "4.1000", "2.2000", "3.3000", "4.4000", "3.9000")  # named columns, not NISQA's order
    assert Path(first["filepath_deg"]).is_absolute() and Path(first["filepath_deg"]).is_file()
    assert first["duration_s"] == "1.500" and first["teacher"] == "human"
    assert first["condition"] == "noise:white@5dB"
    assert rows[1]["noi"] == "" and rows[2]["col"] == ""  # missing dimensions stay missing
    assert [r["db"] for r in corpus_rows(tmp_path, dbs=["NISQA_TEST_FOR"])] == ["NISQA_TEST_FOR"]


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    _fake_corpus(tmp_path)
    (tmp_path / "NISQA_VAL_LIVE" / "deg" / "f1.wav").unlink()
    with pytest.raises(ConfigError, match="missing"):
        corpus_rows(tmp_path)


def test_cli_writes_simulated_layout(tmp_path: Path) -> None:
    _fake_corpus(tmp_path)
    out = tmp_path / "out" / "manifest.csv"
    assert main(["--corpus-dir", str(tmp_path), "--out", str(out)]) == 0
    with out.open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        assert len(list(reader)) == 3


def test_loops_loader_reads_it(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from train.data import read_quality_manifest

    _fake_corpus(tmp_path)
    out = tmp_path / "manifest.csv"
    main(["--corpus-dir", str(tmp_path), "--out", str(out)])
    items = read_quality_manifest(out, "test")
    assert len(items) == 1 and items[0].targets[0] == pytest.approx(2.5)
    assert np.isnan(items[0].targets[2])
