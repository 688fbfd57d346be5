"""Fault injection (issue 15): hostile inputs, full disks, signals and broken models.

The promise each test keeps: no file a user owns is modified unless it is one of
ours, no traceback (every failure is a line naming the file or option), and no
run that looks complete when it is not. Faults are injected through real
interfaces: a file object whose disk fills after N bytes, real signals sent to
this process, a folder listing that raises PermissionError, models built with a
graph that disagrees with their spec. Hypothesis drives the byte-level cases.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livesqa import cli
from livesqa.bench import speechlike
from livesqa.config import RuntimeConfig, known_keys, load_config
from livesqa.errors import ConfigError, ModelSpecError, SinkError
from livesqa.scoring import OnnxScorer
from livesqa.sinks import appendfile
from livesqa.sinks.csv import CsvSink, csv_line
from livesqa.sinks.jsonl import JsonlSink
from livesqa.sinks.schema import COLUMNS
from livesqa.spec import INPUT_NAME, OUTPUT_NAME, ModelSpec
from livesqa.types import StreamInfo, WindowScores

REPO = Path(__file__).resolve().parent.parent
ENERGY = ["--set", "gate.detector=energy"]  # the stateless gate
FAULT_SETTINGS = settings(max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])


def result(index: int, source: str = "a.wav") -> WindowScores:
    return WindowScores(
        stream=StreamInfo(source), index=index, start_s=float(index), end_s=index + 1.5,
        wall_time="2026-01-01T00:00:00.000+00:00", scores=(4.0, 3.0, 2.0, 1.5, 1.0),
        speech_ratio=0.5, level_dbfs=-20.0, clipping=False, skipped=0, gap=False,
        latency_ms=1.0, compute_ms=1.0, model="m", model_version="1")


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    sf.write(d / "a.wav", speechlike(6.0, 16000, seed=1), 16000)
    sf.write(d / "b.wav", speechlike(5.0, 16000, seed=2), 16000)
    return d


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert all(len(r) == len(rows[0]) for r in rows), "a row has the wrong number of cells"
    return [dict(zip(rows[0], r)) for r in rows[1:]]


# --- 1, 2: outputs that are not ours are refused before anything is modified --------------

def _not_ours(tmp_path: Path, tiny_model_path: Path) -> dict[str, bytes]:
    wav = io.BytesIO()
    sf.write(wav, speechlike(1.0, 16000), 16000, format="WAV")
    return {
        "audio.wav": wav.getvalue(),
        "model.onnx": tiny_model_path.read_bytes(),
        "doc.json": b'{"a": 1,\n "b": [1, 2]}',  # JSON, no final newline
        "one.json": b'{"a": 1}',
        "other.csv": b"a,b,c\n1,2,3\n4,5",
        "ours.jsonl": b'{"kind": "window", "source": "x"}\n',  # JSONL is not a CSV
        "ours.csv": (csv_line(COLUMNS) + "\n").encode(),  # a window CSV is not a summary
    }


@pytest.mark.parametrize("option", ["--csv", "--jsonl", "--summary"])
def test_an_output_that_is_not_ours_is_refused_and_left_byte_for_byte(
        option, audio, tiny_model_path, tmp_path, capsys):
    for name, content in _not_ours(tmp_path, tiny_model_path).items():
        if (option == "--jsonl" and name == "ours.jsonl") or (option == "--csv" and name == "ours.csv"):
            continue  # those are ours for that option
        target = tmp_path / name
        target.write_bytes(content)
        rc, _, err = run(["file", str(audio / "a.wav"), "--model", str(tiny_model_path),
                          option, str(target), "--no-progress"], capsys)
        assert rc == 1 and str(target) in err, (name, err)
        assert target.read_bytes() == content, f"{option} {name} was modified"


@FAULT_SETTINGS
@given(content=st.binary(min_size=1, max_size=3000))
def test_any_foreign_bytes_are_refused_unchanged(tmp_path, content):
    header = (csv_line(COLUMNS) + "\n").encode()
    cut_header = header.startswith(content) and len(content) >= len(COLUMNS[0]) + 1
    for i, (cls, ours) in enumerate(((CsvSink, content.startswith(header[:20]) or cut_header),
                                     (JsonlSink, content.startswith(b'{"kind"')))):
        target = tmp_path / f"f{i}"
        target.write_bytes(content)
        try:
            sink = cls(target)
        except SinkError:
            assert target.read_bytes() == content
            continue
        sink.close()
        assert ours, f"{cls.__name__} accepted {content[:40]!r}"


def test_an_output_that_is_an_input_is_refused(audio, tiny_model_path, tmp_path, capsys):
    wav = audio / "a.wav"
    before = wav.read_bytes()
    for argv in (["--csv", str(wav)], ["--jsonl", str(wav)], ["--summary", str(wav)]):
        rc, _, err = run(["file", str(wav), "--model", str(tiny_model_path), *argv,
                          "--no-progress"], capsys)
        assert rc == 1 and "also an input" in err
    alias = tmp_path / "alias.wav"
    os.link(wav, alias)
    rc, _, err = run(["file", str(audio), "--model", str(tiny_model_path), "--csv", str(alias),
                      "--no-progress"], capsys)
    assert rc == 1 and "also an input" in err
    model_bytes = tiny_model_path.read_bytes()
    rc, _, err = run(["file", str(wav), "--model", str(tiny_model_path), "--summary",
                      str(tiny_model_path), "--no-progress"], capsys)
    assert rc == 1 and tiny_model_path.read_bytes() == model_bytes
    assert wav.read_bytes() == before


@pytest.mark.parametrize("pair", [("--csv", "--jsonl"), ("--jsonl", "--summary"),
                                  ("--csv", "--summary")])
def test_two_formats_in_one_file_are_refused(pair, audio, tiny_model_path, tmp_path, capsys):
    out = tmp_path / "o.csv"
    rc, _, err = run(["file", str(audio / "a.wav"), "--model", str(tiny_model_path),
                      pair[0], str(out), pair[1], str(out), "--no-progress"], capsys)
    assert rc == 1 and "name the same file" in err and not out.exists()


# --- 3: any file name keeps every row's columns; unterminated quotes are detected ----------

@FAULT_SETTINGS
@given(names=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5))
def test_any_source_name_keeps_the_csv_rectangular(tmp_path, names):
    path = tmp_path / "names.csv"
    path.unlink(missing_ok=True)
    for round_ in range(2):  # the second round appends to the file of the first
        sink = CsvSink(path)
        for i, name in enumerate(names):
            sink.write(result(i, name))
        sink.close()
    rows = csv_rows(path)
    assert [r["source"] for r in rows] == names * 2


def test_an_unterminated_quote_is_refused_not_folded_into(tmp_path):
    path = tmp_path / "q.csv"
    CsvSink(path).close()
    damaged = path.read_bytes() + b'2026,"x.wav,,,0.0\nmore,text\n'
    path.write_bytes(damaged)
    with pytest.raises(SinkError, match="line 2 opens a quote that is never closed"):
        CsvSink(path)
    assert path.read_bytes() == damaged


def test_jsonl_keeps_a_complete_last_record_and_cuts_a_partial_one(tmp_path):
    path = tmp_path / "w.jsonl"
    path.write_bytes(b'{"kind": "window", "i": 1}\n{"kind": "window", "i": 2}')
    JsonlSink(path).close()
    assert path.read_bytes() == b'{"kind": "window", "i": 1}\n{"kind": "window", "i": 2}\n'
    path.write_bytes(path.read_bytes() + b'{"kind": "win')
    JsonlSink(path).close()
    assert [json.loads(x)["i"] for x in path.read_text().splitlines()] == [1, 2]


# --- 5: a full disk is a line per lost output, and every file ends on a complete row -------

class FillingDisk(io.RawIOBase):
    """A real file that takes ``room`` more bytes, then fails like a full disk (ENOSPC)."""

    def __init__(self, path: Path, room: int) -> None:
        self._f = open(path, "ab", buffering=0)  # noqa: SIM115
        self.room = room
        self.name = str(path)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._f.fileno()

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def write(self, b) -> int:  # type: ignore[override]
        data = bytes(b)
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), self.room)
        self._f.write(data[:n])
        self.room -= n
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


@FAULT_SETTINGS
@given(room=st.integers(min_value=0, max_value=6000))
def test_a_full_disk_mid_run_is_one_line_per_output_and_no_partial_row(
        room, audio, tiny_model_path, tmp_path, monkeypatch, capsys):
    out, summary = tmp_path / "w.csv", tmp_path / "s.csv"
    out.unlink(missing_ok=True)
    summary.unlink(missing_ok=True)

    def filling(p: Path):
        return io.TextIOWrapper(io.BufferedWriter(FillingDisk(p, room)), encoding="utf-8",
                                newline="")

    monkeypatch.setattr(appendfile, "_open_file", filling)
    rc, _, err = run(["file", str(audio), "--model", str(tiny_model_path), "--csv", str(out),
                      "--summary", str(summary), "--no-progress"], capsys)
    full = "No space left on device" in err
    assert rc == (1 if full else 0)
    for path in (out, summary):
        data = path.read_bytes() if path.exists() else b""  # refused before it was opened
        assert data == b"" or data.endswith(b"\n"), f"{path.name} ends in a partial row"
        if data:
            rows = csv_rows(path)
            assert all(r["source"] for r in rows)


def test_dev_full_outputs_are_one_line(audio, tiny_model_path, capsys):
    for option in ("--jsonl", "--csv", "--summary"):
        rc, _, err = run(["file", str(audio / "a.wav"), "--model", str(tiny_model_path),
                          option, "/dev/full", "--no-progress"], capsys)
        assert rc == 1 and "/dev/full" in err and "No space left on device" in err


# --- 4: interrupted runs say so, and --resume continues without duplicates ---------------

def _interrupt_after(monkeypatch, rows: int, signum: int) -> None:
    real = CsvSink.write
    count = [0]

    def write(self, r):  # a real signal to this process, mid-run, from the event loop
        real(self, r)
        count[0] += 1
        if count[0] == rows:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(CsvSink, "write", write)


@pytest.mark.parametrize("rows,signum,gate", [(1, signal.SIGINT, ENERGY),
                                              (7, signal.SIGTERM, ENERGY),
                                              (13, signal.SIGINT, [])])  # [] = the default gate
def test_an_interrupted_run_says_so_and_resume_completes_it_exactly(
        rows, signum, gate, tiny_model_path, tmp_path, monkeypatch, capsys):
    audio = tmp_path / "long"
    audio.mkdir()
    sf.write(audio / "a.wav", speechlike(40.0, 16000, seed=1), 16000)  # long enough that the
    sf.write(audio / "b.wav", speechlike(30.0, 16000, seed=2), 16000)  # signal lands mid-run
    clean = tmp_path / "clean.csv"
    base = ["file", str(audio), "--model", str(tiny_model_path), "--no-progress", *gate]
    assert run(base + ["--csv", str(clean)], capsys)[0] == 0
    out, js, summary = tmp_path / "o.csv", tmp_path / "o.jsonl", tmp_path / "s.csv"
    argv = base + ["--csv", str(out), "--jsonl", str(js), "--summary", str(summary)]
    with monkeypatch.context() as m:
        _interrupt_after(m, rows, signum)
        rc, _, err = run(argv, capsys)
    assert rc == 128 + signum, err
    assert "interrupted" in err and "--resume" in err
    summaries = csv_rows(summary)  # the run does not look complete:
    assert len(summaries) < 2 or any(r["error"].startswith("interrupted at") for r in summaries)
    assert all(r["error"] == "" or r["error"].startswith("interrupted at") for r in summaries)
    if rows == 1:  # a signal after the first row lands inside the 40 s file
        assert summaries and summaries[0]["error"].startswith("interrupted at"), summaries
    rc, _, err = run(argv + ["--resume"], capsys)
    assert rc == 0, err
    key = ("source", "start_s", "end_s", "mos", "speech_ratio", "gap")
    want = Counter(tuple(r[k] for k in key) for r in csv_rows(clean))
    assert Counter(tuple(r[k] for k in key) for r in csv_rows(out)) == want
    windows = [json.loads(x) for x in js.read_text().splitlines()]
    got = Counter((w["source"], w["start_s"]) for w in windows if w["kind"] == "window")
    assert got == Counter((s, float(t)) for s, t, *_ in want.elements())
    last = {r["source"]: r for r in csv_rows(summary)}  # the newest summary row per file
    assert all(r["error"] == "" for r in last.values()) and len(last) == 2
    assert int(last[str(audio / "a.wav")]["windows"]) == sum(
        1 for r in csv_rows(clean) if r["source"] == str(audio / "a.wav"))
    rc, _, err = run(argv + ["--resume"], capsys)  # nothing left: nothing added
    assert rc == 0 and "2 files were already complete" in err
    assert Counter(tuple(r[k] for k in key) for r in csv_rows(out)) == want


def test_resume_needs_the_outputs_of_the_run(audio, tiny_model_path, capsys):
    rc, _, err = run(["file", str(audio), "--model", str(tiny_model_path), "--resume"], capsys)
    assert rc == 1 and "--resume needs the --csv or --jsonl" in err


def test_replay_interrupted_exits_130(tiny_model_path, tmp_path, monkeypatch, capsys):
    path = tmp_path / "call.wav"
    sf.write(path, speechlike(8.0, 16000), 16000)
    out = tmp_path / "r.jsonl"
    real = JsonlSink.write

    def write(self, r):
        real(self, r)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(JsonlSink, "write", write)
    rc, _, err = run(["replay", str(path), "--headless", "--jsonl", str(out), "--model",
                      str(tiny_model_path)], capsys)
    assert rc == 130 and "interrupted" in err
    summary = [json.loads(x) for x in out.read_text().splitlines()][-1]
    assert summary["kind"] == "summary" and summary["error"].startswith("interrupted at")


# --- 6, 7: unreadable folders and non-regular files ----------------------------------------

def test_an_unreadable_subfolder_is_reported_not_skipped(audio, tiny_model_path, monkeypatch,
                                                         capsys):
    locked = audio / "locked"
    locked.mkdir()
    sf.write(locked / "c.wav", speechlike(3.0, 16000), 16000)
    real = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    rc, _, err = run(["file", str(audio), "--model", str(tiny_model_path), "--no-progress"],
                     capsys)
    assert rc == 1 and f"{locked}: cannot list this folder (permission denied" in err
    assert "1 of 3 files failed" in err


def test_a_fifo_among_the_inputs_is_refused_without_hanging(audio, tiny_model_path, tmp_path):
    fifo = audio / "pipe.wav"  # in the folder, and given by name
    os.mkfifo(fifo)
    out = tmp_path / "o.csv"
    proc = subprocess.run([sys.executable, "-m", "livesqa.cli", "file", str(audio), str(fifo),
                           "--model", str(tiny_model_path), "--csv", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("is a named pipe, not a regular file") == 2
    assert {r["source"] for r in csv_rows(out)} == {str(audio / "a.wav"), str(audio / "b.wav")}


def test_bad_paths_each_say_what_is_wrong(audio, tiny_model_path, tmp_path, capsys):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    cases = {tmp_path / "missing.wav": "no such file", loop: "symbolic link loop",
             empty: "file is empty (0 bytes)"}
    for path, words in cases.items():
        for command in (["file", str(path), "--no-progress"], ["replay", str(path), "--headless",
                                                               "--csv", str(tmp_path / "r.csv")]):
            rc, _, err = run([*command, "--model", str(tiny_model_path)], capsys)
            assert rc == 1 and f"{path}: {words}" in err, (command, err)


# --- 8, 9: every config key: type and finite range, named with its origin -----------------

BAD_VALUES = ["nan", "inf", "-inf", "1e300", "-1e300", "abc", "[1]", "{x = 1}", '"x"', "1e-6"]


@FAULT_SETTINGS
@given(key=st.sampled_from(sorted(known_keys())), value=st.sampled_from(BAD_VALUES))
def test_every_key_refuses_bad_values_naming_the_option(key, value):
    try:
        config = load_config(None, [f"{key}={value}"])
    except ConfigError as e:
        assert str(e).startswith(f"--set {key}={value}: ") and key in str(e)
        return
    got = config
    for part in key.split("."):
        got = getattr(got, part)
    assert isinstance(got, (int, float, str, bool, type(None)))  # an accepted value is a value
    assert not (isinstance(got, float) and not np.isfinite(got))


@FAULT_SETTINGS
@given(text=st.text(max_size=40))
def test_any_override_text_is_a_value_or_one_config_error(text):
    try:
        load_config(None, [text])
    except ConfigError:
        pass


def test_nan_never_passes_and_config_files_are_named(tmp_path):
    for key in ("gate.abs_floor_dbfs", "history_s", "block_s", "refresh_hz"):
        with pytest.raises(ConfigError, match=f"--set {key}=nan: {key} = nan: must be a finite"):
            load_config(None, [f"{key}=nan"])
    with pytest.raises(ConfigError, match="hop_s is a value, not a table"):
        load_config(None, ["hop_s.x=1"])
    with pytest.raises(ConfigError, match="block_s = 1e-06: outside the allowed range"):
        RuntimeConfig(block_s=1e-6)
    files = {"a.toml": b"runtime = 5\n", "b.toml": b"[[runtime]]\nhop_s = 1.0\n",
             "c.toml": b"[runtime]\nhop_s = 1.0 # \xff\n",
             "d.toml": b"[runtime]\n[runtime.gate]\nmin_speech_ratio = nan\n"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError, match=str(tmp_path / name)):
            load_config(tmp_path / name)
    with pytest.raises(ConfigError, match=r"\[runtime.gate\]: gate.min_speech_ratio = nan"):
        load_config(tmp_path / "d.toml")


def test_options_are_checked_before_any_work(audio, tiny_model_path, tmp_path, capsys):
    wav = str(audio / "a.wav")
    model = ["--model", str(tiny_model_path)]
    cases = [
        (["replay", wav, "--headless", "--csv", str(tmp_path / "r.csv"), "--set",
          "block_s=1e-6", *model], "--set block_s=1e-6: block_s"),
        (["file", wav, "--hop", "nan", *model], "--hop nan: hop_s = nan"),
        (["replay", wav, "--headless", *model], "--headless needs --csv OUT or --jsonl OUT"),
        (["file", wav, "--model", ""], "--model is empty"),
        (["file", wav, "--csv", "", *model], "--csv is empty"),
    ]
    for value in ("0", "-5", "nan"):
        cases.append((["replay", wav, "--headless", "--csv", str(tmp_path / "r.csv"),
                       "--duration", value, *model], f"--duration {float(value)}"))
    for argv, words in cases:
        rc, _, err = run(argv, capsys)
        assert rc == 1 and words in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "r.csv").exists()


# --- 10: models whose graph disagrees with their spec; outputs outside the range ----------

def build_model(path: Path, spec_json: str, *, input_type: int | None = None, outputs: int = 5,
                scale: float = 1.0, nan: bool = False, extra_input: bool = False) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    in_type = input_type if input_type is not None else TensorProto.FLOAT
    nodes = []
    audio = INPUT_NAME
    if in_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [INPUT_NAME], ["audio_f"], to=TensorProto.FLOAT))
        audio = "audio_f"
    nodes += [helper.make_node("Abs", [audio], ["m"]),
              helper.make_node("ReduceMax", ["m"], ["a"], axes=[1], keepdims=1),
              helper.make_node("Mul", ["a", "scale"], ["s"]),
              helper.make_node("Add", ["s", "ones"], ["raw"])]
    if nan:
        nodes += [helper.make_node("Sub", ["raw", "raw"], ["z"]),
                  helper.make_node("Div", ["z", "z"], [OUTPUT_NAME])]
    else:
        nodes.append(helper.make_node("Identity", ["raw"], [OUTPUT_NAME]))
    inits = [numpy_helper.from_array(np.asarray(scale, dtype=np.float32), "scale"),
             numpy_helper.from_array(np.full((1, outputs), 2.0, dtype=np.float32), "ones")]
    inputs = [helper.make_tensor_value_info(INPUT_NAME, in_type, ["batch", "samples"])]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1]))
        nodes.append(helper.make_node("Identity", ["gain"], ["unused"]))
    graph = helper.make_graph(
        nodes, "broken", inputs,
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", outputs])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"livesqa_spec": spec_json})
    onnx.save(model, str(path))
    return path


def spec_json(**changes: object) -> str:
    data = json.loads(ModelSpec("broken", "0", 16000, 24000, 8000).to_json())
    data.update(changes)
    return json.dumps(data)


def test_models_whose_graph_disagrees_with_their_spec_are_refused_at_load(tmp_path, capsys):
    from onnx import TensorProto

    cases = {
        "int64": (dict(input_type=TensorProto.INT64), spec_json(), "is tensor(int64)"),
        "three": (dict(outputs=3), spec_json(), "has 3 values per window"),
        "extra": (dict(extra_input=True), spec_json(), "besides 'audio'"),
        "float_window": ({}, spec_json(window_samples=24000.5), "window_samples must be a whole"),
        "huge_window": ({}, spec_json(window_samples=10**12), "window_samples 1000000000000 outside"),
        "list_extra": ({}, spec_json(extra=["a", "b"]), "extra must be an object"),
        "dict_names": ({}, spec_json(output_names={"mos": 1}), "output_names must be a list"),
        "nan_range": ({}, spec_json(score_max=float("nan")), "score_max must be a finite"),
    }
    for name, (graph, spec, words) in cases.items():
        path = build_model(tmp_path / f"{name}.onnx", spec, **graph)
        with pytest.raises(ModelSpecError, match=re.escape(words)):
            OnnxScorer.load(path)
        rc, _, err = run(["inspect", str(path)] if "window" in name else
                         ["file", str(path), "--model", str(path)], capsys)
        assert rc == 1 and err.count("\n") == 1, (name, err)


@pytest.mark.parametrize("graph,words", [(dict(scale=1000.0), "outside its range 1..5"),
                                         (dict(nan=True), "returned nan")])
def test_outputs_outside_the_range_or_nan_are_flagged_never_written(graph, words, audio, tmp_path,
                                                                    capsys):
    model = build_model(tmp_path / "m.onnx", spec_json(), **graph)
    out = tmp_path / "o.csv"
    rc, _, err = run(["file", str(audio / "a.wav"), "--model", str(model), "--csv", str(out),
                      "--no-progress", *ENERGY], capsys)
    assert rc == 1 and words in err and "a.wav" not in err.split("error:")[0]
    for row in csv_rows(out):
        assert row["mos"] == "" or 1.0 <= float(row["mos"]) <= 5.0


# --- 11, 12: the CLI never shows a traceback ----------------------------------------------

def test_webrtc_without_the_extra_prints_the_hint(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "aiortc", None)  # installed livesqa, missing extra
    rc, _, err = run(["webrtc"], capsys)
    assert rc == 1 and "pip install 'livesqa[webrtc]'" in err and err.count("\n") == 1


def test_ctrl_c_during_an_import_is_an_interruption(monkeypatch, capsys):
    def cut_import(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise ImportError("cannot import name 'InferenceSession'") from e

    monkeypatch.setattr("livesqa.commands.cmd_file", cut_import)
    rc, _, err = run(["file", "x.wav"], capsys)
    assert rc == 130 and err.strip() == "livesqa: interrupted"


def test_an_unexpected_error_is_one_line(monkeypatch, capsys):
    def bug(args):
        raise IndexError("list index out of range")

    monkeypatch.setattr("livesqa.commands.cmd_file", bug)
    rc, _, err = run(["file", "x.wav"], capsys)
    assert rc == 1 and err.count("\n") == 1 and "internal error: IndexError" in err


# --- 14: NaN samples at 44.1 kHz flag the windows that hold them, not the one before -----

@pytest.mark.parametrize("rate", [44100, 48000, 8000])
def test_nan_gap_position_survives_resampling(rate, tiny_model_path, tmp_path, capsys):
    x = speechlike(8.0, rate, seed=3).astype(np.float64)
    x[int(4.0 * rate):int(4.2 * rate)] = np.nan
    path = tmp_path / f"nan{rate}.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    out = tmp_path / "o.csv"
    rc, _, _ = run(["file", str(path), "--model", str(tiny_model_path), "--csv", str(out),
                    "--hop", "0.5", "--no-progress"], capsys)
    assert rc == 0
    flagged = [(float(r["start_s"]), float(r["end_s"])) for r in csv_rows(out) if r["gap"] == "1"]
    # the tiny model's window is 1.5 s: exactly the windows overlapping [4.0, 4.2) s
    assert flagged == [(3.0, 4.5), (3.5, 5.0), (4.0, 5.5)]


# --- also: the licence, openpyxl, and CI failing on a skip it should not have -------------

def test_licence_and_train_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]
    assert any(d.startswith("openpyxl") for d in project["optional-dependencies"]["train"])


def test_ci_fails_on_a_skip_of_something_it_installs(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_missing_dep():\n    pytest.importorskip('no_such_module_livesqa')\n"
        "@pytest.mark.skipif(True, reason='shared weights absent')\n"
        "def test_data():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / ".ci")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "strict_skips", "-p", "no:cacheprovider",
           "--rootdir", str(tmp_path), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and "unexpected skip in CI" in proc.stdout
    assert "1 failed, 1 skipped" in proc.stdout
    env["LIVESQA_ALLOWED_SKIPS"] = "no_such_module_livesqa"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout
