#!/usr/bin/env bash
# Label a corpus manifest with both teachers and write its manifest-w23.csv beside it.
# Usage: bash train/label_both_teachers.sh MANIFEST [CONFIG]
# NISQA and DistillMOS (two shards) run in parallel, each resumable (`python -m train label`);
# then MOS = 2/3 NISQA + 1/3 DistillMOS, NOI/COL/DIS/LOUD = NISQA. Logs: logs/label-<folder>-*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${1:?usage: $0 MANIFEST [CONFIG]}; CFG=${2:-configs/train/small.toml}
mkdir -p logs
pids=(); tag=$(basename "$(dirname "$M")")
for X in nisqa distillmos:0/2 distillmos:1/2; do
  SHARD=${X#*:}; [ "$SHARD" = "$X" ] && SHARD=0/1
  python -m train label --config "$CFG" --manifest "$M" --teachers ${X%%:*} --no-dnsmos \
    --mos-combination mean --shard $SHARD > "logs/label-$tag-${X/\//of}.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
python - "$M" <<'PY'
import csv
import sys
path = sys.argv[1]
rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
missing = [r["filename_deg"] for r in rows if not (r["nisqa_mos"] and r["distillmos_mos"])]
assert not missing, f"{len(missing)} clips lack a teacher label, e.g. {missing[:3]}"
for r in rows:
    r["mos"] = f"{2 / 3 * float(r['nisqa_mos']) + 1 / 3 * float(r['distillmos_mos']):.6f}"
out = path.replace("manifest.csv", "manifest-w23.csv")
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
print(f"{out}: {len(rows)} rows, MOS = 2/3 NISQA + 1/3 DistillMOS")
PY
