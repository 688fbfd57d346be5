"""Tiny end-to-end runs of every training stage on generated data (seconds each)."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
sf = pytest.importorskip("soundfile")

from livesqa.errors import ConfigError
from train import evaluate, finetune, pretrain_asr, probe, sanity
from train.checkpoint import load_checkpoint, load_model
from train.data import read_quality_manifest
from train.metrics import per_dimension
from train.scorers import CheckpointScorer

SR = 16000
DIMS = ["mos", "noi", "col", "dis", "loud"]


def _tone(seconds: float, freq_hz: float, rng: np.random.Generator, snr_db: float = 30.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    s = 0.2 * np.sin(2 * np.pi * freq_hz * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    n = rng.standard_normal(t.size)
    n *= np.sqrt((s**2).mean() / (n**2).mean() / 10 ** (snr_db / 10))
    return (s + n).astype(np.float32)


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ASR manifest (4 utterances), simulated corpus (12 clips), fake P.835 folder, tiny config."""
    root = tmp_path_factory.mktemp("stages")
    rng = np.random.default_rng(0)
    asr_rows = []
    for i, (text, split) in enumerate([("HELLO", "train"), ("A B", "train"), ("WORLD", "train"),
                                       ("HI", "train"), ("HI THERE", "test")]):
        path = root / f"asr{i}.flac"
        sf.write(str(path), _tone(0.6 + 0.1 * i, 200 + 150 * i, rng), SR)
        asr_rows.append({"path": str(path), "text": text, "speaker": f"s{i}", "split": split,
                         "duration_s": 0.6 + 0.1 * i, "source": "test"})
    _write_csv(root / "asr.csv", asr_rows)

    (root / "sim" / "deg").mkdir(parents=True)
    sim_rows = []
    splits = ["train"] * 6 + ["val"] * 3 + ["test"] * 3
    for i, split in enumerate(splits):
        snr = float(rng.uniform(-5, 30))
        sf.write(str(root / "sim" / "deg" / f"c{i}.flac"), _tone(1.0, 300, rng, snr), SR)
        q = 1 + 4 * min(max((snr + 5) / 35, 0), 1)
        sim_rows.append({"db": "sim", "con": i, "filepath_deg": f"deg/c{i}.flac", "filename_deg": f"c{i}.flac",
                         "source": "x", "mos": q, "noi": q, "col": 4.0 - 0.1 * (i % 3),
                         "dis": "" if i % 2 else 4.5, "loud": 3.5, "split": split, "teacher": "fake",
                         "condition": f"noise@{snr:.0f}", "duration_s": 1.0})
    _write_csv(root / "sim" / "manifest.csv", sim_rows)

    p835 = root / "data" / "dev" / "p835"
    (p835 / "degraded_WB_16KHz").mkdir(parents=True)
    rows = []
    for i, snr in enumerate([0.0, 10.0, 20.0, 30.0]):
        sf.write(str(p835 / "degraded_WB_16KHz" / f"c{i}.flac"), _tone(0.8, 250, rng, snr), SR)
        rows.append({"file": f"degraded_WB_16KHz/c{i}.flac", "set": "degraded_WB_16KHz", "condition": f"c{i}",
                     "snr_db": snr, "mnru_q_db": "", "n_votes": 5, "sig": 2 + i / 2, "bak": 1 + i,
                     "ovrl": 1.5 + i, "sig_std": 0, "bak_std": 0, "ovrl_std": 0})
    _write_csv(p835 / "labels.csv", rows)

    (root / "tiny.toml").write_text(f"""
[model.frontend]
n_mels = 40
[model.encoder]
n_layers = 2
d_model = 32
n_heads = 2
conv_kernel = 7
dropout = 0.0
[model.head]
pool_hidden = 16
[asr]
run = "asr"
runs_dir = "{root}/runs"
manifest = "{root}/asr.csv"
epochs = 3
lr = 3e-3
warmup_steps = 1
batch_s = 1.6
log_every = 1
spec_augment = false
device = "cpu"
[finetune]
runs_dir = "{root}/runs"
manifest = "{root}/sim/manifest.csv"
asr_checkpoint = "{root}/runs/asr/best.pt"
epochs = 3
batch_size = 6
warmup_steps = 1
log_every = 1
device = "cpu"
[probe]
runs_dir = "{root}/runs"
manifest = "{root}/sim/manifest.csv"
asr_checkpoint = "{root}/runs/asr/best.pt"
cache_dir = "{root}/cache/probe"
out_dir = "{root}/results/probing"
hidden = 8
max_epochs = 3
batch_size = 4
device = "cpu"
[evaluate]
models = ["{root}/runs/ft-asr-la/best.pt"]
peers = []
datasets = ["sim-test", "p835-wb"]
manifest = "{root}/sim/manifest.csv"
out_dir = "{root}/results/eval"
cache_dir = "{root}/cache/eval"
[sanity]
manifest = "{root}/asr.csv"
n_clips = 2
snr_db = [20.0, 0.0]
loss_rates = [0.0, 0.3]
out_dir = "{root}/results/sanity"
""")
    return root


def _cfg(work: Path) -> list[str]:
    return ["--config", str(work / "tiny.toml")]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def asr_run(work: Path) -> Path:
    assert pretrain_asr.main(_cfg(work)) == 0
    return work / "runs" / "asr"


def test_pretrain_asr_loss_falls_and_resumes(work: Path, asr_run: Path) -> None:
    steps = _rows(asr_run / "steps.csv")
    losses = [float(r["loss"]) for r in steps]
    n = len(steps)
    assert n == 3 * 3  # 4 train clips in batches of 1.6 padded seconds: 3 batches per epoch
    assert all(math.isfinite(v) for v in losses)
    epochs = _rows(asr_run / "metrics.csv")
    assert [float(r["epochs_done"]) for r in epochs] == [1, 2, 3] and 0 <= float(epochs[-1]["test_cer"]) <= 1.5
    epoch_losses = [float(r["train_loss"]) for r in epochs]  # same clips each epoch: overfitting
    assert epoch_losses[-1] < 0.8 * epoch_losses[0]
    assert (asr_run / "config.resolved.toml").read_text().count("[asr]") == 1
    ckpt = load_checkpoint(asr_run / "last.pt")
    assert ckpt["stage"] == "asr" and ckpt["step"] == n and ckpt["extra"]["epoch"] == 3
    # two more epochs: resumes at the saved step and continues the numbering
    assert pretrain_asr.main([*_cfg(work), "--set", "asr.epochs=5"]) == 0
    steps = _rows(asr_run / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, n + 7))
    assert "resumed from" in (asr_run / "train.log").read_text()
    assert load_checkpoint(asr_run / "last.pt")["step"] == n + 6


def test_pretrain_asr_budget_stops_mid_epoch_and_resumes_there(work: Path) -> None:
    args = [*_cfg(work), "--set", "asr.run=asr-budget", "--set", "asr.epochs=1"]
    assert pretrain_asr.main([*args, "--set", "asr.max_minutes=1e-9"]) == 0
    run = work / "runs" / "asr-budget"
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 1 and ckpt["extra"]["epoch"] == 0 and ckpt["extra"]["batch"] == 1
    # stopping by budget still evaluates, so a short run always leaves a best.pt behind
    (row,) = _rows(run / "metrics.csv")
    assert float(row["epochs_done"]) == pytest.approx(1 / 3, abs=1e-4) and (run / "best.pt").exists()
    assert pretrain_asr.main(args) == 0
    assert load_checkpoint(run / "last.pt")["step"] == 3  # the remaining 2 batches, not 3
    assert len(_rows(run / "metrics.csv")) == 2


def test_spec_augment_masks_only_in_training() -> None:
    cfg = pretrain_asr.AsrConfig(freq_masks=1, freq_mask_bins=5, time_masks=1, time_mask_frames=10)
    aug = pretrain_asr.SpecAugment(cfg, seed=0)
    feats = torch.ones(2, 50, 40)
    module = torch.nn.Identity()
    masked, _ = aug(module, (), (feats, torch.tensor([50, 30])))
    assert masked.sum() < feats.sum() and masked.max() == 1.0
    # past the valid frames only the frequency band is masked: every padded frame looks the same
    assert (masked[1, 30:] == masked[1, 49]).all() and masked[1, 49].sum() >= 40 - 5
    module.eval()
    same, _ = aug(module, (), (feats, torch.tensor([50, 30])))
    assert torch.equal(same, feats)


def test_learning_rate_schedules() -> None:
    noam = pretrain_asr.AsrConfig(lr=1e-3, warmup_steps=10)
    assert pretrain_asr.learning_rate(noam, 0, 100) == pytest.approx(1e-4)
    assert pretrain_asr.learning_rate(noam, 9, 100) == pytest.approx(1e-3)
    assert pretrain_asr.learning_rate(noam, 39, 100) == pytest.approx(5e-4)
    cos = pretrain_asr.AsrConfig(lr=1e-3, warmup_steps=10, schedule="cosine")
    assert pretrain_asr.learning_rate(cos, 100, 100) == pytest.approx(0.0, abs=1e-12)


@pytest.fixture(scope="module")
def ft_run(work: Path, asr_run: Path) -> Path:
    assert finetune.main(_cfg(work)) == 0
    return work / "runs" / "ft-asr-la"


def test_finetune_trains_validates_and_resumes(work: Path, ft_run: Path) -> None:
    log = (ft_run / "train.log").read_text()
    assert "encoder initialised from" in log
    epochs = _rows(ft_run / "metrics.csv")
    assert len(epochs) == 3
    assert {f"val_pcc_{d}" for d in DIMS} <= set(epochs[0]) and {f"sigma_{d}" for d in DIMS} <= set(epochs[0])
    losses = [float(r["train_loss"]) for r in epochs]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    best = load_checkpoint(ft_run / "best.pt")
    assert best["stage"] == "quality" and "mos" in best["extra"]["val"]
    assert "teacher labels: fake" in best["extra"]["training_data"] and best["extra"]["licence"] == "unknown"
    assert finetune.main([*_cfg(work), "--set", "finetune.epochs=4"]) == 0
    assert load_checkpoint(ft_run / "last.pt")["step"] == 4
    assert len(_rows(ft_run / "metrics.csv")) == 4


def test_finetune_paper_rows_are_one_key_overrides(work: Path, ft_run: Path) -> None:
    one = ["--set", "finetune.epochs=1"]
    assert finetune.main([*_cfg(work), *one, "--set", "model.head.layer_attention=false"]) == 0
    assert finetune.main([*_cfg(work), *one, "--set", "finetune.init=scratch"]) == 0
    last = load_checkpoint(work / "runs" / "ft-asr-last" / "best.pt")
    assert last["model_config"]["head"]["layer_attention"] is False
    scratch_log = (work / "runs" / "ft-scratch-la" / "train.log").read_text()
    assert "encoder initialised" not in scratch_log and "init scratch" in scratch_log


def test_probe_writes_table_plot_and_faithful_cache(work: Path, asr_run: Path) -> None:
    assert probe.main(_cfg(work)) == 0
    out = work / "results" / "probing"
    rows = _rows(out / "probing.csv")
    assert [(int(r["layer"]), r["dimension"]) for r in rows] == [(l, d) for l in range(3) for d in DIMS]
    assert int(rows[0]["n_test"]) == 3 and math.isfinite(float(rows[0]["rmse"]))
    assert (out / "probing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the cache holds exactly what the frozen encoder computes for each clip
    (cache,) = (work / "cache" / "probe").iterdir()
    model, _, _ = load_model(asr_run / "best.pt")
    items = read_quality_manifest(work / "sim" / "manifest.csv", "test")
    wav, _ = sf.read(str(items[1].path), dtype="float32")
    with torch.no_grad():
        enc = model.encode(torch.from_numpy(wav)[None])
    for layer in (0, 2):
        feats = probe.load_layer(cache / "test", layer)
        x, lens, _, _ = feats.batch([1])
        assert int(lens[0]) == enc.layers[layer].shape[1]
        assert torch.allclose(x[0], enc.layers[layer][0], atol=2e-2, rtol=1e-2)
    # a rerun reuses the cache instead of encoding again
    assert probe.main(_cfg(work)) == 0
    assert (work / "runs" / "probe-small" / "train.log").read_text().count("encoding") == 3


def test_evaluate_tables_match_direct_scoring(work: Path, ft_run: Path) -> None:
    assert evaluate.main([*_cfg(work), "--data-root", str(work / "data")]) == 0
    rows = _rows(work / "results" / "eval" / "eval.csv")
    assert {(r["dataset"], r["model"]) for r in rows} == {("sim-test", "ft-asr-la"), ("p835-wb", "ft-asr-la")}
    assert len(rows) == 10
    scorer = CheckpointScorer(ft_run / "best.pt")
    files = sorted((work / "data" / "dev" / "p835" / "degraded_WB_16KHz").glob("*.flac"))
    pred = np.array([scorer.score(sf.read(str(f), dtype="float32")[0], SR)[0] for f in files])
    ovrl = np.array([1.5, 2.5, 3.5, 4.5])
    expected = np.corrcoef(pred, ovrl)[0, 1]
    got = next(float(r["pcc"]) for r in rows if r["dataset"] == "p835-wb" and r["dimension"] == "mos")
    assert got == pytest.approx(expected, abs=1e-3)
    dis = next(r for r in rows if r["dataset"] == "p835-wb" and r["dimension"] == "dis")
    assert int(dis["n"]) == 0  # P.835 has no DIS label
    md = (work / "results" / "eval" / "eval.md").read_text()
    assert "| ft-asr-la |" in md and "DIS PCC" not in md.split("### p835-wb")[1]
    assert (work / "results" / "eval" / "eval.png").read_bytes()[:4] == b"\x89PNG"


def test_peer_scores_are_cached(tmp_path: Path, work: Path) -> None:
    class CountingScorer:
        name = "Fake"
        calls = 0

        def score(self, wav: np.ndarray, sample_rate_hz: int) -> np.ndarray:
            CountingScorer.calls += 1
            return np.array([float(np.sqrt(np.mean(wav**2))), 1.0, 2.0, math.nan, math.nan])

    ds = evaluate.p835_set(work / "data" / "dev" / "p835" / "labels.csv", "p835-wb")
    first = evaluate.score_set(CountingScorer(), ds, tmp_path / "fake.csv")
    again = evaluate.score_set(CountingScorer(), ds, tmp_path / "fake.csv")
    assert CountingScorer.calls == 4 and np.allclose(first, again, equal_nan=True)
    assert ds.targets[:, 0].tolist() == [1.5, 2.5, 3.5, 4.5] and np.isnan(ds.targets[:, 3]).all()


def test_sanity_checks_logic_on_known_scores() -> None:
    cfg = sanity.SanityConfig(snr_db=(30.0, 10.0, 0.0), loss_rates=(0.0, 0.2))
    def row(mos: float = 4, noi: float = 4, col: float = 4, dis: float = 4, loud: float = 4) -> dict[str, float]:
        return {"mos": mos, "noi": noi, "col": col, "dis": dis, "loud": loud}

    good = {"clean": row(4.2, 4.5, 4.4, 4.6, 4.3), "noise@30dB": row(mos=4.0, noi=4.3),
            "noise@10dB": row(mos=3.0, noi=2.9), "noise@0dB": row(mos=2.0, noi=1.5),
            "loss@0": row(dis=4.6), "loss@0.2": row(mos=3, dis=2.5), "narrowband": row(mos=3, col=3.1),
            "quiet": row(mos=3, loud=2.0), "loud-clipped": row(mos=3, loud=2.5)}
    assert all(c.passed for c in sanity.run_checks(cfg, good))
    bad = {**good, "noise@10dB": {**good["noise@10dB"], "noi": 4.6}, "quiet": {**good["quiet"], "loud": 4.3}}
    failed = {c.name for c in sanity.run_checks(cfg, bad) if not c.passed}
    assert failed == {"noise lowers NOI", "extreme level lowers LOUD"}
    assert sanity.decreasing([3.0, 3.04, 2.0], 0.05) and not sanity.decreasing([3.0, 3.0], 0.05)


def test_sanity_end_to_end_on_checkpoint(work: Path, ft_run: Path) -> None:
    code = sanity.main([*_cfg(work), "--model", str(ft_run / "best.pt")])
    assert code == 0
    report = json.loads((work / "results" / "sanity" / "sanity.json").read_text())
    assert report["n_clips"] == 1 and len(report["checks"]) == 6  # the test split holds one utterance
    assert set(report["scores"]) == {"clean", "noise@20dB", "noise@0dB", "loss@0", "loss@0.3",
                                     "narrowband", "quiet", "loud-clipped"}
    assert all(1.0 <= v <= 5.0 for row in report["scores"].values() for v in row.values())
    assert "checks passed" in (work / "results" / "sanity" / "sanity.md").read_text()


def test_finetune_budget_stop_still_validates(work: Path, asr_run: Path) -> None:
    args = [*_cfg(work), "--set", "finetune.run=ft-budget", "--set", "finetune.batch_size=2",
            "--set", "finetune.max_minutes=1e-9"]
    assert finetune.main(args) == 0
    run = work / "runs" / "ft-budget"
    (row,) = _rows(run / "metrics.csv")
    assert float(row["epochs_done"]) == pytest.approx(1 / 3, abs=1e-4)
    best = load_checkpoint(run / "best.pt")
    assert best["step"] == 1 and best["extra"]["batch"] == 1 and math.isfinite(best["extra"]["val"]["noi"]["rmse"])


@pytest.mark.parametrize("config", ["configs/train/small.toml", "configs/train/paper.toml"])
def test_shipped_configs_build_every_loop_section(config: str) -> None:
    from train.config import ModelConfig, build, load_toml

    path = Path(__file__).resolve().parents[2] / config
    for row, (init, la) in {"ft-asr-la": ("asr", True), "ft-asr-last": ("asr", False),
                            "ft-scratch-la": ("scratch", True)}.items():
        overrides = [f"finetune.init={init}", f"model.head.layer_attention={str(la).lower()}"]
        cfg = load_toml(path, overrides)
        ft = build(finetune.FinetuneConfig, cfg["finetune"])
        assert finetune.run_name(ft, ModelConfig.from_dict(cfg["model"])) == row
    cfg = load_toml(path)
    for section, cls in [("asr", pretrain_asr.AsrConfig), ("probe", probe.ProbeConfig),
                         ("evaluate", evaluate.EvaluateConfig), ("sanity", sanity.SanityConfig)]:
        assert isinstance(build(cls, cfg[section]), cls)
    # evaluate's rows are checkpoints of this config's runs: the paper's three rows (paper.toml),
    # or the rows of the latest selection (small.toml: 0.4.0 and session 8's candidates)
    runs_dir = cfg["finetune"].get("runs_dir", "runs")
    models = list(build(evaluate.EvaluateConfig, cfg["evaluate"]).models)
    assert models and all(m.startswith(f"{runs_dir}/") and m.endswith(("/best.pt", "/last.pt")) for m in models)
    if "paper" in config:
        assert models[:3] == [f"{runs_dir}/{r}/best.pt" for r in ("ft-asr-la", "ft-asr-last", "ft-scratch-la")]


def test_onnx_export_scores_like_the_checkpoint(work: Path, ft_run: Path) -> None:
    """evaluate/sanity accept ONNX files: same scores as the torch checkpoint (parity)."""
    from livesqa.spec import ModelSpec
    from train.export import export_onnx
    from train.scorers import model_scorer

    model, _, _ = load_model(ft_run / "best.pt")
    spec = ModelSpec(name="tiny", version="0", sample_rate_hz=SR, window_samples=SR, hop_samples=SR // 2)
    onnx_path = export_onnx(model, work / "tiny.onnx", spec)
    wav = _tone(1.3, 440, np.random.default_rng(5), snr_db=10)
    torch_scores = model_scorer(ft_run / "best.pt").score(wav, SR)
    onnx_scores = model_scorer(onnx_path).score(wav, SR)
    assert onnx_scores.shape == (5,) and np.allclose(onnx_scores, torch_scores, atol=1e-3)
    # resampling happens inside the scorer: a 48 kHz copy scores (almost) the same
    from livesqa.audio import resample

    assert np.allclose(model_scorer(onnx_path).score(resample(wav, SR, 48000), 48000), onnx_scores, atol=0.05)


def test_finetune_warm_start_copies_every_weight(work: Path, ft_run: Path) -> None:
    src = load_checkpoint(ft_run / "best.pt")
    args = [*_cfg(work), "--set", "finetune.run=ft-warm", "--set", "finetune.init=checkpoint",
            "--set", f"finetune.init_checkpoint={ft_run / 'best.pt'}", "--set", "finetune.epochs=1",
            "--set", "finetune.lr=1e-12", "--set", "finetune.encoder_lr=1e-12"]
    assert finetune.main(args) == 0
    warm = load_checkpoint(work / "runs" / "ft-warm" / "last.pt")
    for name, tensor in src["state_dict"].items():  # lr ~0: nothing moved from the source
        assert torch.allclose(tensor.float(), warm["state_dict"][name].float(), atol=1e-8), name
    assert "warm start from" in (work / "runs" / "ft-warm" / "train.log").read_text()


def test_cosine_schedule_warms_up_then_decays_to_its_floor() -> None:
    cfg = finetune.FinetuneConfig(warmup_steps=10, schedule="cosine", total_steps=110, min_lr_fraction=0.1)
    assert finetune.lr_factor(cfg, 0) == pytest.approx(0.1)
    assert finetune.lr_factor(cfg, 10) == pytest.approx(1.0)
    assert finetune.lr_factor(cfg, 60) == pytest.approx(0.55)
    assert finetune.lr_factor(cfg, 110) == pytest.approx(0.1)
    assert finetune.lr_factor(cfg, 500) == pytest.approx(0.1)
    steps = [finetune.lr_factor(cfg, s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(steps, steps[1:]))
    with pytest.raises(ValueError):
        finetune.FinetuneConfig(schedule="cosine", total_steps=0)
    with pytest.raises(ValueError):
        finetune.FinetuneConfig(init="checkpoint")


def test_sanity_report_shows_the_teacher_beside_the_checks() -> None:
    row = dict.fromkeys(DIMS, 3.0)
    checks = [sanity.Check("clean scores high", False, "clean MOS 3.00 >= 3.5", {})]
    text = sanity.report("m.onnx", {"clean": row}, checks, 8, reference={"clean": dict.fromkeys(DIMS, 3.6)})
    assert "| clean | 3.00 | 3.00 | 3.00 | 3.00 | 3.00 |" in text
    assert "NISQA v2, on the very same signals" in text and "| clean | 3.60 |" in text
    assert "NISQA" not in sanity.report("m.onnx", {"clean": row}, checks, 8)


def test_step_policy_stops_evaluates_and_checkpoints_on_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from train import rundir

    now = [0.0]
    monkeypatch.setattr(rundir.time, "monotonic", lambda: now[0])
    policy = rundir.StepPolicy(10.0, checkpoint_minutes=1.0, eval_minutes=3.0, log=logging.getLogger("t"))
    calls: list[str] = []

    def step_at(minute: float) -> bool:
        now[0] = minute * 60.0
        return policy.after_step(0, lambda: calls.append("eval"), lambda: calls.append("save"))

    assert not step_at(0.5) and calls == []
    assert not step_at(1.0) and calls == ["save"]
    assert not step_at(3.0) and calls == ["save", "eval"]  # eval due wins over a checkpoint
    now[0] = 3.5 * 60.0
    policy.end_of_epoch(lambda: calls.append("epoch-eval"), lambda: calls.append("epoch-save"))
    assert not step_at(6.0) and calls[-1] == "save"  # eval period restarted at the epoch's end
    assert not step_at(6.6) and calls[-1] == "eval"
    n = len(calls)
    now[0] = 6.7 * 60.0  # 0.1 min after the periodic evaluation: the epoch's end only saves last.pt
    policy.end_of_epoch(lambda: calls.append("epoch-eval"), lambda: calls.append("epoch-save"))
    assert calls[n:] == ["epoch-save"]
    assert step_at(10.0) and calls[-1] == "eval"  # budget spent: evaluate and stop


def test_step_policy_stops_at_max_steps_whatever_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from train import rundir

    monkeypatch.setattr(rundir.time, "monotonic", lambda: 0.0)
    policy = rundir.StepPolicy(10.0, checkpoint_minutes=1.0, eval_minutes=3.0, log=logging.getLogger("t"),
                               max_steps=5)
    calls: list[str] = []
    assert not policy.after_step(4, lambda: calls.append("eval"), lambda: calls.append("save"))
    assert policy.after_step(5, lambda: calls.append("eval"), lambda: calls.append("save"))
    assert calls == ["eval"]
    assert not rundir.StepPolicy(10.0, 1.0, 3.0, logging.getLogger("t")).steps_done(10**9)  # 0 = no limit


def test_snapshots_average_to_the_elementwise_mean(work: Path, ft_run: Path) -> None:
    from train import average

    args = [*_cfg(work), "--set", "finetune.run=ft-snap", "--set", "finetune.init=checkpoint",
            "--set", f"finetune.init_checkpoint={ft_run / 'best.pt'}", "--set", "finetune.epochs=3",
            "--set", "finetune.snapshots=true"]
    assert finetune.main(args) == 0
    snaps = sorted((work / "runs" / "ft-snap" / "snapshots").glob("step-*.pt"))
    assert [p.name for p in snaps] == ["step-000001.pt", "step-000002.pt", "step-000003.pt"]
    out = work / "runs" / "ft-snap" / "avg.pt"
    assert average.main(["--run", str(work / "runs" / "ft-snap"), "--last", "2", "--out", str(out)]) == 0
    a, b, avg = (load_checkpoint(p) for p in (snaps[1], snaps[2], out))
    moved = 0
    for name, tensor in avg["state_dict"].items():
        want = (a["state_dict"][name].double() + b["state_dict"][name].double()) / 2
        assert torch.allclose(tensor.double(), want, atol=1e-6), name
        moved += int(not torch.equal(a["state_dict"][name], b["state_dict"][name]))
    assert moved > 0  # the two snapshots differ, so the mean is a new point
    assert avg["extra"]["averaged_from"] == [str(snaps[1]), str(snaps[2])]
    model, _, _ = load_model(out)  # loads as an ordinary quality model
    assert model.quality_head is not None


def test_weighted_average_interpolates_between_two_checkpoints(work: Path, ft_run: Path) -> None:
    """--weights 3 1 lands a quarter of the way from the first checkpoint to the second (WiSE-FT)."""
    from train import average

    args = [*_cfg(work), "--set", "finetune.run=ft-wise", "--set", "finetune.init=checkpoint",
            "--set", f"finetune.init_checkpoint={ft_run / 'best.pt'}", "--set", "finetune.epochs=2"]
    assert finetune.main(args) == 0
    start, tuned = ft_run / "best.pt", work / "runs" / "ft-wise" / "last.pt"
    out = work / "wise.pt"
    assert average.main(["--checkpoints", str(start), str(tuned), "--weights", "3", "1", "--out", str(out)]) == 0
    a, b, mid = (load_checkpoint(p) for p in (start, tuned, out))
    moved = 0
    for name, tensor in mid["state_dict"].items():
        want = 0.75 * a["state_dict"][name].double() + 0.25 * b["state_dict"][name].double()
        assert torch.allclose(tensor.double(), want, atol=1e-6), name
        moved += int(not torch.equal(a["state_dict"][name], b["state_dict"][name]))
    assert moved > 0
    assert mid["extra"]["averaged_weights"] == [0.75, 0.25]


def test_average_refuses_weights_that_do_not_match(work: Path, ft_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from train.__main__ import main as train_main

    ckpt = str(ft_run / "best.pt")
    for weights in (["1"], ["-1", "2"], ["0", "0"]):
        assert train_main(["average", "--checkpoints", ckpt, ckpt, "--weights", *weights, "--out", str(work / "w.pt")]) == 2
        assert "--weights" in capsys.readouterr().err
    assert not (work / "w.pt").exists()


def test_finetune_stops_at_max_steps_with_a_validation_and_resumes_to_nothing(work: Path, ft_run: Path) -> None:
    args = [*_cfg(work), "--set", "finetune.run=ft-steps", "--set", "finetune.init=checkpoint",
            "--set", f"finetune.init_checkpoint={ft_run / 'best.pt'}", "--set", "finetune.epochs=5",
            "--set", "finetune.max_steps=2"]
    assert finetune.main(args) == 0
    run = work / "runs" / "ft-steps"
    assert [int(r["step"]) for r in _rows(run / "metrics.csv")] == [1, 2]  # epoch 0's end, then the limit
    assert load_checkpoint(run / "last.pt")["step"] == 2
    assert finetune.main(args) == 0  # rerun: already there, no step taken
    assert load_checkpoint(run / "last.pt")["step"] == 2 and len(_rows(run / "metrics.csv")) == 2
    assert "nothing to do" in (run / "train.log").read_text()


def test_average_refuses_a_run_without_snapshots(work: Path, ft_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from train.__main__ import main as train_main

    assert train_main(["average", "--run", str(ft_run), "--out", str(work / "x.pt")]) == 2
    assert "no snapshots" in capsys.readouterr().err
    assert not (work / "x.pt").exists()


def test_noizeus_set_scores_per_condition_means(tmp_path: Path) -> None:
    """p835-nb: files take their condition's ratings, and metrics run over condition means."""
    openpyxl = pytest.importorskip("openpyxl")
    p835 = tmp_path / "p835"
    (p835 / "degraded_NB_16KHz").mkdir(parents=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "NOIZEUS"
    sheet.append(["condition_name", "SNR (dB)", "MNRU (QdB)", "n", "MOS_BAK", "MOS_SIG", "MOS_OVRL"])
    ratings = {"c1": (4.0, 1.5, 2.0), "c2": (3.0, 3.0, 3.0), "c10": (1.5, 3.5, 2.5)}  # bak, sig, ovrl
    for cond, (bak, sig, ovrl) in ratings.items():
        sheet.append([cond, 40, 8, 60, bak, sig, ovrl])
    sheet.append([None] * 7)
    sheet.append(["MNRU", "Background", "Signal", "Overall"])  # a plot table below: not conditions
    book.save(p835 / "CSP835_Ref_Conditions.xlsx")
    rng = np.random.default_rng(1)
    for spk in ("sp01", "sp02"):
        for cond in (*ratings, "c99"):  # c99 has no rating: left out
            sf.write(str(p835 / "degraded_NB_16KHz" / f"{spk}_{cond}_sn0.flac"), _tone(0.3, 300, rng), SR)

    ds = evaluate.noizeus_set(p835 / "CSP835_Ref_Conditions.xlsx")
    assert len(ds.files) == 6 and sorted(set(ds.groups or [])) == ["c1", "c10", "c2"]
    scores = np.zeros((6, 5))
    scores[:, 0] = [{"c1": 1.0, "c2": 2.0, "c10": 5.0}[g] + (0.5 if "sp01" in f.name else -0.5)
                    for g, f in zip(ds.groups or [], ds.files)]
    pred, target = ds.aggregate(scores), ds.aggregate(ds.targets)
    assert pred.shape == (3, 5) and pred[:, 0].tolist() == [1.0, 2.0, 5.0]  # c1, c2, c10: natural order
    assert target[:, 0].tolist() == [2.0, 3.0, 2.5] and target[:, 1].tolist() == [4.0, 3.0, 1.5]
    assert np.isnan(target[:, 3]).all()  # no DIS rating
    table = per_dimension(pred, target, DIMS)
    assert table["mos"]["n"] == 3 and table["mos"]["pcc"] == pytest.approx(np.corrcoef([1, 2, 5], [2, 3, 2.5])[0, 1])
    with pytest.raises(ConfigError, match="not found"):
        evaluate.noizeus_set(tmp_path / "missing.xlsx")
