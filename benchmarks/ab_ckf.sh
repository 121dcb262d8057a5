#!/usr/bin/env bash
# A/B of the GPU CKF: the working tree against the tree at REF (default HEAD), in alternating
# rounds on one machine, each with bench_tracking_gpu_ckf.py (one mu = 200 event). The working
# tree's run also times variants of the skip rule's chunks and of the filter threads.
# Usage (device tool): bash benchmarks/ab_ckf.sh [ROUNDS [REF]]   (results under $OUT/ab-ckf/); REF may be a
# tar file of the other tree (git archive REF -o FILE) where the device's copy has no git history.
set -u
rounds=${1:-1}
ref=${2:-HEAD}
mkdir -p "$OUT/ab-ckf"
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
if [ -f "$ref" ]; then  # a tar of the other tree (git archive REF -o FILE), carried to the device
  tar -xf "$ref" -C "$old" || { echo "cannot unpack $ref"; exit 2; }
else
  git archive "$ref" | tar -x -C "$old" || { echo "no tree at $ref"; exit 2; }
fi
for round in $(seq 1 "$rounds"); do
  for version in new old; do
    dir=$PWD
    [ "$version" = old ] && dir=$old
    (cd "$dir" && timeout 420 python3 benchmarks/bench_tracking_gpu_ckf.py --events 1 --repeats 20 --cpu-repeats 1 \
      --out "$OUT/ab-ckf/$version-$round.json" > /dev/null 2> "$OUT/ab-ckf/$version-$round.err")
    echo "$version round $round rc=$?"
    python3 - "$OUT/ab-ckf/$version-$round.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["events"][0]
print(" ckf", round(e["gpu_ckf_ms"]["median"], 2), "ms; prebuilt grid", round(e["gpu_ckf_prebuilt_grid_ms"]["median"], 2),
      "ms; cpu", round(e["cpu_ckf_ms"]["median"], 1), "ms;", e["stats"])
print(" steps", {k: round(v["median"], 3) for k, v in e["gpu_steps_ms"].items()})
print(" agreement", e["agreement"])
for name, v in e.get("gpu_variants", {}).items():
    print(" variant", name, round(v["ms"]["median"], 2), "ms", {k: v[k] for k in ("seeds_run", "branch_steps", "dedup_rounds", "tracks")})
print("\n".join(e.get("host_profile", [])[:45]))
PY
  done
done
