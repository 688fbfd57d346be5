#!/usr/bin/env bash
# Session 8's real-call candidate (ft-v6-mix, results/v6/SELECTION.md) and its evaluation;
# resumable stage by stage (every stage skips what it already did).
# Usage: bash train/build_realcall_v6.sh [data|train|eval|all] [CONFIG]
#   data : corpus cache/sim6 (v3 real-call catalogue + v2 catalogue + real AEC windows), labelled
#          by NISQA v2 and DistillMOS in two processes that follow the simulator
#   train: ft-v6-mix from 0.4.0, its snapshot average and the declared soup with 0.4.0
#   eval : every candidate and peer on the four human-rated views, the selection
#   ablation: the same run with MOS = NISQA v2 alone (ft-v6-nisqa), evaluated and selected again
#   ship : the winner of results/v6/selection.md exported as exported/livesqa-small.onnx 0.5.0,
#          its sanity checks, label-free agreement, speed bench, card and the sample call's scores
#   lofo : leave-one-family-out short fine-tunes (results/lofo/)
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
CFG=${2:-configs/train/small.toml}
mkdir -p cache runs logs
N_V3=3600; N_ALL=7200; N_REAL=2062  # 2,062 = windows of the 792 AEC recordings (train/real_clips.py)
SIM6="--set simulate.out_dir=cache/sim6 --set simulate.seed=20261203 --set simulate.min_clip_s=1.5 \
  --set simulate.max_clip_s=4.0 --set simulate.fixed_length_fraction=0.7 \
  --set simulate.extra_speech=cache/extra-speech/index.csv"
v040() {
  git show 5481ab3:exported/livesqa-small.onnx > cache/livesqa-small-0.4.0.onnx   # the 0.4.0 release
  [ -f runs/v040/best.pt ] || python -m train onnx-import --model cache/livesqa-small-0.4.0.onnx --out runs/v040/best.pt
}
data() {
  [ -f cache/extra-speech/index.csv ] || python -m train extra-speech
  python -m train simulate --config "$CFG" $SIM6 --set simulate.families=v3 --set simulate.clean_fraction=0.07 --n-clips 200
  grep -q aec cache/sim6/manifest.csv || python -m train real-clips --manifest cache/sim6/manifest.csv
  # both teachers follow the simulator, one thread per process; DistillMOS (~0.65 s of CPU per clip
  # here, 3x NISQA) in two shards (session 8 began with one and split it when the simulator ended)
  for T in nisqa distillmos:0/2 distillmos:1/2; do
    SHARD=${T#*:}; [ "$SHARD" = "$T" ] && SHARD=0/1
    python -m train label --config "$CFG" --manifest cache/sim6/manifest.csv --teachers ${T%%:*} --no-dnsmos \
      --mos-combination mean --follow $((N_ALL + N_REAL)) --shard $SHARD > "logs/label-${T/\//of}.log" 2>&1 &
  done
  python -m train simulate --config "$CFG" $SIM6 --set simulate.families=v3 --set simulate.clean_fraction=0.07 --n-clips $N_V3
  # clips N_V3.. : 0.4.0's own catalogue (v2, MNRU from the first clip), against forgetting
  python -m train simulate --config "$CFG" $SIM6 --set simulate.families=v2 --set simulate.signal_from_clip=0 --n-clips $N_ALL
  wait
}
finetune() {  # RUN MANIFEST: the recipe of both runs (results/v6/SELECTION.md): 0.4.0 + 2,000 cosine steps
  python -m train finetune --config "$CFG" --set finetune.run="$1" \
    --set finetune.manifest="$2" --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v040/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=2000 --set finetune.max_steps=2000 --set finetune.lr=5e-4 \
    --set finetune.encoder_lr=2e-4 --set finetune.crop_s=0 --set finetune.max_minutes=170 \
    --set finetune.val_minutes=8 --set finetune.val_max_clips=400 --set finetune.snapshots=true
}
train() {
  finetune ft-v6-mix cache/sim6/manifest.csv
  python -m train average --run runs/ft-v6-mix --last 4 --out runs/ft-v6-mix-avg/best.pt
  python -m train average --checkpoints runs/v040/best.pt runs/ft-v6-mix-avg/best.pt --out runs/soup-v040-v6/best.pt
}
ablation() {  # results/v6/SELECTION.md, addendum: the same run with MOS = NISQA v2 alone
  python - <<'PY'
import csv
rows = list(csv.DictReader(open("cache/sim6/manifest.csv", newline="", encoding="utf-8")))
for r in rows:
    r["mos"] = r["nisqa_mos"]
with open("cache/sim6/manifest-nisqa-mos.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
PY
  finetune ft-v6-nisqa cache/sim6/manifest-nisqa-mos.csv
  python -m train average --run runs/ft-v6-nisqa --last 4 --out runs/ft-v6-nisqa-avg/best.pt
  python -m train evaluate --config "$CFG" --set 'evaluate.models=["runs/v040/best.pt","runs/ft-v6-mix/best.pt","runs/ft-v6-mix/last.pt","runs/ft-v6-mix-avg/best.pt","runs/soup-v040-v6/best.pt","runs/ft-v6-nisqa/best.pt","runs/ft-v6-nisqa/last.pt","runs/ft-v6-nisqa-avg/best.pt"]'
  python results/v6/select.py > results/v6/selection.md
}
evaluate() {
  python -m train evaluate --config "$CFG"                           # every row, four human-rated views
  python results/v6/select.py > results/v6/selection.md              # the rule fixed before the run
}
ship() {
  BEST=$(sed -n 's/^winner: .* -> //p' results/v6/selection.md)
  if [ -z "$BEST" ] || [ "$BEST" = runs/v040/best.pt ]; then echo "0.4.0 won the selection: nothing to ship" >&2; exit 1; fi
  python -m train export --checkpoint "$BEST" --out exported/livesqa-small.onnx --name livesqa-small --version 0.5.0
  python -m train sanity --config "$CFG" --model exported/livesqa-small.onnx --teacher-reference --strict
  [ -f cache/realchain/manifest.csv ] || python -m train realchain
  python -m train label --config "$CFG" --manifest cache/realchain/manifest.csv --teachers nisqa,distillmos \
    --mos-combination mean --no-dnsmos
  python -m train agreement --model cache/livesqa-small-0.4.0.onnx --model exported/livesqa-small.onnx \
    --corpus cache/sim6/manifest.csv --sim-max 400                    # results/agreement/
  python -m train export --random-init configs/train/paper.toml --out cache/paper-random.onnx --bench-runs 0
  python -m train bench --models exported/livesqa-small.onnx cache/livesqa-small-0.4.0.onnx cache/paper-random.onnx \
    --nisqa "${LIVESQA_DATA_ROOT:-../shared/data}/weights/nisqa/nisqa.tar" | tee results/bench/bench.md
  { echo "# livesqa bench (model, one thread) — $(date -u +%FT%TZ), $(nproc) cores"; \
    livesqa bench --model exported/livesqa-small.onnx --windows 200; } > results/bench/runtime.txt 2>&1
  python -m train card --model exported/livesqa-small.onnx --asr-metrics runs/asr-small-v2/metrics.csv \
    --asr-from-card exported/livesqa-small.card.json --probing results/probing-asr-small-v2 \
    --recipe train/build_realcall_v6.sh
  python -m train.make_sample_call --scores-only                     # livesqa/assets/sample_call.md
}
lofo() {
  python -m train lofo --config "$CFG" --corpus cache/sim6/manifest.csv --families loss,clipping,talker,echo \
    --init runs/v040/best.pt --steps 200                              # results/lofo/
}
v040
case $STAGE in
  data) data ;; train) train ;; eval) evaluate ;; ablation) ablation ;; ship) ship ;; lofo) lofo ;;
  all) data; train; evaluate; ablation; lofo; ship ;;  # ship last: it stops when 0.4.0 wins
  *) echo "usage: bash train/build_realcall_v6.sh [data|train|eval|ablation|ship|lofo|all] [CONFIG]" >&2; exit 2 ;;
esac
