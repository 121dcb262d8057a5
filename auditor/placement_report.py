"""Build the placement problem from a measured chain and solve every objective.

Stage costs are the measured time per event (and net energy per event where measured); transfer
costs are the measured pageable host<->device copies of each product; device implementations
below the agreement threshold are excluded by the optimiser, with the reason.
"""

from __future__ import annotations

import statistics
from typing import Any

from auditor.devices import cpu_description
from auditor.measurement import Measurement
from auditor.placement import (HOST, Edge, Implementation, PlacementError, PlacementProblem, Resources, Stage,
                               TransferCost, brute_force, plan)

#: Up to this many placements, every one is listed (for the time-energy plot).
LIST_LIMIT = 256
from auditor.stages import Chain


def _implementation(device: dict[str, Any]) -> Implementation:
    energy = device.get("energy") or {}
    if energy.get("attributed") is False:  # measured beside other work on the same device
        energy = {}
    per_event = energy.get("net_per_event") or energy.get("gross_per_event")
    agreement = device.get("agreement") or {}
    headline = agreement.get("headline")
    return Implementation(
        time_s=Measurement.from_json(device["time"]),
        energy_j=Measurement.from_json(per_event) if per_event else None,
        agreement=agreement["rates"][headline] if headline else None,
    )


def _copy_power(result: dict[str, Any]) -> float | None:
    """Median net GPU power (W) of the measured GPU stages: the estimate used for copies."""
    powers = []
    for entry in result["stages"]:
        energy = entry["devices"].get("gpu", {}).get("energy") or {}
        for counter in energy.get("counters", []):
            if counter.get("method") == "nvml-energy" and counter.get("net_power"):
                powers.append(counter["net_power"]["value"])
    return statistics.median(powers) if powers else None


def _copy_energy(seconds: Measurement, power: float | None) -> Measurement | None:
    if power is None:
        return None
    low, high = seconds.bounds
    return Measurement(seconds.value * power, "J", "derived", samples=seconds.samples, low=low * power,
                       high=high * power, interval="propagated", estimated=True,
                       note=f"copy time x {power:.1f} W, the median net GPU power of the measured stages")


def build_problem(chain: Chain, result: dict[str, Any], min_agreement: float) -> PlacementProblem:
    """The placement problem of a measured chain; PlacementError when it cannot be posed."""
    stages = []
    for entry in result["stages"]:
        measured = {name: _implementation(device) for name, device in entry["devices"].items()
                    if device.get("status") == "measured"}
        if not measured:
            raise PlacementError(f"stage '{entry['name']}' was not measured on any device ({entry.get('status')})")
        stages.append(Stage(entry["name"], measured))
    if len(stages) != len(chain.stages):
        raise PlacementError("the placement needs every stage of the chain measured (a --stage subset was chosen)")
    sizes = result.get("product_bytes", {})
    edges = [Edge(producer or HOST, consumer or HOST, product, float(sizes.get(product, 0)))
             for producer, consumer, product in chain.edges()]
    power = _copy_power(result)
    transfers = []
    for transfer in result.get("transfers", []):
        for src, dst, key in (("cpu", "gpu", "h2d_pageable"), ("gpu", "cpu", "d2h")):
            seconds = Measurement.from_json(transfer[key]["time"])
            transfers.append(TransferCost(src, dst, transfer["product"], seconds, _copy_energy(seconds, power)))
    return PlacementProblem(stages=stages, edges=edges, transfers=transfers,
                            resources=Resources(cpu_cores=float(_cores(result))),
                            min_agreement=min_agreement)


def _cores(result: dict[str, Any]) -> int:
    """CPU cores of the node the chain was measured on (this machine's for a local run)."""
    node = result.get("node") or {}
    return (node.get("cpu") or {}).get("cores") or cpu_description()["cores"]


def _label(placement: dict[str, str]) -> str:
    return " ".join(device.upper() for device in placement.values())


def placement_for_chain(chain: Chain, result: dict[str, Any], min_agreement: float) -> dict[str, Any]:
    """Every objective's optimum, the time-energy Pareto front, or why there is no placement."""
    try:
        problem = build_problem(chain, result, min_agreement)
        solved = plan(problem).to_json()
    except PlacementError as error:
        return {"status": "not available", "reason": str(error)}
    front = [{"label": _label(point["placement"]), "placement": point["placement"],
              "latency_s": point["latency_s"]["value"], "energy_j": point["energy_j"]["value"]}
             for point in solved.get("pareto") or []]
    return {"status": "solved", "stages": [s.name for s in problem.stages],
            "transfer_costs": "measured pageable copies per product and direction",
            **solved, "pareto_front": front, "placements": _every_placement(problem) if front else []}


def _every_placement(problem: PlacementProblem) -> list[dict[str, Any]]:
    """Latency and energy of every placement, when there are few enough to list."""
    try:
        every = brute_force(problem, "energy", limit=LIST_LIMIT)
    except PlacementError:
        return []
    return [{"label": _label(dict(f.placement)), "latency_s": f.latency.value, "energy_j": f.energy.value}
            for f in every if f.energy is not None]
