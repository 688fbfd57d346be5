#!/usr/bin/env bash
# Session 17, second rule: crops fine-tune with a 0.6.2-labelled simulator replay (issue #13;
# results/v14/SELECTION-lwf.md). Needs runs/v060 (onnx-import of 0.6.0), runs/v060-hinge-loud,
# cache/win11/manifest-w23.csv, cache/realchain(-webrtc) and cache/levelsweep-fresh labelled
# (see train/build_mos_self_v14.sh).
# Usage: bash train/build_lwf_v14.sh [data|train|eval|rule|all|tdata|ttrain|teval|trule|tall|slow|ship-VARIANT] [CONFIG]
#   data : 4,000 simulated 4 s clips (v2 families, MNRU included), labelled by 0.6.2; the mixed manifest
#   train: ft-v14-lwf (session 14's recipe, 1,500 steps), its snapshot mean, 0.6.2's LOUD hinge copied on
#   eval : the four human-rated views, paired bootstrap, label-free agreement, probe, fresh sweep, sanity
#   rule : results/v14/lwf/selection.md
#   t*   : the third rule (SELECTION-tlwf.md): the same replay labelled by both teachers (about 25 min
#          on 2 cores), ft-v14-tlwf, results/v14/tlwf/
#   slow : the fourth rule (SELECTION-slow.md): ft-v14-slow on the tlwf mix at lr / 5; train, eval, rule
#   ship-lwf | ship-tlwf | ship-slow: that rule's winner (if any) as exported/livesqa-small.onnx 0.7.0
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${2:-configs/train/small.toml}
R=cache/replay14
INC=runs/v060-hinge-loud/best.pt
variant() {  # $1 = lwf | tlwf | slow: the run, its candidates, the mixed manifest, the results folder
  RUN=ft-v14-$1; MIX=$R/manifest-$1.csv; D=results/v14/$1; RULE=$1; LR=2.5e-4; ENC_LR=1e-4
  if [ "$1" = slow ]; then MIX=$R/manifest-tlwf.csv; LR=5e-5; ENC_LR=2e-5; fi
  NAMES="$RUN-h $RUN-last-h $RUN-avg-h"
  PATHS="runs/$RUN-h/best.pt runs/$RUN-last-h/best.pt runs/$RUN-avg-h/best.pt"
  mkdir -p logs $D
}
variant lwf

mix() {  # $1 replay manifest, $2 output, $3 self|teachers: the crops' train/val rows + the replay's
  python - "$1" "$2" "$3" <<'PY'
import csv
import sys
replay_path, out, labels = sys.argv[1:]
crops = list(csv.DictReader(open("cache/win11/manifest-w23.csv", newline="", encoding="utf-8")))
replay = [r for r in csv.DictReader(open(replay_path, newline="", encoding="utf-8")) if r["split"] in ("train", "val")]
if labels == "teachers":  # MOS = 2/3 NISQA + 1/3 DistillMOS, as the crops' label
    missing = [r["filename_deg"] for r in replay if not (r["nisqa_mos"] and r["distillmos_mos"])]
    assert not missing, f"{len(missing)} replay clips lack a teacher label, e.g. {missing[:3]}"
    for r in replay:
        r["mos"] = f"{2 / 3 * float(r['nisqa_mos']) + 1 / 3 * float(r['distillmos_mos']):.6f}"
keep = [r for r in crops if r["split"] in ("train", "val")]
for r in keep:  # crop paths relative to cache/replay14/
    r["filepath_deg"] = "../win11/" + r["filepath_deg"]
cols = list(dict.fromkeys(list(crops[0]) + list(replay[0])))
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(keep + replay)
n = {(k, s): sum(r["split"] == s for r in rows) for k, rows in (("crops", keep), ("replay", replay)) for s in ("train", "val")}
print(f"{out}: {n}")
PY
}
data() {
  python -m train simulate --out-dir $R --n-clips 4000 --seed 1712 --workers 2 \
    --set simulate.min_clip_s=4.0 --set simulate.max_clip_s=4.0 --set simulate.signal_from_clip=0
  python -m train self-label --manifest $R/manifest.csv --model exported/livesqa-small.onnx --out $R/manifest-self.csv
  mix cache/replay14/manifest-self.csv cache/replay14/manifest-lwf.csv self
}
train() {
  python -m train finetune --config "$CFG" --set finetune.run=$RUN \
    --set finetune.manifest=$MIX --set finetune.init=checkpoint \
    --set finetune.init_checkpoint=runs/v060/best.pt --set finetune.schedule=cosine \
    --set finetune.total_steps=1500 --set finetune.max_steps=1500 --set finetune.lr=$LR \
    --set finetune.encoder_lr=$ENC_LR --set finetune.crop_s=0 --set finetune.max_minutes=120 \
    --set finetune.val_minutes=6 --set finetune.val_max_clips=400 --set finetune.snapshots=true \
    >> logs/$RUN.log 2>&1
  python -m train average --run runs/$RUN --last 4 --out runs/$RUN-avg/best.pt
  for pair in $RUN/best.pt:$RUN-h $RUN/last.pt:$RUN-last-h $RUN-avg/best.pt:$RUN-avg-h; do
    python -m train level-hinge --checkpoint "runs/${pair%%:*}" --copy-from $INC --out "runs/${pair##*:}/best.pt"
  done
}
evaluate() {
  local models='"'$INC'"'; for p in $PATHS; do models="$models,\"$p\""; done
  python -m train evaluate --config "$CFG" --set "evaluate.models=[$models]" \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=$D/eval
  python results/eval/paired_bootstrap.py --reference v060-hinge-loud $INC $PATHS --json $D/bootstrap.json > $D/bootstrap.md
  python -m train agreement --model $INC $(for p in $PATHS; do echo --model $p; done) \
    --corpus cache/win11/manifest-w23.csv --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir $D/agreement
  python -m train agreement --model $INC $(for p in $PATHS; do echo --model $p; done) \
    --realchain cache/realchain-webrtc/manifest.csv --out-dir $D/realchain-webrtc
  python results/v13/level_agreement.py $INC $PATHS --manifest cache/levelsweep-fresh/manifest.csv \
    --json $D/level-agreement-fresh.json > $D/level-agreement-fresh.md
  python results/v12/voip_symptom_probe.py --per-cell 6 --no-distillmos --out-dir cache/v14probe-$RULE \
    $INC $PATHS > $D/probe.md
  cp cache/v14probe-$RULE/scores.csv $D/probe-scores.csv
  local n=($NAMES) c=($PATHS)
  for i in "${!n[@]}"; do
    python -m train sanity --config "$CFG" --model "${c[$i]}" --strict --teacher-reference \
      --set sanity.out_dir="$D/sanity-${n[$i]}" > "$D/sanity-${n[$i]}.txt" || true
  done
}
rule() {
  python results/v14/apply_rule.py --rule $RULE > $D/selection.md
  grep '^winner:' $D/selection.md
}
tdata() {  # the same replay clips, labelled by both teachers; MOS = 2/3 NISQA + 1/3 DistillMOS as the crops
  local pids=()
  for T in nisqa distillmos:0/2 distillmos:1/2; do
    SHARD=${T#*:}; [ "$SHARD" = "$T" ] && SHARD=0/1
    python -m train label --config "$CFG" --manifest $R/manifest.csv --teachers ${T%%:*} --no-dnsmos \
      --mos-combination mean --shard $SHARD > "logs/label-replay14-${T/\//of}.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  mix $R/manifest.csv $R/manifest-tlwf.csv teachers
}
ship() {  # $D/selection.md's winner as exported/livesqa-small.onnx 0.7.0, with its checks, card and sample call
  local name; name=$(sed -n 's/^winner: \([^ ]*\)$/\1/p' $D/selection.md)
  case "$name" in ""|none) echo "$D/selection.md names no winner: 0.6.2 stays" >&2; return 1 ;; esac
  [ -f cache/livesqa-small-0.6.2.onnx ] || git show f6b4ed6:exported/livesqa-small.onnx > cache/livesqa-small-0.6.2.onnx
  python -m train export --checkpoint "runs/$name/best.pt" --out exported/livesqa-small.onnx --name livesqa-small \
    --version 0.7.0 --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" --training-data "livesqa-small 0.6.0 (see the \
0.6.2 card) fine-tuned 1,500 steps on cache/win11 (two crops of each of 4,536 real-call, real AEC and enhanced-speech \
streams, teacher labels on exactly those crops) mixed with 3,639 fresh simulator clips (v2 families with MNRU); MOS = \
2/3 NISQA v2 + 1/3 DistillMOS (replay: $([ "$RULE" = lwf ] && echo "0.6.2's own scores" || echo "the same teachers")), \
NOI/COL/DIS/LOUD = NISQA v2; 0.6.2's LOUD level hinge copied (results/v14/SELECTION-$RULE.md)"
  bash train/ship_checks.sh $D train/build_lwf_v14.sh "$CFG"
}
case "${1:-all}" in
  data) data ;; train) train ;; eval) evaluate ;; rule) rule ;;
  all) data; train; evaluate; rule ;;
  tdata) variant tlwf; tdata ;; ttrain) variant tlwf; train ;; teval) variant tlwf; evaluate ;; trule) variant tlwf; rule ;;
  tall) variant tlwf; tdata; train; evaluate; rule ;;
  slow) variant slow; train; evaluate; rule ;;
  ship-lwf|ship-tlwf|ship-slow) variant "${1#ship-}"; ship ;;
  *) echo "usage: $0 [data|train|eval|rule|all|tdata|ttrain|teval|trule|tall|slow|ship-VARIANT] [CONFIG]" >&2; exit 2 ;;
esac
