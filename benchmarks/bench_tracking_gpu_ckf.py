"""GPU combinatorial Kalman filter on simulated pile-up events, data resident on the device.

Usage (from the repository root, on a machine with a CUDA GPU and CuPy):

    python benchmarks/bench_tracking_gpu_ckf.py --events 2 --repeats 20 --pileup 200

For every event the CPU chain gives the measurements, seeds and seed parameters (and the CPU CKF
tracks); these inputs are copied to the device once. After warm-up, ``find_tracks`` is timed
with CUDA events (``cupy.cuda.Event``) around the call over ``--repeats`` runs, with the
measurement grid built inside the call (as the chain's stage does) and prebuilt, and its steps
(device tables and grid, filter kernel with the skip rule, output) are timed the same way, as is
``find_tracks`` for chunkings of the skip rule, numbers of filter threads and without the seed-span
window cap (``CkfConfig.seed_span_sigma_mm = 0``), with the
seeds each filters, their branch steps and the fixed-point rounds); the host's cProfile of five
calls. The CPU CKF (numba, one thread) is timed on the same machine.
Agreement with the CPU: tracks with the same measurements per seed, traccc's matching rate
(``compare_tracks``) and the track efficiency of both after the (CPU) ambiguity resolution.
Prints one JSON object (median, IQR, min and max in ms) and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from gpu_timing import gpu_or_exit, host_profile, summarize_ms, timed  # noqa: E402


def ckf_inputs(res):
    """(parameters, seed measurements, processing order) of the chain result, as the chain's stage."""
    sp, seeds = res.spacepoints, res.seeds
    seed_meas = np.column_stack([sp.measurement[seeds.bottom], sp.measurement[seeds.middle],
                                 sp.measurement[seeds.top]])[res.seed_valid]
    return res.parameters, seed_meas, np.argsort(-seeds.weight[res.seed_valid], kind="stable")


def device_ckf_inputs(res):
    """find_tracks' arguments for the chain result on the device: (parameters, seed measurements,
    measurements, processing order)."""
    from auditor.products import to_device
    params, seed_meas, order = ckf_inputs(res)
    return to_device((params, seed_meas, res.measurements, order), "cupy")


def step_times(cp, args_dev, config, repeats: int) -> dict:
    """CUDA-event times of the steps of find_tracks (each step's host synchronisations included)."""
    from reference.tracking.gpu import ckf as gc
    params, seed_meas, meas, order = args_dev
    caps = gc.capacities(config)
    steps = {"input_check": [], "measurement_tables_and_grid": [], "seed_tables": [], "filter_and_skip_rule": [],
             "output": []}
    for _ in range(repeats):
        ev = [cp.cuda.Event() for _ in range(6)]
        ev[0].record()
        order_d = cp.asarray(order)
        gc._check_inputs(params, cp.asarray(seed_meas), meas, order_d)  # pylint: disable=protected-access
        ev[1].record()
        hits, geo = gc._hits_and_geometry(meas, None)  # pylint: disable=protected-access
        ev[2].record()
        tables = gc.Event(gc._seed_states(params, seed_meas, order_d, config), hits, geo)  # pylint: disable=protected-access
        ev[3].record()
        found, users, stats = gc.filter_and_skip(tables, caps, config.skip_used_seeds)
        ev[4].record()
        gc._emit(found, users, (order_d, None), stats)  # pylint: disable=protected-access
        ev[5].record()
        ev[5].synchronize()
        for k, name in enumerate(steps):
            steps[name].append(cp.cuda.get_elapsed_time(ev[k], ev[k + 1]))
    return {k: summarize_ms(v) for k, v in steps.items()}


def warp_efficiency(steps: np.ndarray) -> float:
    """Branch steps over 32 times the largest of every 32 consecutive seeds of a launch list: the
    share of a warp's lanes busy if each warp ran 32 consecutive seeds in lock step."""
    padded = np.zeros(-(-len(steps) // 32) * 32)
    padded[:len(steps)] = steps
    return float(steps.sum() / max(32.0 * padded.reshape(-1, 32).max(axis=1).sum(), 1.0))


def filter_variants(cp, args_dev, config, repeats: int) -> dict:
    """CUDA-event times of the filter kernel alone for several launch orders of the seeds: sorted by
    theta (as ``find_tracks`` does), in processing order, random, and by decreasing branch steps
    measured in a first run (an oracle for longest-first scheduling: how much of the kernel is the
    tail of its slowest seeds); and a random half of the seeds by theta (a time proportional to the
    seeds means a throughput-bound kernel). Also the per-seed work (branch steps)."""
    from reference.tracking.gpu import ckf as gc
    params, seed_meas, meas, order = args_dev
    caps = gc.capacities(config)
    _, tables = gc.prepare(params, seed_meas, meas, config, seed_order=order)
    rng = np.random.default_rng(1)
    half = cp.asarray(np.sort(rng.permutation(len(params))[:len(params) // 2]))
    steps = cp.asnumpy(gc.filter_seeds(tables, caps).stats[:, 0])
    launches = {"theta": tables.seeds.launch, "processing": cp.arange(len(params)),
                "random": cp.asarray(rng.permutation(len(params))),
                "most_steps_first_oracle": cp.asarray(np.argsort(-steps, kind="stable")),
                "theta_half": tables.seeds.launch[half]}
    out = {}
    for name, launch in launches.items():
        variant = tables._replace(seeds=tables.seeds._replace(launch=launch))
        gc.filter_seeds(variant, caps)
        out[name] = summarize_ms(timed(cp, lambda v=variant: gc.filter_seeds(v, caps), repeats))
        out[name]["warp_efficiency"] = warp_efficiency(steps[cp.asnumpy(launch)])
    out["branch_steps_per_seed"] = {"mean": float(steps.mean()), "p99": float(np.percentile(steps, 99)),
                                    "max": int(steps.max())}
    return out


VARIANTS = {"one chunk": ((1.0,), None, {}), "no seed-span window cap": ((1.0,), None, {"seed_span_sigma_mm": 0.0}),
            "halves": ((0.5, 1.0), None, {}), "16384 filter threads": ((1.0,), 16384, {}),
            # where the time goes (other physics): no overlap pick-up, one branch per surface, no skip rule
            "no overlap pick-up": ((1.0,), None, {"overlap_chi2_max": 0.0}),
            "one branch per surface": ((1.0,), None, {"max_branches_per_surface": 1}),
            "3 branches per seed": ((1.0,), None, {"max_branches_per_seed": 3})}


def variants(cp, args_dev, config, grid, repeats: int) -> dict:
    """CUDA-event times of find_tracks (grid prebuilt) for several chunkings of the skip rule,
    numbers of filter threads and configuration changes, with the seeds each filters, their
    branch steps, window measurements and propagations, and the fixed-point rounds."""
    import dataclasses
    from reference.tracking.gpu import ckf as gc
    out = {}
    default = gc.FILTER_THREADS
    for name, (chunks, threads, changes) in VARIANTS.items():
        gc.FILTER_THREADS = threads
        changed = dataclasses.replace(config, **changes)

        def run(chunks=chunks, changed=changed):
            return gc.find_tracks(args_dev[0], args_dev[1], args_dev[2], changed, seed_order=args_dev[3], grid=grid,
                                  chunks=chunks)

        stats = run().stats
        out[name] = {"chunks": list(chunks), "filter_threads": threads, "config_changes": changes,
                     "ms": summarize_ms(timed(cp, run, repeats)),
                     **{k: stats[k] for k in ("seeds_run", "branch_steps", "window_items", "propagations",
                                              "dedup_rounds", "tracks")}}
    gc.FILTER_THREADS = default
    return out


def ckf_profile(args_dev, config, calls: int = 5) -> list:
    """The host's cProfile of ``calls`` find_tracks calls (grid built inside), as text lines: own
    and cumulative ms per call, calls, function."""
    from reference.tracking.gpu import ckf as gc
    rows = host_profile(lambda: gc.find_tracks(args_dev[0], args_dev[1], args_dev[2], config,
                                               seed_order=args_dev[3]), calls)
    return [f"{own:9.3f} {cum:9.3f} {count:7d} {name}" for name, count, own, cum in rows]


def agreement(event, res, gpu_tracks) -> dict:
    """Per-seed equality, traccc's matching rate and the track efficiencies after ambiguity resolution."""
    from auditor.products import to_host
    from reference.tracking.agreement import compare_efficiency, compare_tracks
    from reference.tracking.ambiguity import resolve_ambiguities
    from reference.tracking.chain import ChainConfig
    from reference.tracking.gpu.ckf import canonical
    cpu = canonical(res.tracks_all)
    gpu = canonical(to_host(gpu_tracks))
    same = 0
    if len(cpu) and len(gpu):
        cpu_sets = {int(s): tuple(cpu.meas[cpu.offsets[i]:cpu.offsets[i + 1]]) for i, s in enumerate(cpu.seed)}
        for i, s in enumerate(gpu.seed):
            same += cpu_sets.get(int(s)) == tuple(gpu.meas[gpu.offsets[i]:gpu.offsets[i + 1]])
    rates = compare_tracks(res.tracks_all, gpu)
    resolved = resolve_ambiguities(gpu, len(res.measurements), ChainConfig().ambiguity)
    eff = compare_efficiency(event, (res.tracks, res.measurements), (resolved, res.measurements))
    return {"cpu_tracks": len(cpu), "gpu_tracks": len(gpu), "same_measurements_per_seed": same,
            "matching_rates": dict(rates.rates), "cpu_efficiency": eff.cpu, "gpu_efficiency": eff.gpu,
            "efficiency_difference_points": eff.difference_points}


def bench_event(cp, event, res, args) -> dict:
    from reference.tracking.chain import ChainConfig
    from reference.tracking.ckf import find_tracks as cpu_find_tracks
    from reference.tracking.ckf import measurement_grid as cpu_grid
    from reference.tracking.gpu import ckf as gc
    config = ChainConfig().ckf
    params, seed_meas, order = ckf_inputs(res)
    t_cpu = []
    for _ in range(args.cpu_repeats):
        t0 = time.perf_counter()
        cpu_find_tracks(params, seed_meas, res.measurements, config, seed_order=order, grid=cpu_grid(res.measurements))
        t_cpu.append((time.perf_counter() - t0) * 1e3)
    args_dev = device_ckf_inputs(res)
    grid = gc.measurement_grid(args_dev[2])

    def with_grid_inside():
        return gc.find_tracks(args_dev[0], args_dev[1], args_dev[2], config, seed_order=args_dev[3])

    def with_grid():
        return gc.find_tracks(args_dev[0], args_dev[1], args_dev[2], config, seed_order=args_dev[3], grid=grid)

    for _ in range(args.warmup):
        tracks = with_grid_inside()
    cp.cuda.Device().synchronize()
    return {"measurements": len(res.measurements), "seeds": len(params), "stats": tracks.stats,
            "cpu_ckf_ms": summarize_ms(t_cpu),
            "gpu_ckf_ms": summarize_ms(timed(cp, with_grid_inside, args.repeats)),
            "gpu_ckf_prebuilt_grid_ms": summarize_ms(timed(cp, with_grid, args.repeats)),
            "gpu_steps_ms": step_times(cp, args_dev, config, args.repeats),
            "gpu_filter_variants_ms": filter_variants(cp, args_dev, config, args.repeats),
            "gpu_variants": variants(cp, args_dev, config, grid, args.repeats),
            "host_profile": ckf_profile(args_dev, config),
            "agreement": agreement(event, res, tracks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--pileup", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cpu-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "gpu_ckf.json"))
    args = parser.parse_args()
    if args.repeats < 20:
        sys.exit("Use at least 20 repeats (--repeats) for a median with a spread.")
    cp = gpu_or_exit()
    from reference.tracking.chain import reconstruct_event
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
    detector = build_generic_detector()
    planes = module_planes(detector)
    result = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "python": platform.python_version(),
              "pileup": args.pileup, "repeats": args.repeats, "method": "cuda-events", "events": []}
    for index in range(args.events):
        event = simulate_event(detector, SimulationConfig(pileup=args.pileup), seed=args.seed + index, planes=planes)
        result["events"].append(bench_event(cp, event, reconstruct_event(event, detector), args))
    medians = [e["gpu_ckf_ms"]["median"] for e in result["events"]]
    result["gpu_ckf_median_of_event_medians_ms"] = float(np.median(medians))
    text = json.dumps(result, indent=1, default=float)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
