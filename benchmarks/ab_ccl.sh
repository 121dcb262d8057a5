#!/usr/bin/env bash
# A/B of the GPU clusterization + spacepoints timing: the working tree's
# reference/tracking/gpu/clusterization.py against its version at REF (default HEAD), in
# alternating rounds on one machine. The working-tree file is put back at the end.
# Usage (device tool): bash benchmarks/ab_ccl.sh [ROUNDS [REF]]   (results under $OUT/ab-ccl/)
set -u
rounds=${1:-2}
ref=${2:-HEAD}
mkdir -p "$OUT/ab-ccl"
file=reference/tracking/gpu/clusterization.py
keep=$(mktemp -d)
cp "$file" "$keep/new.py"
trap 'cp "$keep/new.py" "$file"; rm -rf "$keep"' EXIT
git show "$ref:$file" > "$keep/old.py" || { echo "no version of $file at $ref"; exit 2; }
for round in $(seq 1 "$rounds"); do
  for version in new old; do
    cp "$keep/$version.py" "$file"
    timeout 240 python3 benchmarks/bench_tracking_gpu_ccl.py --events 3 --repeats 30 \
      > "$OUT/ab-ccl/$version-$round.json" 2> "$OUT/ab-ccl/$version-$round.err"
    echo "$version round $round rc=$?"
  done
done
