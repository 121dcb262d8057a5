"""The whole tracking chain with its GPU stages: clusterization, spacepoint formation, seeding,
parameter estimation and the CKF on the device, the greedy ambiguity resolution on the host.

Products come back to the host once, after the CKF (timed as ``to_host``; on a GPU into pinned
host memory, asynchronously on the current stream), so that the result is the same
:class:`~reference.tracking.chain.ChainResult` the CPU chain gives and the physics performance is
computed the same way. Stage times are wall times with the device synchronised at
each stage boundary.

:func:`reconstruct_batch_gpu` runs several events as one batch (:mod:`reference.tracking.gpu.batch`):
each event's clusterization, then spacepoints, seeding, estimation and the CKF once for all of
them, one copy back, and the ambiguity resolution per event. Every event gets the products it
gets alone; the host's work per event (launches, small device operations, synchronisations)
is shared by the batch, and the CKF's launch holds every event's seeds.
"""

from __future__ import annotations

from typing import Sequence

from auditor.products import to_host, to_host_pinned
from reference.tracking.ambiguity import resolve_ambiguities
from reference.tracking.chain import ChainConfig, ChainResult, _Clock
from reference.tracking.errors import TrackingInputError
from reference.tracking.event import Event
from reference.tracking.geometry import Detector
from reference.tracking.gpu import backend


class _DeviceClock(_Clock):
    """A stage clock that waits for the device before reading the time."""

    def stop(self, name: str) -> None:
        backend.synchronize()
        super().stop(name)


def _device_stages(event: Event, detector: Detector | None, config: ChainConfig, clock: _Clock) -> dict:
    from reference.tracking.gpu.ckf import tracks_from_seeds
    from reference.tracking.gpu.clusterization import clusterization_gpu, event_to_device
    from reference.tracking.gpu.estimation import estimate_track_parameters
    from reference.tracking.gpu.seeding import find_seeds
    from reference.tracking.gpu.spacepoints import form_spacepoints_gpu

    device_event = event_to_device(event)
    clock.stop("to_device")
    out = {"measurements": clusterization_gpu(device_event, detector)}
    clock.stop("clusterization")
    out["spacepoints"] = form_spacepoints_gpu(out["measurements"])
    clock.stop("spacepoints")
    out["seeds"] = find_seeds(out["spacepoints"], config.seeding)
    clock.stop("seeding")
    out["parameters"], out["seed_valid"] = estimate_track_parameters(out["seeds"], out["spacepoints"],
                                                                     out["measurements"], config.estimation)
    clock.stop("estimation")
    out["tracks_all"] = tracks_from_seeds(out["seeds"], out["spacepoints"], out["measurements"],
                                          (out["parameters"], out["seed_valid"]), config.ckf)
    clock.stop("ckf")
    return out


def reconstruct_event_gpu(event: Event, detector: Detector | None = None,
                          config: ChainConfig = ChainConfig()) -> ChainResult:
    """Run the chain on the device (see the module docstring) and return host products."""
    if config.low_pt is not None or config.leftover is not None:
        raise TrackingInputError("The low-pT and leftover iterations run on the CPU only; drop --low-pt or use "
                                 "--device cpu.")
    timings: dict = {}
    cpu: dict = {}
    clock = _DeviceClock(timings, cpu)
    on_device = _device_stages(event, detector, config, clock)
    host = to_host(on_device) if backend.simulated() else to_host_pinned(on_device)
    clock.stop("to_host")
    tracks = resolve_ambiguities(host["tracks_all"], len(host["measurements"]), config.ambiguity)
    clock.stop("ambiguity")
    timings["total"] = sum(timings.values())
    cpu["total"] = sum(cpu.values())
    info = dict(event.info)
    info.update({"measurements": len(host["measurements"]), "spacepoints": len(host["spacepoints"]),
                 "seeds": len(host["seeds"]), "ckf_window_overflow": host["tracks_all"].stats.get("window_overflow", 0),
                 "tracks_before_ambiguity": len(host["tracks_all"]), "tracks": len(tracks), "device": "gpu"})
    used_cells = event.cells is not None and detector is not None
    return ChainResult(host["measurements"], host["spacepoints"], host["seeds"], host["parameters"],
                       host["seed_valid"], host["tracks_all"], tracks, timings, info, used_cells, cpu)


def _batch_stages(events: Sequence[Event], detector: Detector | None, config: ChainConfig, clock: _Clock) -> tuple:
    from reference.tracking.gpu.batch import event_column, stack_measurements
    from reference.tracking.gpu.ckf import tracks_from_seeds
    from reference.tracking.gpu.clusterization import clusterization_gpu, event_to_device
    from reference.tracking.gpu.estimation import estimate_track_parameters
    from reference.tracking.gpu.seeding import find_seeds
    from reference.tracking.gpu.spacepoints import form_spacepoints_gpu

    device_events = [event_to_device(event) for event in events]
    clock.stop("to_device")
    out = {}
    out["measurements"], counts = stack_measurements([clusterization_gpu(e, detector) for e in device_events])
    clock.stop("clusterization")
    out["spacepoints"] = form_spacepoints_gpu(out["measurements"])
    clock.stop("spacepoints")
    batch = (event_column(counts), len(events))
    out["seeds"] = find_seeds(out["spacepoints"], config.seeding, events=batch)
    clock.stop("seeding")
    out["parameters"], out["seed_valid"] = estimate_track_parameters(out["seeds"], out["spacepoints"],
                                                                     out["measurements"], config.estimation)
    clock.stop("estimation")
    out["tracks_all"] = tracks_from_seeds(out["seeds"], out["spacepoints"], out["measurements"],
                                          (out["parameters"], out["seed_valid"], batch), config.ckf)
    clock.stop("ckf")
    return out, counts


def reconstruct_batch_gpu(events: Sequence[Event], detector: Detector | None = None,
                          config: ChainConfig = ChainConfig()) -> list[ChainResult]:
    """Run the chain on the device for ``events`` as one batch (see the module docstring) and
    return one :class:`ChainResult` per event, equal to :func:`reconstruct_event_gpu`'s.

    Stage times are the batch's divided by the number of events (``info["batch_events"]``); the
    counters in ``seeds.stats`` and ``tracks_all.stats`` are the batch's totals."""
    from reference.tracking.gpu.batch import BatchProducts, split_products

    events = list(events)
    if len(events) < 2:
        return [reconstruct_event_gpu(event, detector, config) for event in events]
    _check_batch(events, detector, config)
    timings: dict = {}
    cpu: dict = {}
    clock = _DeviceClock(timings, cpu)
    on_device, counts = _batch_stages(events, detector, config, clock)
    host = to_host(on_device) if backend.simulated() else to_host_pinned(on_device)
    parts = split_products(BatchProducts(host["measurements"], counts, host["spacepoints"], host["seeds"],
                                         host["parameters"], host["seed_valid"], host["tracks_all"]),
                           [len(event.hits) for event in events])
    clock.stop("to_host")  # with the split into events
    results = []
    n = len(events)
    for event, part in zip(events, parts):
        clock.reset()
        tracks = resolve_ambiguities(part["tracks_all"], len(part["measurements"]), config.ambiguity)
        clock.stop("ambiguity")
        results.append((event, part, tracks))
    shared = {name: value / n for name, value in timings.items()}
    shared_cpu = {name: value / n for name, value in cpu.items()}
    shared["total"] = sum(shared.values())
    shared_cpu["total"] = sum(shared_cpu.values())
    return [_batch_result(event, part, tracks, (dict(shared), dict(shared_cpu)), n) for event, part, tracks in results]


def _check_batch(events: list, detector: Detector | None, config: ChainConfig) -> None:
    if config.low_pt is not None or config.leftover is not None:
        raise TrackingInputError("The low-pT and leftover iterations run on the CPU only; drop --low-pt or use "
                                 "--device cpu.")
    if any(event.cells is None for event in events) or detector is None:
        raise TrackingInputError("A batch of events needs cells and a detector description; run events without "
                                 "cells one at a time.")


def _batch_result(event: Event, part: dict, tracks, times: tuple, n: int) -> ChainResult:
    info = dict(event.info)
    info.update({"measurements": len(part["measurements"]), "spacepoints": len(part["spacepoints"]),
                 "seeds": len(part["seeds"]), "ckf_window_overflow": part["tracks_all"].stats.get("window_overflow", 0),
                 "tracks_before_ambiguity": len(part["tracks_all"]), "tracks": len(tracks), "device": "gpu",
                 "batch_events": n})
    return ChainResult(part["measurements"], part["spacepoints"], part["seeds"], part["parameters"],
                       part["seed_valid"], part["tracks_all"], tracks, times[0], info, True, times[1])
