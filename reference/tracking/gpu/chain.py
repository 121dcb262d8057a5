"""The whole tracking chain with its GPU stages: clusterization, spacepoint formation, seeding,
parameter estimation and the CKF on the device, the greedy ambiguity resolution on the host.

Products come back to the host once, after the CKF (timed as ``to_host``; on a GPU into pinned
host memory, asynchronously on the current stream), so that the result is the same
:class:`~reference.tracking.chain.ChainResult` the CPU chain gives and the physics performance is
computed the same way. Stage times are wall times with the device synchronised at
each stage boundary.

:func:`reconstruct_batch_gpu` runs several events as one batch (:mod:`reference.tracking.gpu.batch`):
one copy of all their hits and cells to the device, one clusterization pass, then spacepoints,
seeding, estimation and the CKF once for all of them; the indices are made per event on the
device, one copy back, a split into events by views, and the ambiguity resolution per event.
Every event gets the products it gets alone; the host's work per event (launches, small device
operations, synchronisations) is shared by the batch, and the CKF's launch holds every event's
seeds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

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


def _device_stages(events: Sequence[Event], detector: Detector | None, config: ChainConfig, clock: _Clock) -> tuple:
    """The device stages for one event or a batch: (device products, host counts of measurements
    per event). A batch's measurements come one event after the other, and the later stages run
    once for all of them."""
    from reference.tracking.gpu.ckf import tracks_from_seeds
    from reference.tracking.gpu.estimation import estimate_track_parameters
    from reference.tracking.gpu.seeding import find_seeds
    from reference.tracking.gpu.spacepoints import form_spacepoints_gpu

    out = {}
    out["measurements"], counts, batch = _measurements(events, detector, clock)
    clock.stop("clusterization")
    out["spacepoints"] = form_spacepoints_gpu(out["measurements"])
    clock.stop("spacepoints")
    out["seeds"] = find_seeds(out["spacepoints"], config.seeding, events=batch)
    clock.stop("seeding")
    out["parameters"], out["seed_valid"] = estimate_track_parameters(out["seeds"], out["spacepoints"],
                                                                     out["measurements"], config.estimation)
    clock.stop("estimation")
    estimate = (out["parameters"], out["seed_valid"]) + ((batch,) if batch else ())
    out["tracks_all"] = tracks_from_seeds(out["seeds"], out["spacepoints"], out["measurements"], estimate, config.ckf)
    clock.stop("ckf")
    return out, counts


def _measurements(events: Sequence[Event], detector: Detector | None, clock: _Clock) -> tuple:
    """Copy and clusterization: (measurements, host counts per event, (event column, number of
    events) for a batch, else None). A batch is copied and clustered in as few groups of events
    as the sort key allows (:func:`batch_groups`; one group at pile-up 200 up to 16 events), one
    block and one pass per group; a group whose hit ids are not sorted is clustered event by
    event."""
    from reference.tracking.gpu.batch import batch_to_device, stack_measurements
    from reference.tracking.gpu.clusterization import batch_groups, clusterization_gpu, event_to_device

    if len(events) == 1:
        event = event_to_device(events[0])
        clock.stop("to_device")
        meas = clusterization_gpu(event, detector)
        return meas, np.array([len(meas)], np.int64), None
    groups = batch_groups([len(event.cells) for event in events], detector)  # cells: see _check_batch
    copies = [batch_to_device(events[a:b]) for a, b in groups]
    clock.stop("to_device")
    parts = [_clustered_group(events[a:b], copy, detector) for (a, b), copy in zip(groups, copies)]
    if len(parts) == 1:
        meas, counts, column = parts[0]
    else:
        meas = stack_measurements([part[0] for part in parts])[0]
        counts = np.concatenate([part[1] for part in parts])
        column = backend.xp().concatenate([part[2] + a for (a, _), part in zip(groups, parts)])
    return meas, counts, (column, len(events))


def _clustered_group(events: Sequence[Event], copy, detector: Detector) -> tuple:
    """(measurements, host counts, event column) of a group of events copied as one block."""
    from reference.tracking.gpu.batch import event_column, stack_measurements
    from reference.tracking.gpu.clusterization import clusterization_batch_gpu, clusterization_gpu, event_to_device

    found = clusterization_batch_gpu(copy, detector)
    if found is None:  # hit ids not sorted: event by event
        meas, counts = stack_measurements([clusterization_gpu(event_to_device(event), detector) for event in events])
        found = (meas, counts, event_column(counts))
    return found


def _check_single_pass(config: ChainConfig) -> None:
    if config.low_pt is not None or config.leftover is not None:
        raise TrackingInputError("The low-pT and leftover iterations run on the CPU only; drop --low-pt or use "
                                 "--device cpu.")


def _result(event: Event, products: dict, tracks, run: tuple, extra: dict) -> ChainResult:
    """The :class:`ChainResult` of one event from its host products; ``run`` = (wall stage times,
    CPU stage times, whether cells were used); ``extra``: more info entries."""
    info = dict(event.info)
    info.update({"measurements": len(products["measurements"]), "spacepoints": len(products["spacepoints"]),
                 "seeds": len(products["seeds"]),
                 "ckf_window_overflow": products["tracks_all"].stats.get("window_overflow", 0),
                 "tracks_before_ambiguity": len(products["tracks_all"]), "tracks": len(tracks), "device": "gpu",
                 **extra})
    return ChainResult(products["measurements"], products["spacepoints"], products["seeds"], products["parameters"],
                       products["seed_valid"], products["tracks_all"], tracks, run[0], info, run[2], run[1])


def _to_host(on_device: dict) -> dict:
    return to_host(on_device) if backend.simulated() else to_host_pinned(on_device)


def reconstruct_event_gpu(event: Event, detector: Detector | None = None,
                          config: ChainConfig = ChainConfig()) -> ChainResult:
    """Run the chain on the device (see the module docstring) and return host products."""
    _check_single_pass(config)
    timings: dict = {}
    cpu: dict = {}
    clock = _DeviceClock(timings, cpu)
    host = _to_host(_device_stages([event], detector, config, clock)[0])
    clock.stop("to_host")
    tracks = resolve_ambiguities(host["tracks_all"], len(host["measurements"]), config.ambiguity)
    clock.stop("ambiguity")
    timings["total"] = sum(timings.values())
    cpu["total"] = sum(cpu.values())
    return _result(event, host, tracks, (timings, cpu, event.cells is not None and detector is not None), {})


def reconstruct_batch_gpu(events: Sequence[Event], detector: Detector | None = None,
                          config: ChainConfig = ChainConfig()) -> list[ChainResult]:
    """Run the chain on the device for ``events`` as one batch (see the module docstring) and
    return one :class:`ChainResult` per event, equal to :func:`reconstruct_event_gpu`'s.

    Stage times are the batch's divided by the number of events (``info["batch_events"]``); the
    counters in ``seeds.stats`` and ``tracks_all.stats`` are the batch's totals."""
    from reference.tracking.gpu.batch import BatchProducts, localize, split_products

    events = list(events)
    if len(events) < 2:
        return [reconstruct_event_gpu(event, detector, config) for event in events]
    _check_batch(events, detector, config)
    timings: dict = {}
    cpu: dict = {}
    clock = _DeviceClock(timings, cpu)
    on_device, counts = _device_stages(events, detector, config, clock)
    local = localize(BatchProducts(on_device["measurements"], counts, on_device["spacepoints"], on_device["seeds"],
                                   on_device["parameters"], on_device["seed_valid"], on_device["tracks_all"]))
    parts = split_products(_to_host(local), [len(event.hits) for event in events])
    clock.stop("to_host")  # with the split into events
    tracks = []
    for part in parts:
        clock.reset()
        tracks.append(resolve_ambiguities(part["tracks_all"], len(part["measurements"]), config.ambiguity))
        clock.stop("ambiguity")
    n = len(events)
    return [_result(event, part, kept, (_per_event(timings, n), _per_event(cpu, n), True), {"batch_events": n})
            for event, part, kept in zip(events, parts, tracks)]


def _check_batch(events: list, detector: Detector | None, config: ChainConfig) -> None:
    _check_single_pass(config)
    if any(event.cells is None for event in events) or detector is None:
        raise TrackingInputError("A batch of events needs cells and a detector description; run events without "
                                 "cells one at a time.")


def _per_event(times: dict, n: int) -> dict:
    """A batch's stage times shared by its ``n`` events, with their total."""
    shared = {name: value / n for name, value in times.items()}
    shared["total"] = sum(shared.values())
    return shared
