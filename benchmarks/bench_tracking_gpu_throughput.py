"""Whole-chain throughput of the GPU tracking chain with several events in flight, against the CPU
chain on one core and on all cores of the same machine; and the float64 agreement of clusters and
spacepoints.

Usage (from the repository root, on a machine with a CUDA GPU and CuPy):

    python benchmarks/bench_tracking_gpu_throughput.py --pileup 200 --events 16 --streams 1,2,4,8 --repeats 3

Events are simulated on the host. Every event goes through the whole chain as a user runs it:
host -> device copy, clusterization, spacepoints, seeding, estimation, CKF on the GPU, copy back,
ambiguity resolution on the host (``reconstruct_event_gpu``). Throughput mode runs N host threads,
each on its own CUDA stream (``reconstruct_many``); events per second is events / wall time, per
repeat, after a warm-up that compiles the kernels. The same events through the CPU chain
(``reconstruct_event``, numba, one thread per process) give the one-core rate (first
``--cpu-events`` events) and the all-core rate (a process pool of one worker per core over all
events, after one warm-up event per worker). ``--batch 1,4,8`` also runs every stream count with
batches of that many events per thread (``reconstruct_many(..., batch=B)``: clusterization per
event, then one seeding, estimation and CKF for the batch). Results of every stream count are checked against
one event at a time (seeds and tracks per event), and the per-stage times of single events are
recorded. ``--pinned-input`` repeats the GPU rates with the events' hits and cells loaded into
page-locked host memory before the timed loop (``--pinned-only``: only those). Then clusterization
and spacepoints in float64 on the GPU are compared with the CPU's by traccc's comparator (rates at
0.01 %). The host's CPU time per event is reported for every stream count; CUDA's default
synchronisation spins, so it counts the waits too. ``--blocking-sync`` makes the host threads
sleep while they wait (``cudaDeviceScheduleBlockingSync``), and the CPU time is then the host's own
work. ``--no-cpu`` skips the CPU chain's rates.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from reference.tracking.gpu import backend  # noqa: E402

_STATE: dict = {}


def _simulate(pileup: int, count: int, seed: int):
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event

    detector = build_generic_detector()
    planes = module_planes(detector)
    return detector, [simulate_event(detector, SimulationConfig(pileup=pileup), seed=seed + k, planes=planes)
                      for k in range(count)]


def _cpu_worker_init(pileup: int) -> None:
    from reference.tracking.geometry import build_generic_detector

    _STATE["detector"] = build_generic_detector()


def _cpu_reconstruct(event) -> int:
    from reference.tracking.chain import reconstruct_event

    return int(reconstruct_event(event, _STATE["detector"]).info["tracks"])


def _signature(result) -> tuple:
    return len(result.seeds), result.info["tracks"], int(result.tracks.meas.sum())


def gpu_rates(detector, events, streams: list[int], repeats: int, batches: tuple = (1,), chunk_sets: tuple = (None,)) \
        -> dict:
    """Events per second for every (streams, batch) pair, keyed "streams" for batch 1 and
    "streamsxbatch" otherwise; results checked against one event at a time. With several
    ``chunk_sets`` (the CKF skip rule's chunks), every repeat runs each set in turn (keys
    suffixed "@k", k the set's position), so that the host's drift hits them alike."""
    from reference.tracking.gpu.chain import reconstruct_event_gpu
    from reference.tracking.gpu.throughput import reconstruct_many

    for _ in range(2):
        reconstruct_event_gpu(events[0], detector)
    reference = [_signature(reconstruct_event_gpu(e, detector)) for e in events]
    rates = {}
    for batch in batches:
        for count in streams:
            key = str(count) if batch == 1 else f"{count}x{batch}"
            reconstruct_many(events[:count * batch], detector, streams=count, batch=batch)  # contexts and pools
            runs: dict = {k: ([], []) for k in range(len(chunk_sets))}
            for _ in range(repeats):
                for k, chunks in enumerate(chunk_sets):
                    _set_chunks(chunks)
                    cpu_started = time.process_time()
                    done = reconstruct_many(events, detector, streams=count, batch=batch)
                    runs[k][1].append(1e3 * (time.process_time() - cpu_started) / len(events))
                    assert [_signature(r) for r in done.results] == reference, f"{key} changed the results"
                    runs[k][0].append(done.events_per_s)
            for k, (rate, host) in runs.items():
                name = key if len(chunk_sets) == 1 else f"{key}@{k}"
                rates[name] = {"streams": count, "batch": batch, "median": statistics.median(rate), "min": min(rate),
                               "max": max(rate), "runs": rate, "host_cpu_ms_per_event": statistics.median(host),
                               "skip_chunks": chunk_sets[k]}
                label = "" if len(chunk_sets) == 1 else f", chunks {chunk_sets[k]}"
                print(f"GPU, {count} stream(s), batches of {batch}{label}: {rates[name]['median']:.1f} events/s, "
                      f"host CPU {statistics.median(host):.1f} ms per event", flush=True)
    _set_chunks(chunk_sets[0])
    return rates


def _set_chunks(chunks) -> None:
    """The CKF skip rule's chunks for single events and batches alike (None: leave them)."""
    from reference.tracking.gpu import ckf
    if chunks is not None:
        ckf.SKIP_CHUNKS = ckf.SKIP_CHUNKS_BATCH = chunks


def cpu_rates(detector, events, cpu_events: int, workers: int) -> dict:
    from reference.tracking.chain import reconstruct_event

    reconstruct_event(events[0], detector)  # compile / load the numba cache
    started = time.perf_counter()
    for event in events[:cpu_events]:
        reconstruct_event(event, detector)
    one = cpu_events / (time.perf_counter() - started)
    print(f"CPU, one core: {one:.2f} events/s", flush=True)
    with ProcessPoolExecutor(max_workers=workers, initializer=_cpu_worker_init, initargs=(0,)) as pool:
        list(pool.map(_cpu_reconstruct, events[:workers]))  # warm every worker
        started = time.perf_counter()
        list(pool.map(_cpu_reconstruct, events))
        every = len(events) / (time.perf_counter() - started)
    print(f"CPU, {workers} cores: {every:.2f} events/s", flush=True)
    return {"one_core_events_per_s": one, "one_core_events": cpu_events, "all_cores_events_per_s": every,
            "workers": workers}


def pinned(events) -> list:
    """The events with their hits and cells in page-locked host memory (as traccc's throughput
    example loads events), so that the host -> device copies run at DMA speed."""
    import dataclasses

    from auditor.products import pin
    return [dataclasses.replace(e, hits=pin(e.hits, "cupy"), cells=pin(e.cells, "cupy")) for e in events]


def stage_times(detector, events, batch: int = 1) -> dict:
    """Per-stage wall times (ms, the device synchronised at each boundary) per event, median of
    the events given, one at a time or in batches of ``batch`` (the batch's times shared by its
    events)."""
    from reference.tracking.gpu.chain import reconstruct_batch_gpu

    results = [r for k in range(0, len(events), batch) for r in reconstruct_batch_gpu(events[k:k + batch], detector)]
    times = [r.timings_s for r in results]
    out = {k: 1e3 * statistics.median(t[k] for t in times) for k in times[0]}
    out["host_cpu"] = {k: 1e3 * statistics.median(r.cpu_timings_s[k] for r in results) for k in times[0]}
    return out


def chain_profile(detector, events, batch: int = 1) -> list:
    """cProfile of the chain over ``events`` (one stream, batches of ``batch``), per event (see
    ``gpu_timing.host_profile``)."""
    from gpu_timing import host_profile

    from reference.tracking.gpu.chain import reconstruct_batch_gpu

    queue = iter(range(0, len(events), batch))

    def one() -> None:
        k = next(queue)
        reconstruct_batch_gpu(events[k:k + batch], detector)

    rows = host_profile(one, len(events) // batch)  # per batch
    return [[name, count, own / batch, cum / batch] for name, count, own, cum in rows]


def float64_agreement(detector, events) -> dict:
    from auditor.products import to_host
    from reference.tracking.agreement import compare_measurements, compare_spacepoints
    from reference.tracking.audit_chain import clusterization
    from reference.tracking.gpu.clusterization import ClusterizationConfig, clusterization_gpu, event_to_device
    from reference.tracking.gpu.spacepoints import form_spacepoints_gpu
    from reference.tracking.spacepoints import form_spacepoints

    found = {"measurements": [], "spacepoints": []}
    for event in events:
        cpu_meas = clusterization(event, detector)
        gpu_meas = clusterization_gpu(event_to_device(event), detector, ClusterizationConfig(dtype="float64"))
        gpu_sp = form_spacepoints_gpu(gpu_meas)
        found["measurements"].append(compare_measurements(cpu_meas, to_host(gpu_meas)).rates)
        found["spacepoints"].append(compare_spacepoints(form_spacepoints(cpu_meas), to_host(gpu_sp)).rates)
    return {k: {label: min(r[label] for r in v) for label in v[0]} for k, v in found.items()}


def _blocking_sync() -> bool:
    """CU_CTX_SCHED_BLOCKING_SYNC on device 0's primary context, before any context is made (the
    driver API through ctypes: CuPy has no call for it)."""
    import ctypes
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    device = ctypes.c_int()
    return (driver.cuInit(0) == 0 and driver.cuDeviceGet(ctypes.byref(device), 0) == 0
            and driver.cuDevicePrimaryCtxSetFlags_v2(device, 4) == 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pileup", type=int, default=200)
    parser.add_argument("--events", type=int, default=16)
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--batch", default="1",
                        help="Events per batch, comma-separated (each with every stream count): a thread runs a "
                             "batch's events together (reconstruct_batch_gpu).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-events", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--agreement-events", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--filter-threads", type=int, default=None,
                        help="Cap the CKF filter kernel's threads per event (FILTER_THREADS; default: one per seed).")
    parser.add_argument("--skip-chunks", default=None,
                        help="Chunks of the CKF's skip rule, comma-separated increasing fractions ending with 1, "
                             "for single events and batches (default: SKIP_CHUNKS and SKIP_CHUNKS_BATCH); several "
                             "sets separated by ';' are timed in turn within every repeat (the first set is used "
                             "for the other measurements).")
    parser.add_argument("--pinned-input", action="store_true",
                        help="Also time the events loaded into page-locked host memory beforehand.")
    parser.add_argument("--pinned-only", action="store_true",
                        help="Time only the events in page-locked host memory.")
    parser.add_argument("--blocking-sync", action="store_true",
                        help="Host threads sleep while they wait for the device (CPU time = host work).")
    parser.add_argument("--no-cpu", action="store_true", help="Skip the CPU chain's rates.")
    parser.add_argument("--agreement-only", action="store_true",
                        help="Only the float64 agreement of clusters and spacepoints (no timing).")
    args = parser.parse_args()
    if args.blocking_sync and not _blocking_sync():
        print("Could not set blocking synchronisation on the device's primary context.", file=sys.stderr)
        return 2
    if not backend.device_present():
        print("This benchmark needs a CUDA GPU with CuPy (and NUMBA_ENABLE_CUDASIM unset).", file=sys.stderr)
        return 2
    from reference.tracking.gpu import ckf
    if args.filter_threads is not None:
        ckf.FILTER_THREADS = args.filter_threads
    chunk_sets: tuple = (None,)
    if args.skip_chunks is not None:
        chunk_sets = tuple(tuple(float(f) for f in chunks.split(",")) for chunks in args.skip_chunks.split(";"))
        _set_chunks(chunk_sets[0])
    detector, events = _simulate(args.pileup, args.events, args.seed)
    if args.agreement_only:
        print(json.dumps({"pileup": args.pileup, "events": len(events),
                          "float64_agreement": float64_agreement(detector, events)}, indent=1))
        return 0
    streams = [int(s) for s in args.streams.split(",")]
    batches = tuple(int(b) for b in args.batch.split(","))
    result = {"benchmark": "tracking_gpu_throughput", "command": " ".join(sys.argv), "pileup": args.pileup,
              "filter_threads": args.filter_threads, "skip_chunks": args.skip_chunks,
              "blocking_sync": args.blocking_sync,
              "events": args.events, "device": str(backend.cuda().get_current_device().name)}
    if not args.pinned_only:
        result.update({"gpu": gpu_rates(detector, events, streams, args.repeats, batches),
                       "stage_ms": stage_times(detector, events[:4])})
    if args.pinned_input or args.pinned_only:
        events_pinned = pinned(events)
        result["gpu_pinned_input"] = gpu_rates(detector, events_pinned, streams, args.repeats, batches, chunk_sets)
        result["stage_ms_pinned_input"] = stage_times(detector, events_pinned[:4])
        if max(batches) > 1:
            result["stage_ms_pinned_input_batch"] = {"batch": max(batches), **stage_times(
                detector, events_pinned[:2 * max(batches)], max(batches))}
    result["host_profile"] = chain_profile(detector, events[:4])
    if max(batches) > 1:
        result["host_profile_batch"] = chain_profile(detector, events[:2 * max(batches)], max(batches))
    if args.agreement_events > 0:
        result["float64_agreement"] = float64_agreement(detector, events[:args.agreement_events])
    if not args.no_cpu:
        result["cpu"] = cpu_rates(detector, events, args.cpu_events, args.workers)
        best = max(v["median"] for key in ("gpu", "gpu_pinned_input") for v in result.get(key, {}).values())
        result["speedup_over_one_core"] = best / result["cpu"]["one_core_events_per_s"]
        result["speedup_over_all_cores"] = best / result["cpu"]["all_cores_events_per_s"]
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
