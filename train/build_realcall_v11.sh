#!/usr/bin/env bash
# Session 13: teacher labels on exact crops of 4-10 s streams (issue #13 item 4; results/v11/SELECTION.md).
# Needs session 12's streams (bash train/build_stream_dense_v10.sh data) and runs/v060 (its imports stage).
# Usage: bash train/build_realcall_v11.sh [data|manifest|train|eval|ship|export|stream|stream-ship|all] [CONFIG]
#   data    : two crops per stream (cache/win11), labelled by NISQA v2 and DistillMOS (three processes)
#   manifest: cache/win11/manifest-w23.csv: crops with both labels, MOS = 2/3 NISQA + 1/3 DistillMOS
#   train   : ft-v11-crops (0.6.0 + 1,500 cosine steps), its snapshot average, the soup with 0.6.0
#   eval    : every candidate on the four human-rated views and the rule (results/v11/selection.md)
#   ship    : the rule's qualifiers checked by the paired bootstrap and the sanity checks
#             (results/v11/bootstrap.md, sanity-*.txt); apply_rule.py names the winner (or none)
#   export  : the winner as exported/livesqa-small.onnx 0.7.0: sanity, label-free agreement, bench, card, sample call
#   stream  : the rule's streaming follow-up (only after export): 0.7.0's dense targets on session 12's streams,
#             ft-v11-stream (0.6.1-stream + 600 steps), eval against the windowed 0.7.0 (results/v11/stream/)
#   stream-ship: the eligible streaming candidate with the highest mean as exported/livesqa-small-stream.onnx 0.7.0-stream
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
CFG=${2:-configs/train/small.toml}
mkdir -p cache runs logs results/v11
# the rule's winner as results/v11/selection.md names it ("winner: NAME -> PATH"; nothing when none)
winner_name() { sed -n 's/^winner: \(.*\) -> .*/\1/p' results/v11/selection.md; }
winner_path() { sed -n 's/^winner: .* -> //p' results/v11/selection.md; }
data() {
  [ -f runs/v060/best.pt ] || python -m train onnx-import --model exported/livesqa-small.onnx --out runs/v060/best.pt
  python -m train window-crops --manifest cache/dense/manifest.csv --manifest cache/dense-enh/manifest.csv \
    --out-dir cache/win11
  local pids=()
  for T in nisqa distillmos:0/2 distillmos:1/2; do
    SHARD=${T#*:}; [ "$SHARD" = "$T" ] && SHARD=0/1
    python -m train label --config "$CFG" --manifest cache/win11/manifest.csv --teachers ${T%%:*} --no-dnsmos \
      --mos-combination mean --shard $SHARD > "logs/label-win11-${T/\//of}.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
manifest() {  # crops that carry both teachers' labels; MOS = 2/3 NISQA + 1/3 DistillMOS (as 0.5.0 and 0.6.0)
  python - <<'PY'
import csv
rows = list(csv.DictReader(open("cache/win11/manifest.csv", newline="", encoding="utf-8")))
keep = [r for r in rows if r["nisqa_mos"] and r["distillmos_mos"]]
for r in keep:
    r["mos"] = f"{2 / 3 * float(r['nisqa_mos']) + 1 / 3 * float(r['distillmos_mos']):.6f}"
with open("cache/win11/manifest-w23.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(keep)
count = {s: sum(r["split"] == s for r in keep) for s in ("train", "val", "test")}
print(f"cache/win11/manifest-w23.csv: {len(keep)} of {len(rows)} crops carry both labels {count}")
PY
}
train() {
  python -m train finetune --config "$CFG" --set finetune.run=ft-v11-crops \
    --set finetune.manifest=cache/win11/manifest-w23.csv --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v060/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=1500 --set finetune.max_steps=1500 --set finetune.lr=2.5e-4 \
    --set finetune.encoder_lr=1e-4 --set finetune.crop_s=0 --set finetune.max_minutes=120 \
    --set finetune.val_minutes=6 --set finetune.val_max_clips=400 --set finetune.snapshots=true \
    >> logs/ft-v11-crops.log 2>&1
  python -m train average --run runs/ft-v11-crops --last 4 --out runs/ft-v11-crops-avg/best.pt
  python -m train average --checkpoints runs/v060/best.pt runs/ft-v11-crops-avg/best.pt --out runs/soup-v060-v11/best.pt
}
evaluate() {
  local models='"runs/v060/best.pt","runs/ft-v11-crops/best.pt","runs/ft-v11-crops/last.pt","runs/ft-v11-crops-avg/best.pt","runs/soup-v060-v11/best.pt"'
  python -m train evaluate --config "$CFG" --set "evaluate.models=[$models]" \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=results/v11/eval
  python results/v11/apply_rule.py --eval results/v11/eval/eval.csv > results/v11/selection.md
}
ship() {  # rule (b) and (c) on the qualifiers; apply_rule.py names the winner (or none)
  local names paths
  names=$(sed -n 's/^qualified-names: //p' results/v11/selection.md)
  paths=$(sed -n 's/^qualified-paths: //p' results/v11/selection.md)
  [ -n "$names" ] && [ "$names" != none ] || { echo "no candidate qualified: 0.6.0 stays" >&2; return 0; }
  python results/eval/paired_bootstrap.py --reference v060 runs/v060/best.pt $paths \
    --json results/v11/bootstrap.json > results/v11/bootstrap.md
  local n=($names) c=($paths)
  for i in "${!n[@]}"; do
    python -m train sanity --config "$CFG" --model "${c[$i]}" --strict --set sanity.out_dir="results/v11/sanity-${n[$i]}" \
      > "results/v11/sanity-${n[$i]}.txt" || true
  done
  python results/v11/apply_rule.py --eval results/v11/eval/eval.csv --bootstrap results/v11/bootstrap.json \
    --sanity-dir results/v11 > results/v11/selection.md
  grep '^winner:' results/v11/selection.md
}
export_winner() {  # the rule's winner as exported/livesqa-small.onnx 0.7.0, with its checks, card and sample call
  local winner; winner=$(winner_path)
  [ -n "$winner" ] || { echo "results/v11/selection.md names no winner: 0.6.0 stays" >&2; return 1; }
  [ -f cache/livesqa-small-0.6.0.onnx ] || git show 1a47cc3:exported/livesqa-small.onnx > cache/livesqa-small-0.6.0.onnx
  python -m train export --checkpoint "$winner" --out exported/livesqa-small.onnx --name livesqa-small \
    --version 0.7.0 --training-data "livesqa-small 0.6.0 (see its card: 0.4.0's simulated corpus, then the real-call, \
real AEC and real-suppressor clips of sessions 8-11) fine-tuned 1,500 steps on cache/win11: two crops (one 4 s window, \
one of 1.5-4 s) of each of 4,536 streams of 4-10 s (simulated v3 real-call and v2 catalogues, real AEC-challenge \
recordings split by device, noisy speech through RNNoise and noisereduce), each crop labelled on exactly its own audio; \
MOS = 2/3 NISQA v2 + 1/3 DistillMOS, NOI/COL/DIS/LOUD = NISQA v2 (results/v11/SELECTION.md)"
  python -m train sanity --config "$CFG" --model exported/livesqa-small.onnx --teacher-reference --strict
  mkdir -p results/v11/sanity results/v11/bench && cp results/sanity/sanity.md results/sanity/sanity.json results/v11/sanity/
  [ -f cache/realchain/manifest.csv ] || python -m train realchain  # a fresh machine: rebuild the real-chain set
  python -m train label --config "$CFG" --manifest cache/realchain/manifest.csv --teachers nisqa,distillmos \
    --mos-combination mean --no-dnsmos  # labels only the rows that lack them
  python -m train agreement --model cache/livesqa-small-0.6.0.onnx --model exported/livesqa-small.onnx \
    --corpus cache/win11/manifest-w23.csv --realchain cache/realchain/manifest.csv --sim-max 878 \
    --out-dir results/v11/agreement
  python -m train bench --models exported/livesqa-small.onnx cache/livesqa-small-0.6.0.onnx \
    --nisqa "${LIVESQA_DATA_ROOT:-../shared/data}/weights/nisqa/nisqa.tar" > results/v11/bench/bench.md
  python -m train card --model exported/livesqa-small.onnx --results results/v11 --asr-from-card exported/livesqa-small.card.json \
    --probing results/probing-asr-small-v2 --recipe train/build_realcall_v11.sh
  python -m train.make_sample_call --scores-only                     # livesqa/assets/sample_call.md
}
STREAM_CANDIDATES="runs/ft-v11-stream/best.pt runs/ft-v11-stream/last.pt runs/ft-v11-stream-avg/best.pt"
stream() {  # results/v11/SELECTION.md, "Streaming": re-distil the streaming file from the windowed 0.7.0
  local winner; winner=$(winner_path)
  [ -n "$winner" ] || { echo "no windowed winner: the streaming follow-up does not run" >&2; return 1; }
  grep -q '0.7.0' <(livesqa inspect exported/livesqa-small.onnx) || { echo "export 0.7.0 first" >&2; return 1; }
  [ -f runs/v061-stream/best.pt ] || python -m train onnx-import --model exported/livesqa-small-stream.onnx \
    --out runs/v061-stream/best.pt  # the shipped 0.6.1-stream (= session 12's runs/ft-v10-dense/best.pt)
  for K in 0 1; do
    python -m train dense-targets --manifest cache/dense/manifest.csv --manifest cache/dense-enh/manifest.csv \
      --model exported/livesqa-small.onnx --out-dir cache/dense-targets-v11 --shard $K/2 > logs/dense-targets-v11-$K.log 2>&1 &
  done
  wait
  python -m train stream-distill train --run ft-v11-stream --init-checkpoint runs/v061-stream/best.pt \
    --targets-dir cache/dense-targets-v11 --steps 600 --batch-size 12 --max-rows 8 --val-every 150 >> logs/ft-v11-stream.log 2>&1
  python -m train average --run runs/ft-v11-stream --last 4 --out runs/ft-v11-stream-avg/best.pt
  mkdir -p results/v11/stream
  local sanity=()
  for m in $STREAM_CANDIDATES; do
    local tag; tag=$(basename "$(dirname "$m")")@$(basename "$m" .pt)
    python -m train sanity --config "$CFG" --model "$m" --strict --set sanity.out_dir="results/v11/stream/sanity-$tag" \
      > "results/v11/stream/sanity-$tag.txt" 2>&1 || true
    sanity+=("$( [ "${m##*/}" = best.pt ] && basename "$(dirname "$m")" || echo "$tag" )=results/v11/stream/sanity-$tag.txt")
  done
  python results/eval/paired_bootstrap.py --reference "$(winner_name)" "$winner" runs/v061-stream/best.pt $STREAM_CANDIDATES \
    --json results/v11/stream/bootstrap.json > results/v11/stream/bootstrap.md
  python results/v10/apply_rule.py --bootstrap results/v11/stream/bootstrap.json --reference "$(winner_name)" \
    --incumbent v061-stream --sanity "${sanity[@]}" > results/v11/stream/selection.md
  python -m train stream-distill agree --targets-dir cache/dense-targets-v11 --model runs/v061-stream/best.pt \
    $(for m in $STREAM_CANDIDATES; do echo --model $m; done) --split test > results/v11/stream/row-agreement.md
  tail -1 results/v11/stream/selection.md
}
stream_ship() {
  local name; name=$(sed -n 's/^\*\*Decision:\*\* \(.*\) ships .*/\1/p' results/v11/stream/selection.md)
  [ -n "$name" ] || { echo "no streaming candidate is eligible: 0.6.1-stream stays" >&2; return 0; }
  local ckpt=runs/$name/best.pt
  case $name in *@last) ckpt=runs/${name%@last}/last.pt ;; esac
  python -m train export-streaming --checkpoint "$ckpt" --out exported/livesqa-small-stream.onnx \
    --name livesqa-small-stream --version 0.7.0-stream --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" \
    --training-data "0.6.1-stream fine-tuned 600 steps by dense distillation: every whole-second row of 3,654 streams \
of 4-10 s (simulated v3 real-call and v2 catalogues, real AEC-challenge recordings, noisy speech through real \
suppressors) fitted to the windowed livesqa-small 0.7.0's scores on that row's window"
  livesqa bench --model exported/livesqa-small.onnx --streaming exported/livesqa-small-stream.onnx \
    > results/v11/stream/bench-streaming.txt
}
case $STAGE in
  data) data ;; manifest) manifest ;; train) train ;; eval) evaluate ;; ship) ship ;; export) export_winner ;;
  stream) stream ;; stream-ship) stream_ship ;;
  all) data; manifest; train; evaluate; ship; export_winner ;;
  *) echo "usage: bash train/build_realcall_v11.sh [data|manifest|train|eval|ship|export|stream|stream-ship|all] [CONFIG]" >&2; exit 2 ;;
esac
