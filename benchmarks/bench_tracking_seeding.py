"""CPU seeding benchmark: ``find_seeds`` of the working tree against a git revision's, A/B.

Usage (from the repository root):

    python benchmarks/bench_tracking_seeding.py --events 2 --repeats 7 --baseline-ref HEAD

Simulates mu = 200 events of the built-in detector once (cells -> clusters -> spacepoints with
the CPU chain) and caches their spacepoints in a temporary folder, so that later runs start at
once. The seeding module of ``--baseline-ref`` (``git show``, read-only) is loaded next to the
working tree's; both must return the same seeds and counters. Then both run on every event,
interleaved and alternating which goes first, after a warm-up call each: wall time
(``time.perf_counter``) and CPU time of the thread (``time.thread_time``, less sensitive to
other load on a shared machine), median, min-max and IQR over events x repeats. Use
``--baseline-ref ''`` to time the working tree alone. JSON goes to benchmarks/data/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

FIELDS = ("bottom", "middle", "top", "weight", "z_vertex")


def spacepoints(pileup: int, seed: int, count: int, cache: Path) -> list:
    """Spacepoints of `count` simulated events, from the cache when present."""
    from reference.tracking.spacepoints import Spacepoints

    cache.mkdir(parents=True, exist_ok=True)
    files = [cache / f"spacepoints_mu{pileup}_seed{seed}_{i}.npz" for i in range(count)]
    if not all(f.exists() for f in files):
        from reference.tracking.chain import reconstruct_event
        from reference.tracking.geometry import build_generic_detector
        from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event

        det = build_generic_detector()
        planes = module_planes(det)
        for i, f in enumerate(files):
            if not f.exists():
                sp = reconstruct_event(simulate_event(det, SimulationConfig(pileup=pileup), seed=[seed, i],
                                                      planes=planes), det).spacepoints
                np.savez(f, **{k: getattr(sp, k) for k in ("x", "y", "z", "measurement", "var_r", "var_z")})
    return [Spacepoints(**dict(np.load(f))) for f in files]


def baseline_module(ref: str, folder: Path):
    """reference/tracking/seeding.py at git revision `ref`, imported as its own module."""
    source = subprocess.run(["git", "show", f"{ref}:reference/tracking/seeding.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = folder / "seeding_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("seeding_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def summary(values) -> dict:
    v = np.asarray(values) * 1e3
    return {"median_ms": float(np.median(v)), "min_ms": float(v.min()), "max_ms": float(v.max()),
            "q25_ms": float(np.percentile(v, 25)), "q75_ms": float(np.percentile(v, 75)), "n": int(v.size)}


def time_ab(impls: dict, events: list, repeats: int) -> dict:
    """Interleaved timing of every implementation on every event; warm-up first."""
    for find in impls.values():
        find(events[0])
    samples = {name: {"wall": [], "thread": []} for name in impls}
    names = list(impls)
    for rep in range(repeats):
        for sp in events:
            for name in names if rep % 2 == 0 else names[::-1]:
                t_wall, t_thread = time.perf_counter(), time.thread_time()
                impls[name](sp)
                samples[name]["thread"].append(time.thread_time() - t_thread)
                samples[name]["wall"].append(time.perf_counter() - t_wall)
    return {name: {kind: summary(v) for kind, v in s.items()} for name, s in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--pileup", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--baseline-ref", default="HEAD", help="git revision of the baseline ('' for none)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "hepaudit-seeding-bench")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "tracking_seeding.json")
    args = ap.parse_args()

    from reference.tracking import seeding

    events = spacepoints(args.pileup, args.seed, args.events, args.cache)
    config = seeding.SeedingConfig()
    impls = {"working tree": lambda sp: seeding.find_seeds(sp, config)}
    result = {"date": time.strftime("%Y-%m-%d"), "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "cores": os.cpu_count(), "spacepoints": [len(sp.x) for sp in events]}
    with tempfile.TemporaryDirectory() as folder:
        if args.baseline_ref:
            base = baseline_module(args.baseline_ref, Path(folder))
            impls = {f"baseline {args.baseline_ref}": lambda sp: base.find_seeds(sp, base.SeedingConfig()), **impls}
        runs = [[find(sp) for find in impls.values()] for sp in events]
        result["seeds"] = [len(r[-1]) for r in runs]
        result["counters"] = [r[-1].stats for r in runs]
        result["identical"] = all(np.array_equal(getattr(r[0], f), getattr(s, f)) and r[0].stats == s.stats
                                  for r in runs for s in r[1:] for f in FIELDS)
        result["timing"] = time_ab(impls, events, args.repeats)
    result["load_average"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{len(events)} events, spacepoints {result['spacepoints']}, seeds {result['seeds']}; "
          f"identical seeds and counters: {result['identical']}")
    for name, t in result["timing"].items():
        for kind in ("wall", "thread"):
            s = t[kind]
            print(f"{name:>24} {kind:>6}: median {s['median_ms']:.1f} ms, min-max {s['min_ms']:.1f}-{s['max_ms']:.1f}, "
                  f"IQR {s['q25_ms']:.1f}-{s['q75_ms']:.1f} (n = {s['n']})")
    print("load average after the run: {:.2f} {:.2f} {:.2f}".format(*result["load_average"]))


if __name__ == "__main__":
    main()
