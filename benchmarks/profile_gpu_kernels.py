"""Workload for Nsight Compute: the GPU CKF and seeding of one pile-up event, data resident.

Usage (on a machine with a CUDA GPU, CuPy and ``ncu``):

    ncu --kernel-name regex:ckf_seeds --launch-skip 2 --launch-count 1 --set full \\
        python benchmarks/profile_gpu_kernels.py --pileup 200 --calls 3

The script simulates one event, runs the CPU chain for the seeds and their parameters, copies
the inputs to the device and calls the GPU ``find_tracks`` and ``find_seeds`` ``--calls`` times
each, so that a profiler can skip the compiling launches. Kernels are compiled with line
information (``lineinfo``) so the profiler's source view names the Python lines. Without a
profiler it prints the CUDA-event time of every call.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from gpu_timing import gpu_or_exit, timed  # noqa: E402


def with_lineinfo() -> None:
    """Every kernel family compiled with line information (for the profiler's source view)."""
    from reference.tracking.gpu import backend

    options = backend.kernel_options
    backend.kernel_options = lambda family: {**options(family), "lineinfo": True}


def _number(text: str) -> float:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def summarize(path: str, top: int = 40) -> None:
    """The hottest source lines of an ``ncu --page source --csv`` export: share of the stall
    samples, of the executed warp instructions, and the mean active threads per warp."""
    import csv  # pylint: disable=import-outside-toplevel

    csv.field_size_limit(1 << 30)
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.reader(handle))
    header = next((i for i, r in enumerate(rows) if "Warp Stall Sampling (All Samples)" in r), None)
    if header is None:
        sys.exit(f"{path} holds no ncu source table (no 'Warp Stall Sampling' column).")
    names = rows[header]
    col = {name: i for i, name in enumerate(names)}
    source = col.get("Source", 1)
    lines, where = [], "?"
    for number, row in enumerate(rows[header + 1:]):
        if len(row) != len(names):
            where = " ".join(row)[:80] or where
            continue
        lines.append((where, row[0], row[source].strip()[:90], _number(row[col["Warp Stall Sampling (All Samples)"]]),
                      _number(row[col["Instructions Executed"]]), _number(row[col["Thread Instructions Executed"]]),
                      number))
    samples = sum(item[3] for item in lines) or 1.0
    executed = sum(item[4] for item in lines) or 1.0
    print(f"{len(lines)} source rows, {samples:.0f} stall samples, {executed:.0f} warp instructions")
    for where, line, text, smp, ex, th, _ in sorted(lines, key=lambda item: -item[3])[:top]:
        print(f"{100 * smp / samples:5.1f}% stalls {100 * ex / executed:5.1f}% instr "
              f"{th / ex if ex else 0:4.1f} active | {where[-30:]}:{line} {text}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--summarize":
        summarize(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pileup", type=int, default=200)
    parser.add_argument("--calls", type=int, default=3, help="calls of each stage (the profiler skips the first)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stages", default="ckf,seeding", help="comma-separated: ckf, seeding")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    if not stages <= {"ckf", "seeding"} or args.calls < 1:
        sys.exit("--stages takes ckf and/or seeding, and --calls must be at least 1.")
    cp = gpu_or_exit()
    with_lineinfo()
    from bench_tracking_gpu_ckf import ckf_inputs
    from bench_tracking_gpu_seeding import device_products

    from reference.tracking.chain import ChainConfig, reconstruct_event
    from reference.tracking.estimation import TrackParameters
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.gpu import ckf as gc
    from reference.tracking.gpu import seeding as gs
    from reference.tracking.simulation import SimulationConfig, simulate_event

    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=args.pileup), seed=args.seed)
    res = reconstruct_event(event, detector)
    config = ChainConfig()
    sp_dev, meas_dev, _ = device_products(cp, res)
    if "ckf" in stages:
        params, seed_meas, order = ckf_inputs(res)
        params_dev = TrackParameters(cp.asarray(params.params), cp.asarray(params.cov), cp.asarray(params.surface))
        seed_meas_dev, order_dev = cp.asarray(seed_meas), cp.asarray(order)
        times = timed(cp, lambda: gc.find_tracks(params_dev, seed_meas_dev, meas_dev, config.ckf,
                                                 seed_order=order_dev), args.calls)
        print("find_tracks ms:", [round(t, 2) for t in times])
    if "seeding" in stages:
        times = timed(cp, lambda: gs.find_seeds(sp_dev, config.seeding, "float32"), args.calls)
        print("find_seeds ms:", [round(t, 2) for t in times])


if __name__ == "__main__":
    main()
