"""GPU seeding and track-parameter estimation on simulated pile-up events, data resident on the device.

Usage (from the repository root, on a machine with a CUDA GPU and CuPy):

    python benchmarks/bench_tracking_gpu_seeding.py --events 2 --repeats 30 --pileup 200

For every event the CPU chain gives the spacepoints, measurements, seeds and parameters; the
spacepoints and measurements are copied to the device once. After warm-up, each stage is timed
with CUDA events (``cupy.cuda.Event``) around the call, over ``--repeats`` runs per event and
precision, and the seeding steps (grid, doublets, triplets, selection) are timed the same way.
The CPU seeding (numba, one thread) is timed on the same machine. Agreement with the CPU: exact
seed-set agreement (index triples) and traccc's matching rates at 1 % and 0.1 %; for the
parameters of the CPU seeds, traccc's matching rate at 1 % and the largest absolute difference of
each parameter. ``--batch B`` also times the seeding of the first B events as one batch
(``find_seeds(..., events=...)``, as the chain's batches run it; float32), per event the batch's
time over B, and checks that the batch gives as many seeds as the events alone. Prints one JSON
object (median, IQR, min and max in ms) and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import functools
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

from gpu_timing import gpu_or_exit, summarize_ms, timed  # noqa: E402


def step_times(cp, sp_dev, config, precision: str, repeats: int) -> dict:
    """CUDA-event times of the seeding steps (each step's host synchronisation included)."""
    from reference.tracking.gpu import seeding as gs
    steps = {"grid": [], "doublets": [], "triplets": [], "selection": []}
    for _ in range(repeats):
        ev = [cp.cuda.Event() for _ in range(5)]
        ev[0].record()
        pts, order = gs.build_grid(sp_dev, config, precision)
        ev[1].record()
        dbl, _ = gs.find_doublets(pts, precision)
        ev[2].record()
        trip = gs.find_triplets(pts, dbl, precision)
        ev[3].record()
        gs.seeds_from_slots(pts, dbl, trip, gs.select_seeds(pts, dbl, trip, config, precision), order)
        ev[4].record()
        ev[4].synchronize()
        for k, name in enumerate(steps):
            steps[name].append(cp.cuda.get_elapsed_time(ev[k], ev[k + 1]))
    return {k: summarize_ms(v) for k, v in steps.items()}


def agreement(cp, res, seeds_gpu, params) -> dict:
    """Seed-set agreement of the device seeds with the CPU's, and of the device parameters of the
    CPU seeds with the CPU parameters."""
    from reference.tracking.gpu.seeding import matching_rate
    to_host = cp.asnumpy
    cpu = set(zip(res.seeds.bottom.tolist(), res.seeds.middle.tolist(), res.seeds.top.tolist()))
    gpu = set(zip(*(to_host(a).tolist() for a in (seeds_gpu.bottom, seeds_gpu.middle, seeds_gpu.top))))
    out = {"cpu_seeds": len(cpu), "gpu_seeds": len(gpu), "common": len(cpu & gpu),
           "matching_rate_1pct": matching_rate(res.seeds, seeds_gpu, res.spacepoints, 0.01),
           "matching_rate_0p1pct": matching_rate(res.seeds, seeds_gpu, res.spacepoints, 0.001)}
    params_gpu, ok_gpu = params
    p_cpu = res.parameters.params
    p_gpu = to_host(params_gpu.params).astype(np.float64)
    same_ok = bool(np.array_equal(to_host(ok_gpu), res.seed_valid))
    out["parameters_same_valid_mask"] = same_ok
    if same_ok and len(p_cpu):
        near = np.abs(p_gpu - p_cpu) <= 0.01 * (np.abs(p_gpu) + np.abs(p_cpu)) / 2
        dphi = np.abs((p_gpu[:, 2] - p_cpu[:, 2] + np.pi) % (2 * np.pi) - np.pi)
        near[:, 2] = dphi <= 0.01 * np.abs(np.angle(np.exp(1j * p_gpu[:, 2]) + np.exp(1j * p_cpu[:, 2])))
        out["parameters_matching_rate_1pct"] = float(near.all(axis=1).mean())
        out["parameters_max_abs_diff"] = np.abs(p_gpu - p_cpu).max(axis=0).tolist()
    return out


def device_products(cp, res):
    from reference.tracking.seeding import Seeds
    from reference.tracking.spacepoints import Measurements, Spacepoints
    sp, meas = res.spacepoints, res.measurements
    sp_dev = Spacepoints(*(cp.asarray(getattr(sp, f)) for f in ("x", "y", "z", "measurement", "var_r", "var_z")))
    meas_dev = Measurements(meas.planes, cp.asarray(meas.local0), cp.asarray(meas.local1), meas.var0, meas.var1,
                            meas.layer_index, meas.hit_id, meas.hit_measurement, meas.layers)
    seeds = res.seeds
    seeds_dev = Seeds(*(cp.asarray(getattr(seeds, f)) for f in ("bottom", "middle", "top", "weight", "z_vertex")))
    return sp_dev, meas_dev, seeds_dev


def bench_event(cp, res, args) -> dict:
    """Times and agreement of one event, for each precision."""
    from reference.tracking.chain import ChainConfig
    from reference.tracking.gpu import estimation as ge
    from reference.tracking.gpu import seeding as gs
    from reference.tracking.seeding import find_seeds as cpu_find_seeds
    cfg = ChainConfig()
    sp_dev, meas_dev, seeds_cpu_dev = device_products(cp, res)
    t_cpu = []
    for _ in range(args.cpu_repeats):
        t0 = time.perf_counter()
        cpu_find_seeds(res.spacepoints, cfg.seeding)
        t_cpu.append((time.perf_counter() - t0) * 1e3)
    out = {"spacepoints": len(res.spacepoints), "cpu_seeding_ms": summarize_ms(t_cpu), "precisions": {}}
    for precision in args.precisions.split(","):
        seeding = functools.partial(gs.find_seeds, sp_dev, cfg.seeding, precision)
        estimation = functools.partial(ge.estimate_track_parameters, seeds_cpu_dev, sp_dev, meas_dev, cfg.estimation,
                                       precision)
        for _ in range(args.warmup):
            seeding()
            estimation()
        seeds = seeding()
        params, ok = estimation()
        out["precisions"][precision] = {
            "seeding_ms": summarize_ms(timed(cp, seeding, args.repeats)),
            "estimation_ms": summarize_ms(timed(cp, estimation, args.repeats)),
            "seeding_steps_ms": step_times(cp, sp_dev, cfg.seeding, precision, args.repeats),
            "stats": seeds.stats, "agreement": agreement(cp, res, seeds, (params, ok))}
    return out


def bench_batch(cp, results: list, args) -> dict:
    """CUDA-event time of the seeding of ``results``' events as one batch (data resident)."""
    from reference.tracking.chain import ChainConfig
    from reference.tracking.gpu import seeding as gs
    from reference.tracking.spacepoints import Spacepoints
    config = ChainConfig().seeding
    parts = [device_products(cp, res)[0] for res in results]
    counts = [len(p.x) for p in parts]
    offsets = np.concatenate(([0], np.cumsum([len(res.measurements) for res in results])))
    sp = Spacepoints(*(cp.concatenate([getattr(p, f) + (int(o) if f == "measurement" else 0)
                                       for p, o in zip(parts, offsets)])
                       for f in ("x", "y", "z", "measurement", "var_r", "var_z")))
    events = (cp.repeat(cp.arange(len(parts), dtype=cp.int64), cp.asarray(counts)), len(parts))
    run = functools.partial(gs.find_seeds, sp, config, "float32", events=events)
    for _ in range(args.warmup):
        run()
    times = summarize_ms(timed(cp, run, args.repeats))
    alone = [len(gs.find_seeds(p, config, "float32")) for p in parts]
    return {"events": len(parts), "batch_ms": times, "per_event_ms": times["median"] / len(parts),
            "seeds": len(run()), "seeds_alone": int(sum(alone))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per event and precision (>= 20)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cpu-repeats", type=int, default=3)
    ap.add_argument("--pileup", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--precisions", default="float32,float64")
    ap.add_argument("--batch", type=int, default=0, help="also time the first B events seeded as one batch")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "tracking_gpu_seeding.json")
    args = ap.parse_args()
    if args.repeats < 20:
        sys.exit("--repeats must be at least 20.")
    cp = gpu_or_exit()

    from reference.tracking.chain import reconstruct_event
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event

    det = build_generic_detector()
    planes = module_planes(det)
    if not 0 <= args.batch <= args.events:
        sys.exit("--batch must lie between 0 and --events.")
    events, results = [], []
    for i in range(args.events):
        ev = simulate_event(det, SimulationConfig(pileup=args.pileup), seed=[args.seed, i], planes=planes)
        results.append(reconstruct_event(ev, det))
        events.append(bench_event(cp, results[-1], args))
    props = cp.cuda.runtime.getDeviceProperties(0)
    result = {"date": time.strftime("%Y-%m-%d"), "gpu": props["name"].decode(), "pileup": args.pileup,
              "python": platform.python_version(), "cupy": cp.__version__, "method": "cuda-events",
              "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "events": events}
    if args.batch > 1:
        result["batch"] = bench_batch(cp, results[:args.batch], args)
    for precision in args.precisions.split(","):
        per = [e["precisions"][precision] for e in events]
        result[precision] = {key: float(np.median([p[key]["median"] for p in per]))
                             for key in ("seeding_ms", "estimation_ms")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
