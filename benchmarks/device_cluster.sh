#!/usr/bin/env bash
# GPU-machine runs of the scale-out work: GPU tests, a pile-up sweep on a local Dask cluster with one
# GPU worker and one CPU worker, and a tracking run report. Results under $OUT.
# Usage (device tool, wheels for missing packages in .whl/): bash benchmarks/device_cluster.sh STEP...
#   STEP: tests | gputests | throughput | batchthroughput | float64 | sweep | run | dqm | distill | distillbench | abckf | abthroughput
#         | registers | seedingbench | profile   (abckf and abthroughput compare with the tree in AB_REF: a git ref or a tar)
set -u
SITE=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1 PATH=$PATH:$SITE/bin
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1 || echo "editable install failed"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
lscpu | grep -E "Model name|^CPU\(s\)" >> "$OUT/gpu.txt"
for step in "$@"; do
  started=$(date +%s)
  case $step in
    tests) NUMBA_ENABLE_CUDASIM=0 timeout 300 python3 -m pytest -q -p no:cacheprovider tests/reference/tracking \
             tests/auditor/test_cluster_run.py > "$OUT/pytest-gpu.txt" 2>&1; echo "pytest rc=$?"; tail -4 "$OUT/pytest-gpu.txt" ;;
    gputests) NUMBA_ENABLE_CUDASIM=0 timeout 300 python3 -m pytest -q -p no:cacheprovider tests/reference/tracking_gpu \
             > "$OUT/pytest-tracking-gpu.txt" 2>&1; echo "pytest rc=$?"; tail -4 "$OUT/pytest-tracking-gpu.txt" ;;
    throughput) timeout 420 python3 benchmarks/bench_tracking_gpu_throughput.py --pileup 200 --events 16 \
             --streams 1,2,4,8 --repeats 3 --pinned-input --out "$OUT/throughput.json" > "$OUT/throughput.txt" 2>&1
           echo "throughput rc=$?"; grep -v '^ *"runs"\|^ *[0-9.]*,\?$' "$OUT/throughput.txt" | tail -45 ;;
    batchthroughput) timeout "${TP_TIMEOUT:-480}" python3 benchmarks/bench_tracking_gpu_throughput.py --pileup 200 \
             --events "${TP_EVENTS:-32}" --streams "${TP_STREAMS:-1,2,4}" --batch "${TP_BATCH:-1,4,8}" --repeats "${TP_REPEATS:-3}" \
             --pinned-only --no-cpu --agreement-events 0 ${TP_FLAGS:-} --out "$OUT/throughput-batch.json" \
             > "$OUT/throughput-batch.txt" 2>&1; echo "throughput rc=$?"; grep "^GPU" "$OUT/throughput-batch.txt"
           python3 -c "
import json, sys; d = json.load(open(sys.argv[1]))
for key in ('stage_ms_pinned_input', 'stage_ms_pinned_input_batch'):
    print(key, {k: round(v, 2) if isinstance(v, float) else v for k, v in d.get(key, {}).items() if k != 'host_cpu'})
    print('  host cpu', {k: round(v, 2) for k, v in d.get(key, {}).get('host_cpu', {}).items()})
for row in d.get('host_profile_batch', [])[:14]: print('  ', row)" "$OUT/throughput-batch.json" ;;
    float64) for mu in 20 200; do timeout 300 python3 benchmarks/bench_tracking_gpu_throughput.py --pileup $mu \
             --events 3 --agreement-only > "$OUT/float64-mu$mu.txt" 2>&1; echo "float64 mu=$mu rc=$?"; cat "$OUT/float64-mu$mu.txt"; done ;;
    distillbench) timeout 570 python3 benchmarks/bench_distill.py --device cuda --tasks "${DISTILL_TASKS:-digits,seeds,dqm}" \
             ${DISTILL_TARGETS:+--targets $DISTILL_TARGETS} --out "$OUT/distill" > "$OUT/distill.txt" 2>&1; echo "distill bench rc=$?"; tail -80 "$OUT/distill.txt" ;;
    registers) timeout 540 python3 benchmarks/bench_gpu_registers.py --ckf "${CKF_CAPS:-0,default}" \
             --seeding "${SEEDING_CAPS:-0,default}" --out "$OUT/registers.json" > "$OUT/registers.txt" 2> "$OUT/registers.err"
           echo "registers rc=$?"; tail -5 "$OUT/registers.err"; python3 -c "
import json, sys; d = json.load(open(sys.argv[1]))
for v in d['seeding']: print('seeding cap', v['cap'], round(v['find_seeds_ms']['median'], 3), 'ms', v['kernels'], v['same_seeds_as_first'],
                           {k: round(s['median'], 3) for k, s in v['steps_ms'].items()})
for v in d['ckf']: print('ckf cap', v['cap'], round(v['ms']['median'], 2), 'ms', v.get('registers'), v.get('local_bytes'), v['same_tracks_as_first'])
" "$OUT/registers.json" ;;
    seedingbench) timeout 420 python3 benchmarks/bench_tracking_gpu_seeding.py --events "${SEED_EVENTS:-2}" --repeats 20 \
             --batch "${SEED_BATCH:-0}" --precisions "${SEED_PRECISIONS:-float32,float64}" --out "$OUT/seeding.json" > "$OUT/seeding.txt" 2> "$OUT/seeding.err"; echo "seeding bench rc=$?"; tail -3 "$OUT/seeding.err"
           python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print({k: d[k] for k in ('float32', 'batch') if k in d})" \
             "$OUT/seeding.json" ;;
    profile) ncu --version | tail -1  # Nsight Compute on the CKF filter kernel (PROFILE_KERNEL: a name regex)
           timeout 420 ncu --kernel-name "regex:${PROFILE_KERNEL:-ckf_seeds}" --launch-skip 2 --launch-count 1 --set full \
             --import-source yes -f -o "$OUT/profile" python3 benchmarks/profile_gpu_kernels.py \
             --stages "${PROFILE_STAGES:-ckf}" --calls 3 > "$OUT/profile.log" 2>&1; echo "ncu rc=$?"; tail -4 "$OUT/profile.log"
           ncu --import "$OUT/profile.ncu-rep" --page details > "$OUT/profile-details.txt" 2>&1
           # per machine instruction (numba's line information does not reach ncu's source view)
           ncu --import "$OUT/profile.ncu-rep" --page source --csv --print-source sass > "$OUT/profile-sass.csv" 2>&1
           python3 benchmarks/profile_gpu_kernels.py --summarize "$OUT/profile-sass.csv" > "$OUT/profile-sass.txt" 2>&1
           head -30 "$OUT/profile-sass.txt"
           grep -E "Duration|Throughput|Registers|Local|Occupancy|Hit Rate|Warp Cycles|Eligible|Issued|One or More" \
             "$OUT/profile-details.txt" | head -60 ;;
    abckf) bash benchmarks/ab_ckf.sh "${AB_ROUNDS:-1}" "${AB_REF:-HEAD}" ;;
    abthroughput) old=$(mktemp -d); tar -xf "$AB_REF" -C "$old" || { echo "AB_REF must be a tar of the other tree"; continue; }
           for version in new old; do dir=$PWD; [ "$version" = old ] && dir=$old
             (cd "$dir" && timeout 280 python3 benchmarks/bench_tracking_gpu_throughput.py --pileup 200 --events 16 \
               --streams 1,2,4 --repeats 3 --pinned-input --cpu-events 2 --agreement-events 1 \
               --out "$OUT/throughput-$version.json" > "$OUT/throughput-$version.txt" 2>&1)
             echo "throughput $version rc=$?"; python3 -c "
import json, sys; d = json.load(open(sys.argv[1]))
for key in ('gpu', 'gpu_pinned_input'): print(key, {s: round(v['median'], 1) for s, v in d[key].items()})
print('stages pinned', {k: round(v, 2) if isinstance(v, float) else v for k, v in d['stage_ms_pinned_input'].items()})
print('cpu', d['cpu'])" "$OUT/throughput-$version.json"; done; rm -rf "$old" ;;
    sweep) timeout 420 python3 -m auditor sweep --chain tracking --grid pileup=20,60,100,140,200,300 --events 2 \
             --mode quick --scheduler local:2 --out "$OUT/sweep-gpu" > "$OUT/sweep-gpu.txt" 2>&1
           echo "sweep rc=$?"; tail -40 "$OUT/sweep-gpu.txt" ;;
    run) timeout 480 python3 -m auditor run --chain tracking --pileup 200 --events 3 --mode normal \
             --out "$OUT/run-tracking" > "$OUT/run-tracking.txt" 2>&1; echo "run rc=$?"; tail -60 "$OUT/run-tracking.txt" ;;
    dqm|distill) timeout 540 python3 -m auditor run --chain "$step" --mode normal --out "$OUT/run-$step" \
             > "$OUT/run-$step.txt" 2>&1; echo "run $step rc=$?"; grep -A14 "Stage " "$OUT/run-$step.txt" | head -30 ;;
  esac
  echo "$step took $(( $(date +%s) - started )) s"
done
