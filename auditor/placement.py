"""Placement optimiser: the device each stage of a chain should run on.

Model (all costs are per event):

- A chain is a list of :class:`Stage` in topological order. Each stage has one
  :class:`Implementation` per device it can run on (``"cpu"``, ``"gpu"``, any other device name):
  time (s), energy (J, may be estimated or missing) and the share of its outputs that agree with the
  reference device's (the physics gate). An implementation below ``min_agreement`` is excluded and
  the reason is kept.
- :class:`Edge` s carry data products between stages. :data:`HOST` as producer is the chain's input
  (it lives on ``"cpu"``); as consumer it is the chain's output, which must end on ``"cpu"``.
- A product moves to each device that needs it once per event: from its producer's device to every
  other device on which one of its consumers (or the host sink) runs. Transfer costs come from
  :class:`TransferCost` (measured by the profiler) or, where a product/direction was not measured,
  from a :class:`TransferModel` (latency + bytes / bandwidth), which is flagged as modelled.

Objectives (all minimised):

- ``latency``: stage times plus transfer times, stages one after another (s per event);
- ``energy``: stage energies plus transfer energies (J per event);
- ``edp``: energy x latency (J*s per event), optimised exactly (not additive);
- ``throughput``: events pipelined over many in flight; the load of the busiest resource
  (s per event): CPU core-time / usable cores, each other device's stage time, each copy direction's
  transfer time. The events/s figure is 1 / load.

Every figure carries a conservative interval: interval ends are propagated (sums of lows and of
highs; products and maxima likewise), so intervals that overlap mean "not distinguishable".

Algorithm: a dynamic programme over the stages in order whose state is, for every data product
still to be consumed, the device it was made on and the set of devices it has reached. A linear
chain has a handful of states, so hundreds of stages are cheap; a DAG is solved exactly as long as
the number of states stays below ``PlacementProblem.max_states``, beyond which a clear error is
raised. Each state keeps the partial placements that fewer than k others dominate in the additive
quantities the objective depends on, which is exact for any objective that is non-decreasing in
them (latency, energy, edp, throughput), for the k best placements and for the Pareto front.
Latency and energy keep k labels per state: linear in the number of stages. Edp keeps a Pareto set
of (latency, energy), throughput one of the resource loads; both prune partial placements with
lower bounds (least remaining cost per component, Lagrangian weighted sums for the maximum) against
the best of a few cheap candidates. Minimising the busiest resource is a partition problem, so
either can need exponentially many labels: beyond ``max_labels`` the best placement found is
returned, marked ``exact=False``, with a proven bound on its distance from the optimum.
Ties (placements whose interval overlaps the optimum's) are found by the same search on the
interval's low ends, after a quick look at the optimum's one-stage neighbours.
:func:`brute_force` enumerates every placement and is the reference for the tests.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from auditor.errors import UserError
from auditor.measurement import Measurement

#: Edge endpoint standing for the host: the chain's inputs come from it and its outputs go to it.
HOST = "host"
#: The device the host's data lives on.
HOST_DEVICE = "cpu"
OBJECTIVES = ("latency", "energy", "edp", "throughput")
_ENERGY_OBJECTIVES = ("energy", "edp")
#: Unit of each objective's value (throughput is minimised as the busiest resource's load).
OBJECTIVE_UNITS = {"latency": "s", "energy": "J", "edp": "J*s", "throughput": "s/event"}
#: Interval label of derived figures: ends propagated from the inputs' interval ends.
PROPAGATED = "propagated"
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_ENERGY_UNITS = {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "kJ": 1e3, "Wh": 3600.0}
#: Chains up to this many stages get a local search for a tight starting bound (cost ~ stages^3).
_LOCAL_SEARCH_STAGES = 64
#: Two-criteria searches (edp, Pareto front) prune in n log n, so they may keep this many times
#: ``max_labels`` partial placements.
_PLANE_FACTOR = 16
#: Dominance comparisons (in 3 or more criteria) after which the exact search gives up (~ seconds).
_MAX_WORK = 10 ** 7
#: Relative slack on search cut-offs so that rounding in sums never drops a candidate.
_SLACK = 1e-9


class PlacementError(UserError):
    """The placement problem is malformed or too large to solve exactly."""


class _Overflow(PlacementError):
    """The exact search needed more partial placements than ``max_labels``."""


# --------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Implementation:
    """Cost of one stage on one device, per event.

    ``agreement``: share (0..1) of outputs matching the reference device's; None when not checked
    (or when this is the reference). ``cpu_cores``: cores a CPU implementation keeps busy while it
    runs (1 for a single-threaded stage); it scales the CPU load in throughput mode only.
    """

    time_s: Measurement
    energy_j: Measurement | None = None
    agreement: float | None = None
    cpu_cores: float = 1.0


@dataclass(frozen=True)
class Stage:
    """A step of the chain and its implementations by device name."""

    name: str
    implementations: Mapping[str, Implementation]


@dataclass(frozen=True)
class Edge:
    """``producer`` hands ``product`` (``bytes_per_event`` bytes) to ``consumer``; either may be HOST."""

    producer: str
    consumer: str
    product: str
    bytes_per_event: float = 0.0


@dataclass(frozen=True)
class TransferCost:
    """Measured cost of moving ``product`` from device ``src`` to device ``dst``, per event."""

    src: str
    dst: str
    product: str
    time_s: Measurement
    energy_j: Measurement | None = None


@dataclass(frozen=True)
class TransferModel:
    """Fallback for a direction without a measured product: time = latency_s + bytes / bandwidth.

    The result is labelled estimated and modelled, with a band of +/- ``relative_uncertainty``
    (default 50 %: pageable and pinned host memory alone differ by ~5x in copy time).
    ``energy_j_per_byte`` None leaves modelled transfers without energy.
    """

    src: str
    dst: str
    latency_s: float
    bandwidth_bytes_per_s: float
    energy_j_per_byte: float | None = None
    relative_uncertainty: float = 0.5


@dataclass(frozen=True)
class Resources:
    """Resources shared by events in flight (throughput mode).

    ``cpu_cores``: CPU cores usable in parallel across events. Every other device is one in-order
    resource (its stage times add up) and each copy direction (src->dst) is one copy engine.
    """

    cpu_cores: float = 1.0
    #: Cores of other CPU-like devices (e.g. ``"cpu@2"``, the CPU of another node type in a mixed
    #: pool); a device not listed is one in-order resource.
    device_cores: Mapping[str, float] = field(default_factory=dict)

    def cores(self, device: str) -> float:
        return self.cpu_cores if device == HOST_DEVICE else self.device_cores.get(device, 1.0)


@dataclass(frozen=True)
class PlacementProblem:
    """A chain to place; ``stages`` are in topological order.

    ``max_states`` bounds the distinct placements of in-flight data products the exact search
    tracks after one stage; ``max_labels`` the partial placements it keeps after one stage in
    throughput mode (16 times more for edp and the Pareto front, which prune faster). Beyond
    ``max_states`` a PlacementError says so; beyond ``max_labels`` the optimiser returns the best
    placement it found, marked not exact, with a bound on how far from the optimum it can be.
    """

    stages: Sequence[Stage]
    edges: Sequence[Edge]
    transfers: Sequence[TransferCost] = ()
    transfer_models: Sequence[TransferModel] = ()
    resources: Resources = field(default_factory=Resources)
    min_agreement: float = 0.99
    reference_device: str = "cpu"
    max_states: int = 2 ** 16
    max_labels: int = 1024


# -------------------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Exclusion:
    """An implementation left out by the agreement gate."""

    stage: str
    device: str
    agreement: float
    min_agreement: float

    @property
    def reason(self) -> str:
        return (f"{self.device} implementation of '{self.stage}' agrees with the reference on "
                f"{self.agreement:.2%} of outputs, below the required {self.min_agreement:.2%}")

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "device": self.device, "agreement": self.agreement,
                "min_agreement": self.min_agreement, "reason": self.reason}


@dataclass(frozen=True)
class Transfer:
    """One copy of a product per event implied by a placement."""

    producer: str
    product: str
    src: str
    dst: str
    consumers: tuple[str, ...]
    bytes_per_event: float
    time_s: Measurement
    energy_j: Measurement | None
    modelled: bool

    @property
    def direction(self) -> str:
        return f"{self.src}->{self.dst}"

    def to_json(self) -> dict[str, Any]:
        return {"producer": self.producer, "product": self.product, "direction": self.direction,
                "consumers": list(self.consumers), "bytes_per_event": self.bytes_per_event,
                "time_s": _mjson(self.time_s), "energy_j": _mjson(self.energy_j),
                "modelled": self.modelled}


@dataclass(frozen=True)
class Figures:
    """Everything about one placement (``placement``: stage name -> device)."""

    placement: Mapping[str, str]
    latency: Measurement
    energy: Measurement | None
    edp: Measurement | None
    load: Measurement
    throughput: Measurement
    bottleneck: str
    loads: Mapping[str, Measurement]
    transfers: tuple[Transfer, ...]

    def objective(self, name: str) -> Measurement | None:
        """The value minimised by objective ``name`` (throughput: the busiest resource's load)."""
        return {"latency": self.latency, "energy": self.energy, "edp": self.edp,
                "throughput": self.load}[name]

    def to_json(self) -> dict[str, Any]:
        return {"placement": dict(self.placement), "latency_s": _mjson(self.latency),
                "energy_j": _mjson(self.energy), "edp_js": _mjson(self.edp),
                "load_s_per_event": _mjson(self.load), "throughput_events_per_s": _mjson(self.throughput),
                "bottleneck": self.bottleneck, "loads": {k: _mjson(v) for k, v in self.loads.items()},
                "transfers": [t.to_json() for t in self.transfers]}


@dataclass(frozen=True)
class Gain:
    """The optimum against running every stage on one device (``ratio`` = baseline / optimum)."""

    baseline: str
    figures: Figures | None
    ratio: Measurement | None
    distinguishable: bool | None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.figures is not None

    def to_json(self) -> dict[str, Any]:
        if not self.available:
            return {"baseline": self.baseline, "available": False, "reason": self.reason}
        return {"baseline": self.baseline, "available": True, "ratio": _mjson(self.ratio),
                "distinguishable": self.distinguishable, "placement": dict(self.figures.placement)}


@dataclass(frozen=True)
class PlacementResult:
    """The optimum of one objective, how sure we are of it, and what it gains."""

    objective: str
    best: Figures
    runner_up: Figures | None
    tied: tuple[Figures, ...]
    tied_truncated: bool
    gains: tuple[Gain, ...]
    excluded: tuple[Exclusion, ...]
    unchecked: tuple[str, ...]
    notes: tuple[str, ...]
    exact: bool = True

    @property
    def placement(self) -> Mapping[str, str]:
        return self.best.placement

    @property
    def value(self) -> Measurement:
        return self.best.objective(self.objective)

    @property
    def distinguishable(self) -> bool:
        """True when no other placement's interval overlaps the optimum's (as far as searched)."""
        return not self.tied and not self.tied_truncated

    @property
    def estimated(self) -> bool:
        return bool(self.value.estimated)

    @property
    def verdict(self) -> str:
        if self.runner_up is None:
            return "only one placement"
        if self.distinguishable:
            return "distinguishable"
        if not self.tied:
            return "distinguishability not established (the search for ties stopped)"
        if self.tied_truncated:
            return f"not distinguishable from at least {len(self.tied)} other placement(s); list truncated"
        return f"not distinguishable from {len(self.tied)} other placement(s)"

    def to_json(self) -> dict[str, Any]:
        runner = self.runner_up
        return {"objective": self.objective, "unit": OBJECTIVE_UNITS[self.objective], "exact": self.exact,
                "placement": dict(self.placement), "value": _mjson(self.value),
                "estimated": self.estimated, "figures": self.best.to_json(),
                "runner_up": None if runner is None else _brief(runner, self.objective),
                "distinguishable": self.distinguishable, "verdict": self.verdict,
                "tied": [_brief(f, self.objective) for f in self.tied], "tied_truncated": self.tied_truncated,
                "gains": {g.baseline: g.to_json() for g in self.gains},
                "excluded": [e.to_json() for e in self.excluded], "unchecked": list(self.unchecked),
                "notes": list(self.notes)}


@dataclass(frozen=True)
class PlacementPlan:
    """All objectives at once; an objective that cannot be answered says why."""

    results: Mapping[str, PlacementResult]
    unavailable: Mapping[str, str]
    pareto: tuple[Figures, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"results": {k: v.to_json() for k, v in self.results.items()},
                "unavailable": dict(self.unavailable),
                "pareto": None if self.pareto is None else [
                    {"placement": dict(f.placement), "latency_s": _mjson(f.latency), "energy_j": _mjson(f.energy),
                     "edp_js": _mjson(f.edp)} for f in self.pareto]}


# --------------------------------------------------------------------------- compiled problem


@dataclass(frozen=True)
class _Link:
    time_s: Measurement
    energy_j: Measurement | None
    modelled: bool


@dataclass(frozen=True)
class _Group:
    """One product of one producer (-1: the host) and everything that consumes it."""

    producer: int
    product: str
    consumers: tuple[int, ...]
    to_host: bool
    bytes_per_event: float


@dataclass(frozen=True)
class _Step:
    """Stage ``stage``: groups it makes and takes, and the open groups before and after it."""

    stage: int
    produces: tuple[int, ...]
    consumes: tuple[int, ...]
    open_before: tuple[int, ...]
    open_after: tuple[int, ...]


@dataclass(frozen=True)
class _Model:
    problem: PlacementProblem
    names: tuple[str, ...]
    impls: tuple[Mapping[str, Implementation], ...]
    excluded: tuple[Exclusion, ...]
    unchecked: tuple[str, ...]
    groups: tuple[_Group, ...]
    links: Mapping[tuple[str, str, str], _Link]
    resources: tuple[str, ...]
    steps: tuple[_Step, ...]

    def options(self, stage: int) -> tuple[str, ...]:
        return tuple(sorted(self.impls[stage]))

    @functools.cached_property
    def graph(self) -> "_Graph":
        return _graph(self)


def _compile(problem: PlacementProblem) -> _Model:
    names = _check_stages(problem)
    impls, excluded, unchecked = _screen(problem)
    groups = _groups(problem, {name: i for i, name in enumerate(names)})
    links = _links(problem, groups, impls)
    devices = sorted({d for options in impls for d in options} - {HOST_DEVICE})
    copies = sorted({f"copy:{src}->{dst}" for src, dst, _ in links})
    return _Model(problem, names, impls, excluded, unchecked, groups, links,
                  (HOST_DEVICE, *devices, *copies), _steps(len(names), groups))


def _check_stages(problem: PlacementProblem) -> tuple[str, ...]:
    names = tuple(stage.name for stage in problem.stages)
    if not names:
        raise PlacementError("the chain has no stages to place")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates or HOST in names:
        raise PlacementError(f"stage names must be unique and not '{HOST}': {duplicates or [HOST]}")
    if not 0 <= problem.min_agreement <= 1:
        raise PlacementError(f"min_agreement must lie in [0, 1], not {problem.min_agreement}")
    if problem.resources.cpu_cores <= 0:
        raise PlacementError("resources.cpu_cores must be positive")
    return names


def _screen(problem: PlacementProblem) -> tuple[tuple, tuple[Exclusion, ...], tuple[str, ...]]:
    """Normalised implementations that pass the agreement gate, the excluded, the unchecked."""
    kept, excluded, unchecked = [], [], []
    for stage in problem.stages:
        allowed, out, blind = _screen_stage(problem, stage)
        kept.append(allowed)
        excluded += out
        unchecked += blind
    return tuple(kept), tuple(excluded), tuple(unchecked)


def _screen_stage(problem: PlacementProblem, stage: Stage) -> tuple[dict, list[Exclusion], list[str]]:
    if not stage.implementations:
        raise PlacementError(f"stage '{stage.name}' has no implementation")
    allowed, excluded = {}, []
    for device, impl in sorted(stage.implementations.items()):
        impl = _normalised(stage.name, device, impl)
        if impl.agreement is not None and impl.agreement < problem.min_agreement:
            excluded.append(Exclusion(stage.name, device, impl.agreement, problem.min_agreement))
        else:
            allowed[device] = impl
    if not allowed:
        reasons = "; ".join(e.reason for e in excluded)
        raise PlacementError(f"every implementation of '{stage.name}' is excluded: {reasons}")
    unchecked = [f"{device} implementation of '{stage.name}'" for device, impl in allowed.items()
                 if impl.agreement is None and device != problem.reference_device]
    return allowed, excluded, unchecked


def _normalised(stage: str, device: str, impl: Implementation) -> Implementation:
    what = f"{device} implementation of '{stage}'"
    if impl.agreement is not None and not 0 <= impl.agreement <= 1:
        raise PlacementError(f"agreement of the {what} must lie in [0, 1], not {impl.agreement}")
    if impl.cpu_cores <= 0:
        raise PlacementError(f"cpu_cores of the {what} must be positive")
    time_s = _in_unit(impl.time_s, _TIME_UNITS, "s", f"time of the {what}")
    if time_s.value <= 0:
        raise PlacementError(f"time of the {what} must be positive, not {time_s.value}")
    energy = impl.energy_j and _in_unit(impl.energy_j, _ENERGY_UNITS, "J", f"energy of the {what}")
    return replace(impl, time_s=time_s, energy_j=energy)


def _in_unit(m: Measurement, factors: Mapping[str, float], unit: str, what: str) -> Measurement:
    if m.unit not in factors:
        raise PlacementError(f"{what} is in '{m.unit}'; expected one of {', '.join(factors)}")
    if m.value < 0:
        raise PlacementError(f"{what} is negative ({m.value} {m.unit})")
    return m if m.unit == unit else m.scaled(factors[m.unit], unit)


def _groups(problem: PlacementProblem, index: Mapping[str, int]) -> tuple[_Group, ...]:
    """Edges grouped by (producer, product), checked against the stage order."""
    found: dict[tuple[int, str], list[Edge]] = {}
    for edge in problem.edges:
        producer = _endpoint(edge.producer, index, edge)
        consumer = _endpoint(edge.consumer, index, edge)
        if producer >= 0 and consumer >= 0 and producer >= consumer:
            raise PlacementError(f"stages are not in topological order: '{edge.consumer}' takes "
                                 f"'{edge.product}' from '{edge.producer}', which does not come before it")
        if producer < 0 and consumer < 0:
            raise PlacementError(f"edge '{edge.product}' goes from the host to the host")
        found.setdefault((producer, edge.product), []).append(edge)
    return tuple(_group(producer, product, edges, index)
                 for (producer, product), edges in sorted(found.items()))


def _endpoint(name: str, index: Mapping[str, int], edge: Edge) -> int:
    if name == HOST:
        return -1
    if name not in index:
        raise PlacementError(f"edge '{edge.product}' names unknown stage '{name}'")
    return index[name]


def _group(producer: int, product: str, edges: list[Edge], index: Mapping[str, int]) -> _Group:
    sizes = {edge.bytes_per_event for edge in edges}
    if len(sizes) > 1 or min(sizes) < 0:
        raise PlacementError(f"edges of '{product}' disagree on its size or it is negative: {sorted(sizes)}")
    consumers = [edge.consumer for edge in edges]
    if len(set(consumers)) < len(consumers):
        raise PlacementError(f"edge '{product}' is declared twice for the same consumer")
    stages = tuple(sorted(index[c] for c in consumers if c != HOST))
    return _Group(producer, product, stages, HOST in consumers, sizes.pop())


def _links(problem: PlacementProblem, groups: Sequence[_Group], impls: Sequence[Mapping]) -> dict:
    """The transfer cost of every (src, dst, product) that some placement can need."""
    measured = {(t.src, t.dst, t.product): t for t in problem.transfers}
    models = {(m.src, m.dst): m for m in problem.transfer_models}
    links = {}
    for group in groups:
        sources = set(impls[group.producer]) if group.producer >= 0 else {HOST_DEVICE}
        targets = {d for c in group.consumers for d in impls[c]} | ({HOST_DEVICE} if group.to_host else set())
        for src, dst in itertools.product(sorted(sources), sorted(targets)):
            if src != dst:
                links[src, dst, group.product] = _link(group, src, dst, measured, models)
    return links


def _link(group: _Group, src: str, dst: str, measured: Mapping, models: Mapping) -> _Link:
    what = f"transfer of '{group.product}' {src}->{dst}"
    if (src, dst, group.product) in measured:
        cost = measured[src, dst, group.product]
        energy = cost.energy_j and _in_unit(cost.energy_j, _ENERGY_UNITS, "J", f"energy of the {what}")
        return _Link(_in_unit(cost.time_s, _TIME_UNITS, "s", f"time of the {what}"), energy, False)
    if (src, dst) not in models:
        raise PlacementError(f"no measured or modelled {what}: measure it or give a TransferModel "
                             f"for {src}->{dst}")
    model = models[src, dst]
    if model.bandwidth_bytes_per_s <= 0 or model.latency_s < 0 or not 0 <= model.relative_uncertainty < 1:
        raise PlacementError(f"the transfer model {src}->{dst} needs latency >= 0, bandwidth > 0 "
                             "and a relative uncertainty in [0, 1)")
    time_s = model.latency_s + group.bytes_per_event / model.bandwidth_bytes_per_s
    energy = None if model.energy_j_per_byte is None else model.energy_j_per_byte * group.bytes_per_event
    return _Link(_modelled(time_s, "s", model.relative_uncertainty),
                 None if energy is None else _modelled(energy, "J", model.relative_uncertainty), True)


def _modelled(value: float, unit: str, band: float) -> Measurement:
    return Measurement(value, unit, "derived", low=value * (1 - band), high=value * (1 + band),
                       interval=f"model +/-{band:.0%}", estimated=True,
                       note="modelled: latency + bytes / bandwidth, not measured")


def _steps(count: int, groups: Sequence[_Group]) -> tuple[_Step, ...]:
    """Per stage: groups it produces and consumes; a group is open from its producer to its last consumer."""
    produces = [tuple(g for g, group in enumerate(groups) if group.producer == i) for i in range(count)]
    consumes = [tuple(g for g, group in enumerate(groups) if i in group.consumers) for i in range(count)]
    open_groups = _still_open(groups, tuple(g for g, group in enumerate(groups) if group.producer < 0), -1)
    steps = []
    for i in range(count):
        after = _still_open(groups, open_groups + produces[i], i)
        steps.append(_Step(i, produces[i], consumes[i], open_groups, after))
        open_groups = after
    return tuple(steps)


def _still_open(groups: Sequence[_Group], candidates: tuple[int, ...], stage: int) -> tuple[int, ...]:
    """The groups among ``candidates`` that a stage after ``stage`` still consumes."""
    return tuple(g for g in candidates if groups[g].consumers and groups[g].consumers[-1] > stage)


# ------------------------------------------------------------------------ costs of placements

#: A cost term: (resource it loads, time, energy, load factor).
_Term = tuple[str, Measurement, "Measurement | None", float]


def _stage_term(model: _Model, stage: int, device: str) -> _Term:
    impl = model.impls[stage][device]
    resources = model.problem.resources
    factor = impl.cpu_cores / resources.cores(device) if device == HOST_DEVICE or device in resources.device_cores else 1.0
    return device, impl.time_s, impl.energy_j, factor


def _transfer_term(model: _Model, group: _Group, src: str, dst: str) -> _Term:
    link = model.links[src, dst, group.product]
    return f"copy:{src}->{dst}", link.time_s, link.energy_j, 1.0


def _transfers(model: _Model, devices: Sequence[str]) -> list[Transfer]:
    """Copies a placement implies: each product to each device that needs it, once (set-based)."""
    found = []
    for group in model.groups:
        src = devices[group.producer] if group.producer >= 0 else HOST_DEVICE
        served: dict[str, list[str]] = {}
        for consumer in group.consumers:
            served.setdefault(devices[consumer], []).append(model.names[consumer])
        if group.to_host:
            served.setdefault(HOST_DEVICE, []).append(HOST)
        for dst in sorted(set(served) - {src}):
            link = model.links[src, dst, group.product]
            producer = model.names[group.producer] if group.producer >= 0 else HOST
            found.append(Transfer(producer, group.product, src, dst, tuple(served[dst]),
                                  group.bytes_per_event, link.time_s, link.energy_j, link.modelled))
    return found


def _figures(model: _Model, devices: Sequence[str]) -> Figures:
    transfers = _transfers(model, devices)
    terms = [_stage_term(model, i, d) for i, d in enumerate(devices)]
    terms += [(f"copy:{t.direction}", t.time_s, t.energy_j, 1.0) for t in transfers]
    latency = _total([time for _, time, _, _ in terms], "s")
    energy = _total([energy for _, _, energy, _ in terms], "J")
    by_resource: dict[str, list[Measurement]] = {}
    for resource, time, _, factor in terms:
        by_resource.setdefault(resource, []).append(time.scaled(factor))
    loads = {r: _total(ms, "s/event") for r, ms in sorted(by_resource.items())}
    bottleneck = max(loads, key=lambda r: (loads[r].value, r))
    load = _maximum(list(loads.values()), "s/event")
    edp = None if energy is None else _product(latency, energy, "J*s")
    return Figures(dict(zip(model.names, devices)), latency, energy, edp, load,
                   _inverse(load, "events/s"), bottleneck, loads, tuple(transfers))


def _ends(m: Measurement) -> tuple[float, float]:
    """Conservative, non-negative interval ends that contain the value."""
    low, high = m.bounds
    return max(0.0, min(low, m.value)), max(high, m.value)


def _derived(value: float, low: float, high: float, unit: str, inputs: Sequence[Measurement]) -> Measurement:
    return Measurement(value, unit, "derived", samples=min((m.samples for m in inputs), default=1),
                       low=low, high=high, interval=PROPAGATED,
                       estimated=any(m.estimated for m in inputs))


def _total(ms: Sequence[Measurement | None], unit: str) -> Measurement | None:
    """Sum with summed interval ends; None (missing) when any input is missing."""
    if any(m is None for m in ms):
        return None
    ends = [_ends(m) for m in ms]
    return _derived(math.fsum(m.value for m in ms), math.fsum(lo for lo, _ in ends),
                    math.fsum(hi for _, hi in ends), unit, ms)


def _maximum(ms: Sequence[Measurement], unit: str) -> Measurement:
    ends = [_ends(m) for m in ms]
    return _derived(max(m.value for m in ms), max(lo for lo, _ in ends), max(hi for _, hi in ends), unit, ms)


def _product(a: Measurement, b: Measurement, unit: str) -> Measurement:
    (a_low, a_high), (b_low, b_high) = _ends(a), _ends(b)
    return _derived(a.value * b.value, a_low * b_low, a_high * b_high, unit, [a, b])


def _inverse(m: Measurement, unit: str) -> Measurement:
    low, high = _ends(m)
    return _derived(1 / m.value, 1 / high, math.inf if low == 0 else 1 / low, unit, [m])


def _ratio(a: Measurement, b: Measurement) -> Measurement:
    """a / b with conservative ends."""
    (a_low, a_high), (b_low, b_high) = _ends(a), _ends(b)
    return _derived(a.value / b.value, a_low / b_high, math.inf if b_low == 0 else a_high / b_low, "", [a, b])


# ----------------------------------------------------------------------------- exact search

#: Layout of a step's cost vector: latency, energy, then one load per resource; each as
#: (value, low, high). Missing energy is NaN, so it can never be mistaken for zero.
_VALUE, _LOW, _HIGH = 0, 1, 2


def _vector(model: _Model, terms: Iterable[_Term]) -> tuple[float, ...]:
    out = [0.0] * (3 * (2 + len(model.resources)))
    slot = {r: 3 * (2 + k) for k, r in enumerate(model.resources)}
    for resource, time, energy, factor in terms:
        for base, m, scale in ((0, time, 1.0), (3, energy, 1.0), (slot[resource], time, factor)):
            low, high = _ends(m) if m is not None else (math.nan, math.nan)
            value = m.value if m is not None else math.nan
            out[base] += value * scale
            out[base + 1] += low * scale
            out[base + 2] += high * scale
    return tuple(out)


def _step_terms(model: _Model, step: _Step, device: str, reached: Mapping[int, tuple]) -> list[_Term]:
    """Costs of putting ``step``'s stage on ``device``, given where its inputs already are."""
    terms = [_stage_term(model, step.stage, device)]
    for g in step.produces:
        if model.groups[g].to_host and device != HOST_DEVICE:
            terms.append(_transfer_term(model, model.groups[g], device, HOST_DEVICE))
    for g in step.consumes:
        src, where = reached[g]
        if device not in where:
            terms.append(_transfer_term(model, model.groups[g], src, device))
    return terms


def _advance(model: _Model, step: _Step, device: str, state: tuple) -> tuple[tuple, tuple]:
    """(projected later) cost vector and the next state after placing ``step`` on ``device``."""
    reached = dict(zip(step.open_before, state))
    vector = _vector(model, _step_terms(model, step, device, reached))
    for g in step.produces:
        reached[g] = (device, frozenset({device, HOST_DEVICE} if model.groups[g].to_host else {device}))
    for g in step.consumes:
        src, where = reached[g]
        reached[g] = (src, where | {device})
    return vector, tuple(reached[g] for g in step.open_after)


@dataclass(frozen=True)
class _Graph:
    """Reachable states before each step and their moves: (device, step cost vector, next state)."""

    start: tuple
    moves: tuple[dict[tuple, list[tuple[str, tuple, tuple]]], ...]


def _graph(model: _Model) -> _Graph:
    start = tuple((HOST_DEVICE, frozenset({HOST_DEVICE})) for _ in model.steps[0].open_before)
    states, moves = {start}, []
    for step in model.steps:
        table = {state: [(device, *_advance(model, step, device, state)) for device in model.options(step.stage)]
                 for state in states}
        states = {after for options in table.values() for _, _, after in options}
        _check_width(model, step, len(states))
        moves.append(table)
    return _Graph(start, tuple(moves))


def _to_go(graph: _Graph, weights: Mapping[int, float]) -> list[dict[tuple, float]]:
    """Least remaining weighted cost from each state before each step (the last entry: after all)."""
    later: dict[tuple, float] = {(): 0.0}
    tables = [later]
    for table in reversed(graph.moves):
        later = {state: min(_dot(weights, vector) + later[after] for _, vector, after in options)
                 for state, options in table.items()}
        tables.append(later)
    return tables[::-1]


def _dot(weights: Mapping[int, float], vector: Sequence[float]) -> float:
    return sum(w * vector[i] for i, w in weights.items())


def _cheapest(graph: _Graph, weights: Mapping[int, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The placement minimising a weighted sum of cost components, and its cost vector."""
    tables = _to_go(graph, weights)
    state, devices, total = graph.start, [], None
    for table, later in zip(graph.moves, tables[1:]):
        device, vector, state = min(table[state], key=lambda move, later=later: _dot(weights, move[1]) + later[move[2]])
        devices.append(device)
        total = vector if total is None else tuple(a + b for a, b in zip(total, vector))
    return tuple(devices), total


@dataclass(frozen=True)
class _Criterion:
    """What a search minimises: vector components it keeps and a non-decreasing score of them."""

    index: tuple[int, ...]
    score: Callable[[tuple[float, ...]], float]


def _criterion(model: _Model, objective: str, end: int) -> _Criterion:
    """``end``: _VALUE, _LOW or _HIGH component of each quantity."""
    if objective == "throughput":
        return _Criterion(tuple(3 * (2 + k) + end for k in range(len(model.resources))), max)
    if objective == "edp":
        return _Criterion((end, 3 + end), lambda v: v[0] * v[1])
    return _Criterion(((0 if objective == "latency" else 3) + end,), lambda v: v[0])


class _Bound:
    """Lower bound on the final score of a partial placement.

    Each component plus its least remaining cost bounds any non-decreasing score; for a maximum,
    every weighted mean of the components (weights summing to 1) plus its least remaining value
    also does, and the weights of ``_dual_weights`` make that bound tight.
    """

    def __init__(self, model: _Model, criterion: _Criterion) -> None:
        graph = model.graph
        self.score = criterion.score
        self.rest = [_to_go(graph, {i: 1.0}) for i in criterion.index]
        self.means: list[tuple[tuple[float, ...], list[dict[tuple, float]]]] = []
        if criterion.score is max:
            for weights in _dual_weights(graph, criterion):
                self.means.append((tuple(weights.values()), _to_go(graph, weights)))

    def __call__(self, step: int, state: tuple, total: tuple[float, ...]) -> float:
        bound = self.score(tuple(v + rest[step][state] for v, rest in zip(total, self.rest)))
        for weights, rest in self.means:
            bound = max(bound, sum(w * v for w, v in zip(weights, total)) + rest[step][state])
        return bound


def _dual_weights(graph: _Graph, criterion: _Criterion, rounds: int = 40) -> list[dict[int, float]]:
    """The three weightings w (sum 1) with the largest min_x w.L(x) found: each is a lower bound
    of min_x max(L(x)). Multiplicative-weights ascent on that Lagrangian dual."""
    found = sorted(_dual_ascent(graph, criterion, rounds), key=lambda item: -item[0])
    return [weights for _, weights, _ in found[:3]]


def _dual_ascent(graph: _Graph, criterion: _Criterion, rounds: int) -> list[tuple[float, dict, tuple]]:
    """(dual value, weights, weighted optimum) per round; weight grows where the optimum loads most."""
    weights = dict.fromkeys(criterion.index, 1.0 / len(criterion.index))
    found = []
    for r in range(rounds):
        devices, vector = _cheapest(graph, weights)
        found.append((_dot(weights, vector), weights, devices))
        loads = [vector[i] for i in criterion.index]
        top = max(loads) or 1.0
        raw = {i: w * math.exp(load / top / math.sqrt(r + 1)) for (i, w), load in zip(weights.items(), loads)}
        weights = {i: w / sum(raw.values()) for i, w in raw.items()}
    return found


def _prune(labels: list, k: int, strict: bool) -> list:
    """Keep labels that fewer than ``k`` kept labels dominate (weakly, or strictly if ``strict``).

    Sorted lexicographically, every label that dominates another comes before it, and a label that
    was dropped is dominated by k kept ones that then dominate whatever it dominates.
    """
    labels.sort(key=lambda label: label[0])
    if labels and len(labels[0][0]) == 2:
        return _prune_plane(labels, k, strict)
    kept: list = []
    for vector, path in labels:
        beaten = 0
        for other, _ in kept:
            if all(map(operator.le, other, vector)) and not (strict and other == vector):
                beaten += 1
                if beaten >= k:
                    break
        if beaten < k:
            kept.append((vector, path))
    return kept


def _prune_plane(labels: list, k: int, strict: bool) -> list:
    """Two criteria, sorted: an earlier label dominates a later one iff its second value is not larger."""
    if strict:
        return _pareto_plane(labels)
    kept: list = []
    smallest: list[float] = []  # the k smallest second values kept so far
    for vector, path in labels:
        if bisect.bisect_right(smallest, vector[1]) < k:
            kept.append((vector, path))
            bisect.insort(smallest, vector[1])
            del smallest[k:]
    return kept


def _pareto_plane(labels: list) -> list:
    """Labels no kept label strictly dominates (equal vectors are all kept)."""
    kept: list = []
    lowest = (math.inf, math.inf)  # (second, first) of the first kept label with the smallest second
    for (first, second), path in labels:
        if second < lowest[0] or (second, first) == lowest:
            kept.append(((first, second), path))
            lowest = min(lowest, (second, first))
    return kept


def _search(model: _Model, criterion: _Criterion, k: int, cutoff: float = math.inf,
            strict: bool = False) -> list[tuple[str, ...]]:
    """Placements containing a k-best set under ``criterion`` (or its Pareto set with k=1, strict).

    Partial placements whose lower bound on the final score exceeds ``cutoff`` are dropped.
    """
    graph = model.graph
    keep = _Keep(_Bound(model, criterion) if cutoff < math.inf else None, cutoff)
    frontier: dict[tuple, list] = {graph.start: [((0.0,) * len(criterion.index), None)]}
    plane = len(criterion.index) <= 2
    work = 0
    for s, table in enumerate(graph.moves):
        following = _extend(frontier, table, criterion.index, keep.at(s + 1))
        frontier = {state: _prune(labels, k, strict) for state, labels in following.items() if labels}
        kept = sum(map(len, frontier.values()))
        work += 0 if plane else kept * sum(map(len, following.values()))
        _check_labels(model, s, kept // _PLANE_FACTOR if plane else kept, work)
    return [_unwind(path, len(model.steps)) for labels in frontier.values() for _, path in labels]


@dataclass(frozen=True)
class _Keep:
    """Whether a partial placement can still end at or below the cut-off."""

    bound: _Bound | None
    cutoff: float

    def at(self, step: int) -> Callable[[tuple, tuple], bool]:
        if self.bound is None:
            return lambda state, total: True
        return lambda state, total: self.bound(step, state, total) <= self.cutoff


def _extend(frontier: Mapping[tuple, list], table: Mapping[tuple, list], index: tuple[int, ...],
            keep: Callable[[tuple, tuple], bool]) -> dict[tuple, list]:
    """Every label of every state, extended by every move of the next stage, grouped by new state."""
    following: dict[tuple, list] = {}
    for state, labels in frontier.items():
        for device, vector, after in table[state]:
            step_cost = tuple(vector[i] for i in index)
            bucket = following.setdefault(after, [])
            for partial, path in labels:
                total = tuple(map(operator.add, partial, step_cost))
                if keep(after, total):
                    bucket.append((total, (device, path)))
    return following


def _check_width(model: _Model, step: _Step, states: int) -> None:
    if states > model.problem.max_states:
        raise PlacementError(
            f"exact placement would track {states} states after stage '{model.names[step.stage]}' "
            f"(limit max_states={model.problem.max_states}): too many data products cross it")


def _check_labels(model: _Model, step: int, labels: int, work: int) -> None:
    if labels > model.problem.max_labels or work > _MAX_WORK:
        raise _Overflow(
            f"the exact search kept {labels} partial placements after stage '{model.names[step]}' "
            f"(limit max_labels={model.problem.max_labels}) or compared too many of them")


def _unwind(path: tuple | None, count: int) -> tuple[str, ...]:
    devices = []
    while path is not None:
        device, path = path
        devices.append(device)
    assert len(devices) == count
    return tuple(reversed(devices))


# ------------------------------------------------------------------------------ public API


def evaluate(problem: PlacementProblem, placement: Mapping[str, str]) -> Figures:
    """Figures of a given placement (stage name -> device); every stage must be placed."""
    model = _compile(problem)
    return _figures(model, _devices(model, placement))


def _devices(model: _Model, placement: Mapping[str, str]) -> tuple[str, ...]:
    unknown = sorted(set(placement) - set(model.names))
    if unknown:
        raise PlacementError(f"placement names unknown stage(s): {unknown}")
    devices = []
    for i, name in enumerate(model.names):
        device = placement.get(name)
        if device not in model.impls[i]:
            raise PlacementError(f"stage '{name}' cannot run on {device!r} here "
                                 f"(available: {', '.join(model.options(i))})")
        devices.append(device)
    return tuple(devices)


def brute_force(problem: PlacementProblem, objective: str, *, limit: int = 2 ** 16) -> list[Figures]:
    """Every placement, best first by ``objective`` (the exhaustive reference; up to ``limit``)."""
    model = _compile(problem)
    _check_objective(model, objective)
    count = math.prod(len(options) for options in model.impls)
    if count > limit:
        raise PlacementError(f"{count} placements exceed the brute-force limit of {limit}")
    every = [_figures(model, devices)
             for devices in itertools.product(*(model.options(i) for i in range(len(model.names))))]
    return sorted(every, key=lambda f: f.objective(objective).value)


def pareto_front(problem: PlacementProblem) -> list[Figures]:
    """Placements that no other beats in both latency and energy, by increasing latency."""
    model = _compile(problem)
    missing = _missing_energy(model)
    if missing:
        raise PlacementError(_energy_message("pareto", missing))
    found = [_figures(model, d) for d in _search(model, _criterion(model, "edp", _VALUE), 1, strict=True)]
    return _non_dominated(found)


def _non_dominated(figures: Sequence[Figures]) -> list[Figures]:
    points = [(f.latency.value, f.energy.value) for f in figures]
    front = [f for f, p in zip(figures, points)
             if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)]
    return sorted(front, key=lambda f: (f.latency.value, f.energy.value))


def optimise(problem: PlacementProblem, objective: str = "latency", *, tie_limit: int = 10) -> PlacementResult:
    """The placement minimising ``objective``, its runner-up, ties and gains over one-device runs.

    Should the exact search need more than ``max_labels`` partial placements (edp or throughput
    with very many near-equal placements), the best placement found is returned with
    ``exact=False`` and a note bounding how far above the optimum it can be.
    """
    model = _compile(problem)
    _check_objective(model, objective)
    notes = []
    try:
        ranked, exact = _k_best(model, objective, 2), True
    except _Overflow as overflow:
        ranked, exact = _best_found(model, objective, 2), False
        notes.append(_gap_note(model, objective, ranked[0], overflow))
    try:
        tied, truncated = _quick_ties(model, objective, ranked, tie_limit) or _ties(
            model, objective, ranked[0], tie_limit)
    except _Overflow as overflow:
        tied, truncated = _overlapping(ranked[0], ranked[1:], objective), True
        notes.append(f"the search for tied placements stopped ({overflow}); more placements may be tied")
    best = ranked[0]
    return PlacementResult(objective, best, ranked[1] if len(ranked) > 1 else None, tied, truncated,
                           _gains(model, objective, best), model.excluded, model.unchecked,
                           tuple(notes) + _notes(model, objective, best), exact)


def _best_found(model: _Model, objective: str, k: int) -> list[Figures]:
    scores = _candidates(model, _criterion(model, objective, _VALUE))
    return [_figures(model, devices) for devices in sorted(scores, key=scores.get)[:k]]


def _gap_note(model: _Model, objective: str, best: Figures, overflow: _Overflow) -> str:
    criterion = _criterion(model, objective, _VALUE)
    bound = _Bound(model, criterion)(0, model.graph.start, (0.0,) * len(criterion.index))
    value = best.objective(objective).value
    gap = f"{value / bound - 1:.1%}" if bound > 0 else "an unknown share"
    return (f"not proven optimal: {overflow}; this is the best placement found, at most {gap} above "
            f"the optimum's lower bound {bound:.4g} {OBJECTIVE_UNITS[objective]}")


def plan(problem: PlacementProblem, objectives: Sequence[str] = OBJECTIVES, *, tie_limit: int = 10) -> PlacementPlan:
    """Every objective and the Pareto front; those that need missing energy data say so."""
    missing = _missing_energy(_compile(problem))
    unavailable = {o: _energy_message(o, missing) for o in objectives if o in _ENERGY_OBJECTIVES and missing}
    results = {o: optimise(problem, o, tie_limit=tie_limit) for o in objectives if o not in unavailable}
    pareto = None
    try:
        pareto = tuple(pareto_front(problem))
    except PlacementError as error:
        unavailable["pareto"] = str(error)
    return PlacementPlan(results, unavailable, pareto)


def _check_objective(model: _Model, objective: str) -> None:
    if objective not in OBJECTIVES:
        raise PlacementError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    missing = _missing_energy(model) if objective in _ENERGY_OBJECTIVES else []
    if missing:
        raise PlacementError(_energy_message(objective, missing))


def _energy_message(objective: str, missing: Sequence[str]) -> str:
    what = "the Pareto front" if objective == "pareto" else f"the {objective} objective"
    return (f"{what} needs energy per event, which is missing for {'; '.join(missing)}: "
            "measure it (or exclude that implementation); it is never taken as zero")


def _missing_energy(model: _Model) -> list[str]:
    missing = [f"{device} implementation of '{model.names[i]}'"
               for i, impls in enumerate(model.impls) for device, impl in sorted(impls.items())
               if impl.energy_j is None]
    missing += [f"transfer of '{product}' {src}->{dst}"
                for (src, dst, product), link in sorted(model.links.items()) if link.energy_j is None]
    return missing


def _k_best(model: _Model, objective: str, k: int) -> list[Figures]:
    cutoff = _upper_bound(model, objective, k) if objective in ("edp", "throughput") else math.inf
    found = {d: _figures(model, d) for d in _search(model, _criterion(model, objective, _VALUE), k, cutoff)}
    return sorted(found.values(), key=lambda f: f.objective(objective).value)[:k]


def _upper_bound(model: _Model, objective: str, k: int) -> float:
    """The k-th best score among cheap candidates (infinite if there are fewer than k)."""
    criterion = _criterion(model, objective, _VALUE)
    values = sorted(_candidates(model, criterion).values())
    return values[k - 1] * (1 + _SLACK) if len(values) >= k else math.inf


def _candidates(model: _Model, criterion: _Criterion) -> dict[tuple[str, ...], float]:
    """Scores of cheap good placements: one-device ones, optima of weighted sums of the criterion's
    components (re-weighted towards the score's gradient), the best improved by single-stage moves."""
    graph = model.graph
    score = functools.partial(_score, criterion)
    found = dict(_walk(graph, devices) for devices in _uniform(model))
    weightings = [{i: 1.0} for i in criterion.index] + [dict.fromkeys(criterion.index, 1.0)]
    found.update(_cheapest(graph, weights) for weights in weightings)
    if len(criterion.index) > 1:
        _reweighted(graph, criterion, found)
    if len(model.names) <= _LOCAL_SEARCH_STAGES:
        found.update(_improved(model, devices, score) for devices in sorted(found, key=lambda d: score(found[d]))[:3])
    return {devices: score(vector) for devices, vector in found.items()}


def _reweighted(graph: _Graph, criterion: _Criterion, found: dict[tuple, tuple]) -> None:
    """Add optima of weightings that follow the score: dual ascent for a maximum, gradient steps."""
    score = functools.partial(_score, criterion)
    if criterion.score is max:
        found.update(_walk(graph, devices) for _, _, devices in _dual_ascent(graph, criterion, 40))
    for _ in range(3):
        best = tuple(min(found.values(), key=score)[i] for i in criterion.index)
        found.update([_cheapest(graph, dict(zip(criterion.index, _gradient(criterion, best))))])


def _score(criterion: _Criterion, vector: Sequence[float]) -> float:
    """The criterion's score of a full cost vector."""
    return criterion.score(tuple(vector[i] for i in criterion.index))


def _improved(model: _Model, devices: tuple[str, ...], score: Callable) -> tuple[tuple[str, ...], tuple]:
    """Local search: move one stage to another device while that lowers the score."""
    best = _walk(model.graph, devices)
    better = True
    while better:
        trials = [_walk(model.graph, d) for d in _neighbours(model, best[0])]
        trial = min(trials, key=lambda t: score(t[1]), default=best)
        better = score(trial[1]) < score(best[1])
        best = trial if better else best
    return best


def _gradient(criterion: _Criterion, point: tuple[float, ...]) -> tuple[float, ...]:
    """Weights pointing where the score grows: (E, T) for T*E, a soft arg-max for a maximum."""
    if criterion.score is max:
        top = max(point) or 1.0
        return tuple((v / top) ** 4 for v in point)
    return point[1], point[0]


def _walk(graph: _Graph, devices: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    state, total = graph.start, None
    for table, device in zip(graph.moves, devices):
        _, vector, state = next(move for move in table[state] if move[0] == device)
        total = vector if total is None else tuple(a + b for a, b in zip(total, vector))
    return devices, total


def _uniform(model: _Model) -> list[tuple[str, ...]]:
    devices = sorted({d for impls in model.impls for d in impls})
    return [(d,) * len(model.names) for d in devices if all(d in impls for impls in model.impls)]


def _ties(model: _Model, objective: str, best: Figures, limit: int) -> tuple[tuple[Figures, ...], bool]:
    """Other placements whose interval overlaps the best's: those with low end <= best's high end."""
    cutoff = best.objective(objective).bounds[1] * (1 + _SLACK)
    found = _search(model, _criterion(model, objective, _LOW), limit + 2, cutoff)
    best_devices = tuple(best.placement[name] for name in model.names)
    tied = _overlapping(best, [_figures(model, d) for d in found if d != best_devices], objective)
    return tied[:limit], len(tied) > limit


def _quick_ties(model: _Model, objective: str, ranked: Sequence[Figures], limit: int) -> tuple | None:
    """More than ``limit`` ties among the runner-up and the best's one-stage neighbours, if so."""
    best = ranked[0]
    devices = tuple(best.placement[name] for name in model.names)
    criterion = _criterion(model, objective, _LOW)
    cutoff = best.objective(objective).bounds[1]
    near = [d for d in _neighbours(model, devices) if _score(criterion, _walk(model.graph, d)[1]) <= cutoff]
    tied = _overlapping(best, list(ranked[1:]) + [_figures(model, d) for d in near[:limit + 1]], objective)
    tied = tuple({tuple(f.placement.values()): f for f in tied}.values())
    return (tied[:limit], True) if len(tied) > limit else None


def _neighbours(model: _Model, devices: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Placements that move exactly one stage of ``devices`` to another device."""
    return [devices[:i] + (other,) + devices[i + 1:] for i in range(len(devices))
            for other in model.options(i) if other != devices[i]]


def _overlapping(best: Figures, others: Iterable[Figures], objective: str) -> tuple[Figures, ...]:
    ours = best.objective(objective)
    tied = [f for f in others if not f.objective(objective).distinguishable_from(ours)]
    return tuple(sorted(tied, key=lambda f: (f.objective(objective).value, tuple(f.placement.values()))))


def _gains(model: _Model, objective: str, best: Figures) -> tuple[Gain, ...]:
    devices = sorted({d for stage in model.problem.stages for d in stage.implementations})
    return tuple(_gain(model, objective, best, device) for device in devices)


def _gain(model: _Model, objective: str, best: Figures, device: str) -> Gain:
    baseline = f"all-{device}"
    missing = [f"no {device} implementation of '{stage.name}'" for stage in model.problem.stages
               if device not in stage.implementations]
    missing += [e.reason for e in model.excluded if e.device == device]
    if missing:
        return Gain(baseline, None, None, None, "not available: " + "; ".join(missing))
    figures = _figures(model, (device,) * len(model.names))
    ours, theirs = best.objective(objective), figures.objective(objective)
    if ours.value == 0:
        return Gain(baseline, figures, None, None, "not available: the optimum costs nothing")
    return Gain(baseline, figures, _ratio(theirs, ours), theirs.distinguishable_from(ours))


def _notes(model: _Model, objective: str, best: Figures) -> tuple[str, ...]:
    notes = []
    if objective in _ENERGY_OBJECTIVES and best.objective(objective).estimated:
        estimated = [f"{d} implementation of '{n}'" for n, d in best.placement.items()
                     if model.impls[model.names.index(n)][d].energy_j.estimated]
        estimated += [f"transfer of '{t.product}' {t.direction}" for t in best.transfers if t.energy_j.estimated]
        notes.append("this result rests on estimated, not measured, energy for " + "; ".join(estimated))
    notes += [f"transfer of '{t.product}' {t.direction} is modelled (latency + bytes / bandwidth), "
              "not measured" for t in best.transfers if t.modelled]
    notes += [f"{what} was not checked against the reference" for what in model.unchecked]
    return tuple(notes)


# ---------------------------------------------------------------------------------- rendering


def _finite(x: Any) -> Any:
    return "inf" if isinstance(x, float) and math.isinf(x) else x


def _mjson(m: Measurement | None) -> dict[str, Any] | None:
    """Measurement.to_json, with an unbounded end written as the string "inf"."""
    return None if m is None else {k: _finite(v) for k, v in m.to_json().items()}


def _brief(f: Figures, objective: str) -> dict[str, Any]:
    return {"placement": dict(f.placement), "value": _mjson(f.objective(objective))}


def summary(result: PlacementResult) -> str:
    """A few plain-text lines: the placement, its value and verdict, the gains, the exclusions."""
    value = result.value
    low, high = value.bounds
    lines = [f"{result.objective}: {value.value:.4g} {value.unit} [{low:.4g}, {high:.4g}]"
             f"{' (estimated)' if result.estimated else ''}, {result.verdict}",
             "  " + ", ".join(f"{stage}->{device}" for stage, device in result.placement.items())]
    for gain in result.gains:
        text = gain.reason if not gain.available else (
            f"x{gain.ratio.value:.3g}" + ("" if gain.distinguishable else " (not distinguishable)"))
        lines.append(f"  vs {gain.baseline}: {text}")
    lines += [f"  excluded: {e.reason}" for e in result.excluded]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)
