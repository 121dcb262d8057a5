#!/usr/bin/env bash
# GPU-machine checks of hepaudit run / profile and the whole test suite; results under $OUT.
# Usage (device tool): bash benchmarks/device_checks.sh   (wheels for missing packages in .whl/)
set -u
SITE=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
export PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1 || echo "editable install failed (see install.log)"
export PATH=$PATH:$SITE/bin
( time python3 -m auditor run --out "$OUT/run" ) > "$OUT/run.txt" 2>&1; echo "hepaudit run rc=$?"
python3 -m auditor profile --name gemm --repeats 3 --out "$OUT/profile" -- python3 -c \
  "import torch; a = torch.randn(8192, 8192, device='cuda'); [a @ a for _ in range(200)]; torch.cuda.synchronize()" \
  > "$OUT/profile.txt" 2>&1; echo "hepaudit profile rc=$?"
python3 -m pytest tests -q -p no:cacheprovider > "$OUT/pytest.txt" 2>&1; echo "pytest rc=$?"
tail -3 "$OUT/pytest.txt"; tail -25 "$OUT/run.txt"; grep -A8 "Stage" "$OUT/profile.txt" | head -12
