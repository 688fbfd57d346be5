#!/usr/bin/env bash
# The checks, card and sample-call scores every shipped default model gets, after its export.
# Usage: bash train/ship_checks.sh RULE_DIR RECIPE [CONFIG]
#   RULE_DIR: the rule's results folder (its eval/ is copied; RULE_DIR/ship/ gets sanity, agreement, bench)
#   RECIPE  : the build script named in the card
# Needs exported/livesqa-small.onnx (the new model) and cache/livesqa-small-0.6.2.onnx (the one it replaces).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:?usage: $0 RULE_DIR RECIPE [CONFIG]}; RECIPE=${2:?usage: $0 RULE_DIR RECIPE [CONFIG]}
CFG=${3:-configs/train/small.toml}
python -m train sanity --config "$CFG" --model exported/livesqa-small.onnx --teacher-reference --strict
S=$D/ship; mkdir -p $S/sanity $S/bench
cp results/sanity/sanity.md results/sanity/sanity.json $S/sanity/
cp -r $D/eval $S/
python -m train agreement --model cache/livesqa-small-0.6.2.onnx --model exported/livesqa-small.onnx \
  --corpus cache/win11/manifest-w23.csv --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir $S/agreement
python -m train bench --models exported/livesqa-small.onnx cache/livesqa-small-0.6.2.onnx \
  --nisqa "${LIVESQA_DATA_ROOT:-../shared/data}/weights/nisqa/nisqa.tar" > $S/bench/bench.md
python -m train card --model exported/livesqa-small.onnx --results $S \
  --asr-from-card exported/livesqa-small.card.json --probing results/probing-asr-small-v2 --recipe "$RECIPE"
python -m train.make_sample_call --scores-only                     # livesqa/assets/sample_call.md
