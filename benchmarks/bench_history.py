"""Wall time of ``hepaudit history`` over the last N commits of a git repository (this one by default).

Each repeat runs the command line end to end (``python -m auditor.cli history ... --quiet``) in a
fresh temporary folder:

* cold: empty history database and empty analysis cache (every distinct content is analysed);
* warm cache: empty history database, analysis cache filled by the cold run (what a user who already
  ran ``hepaudit audit`` or ``history`` elsewhere gets: blobs are read and hashed, nothing analysed);
* warm database: the same command again (every commit is already stored).

Medians and min-max over the repeats are printed; the per-run counts (commits, blobs read,
contents analysed) come from the JSON report. Nothing is written to the measured repository.

With ``--synthetic SOURCE_FOLDER`` (e.g. benchmarks/data/numpy-2.3.5 from fetch_corpus.py) the
measured repository is built first in a temporary folder: one commit with every file of SOURCE_FOLDER,
then ``--commits - 1`` commits that each change 20 source files (a function appended), rename one
and delete one, chosen with a fixed seed. It stands in for a large project's history where none is
at hand; say so when quoting its numbers.

Usage: python benchmarks/bench_history.py [--repo .] [--commits 50] [--repeats 5] [--jobs 0] [--out FILE]
       python benchmarks/bench_history.py --synthetic benchmarks/data/numpy-2.3.5 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_once(repo: Path, commits: int, folder: Path, jobs: int) -> tuple[float, dict]:
    """Wall seconds of one ``hepaudit history`` and its report's ``run`` section."""
    report = folder / "history.json"
    command = [sys.executable, "-m", "auditor.cli", "history", str(repo), "--commits", str(commits),
               "--db", str(folder / "history.sqlite"), "--cache-dir", str(folder / "cache"),
               "--jobs", str(jobs), "--json", str(report), "--quiet"]
    started = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=HERE.parent,
                         env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"hepaudit history failed ({out.returncode}): {out.stderr.strip()}")
    data = json.loads(report.read_text())
    return elapsed, {**data["run"], "commits": len(data["commits"]), "shallow_note": data["shallow"]["note"],
                     "db_bytes": (folder / "history.sqlite").stat().st_size}


_GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org", "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.org"}
_SUFFIXES = (".py", ".c", ".h", ".cpp", ".hpp", ".cc", ".cu", ".cuh")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env={**os.environ, **_GIT_ENV})


def _edit(path: Path, step: int) -> None:
    comment, body = ("#", f"def _bench_{step}(x):\n    if x:\n        return {step}\n    return -x\n") \
        if path.suffix == ".py" else ("//", f"int bench_{step}(int x) {{ if (x) {{ return {step}; }} return -x; }}\n")
    with path.open("a", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(f"\n{comment} benchmark change {step}\n{body}")


def build_synthetic(source: Path, commits: int, root: Path) -> Path:
    """A repository of ``source`` with ``commits`` commits of changes (fixed seed)."""
    shutil.copytree(source, root, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "import")
    files = sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file() and ".git" not in p.parts)
    rng = random.Random(20261126)
    for step in range(1, commits):
        for path in rng.sample(files, 20):
            _edit(path, step)
        moved, gone = rng.sample(files, 2)
        files.remove(moved)
        files.remove(gone)
        renamed = moved.with_name(f"renamed_{step}_{moved.name}")
        moved.rename(renamed)
        files.append(renamed)
        gone.unlink()
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", f"change {step}")
    return root


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median_s": round(statistics.median(samples), 3), "min_s": round(min(samples), 3),
            "max_s": round(max(samples), 3), "n": len(samples)}


def measure(repo: Path, commits: int, repeats: int, jobs: int) -> dict:
    times: dict[str, list[float]] = {"cold": [], "warm_cache": [], "warm_database": []}
    runs: dict[str, dict] = {}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
            folder = Path(tmp)
            for case in times:
                if case == "warm_cache":
                    (folder / "history.sqlite").unlink()
                seconds, runs[case] = run_once(repo, commits, folder, jobs)
                times[case].append(seconds)
    return {case: {**_summary(samples), "last_run": runs[case]} for case, samples in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=HERE.parent)
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=0, help="worker processes; 0 = one per core")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    parser.add_argument("--synthetic", type=Path, help="build a repository from this source folder (see above)")
    args = parser.parse_args()
    if args.synthetic:
        with tempfile.TemporaryDirectory(prefix="bench-history-repo-") as tmp:
            started = time.perf_counter()
            args.repo = build_synthetic(args.synthetic, args.commits, Path(tmp) / "repo")
            print(f"synthetic repository from {args.synthetic} built in {time.perf_counter() - started:.1f} s")
            report(args)
    else:
        report(args)


def report(args: argparse.Namespace) -> None:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.repo, capture_output=True, text=True, check=True)
    results = {
        "repo": str(args.repo.resolve()), "head": head.stdout.strip(), "commits_asked": args.commits,
        "repeats": args.repeats, "jobs": args.jobs,
        "machine": {"cpu": _cpu_model(), "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "python": platform.python_version(), "load_average": os.getloadavg()},
        "results": measure(args.repo, args.commits, args.repeats, args.jobs),
    }
    first = results["results"]["cold"]["last_run"]
    print(f"{results['repo']} at {results['head'][:10]}: {first['commits']} commits measured "
          f"({args.commits} asked), {first['blobs_read']} blobs read, {first['analysed']} contents analysed cold; "
          f"{results['machine']['cpu']}, {results['machine']['cores']} cores, load {results['machine']['load_average'][0]:.1f}")
    if first["shallow_note"]:
        print(f"note: {first['shallow_note']}")
    for case, summary in results["results"].items():
        print(f"  {case:14s} median {summary['median_s']:7.2f} s  (min {summary['min_s']:.2f}, max {summary['max_s']:.2f}, "
              f"n={summary['n']}); analysed {summary['last_run']['analysed']}, cache hits {summary['last_run']['cache_hits']}, "
              f"database {summary['last_run']['db_bytes'] / 1e3:.0f} kB")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
