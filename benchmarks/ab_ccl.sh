#!/usr/bin/env bash
# A/B of the GPU clusterization + spacepoints timing: the working tree against the committed
# version of reference/tracking/gpu/clusterization.py, alternating rounds in one machine session.
# Usage (device tool): bash benchmarks/ab_ccl.sh ROUNDS   (results under $OUT/ab-ccl/)
set -u
rounds=${1:-2}
mkdir -p "$OUT/ab-ccl"
file=reference/tracking/gpu/clusterization.py
cp "$file" /tmp/clusterization.new.py
git show "HEAD:$file" > /tmp/clusterization.old.py || { echo "no git history here"; exit 2; }
for round in $(seq 1 "$rounds"); do
  for version in new old; do
    cp "/tmp/clusterization.$version.py" "$file"
    timeout 240 python3 benchmarks/bench_tracking_gpu_ccl.py --events 3 --repeats 30 \
      > "$OUT/ab-ccl/$version-$round.json" 2> "$OUT/ab-ccl/$version-$round.err"
    echo "$version round $round rc=$?"
  done
done
cp /tmp/clusterization.new.py "$file"
