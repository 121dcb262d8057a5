"""Cold-cache ``hepaudit audit`` of this repository's ``auditor`` and ``reference``: one process,
the local process pool and a local Dask cluster.

Modes (each a whole command, ``python -m auditor audit auditor reference -q --json ...`` with an
empty cache folder, the repository's ``[tool.hepaudit]`` settings, so pylint ``fast``):

* ``serial``: ``--jobs 1`` (in this process);
* ``pool``: ``--jobs 2`` (the local process pool);
* ``dask``: ``--scheduler local:2`` (a local Dask cluster of 2 worker processes, started and
  stopped by the command, which is included in its time).

The folders are copied first, so that edits to the working tree during the run cannot change
what is audited; the modes take turns within each repeat. Reported per mode: wall time of the
command, the CPU time of the command and all its processes, and the report's own ``analyse``
phase, median (min-max); whether the reports agree apart from their timing fields; and the mean
CPU (in cores) that processes outside the benchmark used during each run, since the machine may
be shared.

Usage: python benchmarks/bench_cluster_audit.py [--repeats 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).parent
REPO = HERE.parent
FOLDERS = ("auditor", "reference")
MODES = {"serial": ["--jobs", "1"], "pool": ["--jobs", "2"], "dask": ["--scheduler", "local:2"]}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def snapshot(work: Path) -> Path:
    """A copy of the audited folders and the settings file, without caches."""
    tree = work / "tree"
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tree / "pyproject.toml")
    return tree


class ForeignLoad:
    """Mean CPU, in cores, of the processes that are not this benchmark or its descendants."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        own = psutil.Process()
        while not self._done.wait(1.0):
            mine = {own.pid, *(p.pid for p in own.children(recursive=True))}
            total = 0.0
            for process in psutil.process_iter(["pid", "cpu_times"]):
                if process.info["pid"] not in mine and process.info["cpu_times"] is not None:
                    times = process.info["cpu_times"]
                    total += times.user + times.system
            self.samples.append(total)

    def __enter__(self) -> "ForeignLoad":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def cores(self) -> float:
        """CPU seconds per second between the first and the last sample (processes that ended in
        between are missed, so this is a lower bound)."""
        if len(self.samples) < 2:
            return 0.0
        return max(0.0, self.samples[-1] - self.samples[0]) / (len(self.samples) - 1)


def run_once(tree: Path, work: Path, mode: str, repeat: int) -> tuple[float, float, float, dict]:
    """Wall time, CPU time (all processes of the command), foreign load and report of one
    cold-cache audit."""
    out = work / f"{mode}-{repeat}.json"
    command = [sys.executable, "-m", "auditor", "audit", *FOLDERS, "-q", "--json", str(out),
               "--cache-dir", str(work / f"cache-{mode}-{repeat}"), *MODES[mode]]
    before = os.times()
    started = time.perf_counter()
    with ForeignLoad() as foreign:
        done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = after.children_user + after.children_system - before.children_user - before.children_system
    return elapsed, cpu, foreign.cores(), json.loads(out.read_text())


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def comparable(report: dict) -> str:
    """The report without what depends on when and how it ran (timings, cache folder, --jobs)."""
    kept = {k: v for k, v in report.items() if k not in ("created", "performance", "cache")}
    kept["config"] = {k: v for k, v in kept["config"].items() if k != "jobs"}
    return json.dumps(kept, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="Also write the results as JSON here.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hepaudit-bench-cluster-"))
    tree = snapshot(work)
    wall: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    foreign: dict[str, list[float]] = {mode: [] for mode in MODES}
    analyse: dict[str, list[float]] = {mode: [] for mode in MODES}
    reports: dict[str, str] = {}
    for repeat in range(args.repeats):
        for mode in MODES:
            elapsed, cpu_s, foreign_cores, report = run_once(tree, work, mode, repeat)
            wall[mode].append(elapsed)
            cpu[mode].append(cpu_s)
            foreign[mode].append(foreign_cores)
            analyse[mode].append(report["performance"]["seconds"]["analyse"])
            reports.setdefault(mode, comparable(report))
            assert reports[mode] == comparable(report), f"{mode}: repeats differ"
            print(f"repeat {repeat + 1} {mode}: {elapsed:.2f} s wall, {cpu_s:.2f} s CPU, analyse "
                  f"{analyse[mode][-1]:.2f} s, {len(report['files'])} files, other processes used "
                  f"{foreign_cores:.2f} cores", flush=True)
    document = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "python": sys.version.split()[0]},
        "command": f"python benchmarks/bench_cluster_audit.py --repeats {args.repeats}",
        "files": len(json.loads(reports["serial"])["files"]),
        "wall_s": {mode: spread(values) for mode, values in wall.items()},
        "analyse_s": {mode: spread(values) for mode, values in analyse.items()},
        "cpu_s": {mode: spread(values) for mode, values in cpu.items()},
        "foreign_cores": {mode: spread(values) for mode, values in foreign.items()},
        "reports_identical": len(set(reports.values())) == 1,
    }
    if not document["reports_identical"]:
        first = json.loads(reports["serial"])
        for mode, text in reports.items():
            print(mode, "differs in", [k for k, v in json.loads(text).items() if first.get(k) != v])
    print(json.dumps(document, indent=1))
    if args.out:
        args.out.write_text(json.dumps(document, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
