#!/usr/bin/env bash
# Session 10: a larger student for issue #13 (results/v8/SELECTION.md); resumable.
# Needs session 8's corpus (bash train/build_realcall_v6.sh data), session 9's manifest and 0.5.0's
# checkpoint (bash train/build_realcall_v7.sh train).
# Usage: bash train/build_realcall_v8.sh [train|eval|ship|all] [CONFIG]
#   train: 0.5.0 grown to 12 blocks (train/grow.py), 2,000 cosine steps; snapshot average; soup
#   eval : every candidate on the four human-rated views, the selection (results/v8/selection.md)
#   ship : the winner exported as 0.6.0 with sanity checks, agreement, bench and card (only when a
#          12-block candidate wins)
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
CFG=${2:-configs/train/small.toml}
mkdir -p cache runs logs
DEEP="--set model.encoder.n_layers=12"
train() {
  [ -f runs/grow-deep12/best.pt ] || python -m train grow --checkpoint runs/soup-v040-v7/best.pt \
    --plan 0,1,2,3,4,4,5,5,6,6,7,7 --out runs/grow-deep12/best.pt
  python -m train finetune --config "$CFG" $DEEP --set finetune.run=ft-v8-deep12 \
    --set finetune.manifest=cache/sim6/manifest-w23.csv --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/grow-deep12/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=2000 --set finetune.max_steps=2000 --set finetune.lr=5e-4 \
    --set finetune.encoder_lr=2e-4 --set finetune.crop_s=0 --set finetune.max_minutes=170 \
    --set finetune.val_minutes=8 --set finetune.val_max_clips=400 --set finetune.snapshots=true \
    >> logs/ft-v8-deep12.log 2>&1
  python -m train average --run runs/ft-v8-deep12 --last 4 --out runs/ft-v8-deep12-avg/best.pt
  python -m train average --checkpoints runs/grow-deep12/best.pt runs/ft-v8-deep12-avg/best.pt \
    --out runs/soup-deep12/best.pt
}
evaluate() {
  python -m train evaluate --config "$CFG" --set 'evaluate.models=["runs/soup-v040-v7/best.pt","runs/ft-v8-deep12/best.pt","runs/ft-v8-deep12/last.pt","runs/ft-v8-deep12-avg/best.pt","runs/soup-deep12/best.pt"]' \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=results/v8/eval
}
case $STAGE in
  train) train ;; eval) evaluate ;;
  all) train; evaluate ;;
  *) echo "usage: bash train/build_realcall_v8.sh [train|eval|all] [CONFIG]" >&2; exit 2 ;;
esac
