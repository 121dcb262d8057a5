"""Benchmark of the GPU clusterization + spacepoint formation on pile-up 200 events.

Usage (from the repository root, on a machine with a CUDA GPU and CuPy):

    python benchmarks/bench_tracking_gpu_ccl.py --events 3 --repeats 30

Events are simulated on the host and moved to the device once (data resident), in two ways:
with ``event_to_device`` (integer columns in one buffer, read in place by the kernels) and with
every column its own device array (copied into the workspace at each call). Each repeat runs
``clusterization_gpu`` then ``form_spacepoints_gpu`` and is timed with CUDA events recorded
around each stage (cupy.cuda.Event), after warm-up calls that compile the kernels. Host wall
time per repeat (time.perf_counter; the call returns after its one device sync) and the CPU
stages on the same events are reported alongside. Prints one JSON object: median, 10th and
90th percentile, min and max in ms over events x repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from reference.tracking.gpu import backend  # noqa: E402


def _summary(values_ms) -> dict:
    v = np.asarray(values_ms, float)
    return {"median": round(float(np.median(v)), 4), "p10": round(float(np.percentile(v, 10)), 4),
            "p90": round(float(np.percentile(v, 90)), 4), "min": round(float(v.min()), 4),
            "max": round(float(v.max()), 4), "n": int(v.size)}


def _time_event(event, detector, repeats: int) -> dict:
    """CUDA-event times (ms) of both stages and host wall times of the pair, per repeat."""
    import cupy  # pylint: disable=import-outside-toplevel,import-error  # only on GPU machines

    from reference.tracking.gpu.clusterization import clusterization_gpu  # pylint: disable=import-outside-toplevel
    from reference.tracking.gpu.spacepoints import form_spacepoints_gpu  # pylint: disable=import-outside-toplevel

    marks = [cupy.cuda.Event() for _ in range(3)]
    out = {"clusterization": [], "spacepoints": [], "total": [], "wall": []}
    for _ in range(repeats):
        backend.synchronize()
        t0 = time.perf_counter()
        marks[0].record()
        meas = clusterization_gpu(event, detector)
        marks[1].record()
        form_spacepoints_gpu(meas)
        marks[2].record()
        marks[2].synchronize()
        out["wall"].append((time.perf_counter() - t0) * 1e3)
        out["clusterization"].append(cupy.cuda.get_elapsed_time(marks[0], marks[1]))
        out["spacepoints"].append(cupy.cuda.get_elapsed_time(marks[1], marks[2]))
        out["total"].append(cupy.cuda.get_elapsed_time(marks[0], marks[2]))
    return out


def _cpu_ms(event, detector, repeats: int) -> list:
    from reference.tracking.audit_chain import clusterization  # pylint: disable=import-outside-toplevel
    from reference.tracking.spacepoints import form_spacepoints  # pylint: disable=import-outside-toplevel

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        form_spacepoints(clusterization(event, detector))
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def _per_column(event):
    """The event with every hit and cell column its own device array (no shared layout)."""
    from reference.tracking.event import Event  # pylint: disable=import-outside-toplevel
    from reference.tracking.gpu.clusterization import to_device  # pylint: disable=import-outside-toplevel

    return Event(to_device(event.hits), to_device(event.cells), event.particles, event.truth, dict(event.info))


def _timed(events, detector, repeats: int) -> dict:
    times = {"clusterization": [], "spacepoints": [], "total": [], "wall": []}
    for event in events:
        for key, values in _time_event(event, detector, repeats).items():
            times[key] += values
    return {"cuda_events_ms": {k: _summary(v) for k, v in times.items() if k != "wall"},
            "host_wall_ms": _summary(times["wall"])}


def run(events: int, repeats: int, pileup: int, seed: int) -> dict:
    """Simulate, move to the device, warm up, time; returns the JSON-ready result."""
    from reference.tracking.geometry import build_generic_detector  # pylint: disable=import-outside-toplevel
    from reference.tracking.gpu.clusterization import (clusterization_gpu,  # pylint: disable=import-outside-toplevel
                                                       event_to_device)
    from reference.tracking.gpu.spacepoints import form_spacepoints_gpu  # pylint: disable=import-outside-toplevel
    from reference.tracking.simulation import (SimulationConfig, module_planes,  # pylint: disable=import-outside-toplevel
                                               simulate_event)

    detector = build_generic_detector()
    planes = module_planes(detector)
    host = [simulate_event(detector, SimulationConfig(pileup=pileup), seed=seed + k, planes=planes)
            for k in range(events)]
    resident = [event_to_device(e) for e in host]
    columns = [_per_column(e) for e in host]
    for event in (resident[0], columns[0]):
        for _ in range(3):
            form_spacepoints_gpu(clusterization_gpu(event, detector))
    cpu = [t for e in host for t in _cpu_ms(e, detector, 3)]
    name = backend.cuda().get_current_device().name
    return {"benchmark": "tracking_gpu_ccl", "device": name.decode() if isinstance(name, bytes) else str(name),
            "pileup": pileup, "events": events, "repeats": repeats,
            "cells_per_event": int(np.mean([len(e.cells) for e in host])),
            "hits_per_event": int(np.mean([len(e.hits) for e in host])),
            "target_ms": 1.0,
            "gpu_event_to_device_layout": _timed(resident, detector, repeats),
            "gpu_one_array_per_column": _timed(columns, detector, repeats),
            "cpu_clusterization_spacepoints_ms": _summary(cpu)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per event (>= 20)")
    parser.add_argument("--pileup", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.repeats < 20:
        parser.error("--repeats must be at least 20")
    if backend.simulated():
        print("This benchmark needs a real GPU: unset NUMBA_ENABLE_CUDASIM.", file=sys.stderr)
        return 1
    try:
        backend.xp()
    except backend.GPUUnavailable:
        print("This benchmark needs a CUDA GPU with CuPy, and none is available here.", file=sys.stderr)
        return 1
    print(json.dumps(run(args.events, args.repeats, args.pileup, args.seed), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
