"""Compile variants of the GPU CKF filter kernel: time of ``find_tracks`` and the tracks.

Usage (on a machine with a CUDA GPU and CuPy, from the repository root):

    python benchmarks/bench_gpu_ckf_compile.py base,noinline,fastmath,threads128,noinline+fastmath

Each variant runs in its own process (compile options are read when the kernels are first
compiled) on one simulated mu = 200 event: ``noinline`` drops the forced inlining of the CKF's
device helpers, ``fastmath`` compiles the filter kernel with fast math, ``threads32`` /
``threads128`` change the block size (64 by default) and ``regsN`` caps the registers. Prints, per
variant, the median and IQR of 20 CUDA-event timings of ``find_tracks`` and of the filter kernel alone
(``filter_seeds`` on prepared device tables), and the number of tracks with a checksum of
their measurements (equal checksums: the same tracks). JSON per variant under $OUT (or /tmp).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

KNOBS = ("base", "noinline", "fastmath", "threads32", "threads128")


def _apply(knobs: set) -> None:
    """Patch the compile options before the first kernel is compiled."""
    import numba.cuda

    from reference.tracking.gpu import backend
    if "noinline" in knobs:
        jit = numba.cuda.jit

        def plain_jit(func_or_sig=None, device=False, **options):  # no forceinline parameter
            options.pop("forceinline", None)
            return jit(func_or_sig, device=device, **options)
        numba.cuda.jit = plain_jit
    extra = {"fastmath": True} if "fastmath" in knobs else {}
    extra.update({"max_registers": int(k[4:]) for k in knobs if k.startswith("regs")})
    options = backend.kernel_options
    backend.kernel_options = lambda family: {**options(family), **(extra if family == "ckf_filter" else {})}


def _event_inputs():
    """Device inputs of find_tracks for one mu = 200 event (seed 1)."""
    from bench_tracking_gpu_ckf import device_ckf_inputs

    from reference.tracking.chain import reconstruct_event
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.simulation import SimulationConfig, simulate_event

    detector = build_generic_detector()
    return device_ckf_inputs(reconstruct_event(simulate_event(detector, SimulationConfig(pileup=200), seed=1),
                                               detector))


def run_variant(variant: str, out: Path) -> None:
    """One variant in this process: JSON to ``out``."""
    import numpy as np
    from gpu_timing import gpu_or_exit, summarize_ms, timed

    knobs = set(variant.split("+"))
    unknown = {k for k in knobs if k not in KNOBS and not (k.startswith("regs") and k[4:].isdigit())}
    if unknown:
        sys.exit(f"unknown variant parts {sorted(unknown)}; use {', '.join(KNOBS)} or regsN, joined by '+'.")
    _apply(knobs)
    cp = gpu_or_exit()
    from reference.tracking.chain import ChainConfig
    from reference.tracking.gpu import ckf as gc
    for size in (32, 128):
        if f"threads{size}" in knobs:
            gc._THREADS = size  # pylint: disable=protected-access
    params, seed_meas, meas, order = _event_inputs()
    config = ChainConfig().ckf

    def call():
        return gc.find_tracks(params, seed_meas, meas, config, seed_order=order)

    started = time.perf_counter()
    tracks = call()
    cp.cuda.Device().synchronize()
    compile_s = time.perf_counter() - started
    for _ in range(3):
        call()
    times = summarize_ms(timed(cp, call, 20))
    _, event = gc.prepare(params, seed_meas, meas, config, seed_order=order)
    caps = gc.capacities(config)
    filter_times = summarize_ms(timed(cp, lambda: gc.filter_seeds(event, caps), 20))
    host = gc.canonical(tracks)
    checksum = int(np.asarray(host.meas, np.int64).sum() * 7 + np.asarray(host.offsets, np.int64).sum())
    out.write_text(json.dumps({"variant": variant, "ms": times, "filter_ms": filter_times, "first_call_s": compile_s, "tracks": len(host.seed),
                               "checksum": checksum, "stats": tracks.stats}, default=float), encoding="utf-8")


def main() -> None:
    if len(sys.argv) == 3:
        run_variant(sys.argv[1], Path(sys.argv[2]))
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = Path(os.environ.get("OUT", "/tmp"))
    for variant in sys.argv[1].split(","):
        path = outdir / f"ckf-compile-{variant.replace('+', '-')}.json"
        done = subprocess.run([sys.executable, __file__, variant, str(path)], capture_output=True, text=True,
                              timeout=400, check=False)
        if done.returncode:
            print(variant, "failed:", done.stderr.strip().splitlines()[-1:] or done.returncode, flush=True)
            continue
        d = json.loads(path.read_text(encoding="utf-8"))
        print(f"{variant}: {d['ms']['median']:.2f} ms (IQR {d['ms']['q25']:.2f}-{d['ms']['q75']:.2f}), filter kernel "
              f"{d['filter_ms']['median']:.2f} ms (IQR {d['filter_ms']['q25']:.2f}-{d['filter_ms']['q75']:.2f}), "
              f"{d['tracks']} tracks, checksum {d['checksum']}", flush=True)


if __name__ == "__main__":
    main()
