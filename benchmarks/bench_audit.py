"""Speed and memory of ``hepaudit audit`` against the tools it wraps, on a large real tree.

Corpus: the numpy and CuPy source distributions (C, C++, CUDA, Python), fetched by
``fetch_corpus.py``. In the same run it measures, over exactly the files hepaudit selects:

* baseline: ``lizard`` (one process, its default) over the C/C++/CUDA files, given as a file list,
  plus ``radon cc`` and ``radon mi`` over the Python files;
* hepaudit cold (empty cache), with 1 worker and with all cores, pylint off;
* hepaudit warm (nothing changed) and after changing one file;
* peak memory of hepaudit's whole process tree (main process plus workers, proportional set size
  sampled every 20 ms).

Usage: python benchmarks/bench_audit.py [--repeats 3] [--out benchmarks/results/audit.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from fetch_corpus import CORPUS, fetch  # noqa: E402

SCRIPTS = Path(sysconfig.get_path("scripts"))


def tool(name: str) -> str:
    path = SCRIPTS / name
    return str(path) if path.exists() else shutil.which(name) or name


def _memory_mb(process: psutil.Process) -> float:
    """Proportional set size: pages shared by the forked workers are split among them, not
    counted once per process as a plain RSS sum would."""
    try:
        return process.memory_full_info().pss / 1e6
    except (AttributeError, psutil.AccessDenied):
        return process.memory_info().rss / 1e6


def run_timed(command: list[str], sample_memory: bool = False) -> tuple[float, float]:
    """Wall time and peak memory (MB of PSS, summed over the process tree) of one command."""
    started = time.perf_counter()
    process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(_memory_mb(p) for p in tree if p.is_running()))
            except psutil.Error:
                pass
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_memory:
        sampler.start()
    _, err = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    if sample_memory:
        sampler.join()
    if process.returncode not in (0, 1):  # lizard exits 1 when it has warnings
        raise SystemExit(f"{command[0]} failed ({process.returncode}): {err.decode()[-2000:]}")
    return elapsed, peak


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": str(len(os.sched_getaffinity(0))), "python": platform.python_version(),
            "memory_gb": f"{psutil.virtual_memory().total / 2**30:.0f}"}


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark hepaudit audit against lizard + radon.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "audit.json")
    args = parser.parse_args()

    data = HERE / "data"
    data.mkdir(exist_ok=True)
    trees = [fetch(name, version, data) for name, version in CORPUS.items()]

    from auditor.config import AuditConfig
    from auditor.static.discovery import discover
    from auditor.static.engine import read_source

    config = AuditConfig(pylint="off", max_file_mb=1000)
    found = discover(trees, config)
    selected = [c for c in found.candidates if isinstance(read_source(c, 10**9), bytes)]
    clike = [c.path for c in selected if c.language != "Python"]
    python = [c.path for c in selected if c.language == "Python"]
    work = Path(tempfile.mkdtemp(prefix="hepaudit-bench-"))
    file_list = work / "clike.txt"
    file_list.write_text("\n".join(clike) + "\n")
    languages: dict[str, int] = {}
    for c in selected:
        languages[c.language] = languages.get(c.language, 0) + 1
    print(f"corpus: {len(selected)} files ({languages}), {sum(os.path.getsize(c.path) for c in selected) / 1e6:.1f} MB")

    settings = work / "hepaudit.toml"  # defaults, whatever the surrounding project configures
    settings.write_text("")
    hepaudit = [sys.executable, "-m", "auditor", "audit", *map(str, trees), "--pylint", "off", "-q",
                "--max-file-mb", "1000", "--config", str(settings)]
    results: dict[str, list[float]] = {k: [] for k in (
        "lizard", "radon_cc", "radon_mi", "baseline", "cold_1_worker", "cold", "warm", "one_changed")}
    peaks: list[float] = []
    victim = Path(python[len(python) // 2])
    original = victim.read_bytes()
    for repeat in range(args.repeats):
        lizard_s, _ = run_timed([tool("lizard"), "-f", str(file_list)])
        cc_s, _ = run_timed([tool("radon"), "cc", *python])
        mi_s, _ = run_timed([tool("radon"), "mi", *python])
        results["lizard"].append(lizard_s)
        results["radon_cc"].append(cc_s)
        results["radon_mi"].append(mi_s)
        results["baseline"].append(lizard_s + cc_s + mi_s)
        cache = work / f"cache-{repeat}"
        one, _ = run_timed([*hepaudit, "--jobs", "1", "--no-cache"])
        results["cold_1_worker"].append(one)
        cold, peak = run_timed([*hepaudit, "--cache-dir", str(cache)], sample_memory=True)
        results["cold"].append(cold)
        peaks.append(peak)
        warm, warm_peak = run_timed([*hepaudit, "--cache-dir", str(cache)], sample_memory=True)
        results["warm"].append(warm)
        try:
            victim.write_bytes(original + f"\n# benchmark edit {repeat}\n".encode())
            changed, _ = run_timed([*hepaudit, "--cache-dir", str(cache)])
        finally:
            victim.write_bytes(original)
        results["one_changed"].append(changed)
        peaks.append(warm_peak)
        print(f"repeat {repeat + 1}: baseline {lizard_s + cc_s + mi_s:.2f} s (lizard {lizard_s:.2f}, radon cc {cc_s:.2f}, "
              f"mi {mi_s:.2f}); hepaudit cold {cold:.2f} s (1 worker {one:.2f}), warm {warm:.2f} s, "
              f"one changed {changed:.2f} s; peak {peak:.0f} MB", flush=True)

    summary = {name: spread(values) for name, values in results.items()}
    ratios = {
        "cold_over_baseline": spread([c / b for c, b in zip(results["cold"], results["baseline"])]),
        "warm_over_cold": spread([w / c for w, c in zip(results["warm"], results["cold"])]),
        "one_changed_over_cold": spread([o / c for o, c in zip(results["one_changed"], results["cold"])]),
        "parallel_speedup": spread([o / c for o, c in zip(results["cold_1_worker"], results["cold"])]),
    }
    document = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                "corpus": {f"{n}-{v}": "sdist from PyPI" for n, v in CORPUS.items()},
                "files": languages, "seconds": summary, "ratios": ratios,
                "peak_rss_mb": spread(peaks), "command": " ".join(["python", "benchmarks/bench_audit.py",
                                                                      f"--repeats {args.repeats}"])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(json.dumps({"seconds": summary, "ratios": ratios, "peak_rss_mb": spread(peaks)}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
