#!/usr/bin/env bash
# Session 15: the MOS output's level term re-fitted to broadband level (issue #13; results/v12/SELECTION.md).
# Needs runs/v060 (onnx-import of the shipped file), runs/soup-v060-v11 and cache/win11/manifest-w23.csv
# (bash train/build_realcall_v11.sh data manifest train), and cache/realchain labelled (see results/v11/README.md).
# Usage: bash train/build_mos_level_v12.sh [fit|eval|rule|all] [CONFIG]
#   fit  : the three declared candidates (python -m train mos-level), about 4 min per base model
#   eval : the four human-rated views, paired bootstrap, label-free agreement, the VoIP probe, sanity
#   rule : results/v12/selection.md (apply_rule.py)
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${2:-configs/train/small.toml}
M=cache/win11/manifest-w23.csv
NAMES="v060-mos-lvl v060-mos-nolvl soup-v11-mos-lvl"
PATHS="runs/v060-mos-lvl/best.pt runs/v060-mos-nolvl/best.pt runs/soup-v11-mos-lvl/best.pt"
mkdir -p logs cache/v12 results/v12

fit() {
  python -m train mos-level --checkpoint runs/v060/best.pt --manifest $M --cache cache/v12/v060-logits.npz \
    --out runs/v060-mos-lvl/best.pt
  python -m train mos-level --checkpoint runs/v060/best.pt --manifest $M --cache cache/v12/v060-logits.npz \
    --no-level --out runs/v060-mos-nolvl/best.pt
  python -m train mos-level --checkpoint runs/soup-v060-v11/best.pt --manifest $M --cache cache/v12/soup-logits.npz \
    --out runs/soup-v11-mos-lvl/best.pt
}
evaluate() {
  local models='"runs/v060/best.pt","runs/v060-mos-lvl/best.pt","runs/v060-mos-nolvl/best.pt","runs/soup-v11-mos-lvl/best.pt"'
  python -m train evaluate --config "$CFG" --set "evaluate.models=[$models]" \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=results/v12/eval
  python results/eval/paired_bootstrap.py --reference v060 runs/v060/best.pt $PATHS \
    --json results/v12/bootstrap.json > results/v12/bootstrap.md
  python -m train agreement --model runs/v060/best.pt $(for p in $PATHS; do echo --model $p; done) \
    --corpus $M --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir results/v12/agreement
  python results/v12/voip_symptom_probe.py --per-cell 6 --no-distillmos --out-dir cache/v12probe-rule \
    runs/v060/best.pt $PATHS > results/v12/probe-rule.md
  cp cache/v12probe-rule/scores.csv results/v12/probe-scores.csv
  local n=($NAMES) c=($PATHS)
  for i in "${!n[@]}"; do
    python -m train sanity --config "$CFG" --model "${c[$i]}" --strict --set sanity.out_dir="results/v12/sanity-${n[$i]}" \
      > "results/v12/sanity-${n[$i]}.txt" || true
  done
}
rule() {
  python results/v12/apply_rule.py --eval results/v12/eval/eval.csv --bootstrap results/v12/bootstrap.json \
    --agreement results/v12/agreement/agreement.csv --probe results/v12/probe-scores.csv \
    --sanity-dir results/v12 > results/v12/selection.md
  grep '^winner:' results/v12/selection.md
}
case "${1:-all}" in
  fit) fit ;; eval) evaluate ;; rule) rule ;;
  all) fit; evaluate; rule ;;
  *) echo "usage: $0 [fit|eval|rule|all] [CONFIG]" >&2; exit 2 ;;
esac
