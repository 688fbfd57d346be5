#!/usr/bin/env bash
# Session 16: the level hinge (issue #13; results/v13/SELECTION.md). Resumable stage by stage.
# Needs runs/v060 (python -m train onnx-import --model exported/livesqa-small.onnx --out runs/v060/best.pt),
# cache/win11/manifest-w23.csv (bash train/build_realcall_v11.sh data manifest train) and cache/realchain
# labelled (results/v11/README.md).
# Usage: bash train/build_level_hinge_v13.sh [sweep|fit|eval|rule|all] [CONFIG]
#   sweep: the level sweep, 1,290 clips, and both teachers' labels (about 8 min)
#   fit  : python -m train level-hinge on 0.6.0 (about 5 min)
#   eval : level agreement, the four human-rated views, paired bootstrap, label-free agreement, probe, sanity
#   rule : results/v13/selection.md (apply_rule.py)
#   loud : the second rule (results/v13/SELECTION-loud.md): a fresh test sweep, the LOUD-only fit, its
#          evaluation under results/v13/loud/ and results/v13/selection-loud.md
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${2:-configs/train/small.toml}
M=cache/win11/manifest-w23.csv
S=cache/levelsweep/manifest.csv
C=runs/v060-hinge/best.pt
mkdir -p logs cache/v13 results/v13

sweep() {
  python -m train level-sweep --out-dir cache/levelsweep
  python -m train label --manifest $S --teachers nisqa,distillmos --mos-combination mean --no-dnsmos
}
fit() {
  python -m train level-hinge --checkpoint runs/v060/best.pt --manifest $M --manifest $S \
    --cache cache/v13/v060-hinge-rows.npz --out $C
}
evaluate() {
  python results/v13/level_agreement.py runs/v060/best.pt $C --json results/v13/level-agreement.json \
    > results/v13/level-agreement.md
  python -m train evaluate --config "$CFG" --set 'evaluate.models=["runs/v060/best.pt","'$C'"]' \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=results/v13/eval
  python results/eval/paired_bootstrap.py --reference v060 runs/v060/best.pt $C \
    --json results/v13/bootstrap.json > results/v13/bootstrap.md
  python -m train agreement --model runs/v060/best.pt --model $C \
    --corpus $M --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir results/v13/agreement
  python results/v12/voip_symptom_probe.py --per-cell 6 --no-distillmos --out-dir cache/v13probe \
    runs/v060/best.pt $C > results/v13/probe.md
  cp cache/v13probe/scores.csv results/v13/probe-scores.csv
  python -m train sanity --config "$CFG" --model $C --strict --teacher-reference \
    --set sanity.out_dir=results/v13/sanity-v060-hinge > results/v13/sanity-v060-hinge.txt || true
}
rule() {
  python results/v13/apply_rule.py > results/v13/selection.md
  grep '^winner:' results/v13/selection.md
}
loud() {
  local L=runs/v060-hinge-loud/best.pt D=results/v13/loud F=cache/levelsweep-fresh/manifest.csv
  mkdir -p $D
  python -m train level-sweep --out-dir cache/levelsweep-fresh --train 0 --val 0 --test 240 --seed 29
  python -m train label --manifest $F --teachers nisqa,distillmos --mos-combination mean --no-dnsmos
  python -m train level-hinge --checkpoint runs/v060/best.pt --manifest $M --manifest $S \
    --cache cache/v13/v060-hinge-rows.npz --outputs loud --out $L
  python results/v13/level_agreement.py runs/v060/best.pt $L --manifest $F --json $D/level-agreement-fresh.json \
    > $D/level-agreement-fresh.md
  python results/v13/level_agreement.py runs/v060/best.pt $L --json $D/level-agreement.json > $D/level-agreement.md
  python -m train evaluate --config "$CFG" --set 'evaluate.models=["runs/v060/best.pt","'$L'"]' \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set evaluate.out_dir=$D/eval
  python results/eval/paired_bootstrap.py --reference v060 runs/v060/best.pt $L --json $D/bootstrap.json > $D/bootstrap.md
  python -m train agreement --model runs/v060/best.pt --model $L \
    --corpus $M --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir $D/agreement
  python results/v12/voip_symptom_probe.py --per-cell 6 --no-distillmos --out-dir cache/v13probe-loud \
    runs/v060/best.pt $L > $D/probe.md
  cp cache/v13probe-loud/scores.csv $D/probe-scores.csv
  python -m train sanity --config "$CFG" --model $L --strict --teacher-reference \
    --set sanity.out_dir=$D/sanity-v060-hinge-loud > $D/sanity-v060-hinge-loud.txt || true
  python results/v13/apply_rule.py --rule loud --dir $D > results/v13/selection-loud.md
  grep '^winner:' results/v13/selection-loud.md
}
case "${1:-all}" in
  sweep) sweep ;; fit) fit ;; eval) evaluate ;; rule) rule ;; loud) loud ;;
  all) sweep; fit; evaluate; rule; loud ;;
  *) echo "usage: $0 [sweep|fit|eval|rule|loud|all] [CONFIG]" >&2; exit 2 ;;
esac
