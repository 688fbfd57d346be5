#!/usr/bin/env bash
# Session 12: dense distillation of the streaming model (issue #18; results/v10/SELECTION.md); resumable.
# Needs only the shipped files: both 0.6.0 checkpoints are rebuilt from exported/*.onnx.
# Usage: bash train/build_stream_dense_v10.sh [data|targets|train|eval|ship|all] [CONFIG]
#   data   : 4-10 s clips (the v3 real-call and v2 catalogues, noisy speech through real suppressors,
#            real AEC recordings cut into 4-10 s windows) in cache/dense and cache/dense-enh
#   targets: the windowed 0.6.0's scores on the window ending at every whole second of each clip
#   train  : ft-v10-dense: 0.6.0-stream trained so that every row matches those scores
#   eval   : every candidate on the four human-rated views and the rule (results/v10/selection.md)
#   ship   : the rule's winner exported as exported/livesqa-small-stream.onnx 0.6.1-stream, and the bench
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
CFG=${2:-configs/train/small.toml}
mkdir -p cache runs logs
SIM="--set simulate.out_dir=cache/dense --set simulate.seed=20261212 --set simulate.min_clip_s=4 \
  --set simulate.max_clip_s=10 --set simulate.extra_speech=cache/extra-speech/index.csv \
  --set simulate.workers=${WORKERS:-1}"  # WORKERS=2: one process per core (clips are seeded by index)
imports() {
  [ -f runs/v060/best.pt ] || python -m train onnx-import --model exported/livesqa-small.onnx --out runs/v060/best.pt
  [ -f runs/v060-stream/best.pt ] || python -m train onnx-import --model exported/livesqa-small-stream.onnx \
    --out runs/v060-stream/best.pt
}
data() {
  [ -f cache/extra-speech/index.csv ] || python -m train extra-speech
  python -m train simulate --config "$CFG" $SIM --set simulate.families=v3 --set simulate.clean_fraction=0.07 --n-clips 1500
  # clips 1,500.. : 0.4.0's own catalogue (v2, MNRU from the first clip)
  python -m train simulate --config "$CFG" $SIM --set simulate.families=v2 --set simulate.signal_from_clip=0 --n-clips 3000
  grep -q aec_real cache/dense/manifest.csv || python -c "
from pathlib import Path
from train.asr_data import resolve_data_root
from train.real_clips import add_real_clips
print(add_real_clips(Path('cache/dense/manifest.csv'), resolve_data_root(None), max_s=10.0, min_s=4.0, fixed_fraction=0.0))"
  python -m train enhanced --out-dir cache/dense-enh --n-clips 600 --seed 20261212 --seconds 4 10
}
targets() {  # two shards, one per core
  python -m train dense-targets --manifest cache/dense/manifest.csv --manifest cache/dense-enh/manifest.csv \
    --shard 0/2 > logs/dense-targets-0.log 2>&1 &
  python -m train dense-targets --manifest cache/dense/manifest.csv --manifest cache/dense-enh/manifest.csv \
    --shard 1/2 > logs/dense-targets-1.log 2>&1
  wait
}
train() {
  python -m train stream-distill train --run ft-v10-dense --init-checkpoint runs/v060-stream/best.pt \
    --steps 900 --batch-size 12 --max-rows 8 --val-every 150 >> logs/ft-v10-dense.log 2>&1
  python -m train average --run runs/ft-v10-dense --last 4 --out runs/ft-v10-dense-avg/best.pt
}
CANDIDATES="runs/ft-v10-dense/best.pt runs/ft-v10-dense/last.pt runs/ft-v10-dense-avg/best.pt"
evaluate() {
  local sanity=()
  for m in $CANDIDATES; do
    local tag; tag=$(basename "$(dirname "$m")")@$(basename "$m" .pt)
    python -m train sanity --config "$CFG" --model "$m" --strict --set sanity.out_dir="results/v10/sanity-$tag" \
      > "results/v10/sanity-$tag.txt" 2>&1 || true
    sanity+=("$( [ "${m##*/}" = best.pt ] && basename "$(dirname "$m")" || echo "$tag" )=results/v10/sanity-$tag.txt")
  done
  python results/eval/paired_bootstrap.py --reference v060 runs/v060/best.pt runs/v060-stream/best.pt $CANDIDATES \
    --json results/v10/bootstrap.json > results/v10/bootstrap.md
  python results/v10/apply_rule.py --bootstrap results/v10/bootstrap.json --sanity "${sanity[@]}" > results/v10/selection.md
  python -m train stream-distill agree --model runs/v060-stream/best.pt $(for m in $CANDIDATES; do echo --model $m; done) \
    --split test > results/v10/row-agreement.md
}
ship() {  # the rule's winner (results/v10/selection.md: ft-v10-dense@best) as the opt-in streaming file
  [ -f cache/livesqa-small-stream-0.6.0.onnx ] || git show ec31b6e:exported/livesqa-small-stream.onnx \
    > cache/livesqa-small-stream-0.6.0.onnx
  python -m train export-streaming --checkpoint runs/ft-v10-dense/best.pt --out exported/livesqa-small-stream.onnx \
    --name livesqa-small-stream --version 0.6.1-stream --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" \
    --training-data "0.6.0-stream (itself distilled from the windowed 0.6.0) fine-tuned 900 steps by dense distillation: \
every whole-second row of 3,654 streams of 4-10 s (simulated v3 real-call and v2 catalogues, real AEC-challenge \
recordings, noisy speech through real suppressors) fitted to the windowed livesqa-small 0.6.0's scores on that row's window"
  # the shipped layout (one state tensor per layer; helper-11, results/streaming/profile-v10.md) against the
  # first 0.6.1-stream export (stacked states, the same weights), interleaved on one core
  [ -f cache/livesqa-small-stream-0.6.1-stacked.onnx ] || python -m train export-streaming --stacked-state \
    --checkpoint runs/ft-v10-dense/best.pt --out cache/livesqa-small-stream-0.6.1-stacked.onnx --version 0.6.1-stream
  livesqa bench --model exported/livesqa-small.onnx --streaming exported/livesqa-small-stream.onnx \
    > results/v10/bench-streaming-fast.txt
  taskset -c 0 python results/streaming/ab_stream.py cache/livesqa-small-stream-0.6.1-stacked.onnx \
    exported/livesqa-small-stream.onnx > results/v10/ab-stacked-vs-shipped.txt
}
case $STAGE in
  data) imports; data ;;
  targets) targets ;;
  train) train ;;
  eval) evaluate ;;
  ship) ship ;;
  all) imports; data; targets; train; evaluate ;;
  *) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
