"""The CLI end to end on synthetic files: bad inputs give one line each, the rest continue."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from livesqa import cli
from realspeech import speech


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "calls"
    d.mkdir()
    x48 = speech(4.0, 48000, offset_s=1)
    sf.write(d / "stereo48k.wav", np.stack([x48, 0.5 * x48], axis=1), 48000)
    x8 = speech(4.0, 8000, offset_s=2)
    sf.write(d / "narrow8k.flac", x8, 8000)
    sf.write(d / "quad44k.ogg", np.tile(speech(3.0, 44100, offset_s=3)[:, None], (1, 4)), 44100,
             format="OGG", subtype="VORBIS")
    nan = speech(3.0, 16000, offset_s=4).astype(np.float64)
    nan[5000:5100] = np.nan
    nan[9000] = np.inf
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    sf.write(d / "short.wav", np.zeros(8000, dtype=np.float32), 16000)
    sf.write(d / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    (d / "corrupt.flac").write_bytes(b"fLaC" + b"\x00garbage" * 10)
    return d


def test_file_command_scores_good_files_and_names_bad_ones(files, tiny_model_path, tmp_path, capsys):
    out_csv, out_jsonl, summary = tmp_path / "w.csv", tmp_path / "w.jsonl", tmp_path / "s.csv"
    rc = cli.main(["file", str(files), "--model", str(tiny_model_path), "--csv", str(out_csv),
                   "--jsonl", str(out_jsonl), "--summary", str(summary), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1  # something failed
    bad = [line for line in err.splitlines() if line.startswith("livesqa: error:")]
    assert sorted(line.split("error: ", 1)[1].split(":")[0].split("/")[-1] for line in bad) == [
        "corrupt.flac", "empty.wav", "short.wav"]
    assert "3 of 7 files failed" in err
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    by_file: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_file.setdefault(r["source"].split("/")[-1], []).append(r)
    assert sorted(by_file) == ["nan.wav", "narrow8k.flac", "quad44k.ogg", "stereo48k.wav"]
    # 4 s at hop 1 s, window 1.5 s: windows ending 1.5, 2.5, 3.5 and the tail at 4.0
    assert [r["end_s"] for r in by_file["stereo48k.wav"]] == ["1.5", "2.5", "3.5", "4.0"]
    assert any(r["gap"] == "1" for r in by_file["nan.wav"])  # NaN/inf became flagged silence
    for r in rows:
        assert r["mos"] == "" or 1.0 <= float(r["mos"]) <= 5.0
    kinds = [json.loads(line)["kind"] for line in out_jsonl.read_text().splitlines()]
    assert kinds.count("window") == len(rows) and kinds.count("summary") == 7
    with open(summary, newline="") as f:
        srows = {r["source"].split("/")[-1]: r for r in csv.DictReader(f)}
    good = srows["stereo48k.wav"]
    assert good["error"] == "" and float(good["worst_mos"]) <= float(good["mean_mos"])
    assert "too short to score: a score needs at least 1 s" in srows["short.wav"]["error"]
    assert good["no_speech"] == str(int(good["windows"]) - int(good["scored"]))
    assert int(srows["nan.wav"]["gaps"]) >= 1  # the NaN/inf windows are counted as cut


def test_stereo_48k_matches_the_known_answer_after_downmix_and_resampling(tmp_path, tiny_model_path,
                                                                           tiny_expected):
    x16 = speech(3.0, 16000, offset_s=5)
    import soxr

    x48 = soxr.resample(x16, 16000, 48000).astype(np.float32)
    sf.write(tmp_path / "s.wav", np.stack([x48, x48], axis=1), 48000, subtype="FLOAT")
    out = tmp_path / "o.csv"
    assert cli.main(["file", str(tmp_path / "s.wav"), "--model", str(tiny_model_path), "--csv",
                     str(out), "--no-progress"]) == 0
    first = next(csv.DictReader(open(out, newline="")))
    expected = tiny_expected(x16[:24000])[0]
    assert float(first["mos"]) == pytest.approx(expected[0], rel=0.02)


def test_model_without_spec_and_missing_default_are_one_line_errors(make_model_without_spec,
                                                                    monkeypatch, tmp_path, capsys):
    rc = cli.main(["inspect", str(make_model_without_spec())])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0 and "no 'livesqa_spec' metadata" in err
    monkeypatch.delenv("LIVESQA_MODEL", raising=False)
    monkeypatch.setattr("livesqa.models.exported_dirs", lambda: [tmp_path / "exported"])
    rc = cli.main(["file", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and ("no default model shipped in exported/" in err
                        or "no audio files found" in err)
    rc = cli.main(["inspect"])
    assert "no default model shipped in exported/; pass --model PATH" in capsys.readouterr().err


def test_inspect_prints_the_spec(tiny_model_path, capsys):
    assert cli.main(["inspect", str(tiny_model_path)]) == 0
    out = capsys.readouterr().out
    assert "tiny-rms" in out and "window_s       1.5" in out


def test_unwritable_csv_is_refused_before_scoring(files, tiny_model_path, tmp_path, capsys):
    rc = cli.main(["file", str(files / "stereo48k.wav"), "--model", str(tiny_model_path),
                   "--csv", str(tmp_path / "missing" / "dir" / "x.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot open for writing" in err and "stereo48k" not in err


def test_replay_headless_streams_in_real_time(tiny_model_path, tmp_path, capsys):
    path = tmp_path / "call.wav"
    sf.write(path, speech(2.5, 16000), 16000)
    out = tmp_path / "r.csv"
    rc = cli.main(["replay", str(path), "--headless", "--csv", str(out), "--model",
                   str(tiny_model_path), "--hop", "0.5"])
    assert rc == 0
    rows = list(csv.DictReader(open(out, newline="")))
    assert [r["end_s"] for r in rows] == ["1.5", "2.0", "2.5"]
    assert "call summary" in capsys.readouterr().out


def test_webrtc_without_its_extra_prints_an_install_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "livesqa.webrtc.command", None)  # import fails
    rc = cli.main(["webrtc"])
    assert rc == 1 and "pip install 'livesqa[webrtc]'" in capsys.readouterr().err


def test_mic_without_portaudio_is_one_clear_line(monkeypatch, tiny_model_path, capsys):
    def broken():
        from livesqa.errors import DeviceError
        from livesqa.sources.mic import INSTALL_HINT

        raise DeviceError(INSTALL_HINT)

    monkeypatch.setattr("livesqa.sources.mic.import_sounddevice", broken)
    rc = cli.main(["mic", "--model", str(tiny_model_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and "libportaudio2" in err and err.count("\n") == 0


def test_file_command_with_only_bad_files_prints_errors_and_no_empty_table(files, tiny_model_path, capsys):
    rc = cli.main(["file", str(files / "corrupt.flac"), "--model", str(tiny_model_path), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 1 and "1 of 1 files failed" in err and "corrupt.flac" in err
    assert "summary" not in out
