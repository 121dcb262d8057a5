"""Check hepaudit's energy windows on a real GPU, against codecarbon, and print JSON.

Run on a machine with an NVIDIA GPU (Volta or newer), nvidia-ml-py and torch or CuPy; codecarbon
is optional (the comparison is skipped, and says so, without it)::

    python benchmarks/energy_device_check.py                 # torch, default 2 s windows
    python benchmarks/energy_device_check.py --precise       # 10 s windows
    python benchmarks/energy_device_check.py --backend cupy --workload small

What it does, per workload (``gemm``: one bf16/fp32 matrix product per call, milliseconds;
``small``: one tiny element-wise kernel per call, microseconds, i.e. far below the counter's
update period):

1. probes the NVML counter of the GPU: update period (value-change intervals) and read cost;
2. runs ``auditor.energy.measure_energy`` with the NVML counter(s) (and RAPL where readable),
   syncing the device at window edges, idle baseline windows in the same state (live context);
3. wraps every window in a codecarbon task (one long-lived OfflineEmissionsTracker) and compares
   codecarbon's GPU power per work window with hepaudit's (both from the same NVML counter;
   codecarbon's task also spans its own reads and the alignment wait, so powers are compared).

The JSON has, per workload: gross and net energy per event (J, 95 % interval), baseline power,
window count, events per window, overhead, notes, and the codecarbon comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auditor.energy import (  # noqa: E402
    PRECISE,
    WindowConfig,
    available_counters,
    measure_energy,
)


def probe_nvml(counter, seconds: float = 1.5) -> dict[str, Any]:
    """Median update period and read cost of an NVML energy counter (busy polling)."""
    changes, costs = [], []
    last = counter.read_joules()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        before = time.perf_counter()
        value = counter.read_joules()
        after = time.perf_counter()
        costs.append(after - before)
        if value != last:
            changes.append(after)
            last = value
    periods = [b - a for a, b in zip(changes, changes[1:])]
    return {"counter": counter.name, "device": counter.device,
            "update_period_s_median": statistics.median(periods) if periods else None,
            "update_period_s_p10_p90": (statistics.quantiles(periods, n=10)[::8]
                                        if len(periods) >= 10 else None),
            "read_cost_s_median": statistics.median(costs), "reads": len(costs)}


def torch_workloads(size: int) -> tuple[dict[str, Callable[[], int]], Callable[[], None], str]:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device")
    device = torch.device("cuda")
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    x = torch.zeros(1 << 16, device=device)

    def gemm() -> int:
        torch.matmul(a, b, out=out)
        return 1

    def small() -> int:
        x.add_(1.0)
        return 1

    return {"gemm": gemm, "small": small}, torch.cuda.synchronize, f"torch {torch.__version__} {dtype}"


def cupy_workloads(size: int) -> tuple[dict[str, Callable[[], int]], Callable[[], None], str]:
    import cupy

    a = cupy.random.standard_normal((size, size), dtype=cupy.float32)
    b = cupy.random.standard_normal((size, size), dtype=cupy.float32)
    out = cupy.empty((size, size), dtype=cupy.float32)
    x = cupy.zeros(1 << 16, dtype=cupy.float32)

    def gemm() -> int:
        cupy.matmul(a, b, out=out)
        return 1

    def small() -> int:
        x += 1.0
        return 1

    def sync() -> None:
        cupy.cuda.Device().synchronize()

    return {"gemm": gemm, "small": small}, sync, f"cupy {cupy.__version__} float32"


def compare_with_codecarbon(result, tracker, prefix: str, gpu_names: list[str]) -> dict[str, Any]:
    rows = []
    for window in result.windows:
        task = tracker.tasks.get(f"{prefix}{window.kind}-{window.index}")
        ours = [window.joules[name] for name in gpu_names]
        if task is None or task.gpu is None or any(j is None for j in ours):
            continue
        our_w = sum(ours) / window.span_s
        cc_w = task.gpu.value / task.duration_s if task.duration_s > 0 else None
        rows.append({"kind": window.kind, "index": window.index, "hepaudit_gpu_W": our_w,
                     "hepaudit_span_s": window.span_s, "codecarbon_gpu_W": cc_w,
                     "codecarbon_gpu_J": task.gpu.value, "codecarbon_duration_s": task.duration_s,
                     "codecarbon_gpu_method": task.gpu.method,
                     "ratio_codecarbon_to_hepaudit": (cc_w / our_w) if cc_w and our_w else None})
    ratios = [r["ratio_codecarbon_to_hepaudit"] for r in rows
              if r["kind"] == "work" and r["ratio_codecarbon_to_hepaudit"] is not None]
    return {"windows": rows,
            "work_power_ratio_mean": statistics.fmean(ratios) if ratios else None,
            "work_power_ratio_min_max": [min(ratios), max(ratios)] if ratios else None,
            "codecarbon_cpu": tracker.describe()["cpu"],
            "codecarbon_intensity": tracker.intensity.to_json()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("torch", "cupy"), default="torch")
    parser.add_argument("--workload", choices=("gemm", "small", "both"), default="both")
    parser.add_argument("--size", type=int, default=4096, help="matrix size of the gemm workload")
    parser.add_argument("--precise", action="store_true", help="10 s windows instead of 2 s")
    parser.add_argument("--windows", type=int, default=5, help="work windows (>= 2)")
    parser.add_argument("--no-codecarbon", action="store_true", help="skip the comparison")
    parser.add_argument("--country", default="FRA", help="ISO-3 code for the grid intensity")
    args = parser.parse_args(argv)

    discovery = available_counters()
    gpus = [c for c in discovery.counters if c.method == "nvml-energy"]
    if not gpus:
        print(json.dumps({"error": "no NVML energy counter", "why": discovery.unavailable}))
        return 2
    workloads, sync, backend = (torch_workloads if args.backend == "torch" else cupy_workloads)(args.size)
    selected = list(workloads) if args.workload == "both" else [args.workload]
    base = PRECISE if args.precise else WindowConfig()
    config = WindowConfig(min_window_s=base.min_window_s, min_windows=args.windows)

    tracker, tracker_error = None, None
    if not args.no_codecarbon:
        try:
            from auditor.energy import CodecarbonTracker, TrackerConfig

            tracker = CodecarbonTracker(TrackerConfig(country_iso_code=args.country))
        except Exception as error:  # report, do not stop the NVML measurement
            tracker_error = f"{type(error).__name__}: {error}"

    report: dict[str, Any] = {
        "backend": backend, "counters": [{"name": c.name, "device": c.device, "method": c.method}
                                         for c in discovery.counters],
        "unavailable": list(discovery.unavailable),
        "probe": [probe_nvml(c) for c in gpus],
        "config": {"min_window_s": config.min_window_s, "min_windows": config.min_windows},
        "codecarbon": (tracker.describe() if tracker else {"skipped": tracker_error or "--no-codecarbon"}),
        "workloads": {},
    }
    for name in selected:
        work = workloads[name]
        for _ in range(20):  # warm-up beyond the one call measure_energy does
            work()
        sync()
        started = time.perf_counter()
        result = measure_energy(work, discovery.counters, config, sync=sync,
                                around_window=tracker.window_hook(f"{name}-") if tracker else None)
        entry: dict[str, Any] = {
            "wall_s": time.perf_counter() - started,
            "seconds_per_call": result.seconds_per_call,
            "calls_per_window": result.calls_per_window,
            "windows": sum(1 for w in result.windows if w.kind == "work"),
            "aligned_windows": sum(1 for w in result.windows if w.aligned),
            "reference": result.reference,
            "per_counter": [
                {"counter": c.counter, "device": c.device, "method": c.method,
                 "gross_J_per_event": c.gross_per_event.to_json() if c.gross_per_event else None,
                 "net_J_per_event": c.net_per_event.to_json() if c.net_per_event else None,
                 "gross_W": c.gross_power.to_json() if c.gross_power else None,
                 "net_W": c.net_power.to_json() if c.net_power else None,
                 "baseline_W": c.baseline_power.to_json() if c.baseline_power else None}
                for c in result.counters],
            "total_net_J_per_event": (result.total_net_per_event.to_json()
                                      if result.total_net_per_event else None),
            "overhead": result.overhead.to_json(),
            "notes": list(result.notes),
            "window_records": [w.to_json() for w in result.windows],
        }
        if tracker:
            entry["codecarbon_comparison"] = compare_with_codecarbon(
                result, tracker, f"{name}-", [c.name for c in gpus])
        report["workloads"][name] = entry
    if tracker:
        tracker.close()
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
