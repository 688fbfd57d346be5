#!/usr/bin/env bash
# Session 19 (issue #13): session 18's narrowband repair interpolated back towards 0.6.0 (WiSE-FT),
# and a no-op control (results/v16/SELECTION-wise.md). Needs what train/build_nb_v15.sh all2 made:
# runs/v060, runs/ft-v15-nb2, cache/nbsweep2 (labelled), cache/anchor15/manifest-self.csv,
# cache/nbsweep2-test, and the label-free sets named in its evaluate stage.
# Usage: bash train/build_wise_v16.sh [wise|test|noop|eval|rule|all|ship|data2|train2|test2|eval2|rule2|all2|ship2|
#                                     data3|train3|test3|eval3|rule3|all3|ship3] [CONFIG]
#   wise : wise-25/50/75 = weight means of 0.6.0 and ft-v15-nb2, each with the LOUD hinge re-fitted
#   test : the fresh test set (300 clips, seed 1914, v2 render), both teachers (about 10 min)
#   noop : the control ft-v16-noop: session 18's second recipe, the narrowband rows labelled by 0.6.0
#   eval : both fresh sets (new one judged), human-rated views, bootstrap, label-free guards, sanity
#   rule : results/v16/selection.md;  ship: its winner (if any) as 0.7.0
#   the second rule (results/v16/SELECTION-nbn.md), in results/v16/nbn/:
#   data2 : the narrowband-noise set (1,100 clips), both teachers;  train2: ft-v16-nbn (dropout 0),
#   its snapshot mean, the hinge on both;  test2: its fresh set (seed 1915);  eval2, rule2, ship2
#   the third rule (results/v16/SELECTION-mnru.md), in results/v16/mnru/: data3 (the MNRU set), train3
#   (ft-v16-mnru: the second manifest + that set), test3 (seed 1916), eval3, rule3, ship3
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${2:-configs/train/small.toml}
INC=runs/v060-hinge-loud/best.pt; D=results/v16; T=cache/nbsweep3-test; N=cache/nbsweep2
CANDS="wise-25-h wise-50-h wise-75-h"; CONTROL=ft-v16-noop-h
NAMES="$CANDS $CONTROL"; RULE=wise
second() {  # $1 = nbn (the second rule) | mnru (the third): folders, candidates, the fresh set's seed
  RULE=${1:-nbn}; D=results/v16/$RULE; RUN=ft-v16-$RULE; CANDS="$RUN-h $RUN-avg-h"; CONTROL=""; NAMES=$CANDS
  T=cache/nbsweep4-test; TEST_SEED=1915; SEEN=cache/nbsweep3-test
  if [ $RULE = mnru ]; then T=cache/nbsweep5-test; TEST_SEED=1916; SEEN=cache/nbsweep4-test; fi
  PATHS=$(for n in $NAMES; do printf 'runs/%s/best.pt ' "$n"; done); mkdir -p $D
}
PATHS=$(for n in $NAMES; do printf 'runs/%s/best.pt ' "$n"; done)
mkdir -p logs $D

hinge() {  # $1 checkpoint, $2 name: the LOUD hinge re-fitted exactly as 0.6.2's
  python -m train level-hinge --checkpoint "$1" --manifest cache/win11/manifest-w23.csv \
    --manifest cache/levelsweep/manifest.csv --cache "cache/v16-$2-rows.npz" --outputs loud --out "runs/$2/best.pt"
}
wise() {
  for a in 25 50 75; do
    python -m train average --checkpoints runs/v060/best.pt runs/ft-v15-nb2/best.pt \
      --weights "$((100 - a))" "$a" --out "runs/wise-$a/best.pt"
    hinge "runs/wise-$a/best.pt" "wise-$a-h"
  done
}
test_set() {
  python -m train nb-sweep --out-dir $T --train 0 --val 0 --test 300 --seed 1914 --render v2
  bash train/label_both_teachers.sh $T/manifest.csv "$CFG"
}
noop() {
  [ -f $N/manifest-self.csv ] || python -m train self-label --manifest $N/manifest.csv --model runs/v060/best.pt \
    --out $N/manifest-self.csv
  python - <<'PY'
import csv
anchor = list(csv.DictReader(open("cache/anchor15/manifest-self.csv", newline="", encoding="utf-8")))
for r in anchor:  # paths relative to cache/nbsweep2/
    r["filepath_deg"] = "../anchor15/" + r["filepath_deg"]
nb = list(csv.DictReader(open("cache/nbsweep2/manifest-self.csv", newline="", encoding="utf-8")))
cols = list(dict.fromkeys(list(nb[0]) + list(anchor[0])))
with open("cache/nbsweep2/manifest-mix-noop.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(nb + anchor)
print(f"cache/nbsweep2/manifest-mix-noop.csv: {len(nb)} narrowband + {len(anchor)} anchor rows, all by 0.6.0")
PY
  python -m train finetune --config "$CFG" --set finetune.run=ft-v16-noop \
    --set finetune.manifest=$N/manifest-mix-noop.csv --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v060/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=1000 --set finetune.max_steps=1000 --set finetune.lr=1e-4 \
    --set finetune.encoder_lr=5e-5 --set finetune.crop_s=0 --set finetune.max_minutes=120 \
    --set finetune.val_minutes=6 --set finetune.val_max_clips=400 --set finetune.snapshots=true \
    >> logs/ft-v16-noop.log 2>&1
  hinge runs/ft-v16-noop/best.pt $CONTROL
}
evaluate() {
  local models='"'$INC'"'; for p in $PATHS; do models="$models,\"$p\""; done
  python results/v15/nb_agreement.py $INC $PATHS runs/ft-v15-nb2-h/best.pt --manifest $T/manifest-w23.csv \
    --json $D/fresh.json --predictions $D/fresh-predictions.npz > $D/fresh.md
  local seen=${SEEN:-cache/nbsweep2-test}
  python results/v15/nb_agreement.py $INC $PATHS runs/ft-v15-nb2-h/best.pt --manifest $seen/manifest-w23.csv \
    --json $D/fresh-seen.json > $D/fresh-seen.md
  python -m train evaluate --config "$CFG" --set "evaluate.models=[$models]" \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=$D/eval
  python results/eval/paired_bootstrap.py --reference v060-hinge-loud $INC $PATHS --json $D/bootstrap.json > $D/bootstrap.md
  python -m train agreement --model $INC $(for p in $PATHS; do echo --model $p; done) \
    --corpus cache/win11/manifest-w23.csv --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir $D/agreement
  python -m train agreement --model $INC $(for p in $PATHS; do echo --model $p; done) \
    --realchain cache/realchain-webrtc/manifest.csv --out-dir $D/realchain-webrtc
  python results/v13/level_agreement.py $INC $PATHS --manifest cache/levelsweep-fresh/manifest.csv \
    --json $D/level-agreement-fresh.json > $D/level-agreement-fresh.md
  python results/v12/voip_symptom_probe.py --per-cell 6 --no-distillmos --out-dir cache/v16probe-$RULE $INC $PATHS > $D/probe.md
  cp cache/v16probe-$RULE/scores.csv $D/probe-scores.csv
  python results/v15/probe_variants.py $INC $PATHS --probe cache/v16probe-$RULE --groups $D/probe-scores.csv > $D/probe-variants.md
  for n in $NAMES; do
    python -m train sanity --config "$CFG" --model "runs/$n/best.pt" --strict --teacher-reference \
      --set sanity.out_dir="$D/sanity-$n" > "$D/sanity-$n.txt" || true
  done
}
data2() {
  python -m train nb-sweep --out-dir cache/nbnoise --train 1000 --val 100 --test 0 --seed 19 --render v2 --faults 0,0,0.75,0.25
  bash train/label_both_teachers.sh cache/nbnoise/manifest.csv "$CFG"
}
data3() {
  python -m train nb-sweep --out-dir cache/nbmnru --train 1000 --val 100 --test 0 --seed 20 --render v2 --faults 0,0,0,0.25,0.75
  bash train/label_both_teachers.sh cache/nbmnru/manifest.csv "$CFG"
}
train2() {  # the second rule's manifest (+ the MNRU set for the third), then $RUN without dropout
  python - "$RULE" <<'PY'
import csv
import sys
def rows(path, prefix, teacher):
    out = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    if teacher:
        out = [r for r in out if r["split"] in ("train", "val")]
    for r in out:  # paths relative to cache/nbnoise/
        r["filepath_deg"] = prefix + r["filepath_deg"]
    return out
parts = [rows("cache/nbsweep2/manifest-w23.csv", "../nbsweep2/", True), rows("cache/nbnoise/manifest-w23.csv", "", True),
         rows("cache/anchor15/manifest-self.csv", "../anchor15/", False)]
if sys.argv[1] == "mnru":
    parts.append(rows("cache/nbmnru/manifest-w23.csv", "../nbmnru/", True))
out = "cache/nbnoise/manifest-mix.csv" if sys.argv[1] == "nbn" else f"cache/nbnoise/manifest-mix-{sys.argv[1]}.csv"
cols = list(dict.fromkeys(k for p in parts for k in p[0]))
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for p in parts:
        w.writerows(p)
print(f"{out}:", " + ".join(str(len(p)) for p in parts), "rows (repair, noise, anchor[, mnru])")
PY
  local mix=cache/nbnoise/manifest-mix.csv; [ $RULE = nbn ] || mix=cache/nbnoise/manifest-mix-$RULE.csv
  python -m train finetune --config "$CFG" --set finetune.run=$RUN \
    --set finetune.manifest=$mix --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v060/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=1000 --set finetune.max_steps=1000 --set finetune.lr=1e-4 \
    --set finetune.encoder_lr=5e-5 --set finetune.crop_s=0 --set finetune.max_minutes=120 \
    --set finetune.val_minutes=6 --set finetune.val_max_clips=400 --set finetune.snapshots=true \
    --set model.encoder.dropout=0 >> logs/$RUN.log 2>&1
  python -m train average --run runs/$RUN --last 4 --out runs/$RUN-avg/best.pt
  hinge runs/$RUN/best.pt $RUN-h
  hinge runs/$RUN-avg/best.pt $RUN-avg-h
}
test2() {
  python -m train nb-sweep --out-dir $T --train 0 --val 0 --test 300 --seed $TEST_SEED --render v2
  bash train/label_both_teachers.sh $T/manifest.csv "$CFG"
}
rule() {
  python results/v16/apply_rule.py --rule $RULE > $D/selection.md
  grep '^winner:' $D/selection.md
}
ship() {  # $D/selection.md's winner as exported/livesqa-small.onnx 0.7.0, with its checks, card and sample call
  local name; name=$(sed -n 's/^winner: \([^ ]*\)$/\1/p' $D/selection.md)
  case "$name" in ""|none) echo "$D/selection.md names no winner: 0.6.2 stays" >&2; return 1 ;; esac
  local repair="2,200 narrowband-path clips (train/nb_sweep.py --render v2: clipping, lost frames or noise at the device, \
then G.711/AMR-NB/GSM at 8 kHz or a 300-3400 Hz band, or a wideband control; MOS = 2/3 NISQA v2 + 1/3 DistillMOS, \
NOI/COL/DIS/LOUD = NISQA v2)" anchor="0.6.0's own scores on 3,639 simulator clips and 4,097 real-call crops" how
  if [ $RULE = wise ]; then
    local a=${name#wise-}; a=${a%-h}
    how="weights = $((100 - a)) % livesqa-small 0.6.0 (see the 0.6.2 card) + $a % of ft-v15-nb2, 0.6.0 fine-tuned \
1,000 steps on $repair mixed with $anchor"
  else
    how="livesqa-small 0.6.0 (see the 0.6.2 card) fine-tuned 1,000 steps without dropout on $repair, 1,100 clips of \
noisy or clean speech through the same paths (--faults 0,0,0.75,0.25, same teachers) and $anchor"
    [ $RULE = mnru ] && how="$how, with 1,100 clips of MNRU speech (Q 5-40 dB) or clean speech through the same paths \
(--faults 0,0,0,0.25,0.75, same teachers)"
  fi
  [ -f cache/livesqa-small-0.6.2.onnx ] || git show f6b4ed6:exported/livesqa-small.onnx > cache/livesqa-small-0.6.2.onnx
  python -m train export --checkpoint "runs/$name/best.pt" --out exported/livesqa-small.onnx --name livesqa-small \
    --version 0.7.0 --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" \
    --training-data "$how; LOUD level hinge re-fitted as 0.6.2's (results/v16/SELECTION-$RULE.md)"
  bash train/ship_checks.sh $D train/build_wise_v16.sh "$CFG"
}
case "${1:-all}" in
  wise) wise ;; test) test_set ;; noop) noop ;; eval) evaluate ;; rule) rule ;; ship) ship ;;
  all) wise; test_set; noop; evaluate; rule ;;
  data2) data2 ;; train2) second; train2 ;; test2) second; test2 ;; eval2) second; evaluate ;; rule2) second; rule ;;
  all2) second; data2; train2; test2; evaluate; rule ;;
  ship2) second; ship ;;
  data3) data3 ;; train3) second mnru; train2 ;; test3) second mnru; test2 ;; eval3) second mnru; evaluate ;;
  rule3) second mnru; rule ;; all3) second mnru; data3; train2; test2; evaluate; rule ;; ship3) second mnru; ship ;;
  *) echo "usage: $0 [wise|test|noop|eval|rule|all|ship|data2|train2|test2|eval2|rule2|all2|ship2|data3|...|ship3] [CONFIG]" >&2; exit 2 ;;
esac
