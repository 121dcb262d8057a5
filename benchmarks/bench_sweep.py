"""Wall time of a ``hepaudit sweep`` run serially and on a local Dask cluster.

Runs the same sweep (default: the tracking chain over four pile-up values, CPU only, quick timing)
alternately serially and with ``--scheduler local:N``, several times, and reports the median wall
time of each, the spread (min-max) and the speedup; it also checks that both give the same physics
(events, stage statuses, agreement and code quality per point). Each run is a fresh ``hepaudit``
process, so start-up, the cluster's start and the numba cache loads are included, as a user sees
them.

    python benchmarks/bench_sweep.py --repeats 3 --workers 2 --out benchmarks/results/sweep-cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from auditor.devices import cpu_description


def _physics(report: dict) -> list:
    return sorted((c["name"], json.dumps(c["parameters"], sort_keys=True), c["events"],
                   [(s["name"], s["status"], sorted((d, e.get("status")) for d, e in s["devices"].items()))
                    for s in c["stages"]]) for c in report["chains"])


def _sweep(args: argparse.Namespace, scheduler: str | None, out: Path) -> tuple[float, dict]:
    command = [sys.executable, "-m", "auditor", "sweep", "--chain", args.chain, "--grid", args.grid,
               "--events", str(args.events), "--devices", args.devices, "--mode", args.mode, "--out", str(out), "-q"]
    if scheduler:
        command += ["--scheduler", scheduler]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chain", default="tracking")
    parser.add_argument("--grid", default="pileup=20,40,60,80")
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--devices", default="cpu")
    parser.add_argument("--mode", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    scheduler = f"local:{args.workers}"
    times: dict[str, list[float]] = {"serial": [], scheduler: []}
    physics = {}
    with tempfile.TemporaryDirectory() as folder:
        _sweep(args, None, Path(folder) / "warm")  # numba caches and imports, not timed
        for repeat in range(args.repeats):
            for label in ("serial", scheduler):
                seconds, report = _sweep(args, None if label == "serial" else label, Path(folder) / f"{label}-{repeat}")
                times[label].append(seconds)
                physics[label] = _physics(report)
                print(f"{label}: {seconds:.2f} s", flush=True)
    summary = {label: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "runs": v}
               for label, v in times.items()}
    result = {"command": " ".join(sys.argv), "chain": args.chain, "grid": args.grid, "events": args.events,
              "devices": args.devices, "mode": args.mode, "cpu": cpu_description()["model"], "summary": summary,
              "speedup": summary["serial"]["median_s"] / summary[scheduler]["median_s"],
              "same_physics": physics["serial"] == physics[scheduler]}
    print(json.dumps({k: v for k, v in result.items() if k != "summary"}, indent=1))
    for label, entry in summary.items():
        print(f"{label}: median {entry['median_s']:.2f} s (min {entry['min_s']:.2f}, max {entry['max_s']:.2f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
