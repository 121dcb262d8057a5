"""Work units: the pieces a run or a sweep is cut into, and what a worker does with one.

A unit is (chain, stage set, configuration, event range, device, node type). A worker loads the
chain by name (the same registry as ``hepaudit run``), measures it with the profiler on its own
devices and energy counters, and returns the chain's result together with a description of its
hardware and the wall-clock window it ran in (used to flag concurrent work on one device).
Code quality, speedups, ranking and placement are computed afterwards, on the client, from the
merged results: they do not depend on where a unit ran.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from auditor.errors import UserError


@dataclass(frozen=True)
class UnitSettings:
    """How every unit of one job measures (shared by all units)."""

    mode: str = "quick"
    energy: bool = True
    country: str = "FRA"
    min_agreement: float = 0.99


@dataclass(frozen=True)
class WorkUnit:
    """One chain measured on one device of one node type, for one configuration and event range."""

    chain: str
    device: str
    parameters: tuple[tuple[str, Any], ...] = ()
    stages: tuple[str, ...] = ()
    event_range: tuple[int, int] | None = None
    node_type: str | None = None

    @property
    def configuration(self) -> dict[str, Any]:
        return dict(self.parameters)

    @property
    def key(self) -> str:
        """Stable identity: the same unit of a resumed job has the same key."""
        digest = hashlib.sha1(json.dumps(self.to_json(), sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.chain}-{self.device}-{digest[:12]}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["parameters"] = dict(self.parameters)
        data["event_range"] = list(self.event_range) if self.event_range else None
        data["stages"] = list(self.stages)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "WorkUnit":
        event_range = data.get("event_range")
        return cls(chain=data["chain"], device=data["device"],
                   parameters=tuple(sorted(dict(data.get("parameters") or {}).items())),
                   stages=tuple(data.get("stages") or ()),
                   event_range=tuple(event_range) if event_range else None, node_type=data.get("node_type"))


def event_ranges(events: int, per_unit: int | None) -> list[tuple[int, int] | None]:
    """Split ``events`` into ranges of ``per_unit`` (one range covering all when not splitting)."""
    if not per_unit or per_unit >= events:
        return [None]
    return [(start, min(start + per_unit, events)) for start in range(0, events, per_unit)]


def plan_units(chains: Sequence[str], configurations: Sequence[Mapping[str, Any]], devices: Sequence[str],
               node_types: Mapping[str, Sequence[str]], split: tuple[int, int | None] = (0, None)) -> list[WorkUnit]:
    """Every unit of a job: chain x configuration x node type x device (a node type lists the
    devices it has) x event range. ``split`` is (events per chain, events per unit)."""
    ranges = event_ranges(*split) if split[0] else [None]
    units = []
    for chain, configuration, (kind, kind_devices), event_range in itertools.product(
            chains, configurations, node_types.items(), ranges):
        parameters = tuple(sorted(configuration.items()))
        units += [WorkUnit(chain, device, parameters, (), event_range, kind)
                  for device in devices if device in kind_devices]
    return units


def with_stages(units: Sequence[WorkUnit], stages: Sequence[str]) -> list[WorkUnit]:
    return [WorkUnit(u.chain, u.device, u.parameters, tuple(stages), u.event_range, u.node_type) for u in units]


def execute_unit(unit: WorkUnit, settings: UnitSettings) -> dict[str, Any]:
    """Measure one unit here (on a worker, or in-process for a serial job); JSON-ready outcome."""
    from auditor.cluster.client import describe_worker
    from auditor.profiler import ProfileOptions, profile_chain
    from auditor.registry import load_chains

    chains, problems = load_chains([unit.chain])
    if not chains:
        raise UserError(f"Chain '{unit.chain}' cannot be loaded here: {'; '.join(problems) or 'unknown chain'}.")
    options = ProfileOptions(devices=(unit.device,), stages=unit.stages, parameters=unit.configuration,
                             mode=settings.mode, min_agreement=settings.min_agreement, event_range=unit.event_range)
    meter = None
    if settings.energy:
        from auditor.energy_meter import EnergyMeter

        meter = EnergyMeter(settings.mode, settings.country)
    started = time.time()
    try:
        result = profile_chain(chains[0], options, meter)
    finally:
        finished = time.time()
        energy = meter.describe() if meter is not None else {"status": "not measured (--no-energy)"}
        if meter is not None:
            meter.close()
    return {"key": unit.key, "unit": unit.to_json(), "node": describe_worker(), "worker": _worker_address(),
            "started": started, "finished": finished, "result": result, "energy": energy}


def _worker_address() -> str:
    """This worker's address; a serial job (Dask never imported) names its process instead."""
    if "distributed" in sys.modules:
        try:
            return sys.modules["distributed"].get_worker().address
        except ValueError:
            pass
    return f"local process {os.getpid()}"
