"""Register caps of the heaviest GPU tracking kernels: time and results for each cap.

Usage (from the repository root, on a machine with a CUDA GPU and CuPy):

    python benchmarks/bench_gpu_registers.py --ckf 0,128,96,64 --seeding 0,64,48,32 --repeats 20

One simulated pile-up event (CPU chain for the inputs, copied to the device once). For every cap
(0: the compiler's choice; "default": the family's cap in ``backend.MAX_REGISTERS``) the kernels are compiled with ``max_registers`` (``backend.MAX_REGISTERS``):
the CKF filter kernel, timed through ``find_tracks`` with the grid prebuilt, and the doublet and
triplet kernels, timed through the seeding steps (float32). CUDA events, data resident, after a
warm-up; registers and local memory per thread as numba reports them; results compared with
those of the first cap (they must be identical: a cap changes register allocation, not
arithmetic). Prints one JSON object and writes it to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench_tracking_gpu_ckf import ckf_inputs  # noqa: E402
from bench_tracking_gpu_seeding import device_products, step_times  # noqa: E402
from gpu_timing import gpu_or_exit, summarize_ms, timed  # noqa: E402


def _caps(text: str) -> list:
    """Caps from "0,default,128": 0 is no cap, "default" the family's cap in backend.MAX_REGISTERS."""
    return [v.strip() if v.strip() == "default" else (int(v) or None) for v in text.split(",") if v.strip()]


def _set_caps(families: tuple, cap, defaults: dict) -> None:
    from reference.tracking.gpu import backend
    for family in families:
        backend.MAX_REGISTERS[family] = defaults.get(family) if cap == "default" else cap


def _resources(kernel) -> dict:
    """Registers and local memory per thread of every compiled signature of ``kernel``."""
    try:
        regs = kernel.get_regs_per_thread()
        local = kernel.get_local_mem_per_thread()
    except (AttributeError, TypeError) as error:
        return {"error": str(error)}
    return {"registers": sorted(set(regs.values())) if isinstance(regs, dict) else regs,
            "local_bytes": sorted(set(local.values())) if isinstance(local, dict) else local}


def ckf_caps(cp, res, caps: list, repeats: int) -> list:
    from auditor.products import to_device
    from reference.tracking.chain import ChainConfig
    from reference.tracking.gpu import backend
    from reference.tracking.gpu import ckf as gc
    config = ChainConfig().ckf
    host_params, host_seed_meas, host_order = ckf_inputs(res)
    params, seed_meas, meas, order = to_device((host_params, host_seed_meas, res.measurements, host_order), "cupy")
    grid = gc.measurement_grid(meas)
    out, first = [], None

    def run():
        return gc.find_tracks(params, seed_meas, meas, config, seed_order=order, grid=grid)

    defaults = dict(backend.MAX_REGISTERS)
    for cap in caps:
        _set_caps(("ckf_filter",), cap, defaults)
        gc._filter_kernel.cache_clear()  # pylint: disable=protected-access
        tracks = gc.canonical(run())
        lists = [tuple(tracks.meas[tracks.offsets[i]:tracks.offsets[i + 1]]) for i in range(len(tracks))]
        first = lists if first is None else first
        kernel = gc._filter_kernel(gc.capacities(config))  # pylint: disable=protected-access
        out.append({"cap": cap, "ms": summarize_ms(timed(cp, run, repeats)), **_resources(kernel),
                    "tracks": len(lists), "same_tracks_as_first": lists == first})
    _set_caps(("ckf_filter",), "default", defaults)
    gc._filter_kernel.cache_clear()  # pylint: disable=protected-access
    return out


def seeding_caps(cp, res, caps: list, repeats: int) -> list:
    from reference.tracking.chain import ChainConfig
    from reference.tracking.gpu import backend
    from reference.tracking.gpu import seeding as gs
    config = ChainConfig().seeding
    sp_dev = device_products(cp, res)[0]
    out, first = [], None
    defaults = dict(backend.MAX_REGISTERS)
    for cap in caps:
        _set_caps(("doublets", "triplets"), cap, defaults)
        gs._doublet_kernels.cache_clear()  # pylint: disable=protected-access
        gs._triplet_kernels.cache_clear()  # pylint: disable=protected-access
        seeds = gs.canonical(gs.find_seeds(sp_dev, config))
        key = np.stack([cp.asnumpy(a) for a in (seeds.bottom, seeds.middle, seeds.top)])
        first = key if first is None else first
        total = summarize_ms(timed(cp, lambda: gs.find_seeds(sp_dev, config), repeats))
        kernels = gs._doublet_kernels("float32") + gs._triplet_kernels("float32")  # pylint: disable=protected-access
        out.append({"cap": cap, "find_seeds_ms": total, "steps_ms": step_times(cp, sp_dev, config, "float32", repeats),
                    "kernels": [_resources(k) for k in kernels], "seeds": int(key.shape[1]),
                    "same_seeds_as_first": bool(np.array_equal(key, first))})
    _set_caps(("doublets", "triplets"), "default", defaults)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pileup", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--ckf", default="0,default", help="register caps of the CKF filter kernel (0: none)")
    parser.add_argument("--seeding", default="0,default", help="register caps of the doublet and triplet kernels")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "data" / "gpu_registers.json"))
    args = parser.parse_args()
    cp = gpu_or_exit()
    from reference.tracking.chain import reconstruct_event
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=args.pileup), seed=args.seed,
                           planes=module_planes(detector))
    res = reconstruct_event(event, detector)
    result = {"device": cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "pileup": args.pileup,
              "repeats": args.repeats, "method": "cuda-events",
              "seeding": seeding_caps(cp, res, _caps(args.seeding), args.repeats),
              "ckf": ckf_caps(cp, res, _caps(args.ckf), args.repeats)}
    text = json.dumps(result, indent=1, default=float)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
