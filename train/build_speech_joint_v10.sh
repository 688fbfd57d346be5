#!/usr/bin/env bash
# Session 12, issue #14: the speech output trained jointly with the unfrozen encoder
# (results/v10/SELECTION-speech.md); resumable. Needs runs/v060 (bash train/build_stream_dense_v10.sh
# rebuilds it from the shipped file) and Debian's hold music for the benchmark:
#   apt-get download asterisk-moh-opsound-g722 && dpkg-deb -x asterisk-moh-opsound-g722_*.deb /tmp/moh
# Usage: bash train/build_speech_joint_v10.sh [train|bench|quality|all] [MOH_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=${1:-all}
MOH=${2:-/tmp/moh/usr/share/asterisk/moh}
CFG=configs/train/small.toml
OUT=cache/livesqa-small-joint.onnx
train() {
  [ -f runs/v060/best.pt ] || python -m train onnx-import --model exported/livesqa-small.onnx --out runs/v060/best.pt
  python -m train speech-joint --checkpoint runs/v060/best.pt --out runs/v060-joint/best.pt \
    --windows 3000 --steps 1500 --batch 8 --warmup 50 --eval-every 150 --no-progress
  python -m train export --checkpoint runs/v060-joint/best.pt --out $OUT --name livesqa-small-joint \
    --version 0.6.0-joint --licence "CC BY-NC-SA 4.0 (trained on NISQA outputs)" \
    --training-data "livesqa-small 0.6.0 trained 1,500 steps on 3,000 simulated 1-4 s windows: speech-presence BCE on frame labels + MSE to 0.6.0's own scores (python -m train speech-joint)"
}
bench() {  # the rule is chosen on val (the model grid), then reported on test
  python results/vad/bench_vad.py --split val --grid --moh "$MOH" --speech-model $OUT --out results/v10/vad-val-joint.md
  local rule
  rule=$(python - <<'PY'
import re
text = open("results/v10/vad-val-joint.md", encoding="utf-8").read()
block = text.split("## model: every")[1]
row = next(l for l in block.splitlines() if re.match(r"\| [0-9.]+ \| [0-9.]+ \|", l))
print(*row.split("|")[1:3])
PY
)
  python results/vad/bench_vad.py --split test --moh "$MOH" --speech-model $OUT --model-rule $rule \
    --out results/v10/vad-test-joint.md
}
quality() {
  python -m train sanity --config "$CFG" --model runs/v060-joint/best.pt --strict --set sanity.out_dir=results/v10/sanity-joint \
    > results/v10/sanity-joint.txt 2>&1 || true
  python results/eval/paired_bootstrap.py --reference v060 runs/v060/best.pt runs/v060-joint/best.pt \
    --json results/v10/bootstrap-joint.json > results/v10/bootstrap-joint.md
}
case $STAGE in
  train) train ;;
  bench) bench ;;
  quality) quality ;;
  all) train; bench; quality ;;
  *) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
