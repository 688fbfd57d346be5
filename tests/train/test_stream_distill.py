"""Dense streaming distillation: each whole-second row's target is the window that row covers,
rows of other chunk sizes map to the right second, and a short run fits its targets and resumes."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import soundfile as sf

from tests.train.test_streaming import model_with_level, streaming_cfg
from train import dense_targets as dt
from train import stream_distill as sd
from train.checkpoint import load_checkpoint, save_checkpoint


def test_row_windows_are_prefixes_then_4s_windows_ending_on_each_second() -> None:
    wav = np.arange(720 + 6 * 16000 + 500, dtype=np.float32)
    assert dt.row_ends(len(wav)) == [720 + 16000 * (c + 1) for c in range(6)]
    windows = dt.row_windows(wav)
    assert [len(w) for w in windows] == [16720, 32720, 48720, 64000, 64000, 64000]
    assert windows[0][0] == 0 and windows[2][0] == 0  # prefixes start at the stream's start
    assert windows[5][-1] == 720 + 6 * 16000 - 1 and windows[5][0] == 720 + 6 * 16000 - 64000
    assert dt.row_windows(wav[:16719]) == []  # less than the tail and 1 s: no whole row


class LengthTeacher:
    """A fake of ``WindowedTeacher``: scores a window by its length and its last sample."""

    name = "fake 0"

    def score(self, windows: list[np.ndarray]) -> np.ndarray:
        return np.array([[len(w) / 16000, w[-1], 0, 0, 0] for w in windows], dtype=np.float32)


def write_corpus(root: Path, seconds: list[float], splits: list[str]) -> Path:
    (root / "clips").mkdir(parents=True)
    rows = ["filepath_deg,split"]
    for i, (s, split) in enumerate(zip(seconds, splits)):
        ramp = (np.arange(int(720 + s * 16000)) % 1000 / 1000 * 0.1).astype(np.float32)
        sf.write(root / "clips" / f"c{i}.wav", ramp, 16000, subtype="FLOAT")
        rows.append(f"clips/c{i}.wav,{split}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root / "manifest.csv"


def test_shard_holds_each_rows_target_and_the_set_reads_it_back(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path / "corpus", [2.0, 5.5, 0.5, 3.0], ["train", "train", "train", "val"])
    clips = dt.read_clips([manifest])
    out = tmp_path / "t" / "targets-0-of-1.npz"
    out.parent.mkdir()
    assert dt.build_shard(clips, LengthTeacher(), out, progress=False) == 2 + 5 + 3  # the 0.5 s clip has no row
    train = sd.DenseSet.load(out.parent, "train")
    assert len(train) == 2 and train.n_rows.tolist() == [2, 5]
    wav, target = train.item(1, 5)
    assert len(wav) == 720 + 5 * 16000
    np.testing.assert_allclose(target[:, 0], [1.045, 2.045, 3.045, 4.0, 4.0])
    np.testing.assert_allclose(target[:, 1], [wav[e - 1] for e in dt.row_ends(len(wav))], atol=1e-6)
    assert len(sd.DenseSet.load(out.parent, "val")) == 1


@pytest.mark.parametrize(("k", "seconds", "rows", "whole"), [
    (25, 3, [0, 1, 2], [0, 1, 2]), (5, 2, [4, 9], [0, 1]), (15, 6, [4, 9], [2, 5]),
])
def test_rows_of_any_chunk_size_map_to_the_second_they_end_on(k: int, seconds: int, rows: list[int],
                                                              whole: list[int]) -> None:
    r, s = sd.aligned_rows(k, seconds)
    assert r.tolist() == rows and s.tolist() == whole


def test_batches_cover_every_clip_once_with_similar_lengths() -> None:
    n_rows = np.array([1, 9, 2, 8, 3, 7, 9, 9])
    got = sd.batches(n_rows, 2, 8, np.random.default_rng(0))
    assert sorted(np.concatenate(got).tolist()) == list(range(8))
    spans = sorted((min(n_rows[b].min(), 8), min(n_rows[b].max(), 8)) for b in got)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # batches are runs of the sorted lengths


def test_short_run_fits_constant_targets_and_resumes(tmp_path: Path) -> None:
    manifest = write_corpus(tmp_path / "corpus", [3.0] * 6 + [3.0] * 2, ["train"] * 6 + ["val"] * 2)
    targets = tmp_path / "targets"
    targets.mkdir()

    class Constant(LengthTeacher):
        def score(self, windows: list[np.ndarray]) -> np.ndarray:
            return np.full((len(windows), 5), 3.0, dtype=np.float32)

    dt.build_shard(dt.read_clips([manifest]), Constant(), targets / "targets-0-of-1.npz", progress=False)
    model = model_with_level(streaming_cfg())
    init = save_checkpoint(tmp_path / "init.pt", model, model.cfg, stage="quality")
    cfg = sd.DistillConfig(run="r", init_checkpoint=str(init), targets_dir=str(targets), runs_dir=str(tmp_path),
                           steps=12, warmup_steps=1, lr=5e-2, encoder_lr=1e-3, batch_size=3, max_rows=3,
                           val_every=6, threads=1)
    run = sd.train(cfg)
    metrics = (run / "metrics.csv").read_text().splitlines()
    first, last = (float(line.split(",")[2]) for line in (metrics[1], metrics[-1]))
    assert last < 0.5 * first, metrics  # val MSE against the constant target fell
    assert load_checkpoint(run / "last.pt")["step"] == 12
    assert len(list((run / "snapshots").glob("step-*.pt"))) == 3  # steps 0, 6, 12
    resumed = sd.train(sd.DistillConfig(**{**cfg.__dict__, "steps": 14}))
    assert load_checkpoint(resumed / "last.pt")["step"] == 14
