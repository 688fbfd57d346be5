"""The simulator on a tiny fake data root: determinism, resume, splits, layout (torch-free)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.fakedata import SR, make_fake_data_root
from train.sim_catalogue import build_catalogue, split_of
from train.simulate import MANIFEST_COLUMNS, SimulateConfig, clip_seed, done_indices, run


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fake_data_root(tmp_path_factory.mktemp("data"))


def _cfg(root: Path, out: Path, n: int, seed: int = 5) -> SimulateConfig:
    return SimulateConfig(data_root=str(root), out_dir=str(out), n_clips=n, seed=seed,
                          clean_fraction=0.0)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open() as f:
        return list(csv.DictReader(f))


def test_split_of_is_stable_and_proportional() -> None:
    assert split_of("so762-0001") == split_of("so762-0001")
    names = [f"spk{i}" for i in range(5000)]
    shares = {s: sum(split_of(n) == s for n in names) / len(names) for s in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.8, abs=0.03)
    assert shares["test"] == pytest.approx(0.1, abs=0.02)


def test_catalogue_splits_are_disjoint(data_root: Path) -> None:
    cat = build_catalogue(data_root)
    speakers = {s: {u.speaker for u in cat.speech[s]} for s in cat.speech}
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["val"]
    assert not set(cat.noise["train"]) & set(cat.noise["test"])
    assert all(cat.noise[s] for s in cat.noise)


def test_same_seed_same_clips_and_resume(data_root: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run(_cfg(data_root, a, 6), progress=False)
    run(_cfg(data_root, b, 4), progress=False)
    run(_cfg(data_root, b, 6), progress=False)  # resumes: makes clips 4 and 5 only
    rows_a, rows_b = _rows(a), _rows(b)
    assert [r["con"] for r in rows_b] == ["0", "1", "2", "3", "4", "5"]
    assert tuple(rows_a[0]) == MANIFEST_COLUMNS
    for ra, rb in zip(rows_a, sorted(rows_b, key=lambda r: int(r["con"])), strict=True):
        assert ra == rb
        wa, ra_sr = sf.read(a / ra["filepath_deg"], dtype="int16")
        wb, _ = sf.read(b / rb["filepath_deg"], dtype="int16")
        assert ra_sr == SR and np.array_equal(wa, wb)
    assert done_indices(b / "manifest.csv") == set(range(6))


def test_clip_rows_describe_the_clip(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "c"
    run(_cfg(data_root, out, 12, seed=11), progress=False)
    cat = build_catalogue(data_root)
    split_speakers = {s: {u.speaker for u in cat.speech[s]} for s in cat.speech}
    for row in _rows(out):
        info = sf.info(str(out / row["filepath_deg"]))
        assert info.samplerate == SR and info.channels == 1 and info.subtype == "PCM_16"
        assert 4.0 <= info.duration <= 8.0 + 1e-3
        assert float(row["duration_s"]) == pytest.approx(info.duration, abs=1e-3)
        assert row["speaker"] in split_speakers[row["split"]]
        assert row["condition"] != "clean" and row["mos"] == ""
        assert row["seed"] == str(clip_seed(11, int(row["con"])))
        if row["noise_file"]:
            assert str(data_root / row["noise_file"]) in cat.noise[row["split"]]


def test_signal_family_only_from_its_first_clip_and_earlier_draws_unchanged() -> None:
    from train.simulate import FAMILIES, FAMILIES_V2, _choose_chain

    # below the threshold the chain is drawn from the original table: identical to before
    for seed in range(200):
        old = _choose_chain(np.random.default_rng(seed), 0.08)
        assert old == _choose_chain(np.random.default_rng(seed), 0.08, FAMILIES)
        assert "mnru" not in old
    drawn = [k for seed in range(400) for k in _choose_chain(np.random.default_rng(seed), 0.08, FAMILIES_V2)]
    assert "mnru" in drawn


def test_mnru_clips_beyond_the_threshold(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    cfg = _cfg(data_root, out, 40, seed=3)
    cfg = type(cfg)(**{**cfg.__dict__, "signal_from_clip": 20})
    run(cfg, progress=False)
    rows = _rows(out)
    assert not any("mnru" in r["condition"] for r in rows if int(r["con"]) < 20)
    assert any("mnru:Q" in r["condition"] for r in rows if int(r["con"]) >= 20)


def test_v3_real_call_kinds_render_on_every_family(data_root: Path) -> None:
    """Every kind of the real-call catalogue returns finite audio of the input's length."""
    from train import degrade as dg
    from train.codecs import usable_codecs
    from train.simulate import FAMILIES_V3, STAGE_ORDER, SimulateConfig, _apply, _assemble

    cfg = SimulateConfig(data_root=str(data_root), families="v3", min_clip_s=1.5, max_clip_s=4.0,
                         fixed_length_fraction=0.7)
    cat = build_catalogue(data_root)
    for kinds in (k for _, ks in FAMILIES_V3.values() for k in ks):
        rng = np.random.default_rng(len(kinds))
        x, used = _assemble(cat, "train", cfg, rng)
        x = dg.set_level(x, SR, -26.0)
        ctx = {"sr": SR, "cat": cat, "split": "train", "speaker": used[0].speaker, "codecs": usable_codecs(),
               "noise_file": ""}
        y, token = _apply(kinds, x, ctx, rng)
        assert kinds in STAGE_ORDER and token
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))


def test_v3_clips_are_training_crops(data_root: Path, tmp_path: Path) -> None:
    """v3 clips are 1.5-4 s, most exactly 4 s: the teacher labels what the student sees."""
    out = tmp_path / "v3"
    cfg = SimulateConfig(data_root=str(data_root), out_dir=str(out), n_clips=20, seed=4, families="v3",
                         min_clip_s=1.5, max_clip_s=4.0, fixed_length_fraction=0.7)
    run(cfg, progress=False)
    durations = [float(r["duration_s"]) for r in _rows(out)]
    assert all(1.5 <= d <= 4.0 + 1e-3 for d in durations)
    assert 0.4 <= sum(d == 4.0 for d in durations) / len(durations) < 1.0
    bad = SimulateConfig(data_root=str(data_root), out_dir=str(tmp_path / "bad"), n_clips=1, families="v9")
    with pytest.raises(Exception, match="families"):
        run(bad, progress=False)
