#!/usr/bin/env bash
# Session 17: 0.6.2's MOS output re-fitted level-blind to its own MOS (issue #13; results/v14/SELECTION.md).
# Needs runs/v060-hinge-loud (bash train/build_level_hinge_v13.sh), cache/win11/manifest-w23.csv
# (bash train/build_realcall_v11.sh data manifest train), cache/realchain labelled (results/v11/README.md)
# and cache/levelsweep-fresh labelled (train/build_level_hinge_v13.sh loud).
# Usage: bash train/build_mos_self_v14.sh [fit|eval|rule|webrtc|all] [CONFIG]
#   fit  : the two declared candidates (python -m train mos-level --target self), about 5 min
#   eval : the four human-rated views, paired bootstrap, label-free agreement, the VoIP probe,
#          the fresh level sweep, sanity (about 25 min on 2 cores)
#   rule : results/v14/selection.md (apply_rule.py)
#   webrtc: the real-chain set's two WebRTC chains (cache/realchain-webrtc: 80 clips, both teachers)
#          and the label-free agreement on them (results/v14/realchain-webrtc/), about 3 min
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${2:-configs/train/small.toml}
M=cache/win11/manifest-w23.csv
INC=runs/v060-hinge-loud/best.pt
NAMES="v062-self-nolvl v062-self-lvl"
PATHS="runs/v062-self-nolvl/best.pt runs/v062-self-lvl/best.pt"
D=results/v14
mkdir -p logs cache/v14 $D

fit() {
  python -m train mos-level --checkpoint $INC --manifest $M --cache cache/v14/v062-logits.npz \
    --target self --no-level --out runs/v062-self-nolvl/best.pt
  python -m train mos-level --checkpoint $INC --manifest $M --cache cache/v14/v062-logits.npz \
    --target self --out runs/v062-self-lvl/best.pt
}
evaluate() {
  local models='"'$INC'","runs/v062-self-nolvl/best.pt","runs/v062-self-lvl/best.pt"'
  python -m train evaluate --config "$CFG" --set "evaluate.models=[$models]" \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=$D/eval
  python results/eval/paired_bootstrap.py --reference v060-hinge-loud $INC $PATHS \
    --json $D/bootstrap.json > $D/bootstrap.md
  python -m train agreement --model $INC $(for p in $PATHS; do echo --model $p; done) \
    --corpus $M --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir $D/agreement
  python results/v13/level_agreement.py $INC $PATHS --manifest cache/levelsweep-fresh/manifest.csv \
    --json $D/level-agreement-fresh.json > $D/level-agreement-fresh.md
  python results/v12/voip_symptom_probe.py --per-cell 6 --no-distillmos --out-dir cache/v14probe \
    $INC $PATHS > $D/probe.md
  cp cache/v14probe/scores.csv $D/probe-scores.csv
  local n=($NAMES) c=($PATHS)
  for i in "${!n[@]}"; do
    python -m train sanity --config "$CFG" --model "${c[$i]}" --strict --teacher-reference \
      --set sanity.out_dir="$D/sanity-${n[$i]}" > "$D/sanity-${n[$i]}.txt" || true
  done
}
rule() {
  python $D/apply_rule.py > $D/selection.md
  grep '^winner:' $D/selection.md
}
webrtc() {
  python -m train realchain --chains webrtc-ns,webrtc-agc --out-dir cache/realchain-webrtc
  python -m train label --config "$CFG" --manifest cache/realchain-webrtc/manifest.csv --teachers nisqa,distillmos \
    --mos-combination mean --no-dnsmos
  [ -f cache/old/livesqa-small-0.4.0.onnx ] || { mkdir -p cache/old; git show 5481ab3:exported/livesqa-small.onnx > cache/old/livesqa-small-0.4.0.onnx; }
  python -m train agreement --model $INC --model cache/old/livesqa-small-0.4.0.onnx --model runs/ft-v11-crops/best.pt \
    --model runs/v062-self-nolvl/best.pt --model exported/livesqa-small-stream.onnx \
    --realchain cache/realchain-webrtc/manifest.csv --out-dir $D/realchain-webrtc
}
case "${1:-all}" in
  fit) fit ;; eval) evaluate ;; rule) rule ;; webrtc) webrtc ;;
  all) fit; evaluate; rule; webrtc ;;
  *) echo "usage: $0 [fit|eval|rule|webrtc|all] [CONFIG]" >&2; exit 2 ;;
esac
