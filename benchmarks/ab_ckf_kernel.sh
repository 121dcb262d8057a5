#!/usr/bin/env bash
# Lean A/B of the GPU CKF: find_tracks and the filter kernel alone (bench_gpu_ckf_compile.py) of this
# tree against the tree in a tar (git archive REF reference auditor benchmarks/*.py benchmarks/*.sh
# pyproject.toml README.md -o FILE), alternating one process per version and round.
# Usage (device tool, wheels in .whl/): [ROUNDS="1 2 3"] [VARIANTS=base] bash benchmarks/ab_ckf_kernel.sh FILE
set -u
tarball=${1:?"give the tar of the other tree"}
SITE=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl || exit 1
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
old=$(mktemp -d)
trap 'rm -rf "$old"' EXIT
tar -xf "$tarball" -C "$old" || { echo "cannot unpack $tarball"; exit 2; }
cp benchmarks/bench_gpu_ckf_compile.py "$old/benchmarks/"  # the same measurement in both trees
for round in ${ROUNDS:-1 2}; do
  for version in new old; do
    dir=$PWD
    [ "$version" = old ] && dir=$old
    mkdir -p "$OUT/$version-$round"
    (cd "$dir" && OUT=$OUT/$version-$round PYTHONPATH=$SITE:$dir python3 benchmarks/bench_gpu_ckf_compile.py \
      "${VARIANTS:-base}" | sed "s/^/$version round $round: /")
  done
done
