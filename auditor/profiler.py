"""Measure a chain: time per event of every stage on every device, first-call (JIT) time,
peak memory, host<->device transfers of every product, agreement between devices, and energy.

The flow for one chain:

1. build the events (the chain's input factory), timed as input preparation;
2. a reference pass runs every stage on its reference device (the CPU) event by event, keeping
   all products on the host: every later measurement starts from these inputs;
3. for each stage and device: move the inputs to the device once (untimed: data resident), time
   the first call, warm up, then time calls round-robin over the events until both a minimum
   count and a minimum time are reached; GPU work is timed with CUDA events;
4. outputs of each non-reference device are brought back and compared with the reference
   outputs by the stage's comparator;
5. each product crossing a stage boundary is timed host->device (pageable and pinned) and
   device->host on its own;
6. energy windows, when an energy meter is given, run the stage back to back on resident data.

A stage that raises is marked failed with its error and the run goes on; stages that need its
outputs are marked skipped. Ctrl-C stops measuring and keeps what was measured.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from auditor import products
from auditor.devices import Timer, gpu_status, synchronize
from auditor.measurement import Measurement, summarise
from auditor.memory import PeakDeviceMemory, PeakHostMemory
from auditor.stages import Agreement, Chain, Stage

#: Seconds of timed calls per stage and device, by mode.
MIN_SECONDS = {"quick": 0.2, "normal": 1.0, "precise": 5.0}
WARMUP_CALLS = 2
MAX_SAMPLES = 100_000

EnergyMeter = Callable[[Callable[[], None], str, str, bool], dict[str, Any] | None]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class ProfileOptions:
    """How to measure (every field has a default a quick interactive run can use)."""

    devices: tuple[str, ...] = ("cpu", "gpu")
    stages: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    mode: str = "normal"  #: quick | normal | precise
    min_repeats: int = 5
    transfer_repeats: int = 20
    min_agreement: float = 0.99
    #: Only events [start, stop) of the chain's inputs (a work unit's share); None: all of them.
    event_range: tuple[int, int] | None = None

    @property
    def min_seconds(self) -> float:
        return MIN_SECONDS[self.mode]


class StageFailed(Exception):
    """A stage implementation raised; carries the formatted error."""


def _call(stage: Stage, device: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return stage.run(device, inputs)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - user code may raise anything; it is reported
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
        raise StageFailed(f"{type(exc).__name__}: {exc}{where}") from exc


def reference_pass(chain: Chain, events: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Run every stage on its reference device for every event; products stay on the host.

    Returns the products per event and, per stage that could not run, the reason.
    """
    failures: dict[str, str] = {}
    all_products: list[dict[str, Any]] = []
    for event in events:
        current = dict(event)
        for stage in chain.stages.values():
            if stage.name in failures:
                continue
            missing = [name for name in stage.inputs if name not in current]
            if missing:
                failures[stage.name] = f"skipped: needs {', '.join(missing)} from a failed stage"
                continue
            device = stage.reference_device if stage.reference_device in stage.implementations \
                else next(iter(stage.implementations))
            backend = stage.implementations[device].backend
            inputs = current if device == "cpu" else products.to_device(
                {n: current[n] for n in stage.inputs}, backend)
            try:
                outputs = _call(stage, device, inputs)
            except StageFailed as failed:
                failures[stage.name] = f"failed: {failed}"
                continue
            synchronize(backend)
            current.update(outputs if device == "cpu" else products.to_host(outputs))
        all_products.append(current)
    return all_products, failures


def _time_calls(stage: Stage, device: str, inputs: list[dict[str, Any]], options: ProfileOptions) -> dict[str, Any]:
    """First call, warm-up and timed calls of one implementation on resident inputs."""
    backend = stage.implementations[device].backend
    timer = Timer(backend)
    with timer:
        _call(stage, device, inputs[0])
    first = timer.seconds
    for index in range(WARMUP_CALLS):
        _call(stage, device, inputs[index % len(inputs)])
    synchronize(backend)
    samples: list[float] = []
    started = time.perf_counter()
    with PeakHostMemory() as host_memory, PeakDeviceMemory(backend) as device_memory:
        while len(samples) < MAX_SAMPLES and (len(samples) < options.min_repeats
                                              or time.perf_counter() - started < options.min_seconds):
            with Timer(backend) as timer:
                _call(stage, device, inputs[len(samples) % len(inputs)])
            samples.append(timer.seconds)
    time_per_event = summarise(samples, "s", timer.method)
    return {
        "time": time_per_event.to_json(),
        "first_call": Measurement(first, "s", timer.method, note="includes compilation or caching on first use").to_json(),
        "first_call_overhead_s": max(0.0, first - time_per_event.value),
        "samples": len(samples),
        "time_samples": _keep(samples),
        "memory": {"host_peak_mb": round(host_memory.peak_mb, 1),
                   "host_added_mb": round(max(0.0, host_memory.peak_mb - host_memory.before_mb), 1),
                   "device_peak_mb": None if device_memory.peak_mb is None else round(device_memory.peak_mb, 1),
                   "device_method": None if device_memory.peak_mb is None else "cupy-pool-high-water"
                   if backend in ("cupy", "numba") else "torch-max-allocated"},
    }


#: Samples kept in the report for later comparisons (evenly spaced in time order when there are more).
KEPT_SAMPLES = 2000


def _keep(samples: list[float]) -> list[float]:
    if len(samples) <= KEPT_SAMPLES:
        return [float(v) for v in samples]
    step = len(samples) / KEPT_SAMPLES
    return [float(samples[int(i * step)]) for i in range(KEPT_SAMPLES)]


def _agreement(stage: Stage, device: str, inputs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Compare this device's outputs with the reference outputs, event by event."""
    if stage.comparator is None or device == stage.reference_device:
        return None
    per_event: list[Agreement] = []
    for event_inputs, expected in zip(inputs, reference):
        outputs = products.to_host(_call(stage, device, event_inputs))
        per_event.append(stage.comparator({k: expected[k] for k in stage.outputs}, outputs))
    labels = list(per_event[0].rates)
    rates = {label: min(a.rates[label] for a in per_event) for label in labels}
    return {"rates": rates, "headline": per_event[0].headline, "events": len(per_event),
            "statistic": "lowest rate over the events",
            "details": [dict(a.details) for a in per_event][:5]}


def measure_transfers(chain: Chain, reference: dict[str, Any], backend: str,
                      repeats: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Host->device (pageable and pinned) and device->host time of each product of one event;
    products that cannot be moved are listed with the reason instead."""
    results = []
    problems: list[str] = []
    for producer, consumer, product in chain.edges():
        value = reference.get(product)
        if value is None:
            continue
        try:
            results.append(_measure_product(value, product, producer, consumer, backend, repeats))
        except Exception as exc:  # noqa: BLE001 - a product the device library cannot take is reported
            problems.append(f"{product}: cannot be copied to the GPU ({type(exc).__name__}: {exc})")
    return results, problems


def _measure_product(value: Any, product: str, producer: str | None, consumer: str | None, backend: str,
                     repeats: int) -> dict[str, Any]:
    size = products.nbytes(value)
    entry: dict[str, Any] = {"product": product, "producer": producer, "consumer": consumer, "bytes": size}
    entry["h2d_pageable"] = _time_transfer(lambda: products.to_device(value, backend), backend, repeats, size)
    pinned = products.pin(value, backend)
    entry["h2d_pinned"] = _time_transfer(lambda: products.to_device(pinned, backend), backend, repeats, size)
    on_device = products.to_device(value, backend)
    synchronize(backend)
    entry["d2h"] = _time_transfer(lambda: products.to_host(on_device), backend, repeats, size)
    return entry


def _time_transfer(move: Callable[[], Any], backend: str, repeats: int, size: int) -> dict[str, Any]:
    move()
    synchronize(backend)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        move()
        synchronize(backend)
        samples.append(time.perf_counter() - started)
    measured = summarise(samples, "s", "perf-counter")
    return {"time": measured.to_json(), "gb_per_s": round(size / measured.value / 1e9, 3) if measured.value > 0 else None}


def profile_stage(stage: Stage, device: str, host_inputs: list[dict[str, Any]], reference: list[dict[str, Any]],
                  options: ProfileOptions, energy_meter: EnergyMeter | None) -> dict[str, Any]:
    """Everything measured for one implementation of one stage."""
    implementation = stage.implementations[device]
    backend = implementation.backend
    inputs = [{n: e[n] for n in stage.inputs} for e in host_inputs]
    if device != "cpu":
        inputs = [products.to_device(e, backend) for e in inputs]
        synchronize(backend)
    result: dict[str, Any] = {"status": "measured", "backend": backend, "function": implementation.qualified_name}
    try:
        result.update(_time_calls(stage, device, inputs, options))
        result["agreement"] = _agreement(stage, device, inputs, reference)
    except StageFailed as failed:
        return {"status": "failed", "error": str(failed), "backend": backend, "function": implementation.qualified_name}
    if energy_meter is not None:
        cycle = {"index": 0}

        def workload() -> None:
            _call(stage, device, inputs[cycle["index"] % len(inputs)])
            cycle["index"] += 1

        result["energy"] = energy_meter(workload, device, backend, options.mode == "precise")
    return result


def _prepare_events(chain: Chain, parameters: Mapping[str, Any],
                    event_range: tuple[int, int] | None) -> tuple[list[Mapping[str, Any]], float]:
    """The chain's events (only those in ``event_range`` when given) and the seconds they took."""
    started = time.perf_counter()
    events = list(chain.make_inputs(parameters))
    if event_range is not None:
        events = events[event_range[0]:event_range[1]]
    return events, time.perf_counter() - started


def _range_json(event_range: tuple[int, int] | None) -> list[int] | None:
    return None if event_range is None else list(event_range)


def profile_chain(chain: Chain, options: ProfileOptions, energy_meter: EnergyMeter | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Measure ``chain``; the result is the chain's part of the run report (JSON-ready)."""
    say = progress or (lambda message: None)
    parameters = {**chain.parameters, **(chain.quick if options.mode == "quick" else {}), **options.parameters}
    say(f"{chain.name}: preparing events")
    events, preparation = _prepare_events(chain, parameters, options.event_range)
    if not events:
        raise ValueError(f"chain {chain.name!r} produced no events for {parameters}")
    gpu_ok, gpu_reason = gpu_status()
    devices = [d for d in options.devices if d == "cpu" or gpu_ok]
    result: dict[str, Any] = {
        "name": chain.name, "description": chain.description, "parameters": parameters,
        "events": len(events), "event_range": _range_json(options.event_range),
        "input_preparation_s": round(preparation, 4),
        "devices": {"requested": list(options.devices), "measured": devices,
                    "gpu": "available" if gpu_ok else gpu_reason},
        "stages": [], "transfers": [], "interrupted": False,
    }
    say(f"{chain.name}: reference pass")
    reference, failures = reference_pass(chain, events)
    try:
        for stage in chain.select(list(options.stages)):
            entry: dict[str, Any] = {"name": stage.name, "inputs": list(stage.inputs), "outputs": list(stage.outputs),
                                     "reference_device": stage.reference_device, "devices": {}}
            result["stages"].append(entry)
            if stage.name in failures:
                entry["status"] = failures[stage.name]
                continue
            entry["status"] = "measured"
            for device in ("cpu", "gpu"):
                if device not in stage.implementations:
                    entry["devices"][device] = {"status": "no implementation"}
                elif device not in devices:
                    entry["devices"][device] = {"status": "unavailable",
                                                "reason": gpu_reason if device == "gpu" else "not requested"}
                else:
                    say(f"{chain.name}: {stage.name} on {device}")
                    entry["devices"][device] = profile_stage(stage, device, reference, reference, options, energy_meter)
        backends = {i.backend for s in chain.stages.values() for d, i in s.implementations.items() if d == "gpu"}
        if "gpu" in devices and backends:  # copies matter only where some stage can run on the GPU
            say(f"{chain.name}: transfers")
            result["transfers"], result["transfer_problems"] = measure_transfers(
                chain, reference[0], sorted(backends)[0], options.transfer_repeats)
    except KeyboardInterrupt:
        result["interrupted"] = True
    result["product_bytes"] = {name: products.nbytes(value) for name, value in reference[0].items()}
    return result
