#!/usr/bin/env bash
# Session 9's third 0.5.0 attempt and first streaming model (results/v7/SELECTION.md); resumable.
# Needs session 8's corpus (bash train/build_realcall_v6.sh data) and runs/v040 (its v040 step).
# Usage: bash train/build_realcall_v7.sh [train|eval|ship|all] [CONFIG]
#   train: manifest with MOS = 2/3 NISQA + 1/3 DistillMOS; ft-v7-w23 (windowed), then ft-v7-stream
#          (chunk streaming, 1,200 steps); snapshot averages and the declared soup
#   eval : every candidate and peer on the four human-rated views, the selection
#   ship : the winners exported (default model only when it is not 0.4.0; the streaming model
#          as the opt-in exported/livesqa-small-stream.onnx), with sanity checks
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
CFG=${2:-configs/train/small.toml}
mkdir -p cache runs logs
STREAMING="--set model.encoder.causal_conv=true --set model.encoder.positions=\"chunk\" \
  --set model.streaming.enabled=true --set model.streaming.dynamic_chunks=[5,15,25]"
manifest() {  # MOS = 2/3 NISQA v2 + 1/3 DistillMOS (results/v7/teacher_weights.txt)
  python - <<'PY'
import csv
rows = list(csv.DictReader(open("cache/sim6/manifest.csv", newline="", encoding="utf-8")))
for r in rows:
    r["mos"] = f"{2 / 3 * float(r['nisqa_mos']) + 1 / 3 * float(r['distillmos_mos']):.6f}"
with open("cache/sim6/manifest-w23.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
PY
}
finetune() {  # RUN MANIFEST [--set ...]: session 8's recipe, 0.4.0 + 2,000 cosine steps
  local run=$1 manifest=$2; shift 2
  python -m train finetune --config "$CFG" --set finetune.run="$run" \
    --set finetune.manifest="$manifest" --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v040/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=2000 --set finetune.max_steps=2000 --set finetune.lr=5e-4 \
    --set finetune.encoder_lr=2e-4 --set finetune.crop_s=0 --set finetune.max_minutes=170 \
    --set finetune.val_minutes=8 --set finetune.val_max_clips=400 --set finetune.snapshots=true "$@"
}
train() {
  [ -f cache/sim6/manifest-w23.csv ] || manifest
  # one after the other: side by side on 2 vCPUs each ran ~4x slower (SELECTION.md, addendum)
  finetune ft-v7-w23 cache/sim6/manifest-w23.csv >> logs/ft-v7-w23.log 2>&1
  finetune ft-v7-stream cache/sim6/manifest-w23.csv $STREAMING \
    --set finetune.total_steps=1200 --set finetune.max_steps=1200 >> logs/ft-v7-stream.log 2>&1
  # addendum 2: the streaming recipe with its full 2,000 steps, alone
  finetune ft-v7-stream2k cache/sim6/manifest-w23.csv $STREAMING >> logs/ft-v7-stream2k.log 2>&1
  for R in ft-v7-w23 ft-v7-stream ft-v7-stream2k; do
    python -m train average --run runs/$R --last 4 --out runs/$R-avg/best.pt
  done
  python -m train average --checkpoints runs/v040/best.pt runs/ft-v7-w23-avg/best.pt --out runs/soup-v040-v7/best.pt
  python -m train average --checkpoints runs/v040/best.pt runs/ft-v6-nisqa-avg/best.pt --out runs/soup-v040-v6nisqa/best.pt
}
evaluate() {
  python -m train evaluate --config "$CFG" --set 'evaluate.models=["runs/v040/best.pt","runs/ft-v7-w23/best.pt","runs/ft-v7-w23/last.pt","runs/ft-v7-w23-avg/best.pt","runs/soup-v040-v7/best.pt","runs/ft-v7-stream/best.pt","runs/ft-v7-stream/last.pt","runs/ft-v7-stream-avg/best.pt","runs/soup-v040-v6nisqa/best.pt","runs/ft-v7-stream2k/best.pt","runs/ft-v7-stream2k/last.pt","runs/ft-v7-stream2k-avg/best.pt"]' \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=results/v7/eval
  python results/v7/select.py --eval results/v7/eval/eval.csv > results/v7/selection.md
}
ship() {
  BEST=$(sed -n 's/^winner: \(.*\) -> .*/\1/p' results/v7/selection.md)
  BEST_PT=$(sed -n 's/^winner: .* -> //p' results/v7/selection.md)
  STREAM_PT=$(sed -n 's/^streaming winner: .* -> //p' results/v7/selection.md)
  # the streaming model (opt-in): exported, and its rows against the default winner's, paired
  python -m train sanity --config "$CFG" --model "$STREAM_PT" --strict | tee results/v7/sanity-stream2k.txt
  python -m train export-streaming --checkpoint "$STREAM_PT" --out exported/livesqa-small-stream.onnx \
    --name livesqa-small-stream --version 0.5.0-stream
  python results/eval/paired_bootstrap.py --reference "$BEST" "$BEST_PT" "$STREAM_PT" > results/v7/bootstrap-stream2k.md
  if [ "$BEST_PT" = runs/v040/best.pt ]; then echo "0.4.0 won the selection: the default model stays" >&2; exit 1; fi
  python -m train export --checkpoint "$BEST_PT" --out exported/livesqa-small.onnx --name livesqa-small --version 0.5.0
  python -m train sanity --config "$CFG" --model exported/livesqa-small.onnx --teacher-reference --strict
  python -m train agreement --model cache/livesqa-small-0.4.0.onnx --model exported/livesqa-small.onnx \
    --corpus cache/sim6/manifest.csv --sim-max 400 --out-dir results/agreement-v7
  python -m train bench --models exported/livesqa-small.onnx cache/livesqa-small-0.4.0.onnx \
    --nisqa "${LIVESQA_DATA_ROOT:-../shared/data}/weights/nisqa/nisqa.tar" | tee results/bench/bench.md
  python -m train card --model exported/livesqa-small.onnx --asr-metrics runs/asr-small-v2/metrics.csv \
    --asr-from-card exported/livesqa-small.card.json --probing results/probing-asr-small-v2 \
    --recipe train/build_realcall_v7.sh
  python -m train.make_sample_call --scores-only                     # livesqa/assets/sample_call.md
}
case $STAGE in
  train) train ;; eval) evaluate ;; ship) ship ;;
  all) train; evaluate; ship ;;
  *) echo "usage: bash train/build_realcall_v7.sh [train|eval|ship|all] [CONFIG]" >&2; exit 2 ;;
esac
