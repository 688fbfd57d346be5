import csv
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")

from train import data
from train.text import encode

SR = 16000


def _write_clip(path: Path, seconds: float, freq_hz: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    wav = (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)
    sf.write(str(path), wav, SR, subtype="PCM_16", format="FLAC")
    return wav


def _sim_manifest(tmp_path: Path) -> Path:
    (tmp_path / "deg").mkdir()
    rows = []
    for i, (sec, split) in enumerate([(0.5, "train"), (1.0, "train"), (0.75, "val"), (0.6, "train")]):
        _write_clip(tmp_path / "deg" / f"c{i}.flac", sec, 200 + 100 * i)
        labels = ["", "", "", "", ""] if i == 3 else [str(1 + i), "2.5", "", "4", "3"]
        rows.append({"db": "sim", "con": "0", "filepath_deg": f"deg/c{i}.flac",
                     "filename_deg": f"c{i}.flac", "source": "x",
                     **dict(zip(["mos", "noi", "col", "dis", "loud"], labels)),
                     "split": split, "condition": "clean", "duration_s": str(sec)})
    path = tmp_path / "manifest.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_quality_manifest_resolves_paths_and_masks(tmp_path: Path) -> None:
    items = data.read_quality_manifest(_sim_manifest(tmp_path), "train")
    assert [it.path.name for it in items] == ["c0.flac", "c1.flac"]  # c3 unlabelled -> dropped
    assert items[1].targets[0] == 2.0 and math.isnan(items[1].targets[2])
    ds = data.QualityDataset(items, SR)
    batch = data.collate_quality([ds[0], ds[1]])
    assert batch.wav.shape == (2, SR) and batch.wav_lengths.tolist() == [SR // 2, SR]
    assert batch.wav[0, SR // 2 :].abs().max() == 0  # zero padding
    assert batch.mask[:, 2].tolist() == [False, False] and batch.mask[:, 0].all()
    assert batch.targets[1, 0] == 2.0 and batch.targets[0, 2] == 0.0
    # audio survives the FLAC round trip
    assert torch.allclose(batch.wav[1], torch.from_numpy(_write_clip(tmp_path / "x.flac", 1.0, 300)), atol=1e-4)


def test_random_crop_is_reproducible_per_epoch(tmp_path: Path) -> None:
    items = data.read_quality_manifest(_sim_manifest(tmp_path), "train")
    ds = data.QualityDataset(items, SR, crop_s=0.25, seed=3)
    a, b = ds[1][0], ds[1][0]
    assert a.shape == (SR // 4,) and np.array_equal(a, b)
    ds.set_epoch(1)
    assert not np.array_equal(a, ds[1][0])
    assert ds.durations_s() == [0.25, 0.25]
    short = data.random_crop(np.ones(10, np.float32), 20, np.random.default_rng(0))
    assert short.shape == (10,)


def test_asr_dataset_and_ctc_collate(tmp_path: Path) -> None:
    wav_path = tmp_path / "a.flac"
    _write_clip(wav_path, 0.5, 440)
    manifest = tmp_path / "asr.csv"
    manifest.write_text(
        "path,text,speaker,split,duration_s,source\n"
        f"{wav_path},HELLO WORLD,s1,train,0.5,x\n"
        f"{wav_path},IT'S,s2,test,0.5,x\n"
        f"{wav_path},,s2,train,0.5,x\n"
    )
    train_items = data.read_asr_manifest(manifest, "train")
    assert len(train_items) == 1  # empty transcript dropped
    ds = data.AsrDataset(data.read_asr_manifest(manifest), SR)
    batch = data.collate_asr([ds[0], ds[1]])
    assert batch.label_lengths.tolist() == [11, 4]
    assert batch.labels.tolist() == encode("HELLO WORLD") + encode("IT'S")


def test_length_batches_by_count_and_by_seconds() -> None:
    dur = [1.0, 5.0, 2.0, 4.0, 3.0, 6.0]
    by_count = data.length_batches(dur, batch_size=2, shuffle=False)
    assert by_count == [[0, 2], [4, 3], [1, 5]]
    by_seconds = data.length_batches(dur, max_batch_s=8.0, shuffle=False)
    # padded cost = clips x longest <= 8 s (a lone long clip still gets its own batch)
    assert by_seconds == [[0, 2], [4, 3], [1], [5]]
    for b in by_seconds:
        assert len(b) == 1 or len(b) * max(dur[i] for i in b) <= 8.0
    shuffled = data.length_batches(dur, batch_size=2, seed=1, epoch=0)
    assert sorted(i for b in shuffled for i in b) == list(range(6))
    assert shuffled == data.length_batches(dur, batch_size=2, seed=1, epoch=0)
    many = [float(i % 17) for i in range(200)]
    assert data.length_batches(many, batch_size=8, seed=1, epoch=0) != data.length_batches(
        many, batch_size=8, seed=1, epoch=1
    )
    with pytest.raises(ValueError):
        data.length_batches(dur)
