#!/usr/bin/env bash
# Session 18 (issue #13): repair the narrowband-path gap, everything else anchored on 0.6.0's own
# scores (results/v15/SELECTION-nb.md). Needs runs/v060 (onnx-import of 0.6.0), runs/v060-hinge-loud,
# cache/win11/manifest-w23.csv, cache/replay14, cache/levelsweep(-fresh), cache/realchain(-webrtc)
# labelled (see train/build_lwf_v14.sh and train/build_level_hinge_v13.sh).
# Usage: bash train/build_nb_v15.sh [data|anchor|train|test|eval|rule|all|ship|all2|ship2] [CONFIG]
#   all2, ship2: the second rule (SELECTION-nb2.md): the same stages on the v2 render, results/v15/nb2/
#   data  : the narrowband-path set (2,200 clips), both teachers (about 25 min on 2 cores)
#   anchor: 0.6.0's scores on the replay clips and half the crops; the mixed manifest
#   train : ft-v15-nb (1,000 steps), its snapshot mean, the LOUD hinge re-fitted on both
#   test  : the fresh test set (300 clips, test talkers), both teachers
#   eval  : human-rated views, paired bootstrap, label-free guards, the fresh set, sanity
#   rule  : results/v15/nb/selection.md;  ship: its winner (if any) as 0.7.0
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${2:-configs/train/small.toml}
A=cache/anchor15; INC=runs/v060-hinge-loud/best.pt
variant() {  # $1 = nb (SELECTION-nb.md, --render v1) | nb2 (SELECTION-nb2.md, --render v2)
  V=$1; N=cache/nbsweep; T=cache/nbsweep-test; D=results/v15/nb; RUN=ft-v15-nb; RENDER=v1; TEST_SEED=1812
  if [ "$V" = nb2 ]; then N=cache/nbsweep2; T=cache/nbsweep2-test; D=results/v15/nb2; RUN=ft-v15-nb2; RENDER=v2; TEST_SEED=1813; fi
  NAMES="$RUN-h $RUN-avg-h"; PATHS="runs/$RUN-h/best.pt runs/$RUN-avg-h/best.pt"
  mkdir -p logs $D $A
}
variant nb

label() {  # $1 manifest: NISQA and DistillMOS, then MOS = 2/3 NISQA + 1/3 DistillMOS (manifest-w23.csv)
  bash train/label_both_teachers.sh "$1" "$CFG"
}
data() {
  python -m train nb-sweep --out-dir $N --train 2000 --val 200 --test 0 --seed 18 --render $RENDER
  label $N/manifest.csv
}
anchor() {
  python - <<'PY'
import csv
crops = [r for r in csv.DictReader(open("cache/win11/manifest-w23.csv", newline="", encoding="utf-8"))
         if r["split"] in ("train", "val")]
half = [r for i, r in enumerate(crops) if i % 2 == 0]
for r in half:  # paths relative to cache/anchor15/
    r["filepath_deg"] = "../win11/" + r["filepath_deg"]
replay = [r for r in csv.DictReader(open("cache/replay14/manifest.csv", newline="", encoding="utf-8"))
          if r["split"] in ("train", "val")]
for r in replay:
    r["filepath_deg"] = "../replay14/" + r["filepath_deg"]
cols = list(dict.fromkeys(list(crops[0]) + list(replay[0])))
with open("cache/anchor15/manifest.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(half + replay)
print(f"anchor: {len(half)} crops + {len(replay)} replay clips")
PY
  python -m train self-label --manifest $A/manifest.csv --model runs/v060/best.pt --out $A/manifest-self.csv
  [ -f $A/manifest-self.csv ] || python -m train self-label --manifest $A/manifest.csv --model runs/v060/best.pt --out $A/manifest-self.csv
  mix
}
mix() {  # the narrowband set's teacher rows + the anchor's self-labelled rows
  python - "$N" <<'PY'
import csv
import sys
n = sys.argv[1]
anchor = list(csv.DictReader(open("cache/anchor15/manifest-self.csv", newline="", encoding="utf-8")))
for r in anchor:  # paths relative to the narrowband set's folder
    r["filepath_deg"] = "../anchor15/" + r["filepath_deg"]
nb = [r for r in csv.DictReader(open(f"{n}/manifest-w23.csv", newline="", encoding="utf-8"))
      if r["split"] in ("train", "val")]
cols = list(dict.fromkeys(list(nb[0]) + list(anchor[0])))
with open(f"{n}/manifest-mix.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(nb + anchor)
n = {(k, s): sum(r["split"] == s for r in rows) for k, rows in (("nb", nb), ("anchor", anchor)) for s in ("train", "val")}
print(f"{sys.argv[1]}/manifest-mix.csv: {n}")
PY
}
train() {
  python -m train finetune --config "$CFG" --set finetune.run=$RUN \
    --set finetune.manifest=$N/manifest-mix.csv --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v060/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=1000 --set finetune.max_steps=1000 --set finetune.lr=1e-4 \
    --set finetune.encoder_lr=5e-5 --set finetune.crop_s=0 --set finetune.max_minutes=120 \
    --set finetune.val_minutes=6 --set finetune.val_max_clips=400 --set finetune.snapshots=true \
    >> logs/$RUN.log 2>&1
  python -m train average --run runs/$RUN --last 4 --out runs/$RUN-avg/best.pt
  for pair in $RUN/best.pt:$RUN-h $RUN-avg/best.pt:$RUN-avg-h; do
    python -m train level-hinge --checkpoint "runs/${pair%%:*}" --manifest cache/win11/manifest-w23.csv \
      --manifest cache/levelsweep/manifest.csv --cache "cache/v15-${pair##*:}-rows.npz" --outputs loud \
      --out "runs/${pair##*:}/best.pt"
  done
}
test_set() {
  python -m train nb-sweep --out-dir $T --train 0 --val 0 --test 300 --seed $TEST_SEED --render $RENDER
  label $T/manifest.csv
}
evaluate() {
  local models='"'$INC'"'; for p in $PATHS; do models="$models,\"$p\""; done
  python results/v15/nb_agreement.py $INC $PATHS --manifest $T/manifest-w23.csv --json $D/nb-fresh.json > $D/nb-fresh.md
  python -m train evaluate --config "$CFG" --set "evaluate.models=[$models]" \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=$D/eval
  python results/eval/paired_bootstrap.py --reference v060-hinge-loud $INC $PATHS --json $D/bootstrap.json > $D/bootstrap.md
  python -m train agreement --model $INC $(for p in $PATHS; do echo --model $p; done) \
    --corpus cache/win11/manifest-w23.csv --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir $D/agreement
  python -m train agreement --model $INC $(for p in $PATHS; do echo --model $p; done) \
    --realchain cache/realchain-webrtc/manifest.csv --out-dir $D/realchain-webrtc
  python results/v13/level_agreement.py $INC $PATHS --manifest cache/levelsweep-fresh/manifest.csv \
    --json $D/level-agreement-fresh.json > $D/level-agreement-fresh.md
  python results/v12/voip_symptom_probe.py --per-cell 6 --no-distillmos --out-dir cache/v15probe-$V \
    $INC $PATHS > $D/probe.md
  cp cache/v15probe-$V/scores.csv $D/probe-scores.csv
  python results/v15/probe_variants.py $INC $PATHS --probe cache/v15probe-$V --groups $D/probe-scores.csv > $D/probe-variants.md
  local n=($NAMES) c=($PATHS)
  for i in "${!n[@]}"; do
    python -m train sanity --config "$CFG" --model "${c[$i]}" --strict --teacher-reference \
      --set sanity.out_dir="$D/sanity-${n[$i]}" > "$D/sanity-${n[$i]}.txt" || true
  done
}
rule() {
  python results/v15/apply_rule.py --rule $V > $D/selection.md
  grep '^winner:' $D/selection.md
}
ship() {  # $D/selection.md's winner as exported/livesqa-small.onnx 0.7.0, with its checks, card and sample call
  local name; name=$(sed -n 's/^winner: \([^ ]*\)$/\1/p' $D/selection.md)
  case "$name" in ""|none) echo "$D/selection.md names no winner: 0.6.2 stays" >&2; return 1 ;; esac
  [ -f cache/livesqa-small-0.6.2.onnx ] || git show f6b4ed6:exported/livesqa-small.onnx > cache/livesqa-small-0.6.2.onnx
  python -m train export --checkpoint "runs/$name/best.pt" --out exported/livesqa-small.onnx --name livesqa-small \
    --version 0.7.0 --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" --training-data "livesqa-small 0.6.0 (see the \
0.6.2 card) fine-tuned 1,000 steps on 2,200 narrowband-path clips (train/nb_sweep.py --render $RENDER: clipping, lost frames or noise at \
the device, then G.711/AMR-NB/GSM or a 300-3400 Hz band, or a wideband control; MOS = 2/3 NISQA v2 + 1/3 DistillMOS, \
NOI/COL/DIS/LOUD = NISQA v2) mixed with 0.6.0's own scores on 3,639 simulator clips and 4,097 real-call crops; LOUD \
level hinge re-fitted as 0.6.2's (results/v15/SELECTION-$V.md)"
  bash train/ship_checks.sh $D train/build_nb_v15.sh "$CFG"
}
case "${1:-all}" in
  data) data ;; anchor) anchor ;; train) train ;; test) test_set ;; eval) evaluate ;; rule) rule ;; ship) ship ;;
  all) data; anchor; train; test_set; evaluate; rule ;;
  all2) variant nb2; data; mix; train; test_set; evaluate; rule ;;
  ship2) variant nb2; ship ;;
  *) echo "usage: $0 [data|anchor|train|test|eval|rule|all|ship|all2|ship2] [CONFIG]" >&2; exit 2 ;;
esac
