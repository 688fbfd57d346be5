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
#   stream: the third rule (results/v13/SELECTION-stream.md): 0.6.2's hinge copied onto 0.6.1-stream, scored
#          under results/v13/stream/; shipstream exports the winner as exported/livesqa-small-stream.onnx 0.6.3-stream
#   ship : only when selection-loud.md names a winner: exported/livesqa-small.onnx 0.6.2 with strict
#          sanity, agreement, bench beside 0.6.0 and NISQA, card and the sample call's scores
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
ship() {
  grep -q '^winner: v060-hinge-loud' results/v13/selection-loud.md || { echo "no winner: 0.6.0 stays" >&2; return 1; }
  [ -f cache/livesqa-small-0.6.0.onnx ] || git show 1a47cc3:exported/livesqa-small.onnx > cache/livesqa-small-0.6.0.onnx
  python -m train export --checkpoint runs/v060-hinge-loud/best.pt --out exported/livesqa-small.onnx --name livesqa-small \
    --version 0.6.2 --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" --training-data "livesqa-small 0.6.0 (see its card: uniform weight average of 0.4.0, simulated corpus \
cache/sim, 25,000 clips, labels NISQA v2, and ft-v9-enh2, 0.4.0 fine-tuned on the real-call catalogue, real AEC-challenge \
windows and real noise suppressors; MOS = 2/3 NISQA v2 + 1/3 DistillMOS) with every weight kept, plus a LOUD level hinge \
(two weights on the window's power-weighted level below -35 / above -16 dBFS) fitted on cache/win11 crops and a level sweep \
of 1,050 train/val clips from -66 to -6 dBFS, LOUD = NISQA v2 (results/v13/SELECTION-loud.md)"
  python -m train sanity --config "$CFG" --model exported/livesqa-small.onnx --teacher-reference --strict
  local R=results/v13/ship; mkdir -p $R/sanity $R/bench
  cp results/sanity/sanity.md results/sanity/sanity.json $R/sanity/
  cp -r results/v13/loud/eval $R/
  python -m train agreement --model cache/livesqa-small-0.6.0.onnx --model exported/livesqa-small.onnx \
    --corpus $M --realchain cache/realchain/manifest.csv --sim-max 878 --out-dir $R/agreement
  python -m train bench --models exported/livesqa-small.onnx cache/livesqa-small-0.6.0.onnx \
    --nisqa "${LIVESQA_DATA_ROOT:-../shared/data}/weights/nisqa/nisqa.tar" > $R/bench/bench.md
  python -m train card --model exported/livesqa-small.onnx --results $R \
    --asr-from-card exported/livesqa-small.card.json --probing results/probing-asr-small-v2 \
    --recipe train/build_level_hinge_v13.sh
  python -m train.make_sample_call --scores-only                     # livesqa/assets/sample_call.md
}
SC=cache/livesqa-small-stream-hinge.onnx
STREAM_DATA="0.6.1-stream (0.6.0-stream, itself distilled from the windowed 0.6.0, fine-tuned 900 steps by dense \
distillation on every whole-second row of 3,654 streams of 4-10 s, fitted to the windowed 0.6.0's scores) with \
the windowed 0.6.2's LOUD level hinge copied unchanged (results/v13/SELECTION-stream.md)"
stream() {
  local D=results/v13/stream; mkdir -p $D
  [ -f runs/v061-stream/best.pt ] || python -m train onnx-import --model exported/livesqa-small-stream.onnx --out runs/v061-stream/best.pt
  python -m train level-hinge --checkpoint runs/v061-stream/best.pt --copy-from runs/v060-hinge-loud/best.pt \
    --out runs/v061-stream-hinge/best.pt
  python -m train export-streaming --checkpoint runs/v061-stream-hinge/best.pt --out $SC --name livesqa-small-stream \
    --version 0.6.3-stream --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" --training-data "$STREAM_DATA"
  python results/v13/level_agreement.py exported/livesqa-small-stream.onnx $SC --manifest cache/levelsweep-fresh/manifest.csv \
    --json $D/level-agreement-fresh.json > $D/level-agreement-fresh.md
  python -m train evaluate --config "$CFG" --set 'evaluate.models=["runs/v061-stream/best.pt","runs/v061-stream-hinge/best.pt"]' \
    --set 'evaluate.datasets=["p835-wb","p835-fb","p835-nb","vmos24-t3"]' --set 'evaluate.peers=[]' --set evaluate.out_dir=$D/eval
  python -m train sanity --config "$CFG" --model $SC --strict --teacher-reference --set sanity.out_dir=$D/sanity \
    > $D/sanity.txt || true
  python results/v13/apply_stream_rule.py > results/v13/selection-stream.md
  grep '^winner:' results/v13/selection-stream.md
}
shipstream() {
  grep -q '^winner: v061-stream-hinge' results/v13/selection-stream.md || { echo "no winner: 0.6.1-stream stays" >&2; return 1; }
  [ -f cache/livesqa-small-stream-0.6.1.onnx ] || git show f6b4ed6:exported/livesqa-small-stream.onnx > cache/livesqa-small-stream-0.6.1.onnx
  cp $SC exported/livesqa-small-stream.onnx
  livesqa bench --model exported/livesqa-small.onnx --streaming exported/livesqa-small-stream.onnx > results/v13/stream/bench-streaming.txt
  livesqa bench --model exported/livesqa-small.onnx --streaming cache/livesqa-small-stream-0.6.1.onnx > results/v13/stream/bench-streaming-0.6.1.txt
}
case "${1:-all}" in
  sweep) sweep ;; fit) fit ;; eval) evaluate ;; rule) rule ;; loud) loud ;; ship) ship ;;
  stream) stream ;; shipstream) shipstream ;;
  all) sweep; fit; evaluate; rule; loud; ship; stream; shipstream ;;
  *) echo "usage: $0 [sweep|fit|eval|rule|loud|ship|stream|shipstream|all] [CONFIG]" >&2; exit 2 ;;
esac
