"""The model card is assembled from result files, never typed by hand."""

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from train.model_card import build_card


def test_card_embeds_result_files_and_links_the_eval_plot(tmp_path: Path, make_tiny_model: Callable[..., Path]) -> None:
    model = make_tiny_model()
    results = tmp_path / "results"
    (results / "eval").mkdir(parents=True)
    (results / "eval" / "eval.md").write_text("# Evaluation\n\n| model | MOS PCC |\n|---|---:|\n| m | 0.912 |\n")
    (results / "eval" / "eval.png").write_bytes(b"\x89PNG\r\n")
    (results / "sanity").mkdir()
    (results / "sanity" / "sanity.md").write_text("# Sanity\n\n| check | result |\n|---|---|\n| clean | FAIL |\n")
    asr = tmp_path / "metrics.csv"
    asr.write_text("epochs_done,step,train_loss,test_cer,test_wer,lr,elapsed_s\n1,100,2.0,0.70,0.95,0.001,600\n"
                   "2,200,1.8,0.60,0.90,0.001,600\n")
    md, facts = build_card(model, results, asr, "bash train/build_default_model.sh")
    assert "| m | 0.912 |" in md and "| clean | FAIL |" in md  # tables copied verbatim
    assert "Plot: `" in md and "eval.png`" in md  # a plot beside a table is linked
    assert "sanity.png" not in md  # ... and only when it exists
    assert "CER 0.600" in md and facts["asr_pretraining"]["best_test_cer"] == pytest.approx(0.60)
    assert "CC BY-NC-SA 4.0" in md and "bash train/build_default_model.sh" in md


def test_card_takes_limits_from_beside_the_model_and_probing_from_its_encoder(
        tmp_path: Path, make_tiny_model: Callable[..., Path]) -> None:
    model = make_tiny_model()
    probe = tmp_path / "probing-v2"
    probe.mkdir()
    (probe / "probing.csv").write_text("layer,dimension,pcc\n0,mos,0.600\n1,mos,0.788\n")
    md, _ = build_card(model, tmp_path / "results", tmp_path / "none.csv", "r", probe)
    assert "| 1 | 0.788 |" in md and f"`{probe / 'probing.png'}`" in md
    assert "never saw in training" not in md  # no model-specific limit without its file
    model.with_suffix(".limits.md").write_text("- Hears only owls.\n")
    md, _ = build_card(model, tmp_path / "results", tmp_path / "none.csv", "r", probe)
    limits = md.split("## Known limits", 1)[1]
    assert "- Hears only owls." in limits and "NISQA v2" in limits  # its own after the method's
