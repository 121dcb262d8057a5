"""A job: plan the units of a run or sweep, find the node types, run the units, keep the outcomes.

Node types: workers are grouped by host; a host's type is its CPU model and core count, plus the
GPU model when one of its workers sees a GPU and declares the ``GPU`` resource. A unit is bound to
the hosts of its node type (and a GPU unit to GPU workers), so every node type measures each
device it has, and a unit moved after a lost worker stays on the same kind of node.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from auditor.cluster.execute import JobOutcome, UnitStore, resume_from, run_distributed, run_serial
from auditor.cluster.units import UnitSettings, WorkUnit, plan_units, with_stages
from auditor.errors import UserError


@dataclass(frozen=True)
class JobSpec:
    """What to measure: chains x configurations x devices (x event ranges), and how."""

    chains: tuple[str, ...]
    configurations: tuple[Mapping[str, Any], ...]
    devices: tuple[str, ...] = ("cpu", "gpu")
    stages: tuple[str, ...] = ()
    events_per_unit: int | None = None
    settings: UnitSettings = UnitSettings()


def local_nodes() -> dict[str, dict[str, Any]]:
    """The one node type of a serial job: this machine."""
    from auditor.cluster.client import describe_worker, node_type

    here = describe_worker()
    return {node_type(here): {"description": here, "hosts": [here["host"]], "workers": ["local"],
                              "gpu_workers": ["local"] if here["gpu"] else [],
                              "devices": ["cpu", "gpu"] if here["gpu"] else ["cpu"]}}


def discover_nodes(client: Any) -> dict[str, dict[str, Any]]:
    """Node types of the cluster's workers, with their hosts, workers and devices."""
    from auditor.cluster.client import GPU_RESOURCE, describe_worker, node_type

    described = client.run(describe_worker)
    info = client.scheduler_info(n_workers=-1)["workers"]
    by_host: dict[str, list[str]] = {}
    for address in sorted(described):
        by_host.setdefault(info[address]["host"], []).append(address)
    nodes: dict[str, dict[str, Any]] = {}
    for host, addresses in by_host.items():
        gpu_workers = [a for a in addresses if described[a]["gpu"] and info[a]["resources"].get(GPU_RESOURCE)]
        description = described[gpu_workers[0] if gpu_workers else addresses[0]]
        entry = nodes.setdefault(node_type(description), {"description": description, "hosts": [], "workers": [],
                                                          "gpu_workers": [], "devices": ["cpu"]})
        entry["hosts"].append(host)
        entry["workers"] += addresses
        entry["gpu_workers"] += gpu_workers
        if gpu_workers and "gpu" not in entry["devices"]:
            entry["devices"].append("gpu")
    return nodes


def _events_of(spec: JobSpec) -> int:
    """Events per configuration, needed only to split into event ranges."""
    if not spec.events_per_unit:
        return 0
    counts = {c.get("events") for c in spec.configurations}
    if len(counts) != 1 or not isinstance(next(iter(counts)), int):
        raise UserError("--events-per-unit needs the number of events given (--events N or events=N in the grid, "
                        "one value).")
    return next(iter(counts))


def plan(spec: JobSpec, nodes: Mapping[str, Mapping[str, Any]]) -> list[WorkUnit]:
    kinds = {kind: node["devices"] for kind, node in nodes.items()}
    units = plan_units(spec.chains, spec.configurations, spec.devices, kinds, (_events_of(spec), spec.events_per_unit))
    return with_stages(units, spec.stages) if spec.stages else units


def run_job(spec: JobSpec, scheduler: str | None, store: UnitStore, resume: bool,
            progress: Callable[[int], Callable[[str], None]] | None = None) -> tuple[JobOutcome, dict[str, Any]]:
    """Plan, run (serially without a scheduler) and collect; the outcome and the cluster's description."""
    from auditor.cluster.client import open_client

    job = JobOutcome()
    with (open_client(scheduler) if scheduler else nullcontext()) as client:
        nodes = discover_nodes(client) if client is not None else local_nodes()
        units = plan(spec, nodes)
        todo = resume_from(store, units, job) if resume else list(units)
        advance = progress(len(todo)) if progress else (lambda message: None)
        if client is None:
            run_serial(todo, spec.settings, store, job, advance)
        else:
            hosts = {kind: node["hosts"] for kind, node in nodes.items()}
            run_distributed(client, todo, spec.settings, hosts, (store, job, advance))
        cluster = {"scheduler": scheduler or "none (serial, in this process)",
                   "workers": sum(len(n["workers"]) for n in nodes.values()), "node_types": nodes,
                   "units": [u.key for u in units]}
    return job, cluster
