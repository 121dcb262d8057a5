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


def source_table(path: str) -> tuple[list, list]:
    """(column names, rows) of an ``ncu --page source --csv`` export (one row per instruction or
    source line); exits with one sentence when the file holds none."""
    import csv  # pylint: disable=import-outside-toplevel

    csv.field_size_limit(1 << 30)
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            rows = list(csv.reader(handle))
    except OSError as error:
        sys.exit(f"Cannot read {path}: {error.strerror}.")
    header = next((i for i, r in enumerate(rows) if "Warp Stall Sampling (All Samples)" in r), None)
    if header is None:
        sys.exit(f"{path} holds no ncu source table (no 'Warp Stall Sampling' column).")
    names = rows[header]
    return names, [r for r in rows[header + 1:] if len(r) == len(names)]


def summary(names: list, rows: list, top: int = 20) -> dict:
    """Stall reasons (share of the samples), active threads per executed warp instruction, the
    opcodes by executed instructions, how many instructions hold half and 90 % of the stall
    samples, and the ``top`` instructions by stall samples."""
    col = {name: i for i, name in enumerate(names)}

    def column(name):
        return [_number(r[col[name]]) for r in rows]
    samples, executed = column("Warp Stall Sampling (All Samples)"), column("Instructions Executed")
    threads = sum(column("Thread Instructions Executed"))
    reasons = {name[6:]: sum(column(name)) for name in names if name.startswith("stall_") and "(" not in name}
    total_reasons = sum(reasons.values()) or 1.0
    opcodes: dict = {}
    for row, count in zip(rows, executed):
        words = row[col.get("Source", 1)].split()
        opcode = next((w for w in words if not w.startswith("@")), "") if words else ""
        opcodes[opcode] = opcodes.get(opcode, 0.0) + count
    ranked = sorted(range(len(rows)), key=lambda i: -samples[i])
    total = sum(samples) or 1.0
    cumulative, held = 0.0, {}
    for n, i in enumerate(ranked, 1):
        cumulative += samples[i]
        for share in (0.5, 0.9):
            if share not in held and cumulative >= share * total:
                held[share] = n
    return {"rows": len(rows), "stall_samples": sum(samples), "warp_instructions": sum(executed),
            "active_threads_per_warp": threads / (sum(executed) or 1.0),
            "stall_reasons": {k: v / total_reasons for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]) if v},
            "opcodes": dict(sorted(opcodes.items(), key=lambda kv: -kv[1])[:12]),
            "rows_with_half_of_the_stalls": held.get(0.5, 0), "rows_with_90_percent": held.get(0.9, 0),
            "top": [(rows[i][0], rows[i][col.get("Source", 1)].strip()[:80], samples[i] / total) for i in ranked[:top]]}


def summarize(path: str) -> None:
    """Print :func:`summary` of an ncu source export."""
    result = summary(*source_table(path))
    print(f"{result['rows']} rows, {result['stall_samples']:.0f} stall samples, "
          f"{result['warp_instructions']:.0f} warp instructions, {result['active_threads_per_warp']:.1f} active "
          f"threads per warp instruction; half of the stalls in {result['rows_with_half_of_the_stalls']} rows, 90 % "
          f"in {result['rows_with_90_percent']}")
    print("stall reasons:", ", ".join(f"{k} {100 * v:.1f} %" for k, v in result["stall_reasons"].items()))
    print("opcodes:", ", ".join(f"{k} {v:.3g}" for k, v in result["opcodes"].items()))
    for address, text, share in result["top"]:
        print(f"{100 * share:5.1f} % {address} {text}")


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
    from bench_tracking_gpu_ckf import device_ckf_inputs
    from bench_tracking_gpu_seeding import device_products

    from reference.tracking.chain import ChainConfig, reconstruct_event
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.gpu import ckf as gc
    from reference.tracking.gpu import seeding as gs
    from reference.tracking.simulation import SimulationConfig, simulate_event

    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=args.pileup), seed=args.seed)
    res = reconstruct_event(event, detector)
    config = ChainConfig()
    if "ckf" in stages:
        params, seed_meas, meas, order = device_ckf_inputs(res)
        times = timed(cp, lambda: gc.find_tracks(params, seed_meas, meas, config.ckf, seed_order=order), args.calls)
        print("find_tracks ms:", [round(t, 2) for t in times])
    if "seeding" in stages:
        sp_dev = device_products(cp, res)[0]
        times = timed(cp, lambda: gs.find_seeds(sp_dev, config.seeding, "float32"), args.calls)
        print("find_seeds ms:", [round(t, 2) for t in times])


if __name__ == "__main__":
    main()
