#!/usr/bin/env bash
# Session 11: real noise suppressors in the corpus (issue #13; results/v9/SELECTION.md); resumable.
# Needs session 8's corpus and session 9's manifest (bash train/build_realcall_v6.sh data;
# bash train/build_realcall_v7.sh train) and runs/v040.
# Usage: bash train/build_realcall_v9.sh [data|train|stream|enh2|eval|ship|sdist|ship-stream|all] [CONFIG]
#   data  : 1,600 clips through real suppressors (train/enhanced.py), labelled by NISQA v2 and
#           DistillMOS (three processes), merged with 0.5.0's manifest into cache/sim6/manifest-v9.csv
#   train : ft-v9-enh (0.5.0's recipe on the merged manifest), its snapshot average, the soup with 0.4.0
#   stream: ft-v9-stream (the shipped streaming model's recipe on the merged manifest), its average
#   enh2  : the addendum's run: only the RNNoise and noisereduce clips (cache/sim6/manifest-v9b.csv)
#   sdist : addendum 2 (#18): the streaming model distilled from 0.6.0's scores (ft-v9-sdist)
#   ship-stream: its winner checked (sanity, bootstrap against 0.6.0) and exported as 0.6.0-stream
#   eval  : every candidate on the four human-rated views and the rule (results/v9/selection.md)
#   ship  : the qualifier (soup-v040-v9b) checked by the paired bootstrap and sanity checks, exported as
#           exported/livesqa-small.onnx 0.6.0 with agreement, bench, card and the sample call's scores
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
CFG=${2:-configs/train/small.toml}
mkdir -p cache runs logs
STREAMING="--set model.encoder.causal_conv=true --set model.encoder.positions=\"chunk\" \
  --set model.streaming.enabled=true --set model.streaming.dynamic_chunks=[5,15,25]"
data() {
  [ -f cache/enh/manifest.csv ] || python -m train enhanced --out-dir cache/enh --n-clips 1600
  local pids=()
  for T in nisqa distillmos:0/2 distillmos:1/2; do
    SHARD=${T#*:}; [ "$SHARD" = "$T" ] && SHARD=0/1
    python -m train label --config "$CFG" --manifest cache/enh/manifest.csv --teachers ${T%%:*} --no-dnsmos \
      --mos-combination mean --shard $SHARD > "logs/label-enh-${T/\//of}.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  python - <<'PY'
# 0.5.0's manifest unchanged + the enhanced clips, MOS = 2/3 NISQA + 1/3 DistillMOS (as manifest-w23)
import csv
base = list(csv.DictReader(open("cache/sim6/manifest-w23.csv", newline="", encoding="utf-8")))
enh = list(csv.DictReader(open("cache/enh/manifest.csv", newline="", encoding="utf-8")))
missing = [r["filename_deg"] for r in enh if not r.get("nisqa_mos") or not r.get("distillmos_mos")]
if missing:
    raise SystemExit(f"cache/enh/manifest.csv: {len(missing)} clips lack a teacher label, e.g. {missing[:3]}")
for r in enh:
    r["filepath_deg"] = "../enh/" + r["filepath_deg"]
    r["mos"] = f"{2 / 3 * float(r['nisqa_mos']) + 1 / 3 * float(r['distillmos_mos']):.6f}"
with open("cache/sim6/manifest-v9.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(base[0]), extrasaction="ignore")
    w.writeheader()
    w.writerows(base + enh)
print(f"cache/sim6/manifest-v9.csv: {len(base)} + {len(enh)} rows")
PY
}
finetune() {  # RUN [--set ...]: 0.5.0's recipe (0.4.0 + 2,000 cosine steps) on the merged manifest
  local run=$1; shift
  python -m train finetune --config "$CFG" --set finetune.run="$run" \
    --set finetune.manifest=cache/sim6/manifest-v9.csv --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v040/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=2000 --set finetune.max_steps=2000 --set finetune.lr=5e-4 \
    --set finetune.encoder_lr=2e-4 --set finetune.crop_s=0 --set finetune.max_minutes=170 \
    --set finetune.val_minutes=8 --set finetune.val_max_clips=400 --set finetune.snapshots=true "$@" \
    >> "logs/$run.log" 2>&1
}
train() {
  finetune ft-v9-enh
  python -m train average --run runs/ft-v9-enh --last 4 --out runs/ft-v9-enh-avg/best.pt
  python -m train average --checkpoints runs/v040/best.pt runs/ft-v9-enh-avg/best.pt --out runs/soup-v040-v9/best.pt
}
enh2() {  # addendum: RNNoise and noisereduce clips only (anlmdn/afwtdn dropped)
  python - <<'PY'
import csv
rows = list(csv.DictReader(open("cache/sim6/manifest-v9.csv", newline="", encoding="utf-8")))
keep = [r for r in rows if r["db"] != "enhanced" or r["con"] in ("rnnoise", "nr-stationary", "nr-nonstationary")]
with open("cache/sim6/manifest-v9b.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(keep)
PY
  finetune ft-v9-enh2 --set finetune.manifest=cache/sim6/manifest-v9b.csv
  python -m train average --run runs/ft-v9-enh2 --last 4 --out runs/ft-v9-enh2-avg/best.pt
  python -m train average --checkpoints runs/v040/best.pt runs/ft-v9-enh2-avg/best.pt --out runs/soup-v040-v9b/best.pt
}
stream() {
  finetune ft-v9-stream $STREAMING
  python -m train average --run runs/ft-v9-stream --last 4 --out runs/ft-v9-stream-avg/best.pt
}
evaluate() {
  local models='"runs/soup-v040-v7/best.pt","runs/ft-v9-enh/best.pt","runs/ft-v9-enh/last.pt","runs/ft-v9-enh-avg/best.pt","runs/soup-v040-v9/best.pt","runs/ft-v9-enh2/best.pt","runs/ft-v9-enh2/last.pt","runs/ft-v9-enh2-avg/best.pt","runs/soup-v040-v9b/best.pt"'
  [ -f runs/ft-v9-stream-avg/best.pt ] && models+=',"runs/ft-v7-stream2k/best.pt","runs/ft-v9-stream/best.pt","runs/ft-v9-stream/last.pt","runs/ft-v9-stream-avg/best.pt"'
  python -m train evaluate --config "$CFG" --set "evaluate.models=[$models]" \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=results/v9/eval
  python results/v9/apply_rule.py --eval results/v9/eval/eval.csv > results/v9/selection.md
}
sdist() {  # addendum 2: targets = 0.6.0's scores on each clip; init the shipped streaming checkpoint
  [ -f cache/sim6/manifest-v9s.csv ] || python - <<'PY'
import csv
from pathlib import Path

from tqdm import tqdm

from livesqa.spec import DIMENSIONS
from train.evaluate import _load_native
from train.scorers import CheckpointScorer

scorer = CheckpointScorer("runs/soup-v040-v9b/best.pt")
base = Path("cache/sim6")
rows = list(csv.DictReader(open(base / "manifest-v9b.csv", newline="", encoding="utf-8")))
for r in tqdm(rows, desc="0.6.0 targets", unit="clip"):
    if not r["mos"]:
        continue  # unlabelled rows stay unlabelled
    wav, rate = _load_native(base / r["filepath_deg"])
    for d, v in zip(DIMENSIONS, scorer.score(wav, rate)):
        r[d] = f"{v:.6f}"
    r["teacher"] = "livesqa-small-0.6.0"
with open(base / "manifest-v9s.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
PY
  finetune ft-v9-sdist $STREAMING --set finetune.manifest=cache/sim6/manifest-v9s.csv \
    --set finetune.init_checkpoint=runs/ft-v7-stream2k/best.pt --set finetune.total_steps=1200 \
    --set finetune.max_steps=1200 --set finetune.lr=2.5e-4 --set finetune.encoder_lr=1e-4
  python -m train average --run runs/ft-v9-sdist --last 4 --out runs/ft-v9-sdist-avg/best.pt
}
ship_stream() {  # addendum 2's winner (ft-v9-sdist@last) as the opt-in streaming file
  python -m train sanity --config "$CFG" --model runs/ft-v9-sdist/last.pt --strict --set sanity.out_dir=results/v9/sanity-sdist \
    > results/v9/sanity-sdist.txt
  python results/eval/paired_bootstrap.py --reference soup-v040-v9b runs/soup-v040-v9b/best.pt runs/ft-v9-sdist/last.pt \
    runs/ft-v7-stream2k/best.pt > results/v9/bootstrap-sdist.md
  python -m train export-streaming --checkpoint runs/ft-v9-sdist/last.pt --out exported/livesqa-small-stream.onnx \
    --name livesqa-small-stream --version 0.6.0-stream --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)"
}
ship() {
  [ -f cache/livesqa-small-0.5.0.onnx ] || git show 237e990:exported/livesqa-small.onnx > cache/livesqa-small-0.5.0.onnx
  python results/eval/paired_bootstrap.py --reference soup-v040-v7 runs/soup-v040-v7/best.pt runs/soup-v040-v9b/best.pt \
    > results/v9/bootstrap-v9b.md
  python -m train sanity --config "$CFG" --model runs/soup-v040-v9b/best.pt --strict --set sanity.out_dir=results/v9/sanity-v9b \
    > results/v9/sanity-v9b.txt
  python -m train export --checkpoint runs/soup-v040-v9b/best.pt --out exported/livesqa-small.onnx --name livesqa-small \
    --version 0.6.0 --training-data "uniform weight average of livesqa-small 0.4.0 (simulated corpus cache/sim, 25,000 clips, labels NISQA v2) and ft-v9-enh2 (0.4.0 fine-tuned 2,000 steps on cache/sim6 + cache/enh: 7,200 simulated clips of the real-call and 0.4.0 catalogues, 2,062 windows of real AEC-challenge recordings, 971 clips of noisy speech through real noise suppressors (RNNoise, noisereduce); MOS = 2/3 NISQA v2 + 1/3 DistillMOS, NOI/COL/DIS/LOUD = NISQA v2)"
  python -m train sanity --config "$CFG" --model exported/livesqa-small.onnx --teacher-reference --strict
  mkdir -p results/v9/sanity results/v9/bench && cp results/sanity/sanity.md results/sanity/sanity.json results/v9/sanity/
  python -m train agreement --model cache/livesqa-small-0.5.0.onnx --model exported/livesqa-small.onnx \
    --corpus cache/sim6/manifest.csv --sim-max 400 --out-dir results/v9/agreement
  python -m train bench --models exported/livesqa-small.onnx cache/livesqa-small-0.5.0.onnx \
    --nisqa "${LIVESQA_DATA_ROOT:-../shared/data}/weights/nisqa/nisqa.tar" > results/v9/bench/bench.md
  python -m train evaluate --config "$CFG" --set 'evaluate.models=["runs/soup-v040-v7/best.pt","runs/soup-v040-v9b/best.pt"]' \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=results/v9/eval
  python -m train card --model exported/livesqa-small.onnx --results results/v9 --asr-from-card exported/livesqa-small.card.json \
    --probing results/probing-asr-small-v2 --recipe train/build_realcall_v9.sh
  python -m train.make_sample_call --scores-only                     # livesqa/assets/sample_call.md
}
case $STAGE in
  data) data ;; train) train ;; enh2) enh2 ;; stream) stream ;; eval) evaluate ;; ship) ship ;; sdist) sdist ;; ship-stream) ship_stream ;;
  all) data; train; stream; enh2; evaluate; ship; sdist; ship_stream ;;
  *) echo "usage: bash train/build_realcall_v9.sh [data|train|enh2|stream|eval|ship|all] [CONFIG]" >&2; exit 2 ;;
esac
