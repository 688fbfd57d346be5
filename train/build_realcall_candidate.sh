#!/usr/bin/env bash
# Session 7's real-call candidate (ft-v5-realcall) and its evaluation; resumable stage by stage.
# Usage: bash train/build_realcall_candidate.sh [CONFIG]. Needs 0.4.0 (runs/v040/best.pt, made here
# from the released ONNX file when absent). Results: results/eval/, results/v5/selection.md,
# results/agreement/. It did not ship: results/v5/selection.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${1:-configs/train/small.toml}
mkdir -p cache
git show 5481ab3:exported/livesqa-small.onnx > cache/livesqa-small-0.4.0.onnx   # the 0.4.0 release
if [ ! -f runs/v040/best.pt ]; then
  if [ -f runs/ft-asr2-la-25k-avg/best.pt ]; then mkdir -p runs/v040 && cp runs/ft-asr2-la-25k-avg/best.pt runs/v040/
  else python -m train onnx-import --model cache/livesqa-small-0.4.0.onnx --out runs/v040/best.pt; fi
fi
python -m train extra-speech                                         # cache/extra-speech/ (apt-get download)
SIM5="--set simulate.out_dir=cache/sim5 --set simulate.families=v3 --set simulate.seed=20261129 \
  --set simulate.min_clip_s=1.5 --set simulate.max_clip_s=4.0 --set simulate.fixed_length_fraction=0.7 \
  --set simulate.extra_speech=cache/extra-speech/index.csv --set simulate.clean_fraction=0.07"
python -m train simulate --config "$CFG" $SIM5 --n-clips 200
python -m train real-clips --manifest cache/sim5/manifest.csv           # 2,062 windows of 792 recordings
python -m train simulate --config "$CFG" $SIM5 --n-clips 6000
# session 7 labelled while training ran (the train split was re-read each epoch; the last epoch
# saw 6,546 clips, 6,131 with both teachers); a rebuild labels everything first
python -m train label --config "$CFG" --manifest cache/sim5/manifest.csv --teachers nisqa --no-dnsmos \
  --mos-combination mean
python -m train label --config "$CFG" --manifest cache/sim5/manifest.csv --teachers distillmos --no-dnsmos \
  --mos-combination mean
python -m train finetune --config "$CFG" --set finetune.run=ft-v5-realcall \
  --set finetune.manifest=cache/sim5/manifest.csv --set finetune.init=checkpoint \
  --set finetune.init_checkpoint=runs/v040/best.pt --set finetune.schedule=cosine \
  --set finetune.total_steps=2400 --set finetune.max_steps=2400 --set finetune.lr=5e-4 \
  --set finetune.encoder_lr=2e-4 --set finetune.crop_s=0 --set finetune.max_minutes=170 \
  --set finetune.val_minutes=8 --set finetune.val_max_clips=400 --set finetune.snapshots=true
python -m train average --run runs/ft-v5-realcall --last 4 --out runs/ft-v5-realcall-avg/best.pt
python -m train evaluate --config "$CFG"                             # every row, four human-rated views
python results/v5/select.py > results/v5/selection.md                # the rule fixed before the run
# the label-free views: held-out talkers through real software, held-out AEC devices, sim-test
python -m train realchain
python -m train label --config "$CFG" --manifest cache/realchain/manifest.csv --teachers nisqa,distillmos \
  --mos-combination mean --no-dnsmos
python -m train agreement --model cache/livesqa-small-0.4.0.onnx --model runs/ft-v5-realcall-avg/best.pt \
  --sim-max 400                                                      # results/agreement/
