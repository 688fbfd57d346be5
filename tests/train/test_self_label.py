"""``python -m train self-label``: a model's own scores become the labels, paths stay valid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livesqa.errors import ConfigError
from tests.train.test_export import tiny_model
from train import self_label
from train.checkpoint import save_checkpoint
from train.data import read_quality_manifest
from train.scorers import model_scorer


def test_labels_are_the_models_scores_and_other_splits_are_dropped(tmp_path: Path) -> None:
    model = tiny_model(seed=5)
    ckpt = save_checkpoint(tmp_path / "m.pt", model, model.cfg, stage="quality")
    corpus = tmp_path / "corpus"
    (corpus / "clips").mkdir(parents=True)
    rows = ["db,con,filepath_deg,filename_deg,source,mos,noi,col,dis,loud,split,condition,teacher"]
    for i, split in enumerate(("train", "val", "test", "train")):
        x = (np.random.default_rng(i).standard_normal(16000) * 0.05 * (i + 1)).astype(np.float32)
        sf.write(corpus / "clips" / f"c{i}.flac", x, 16000)
        rows.append(f"sim,0,clips/c{i}.flac,c{i}.flac,s,,,,,,{split},x,")
    (corpus / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "elsewhere" / "labelled.csv"
    out.parent.mkdir()
    assert self_label.main(["--manifest", str(corpus / "manifest.csv"), "--model", str(ckpt), "--out", str(out)]) == 0
    items = read_quality_manifest(out)
    assert len(items) == 3  # the test row is left out
    scorer = model_scorer(ckpt)
    for item in items:  # paths resolve from the output's folder, targets are the model's scores
        wav, sr = sf.read(item.path, dtype="float32")
        np.testing.assert_allclose(item.targets, scorer.score(wav, sr), atol=1e-3)
    assert "self:m.pt" in out.read_text(encoding="utf-8")


def test_refuses_a_missing_manifest_or_empty_splits_by_name(tmp_path: Path) -> None:
    model = tiny_model()
    ckpt = save_checkpoint(tmp_path / "m.pt", model, model.cfg, stage="quality")
    with pytest.raises(ConfigError, match="manifest not found"):
        self_label.main(["--manifest", str(tmp_path / "none.csv"), "--model", str(ckpt), "--out", str(tmp_path / "o.csv")])
    (tmp_path / "m.csv").write_text("db,con,filepath_deg,filename_deg,source,mos,noi,col,dis,loud,split,condition\n"
                                    "sim,0,a.flac,a.flac,s,,,,,,test,x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no rows in splits"):
        self_label.main(["--manifest", str(tmp_path / "m.csv"), "--model", str(ckpt), "--out", str(tmp_path / "o.csv")])
    assert not (tmp_path / "o.csv").exists()
