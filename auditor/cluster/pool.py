"""Placement over a mixed pool of node types: which stages to send to which kind of node.

The pool is one node of each measured type. Events arrive on a "home" node type (tried in turn);
every stage may run on any device of any type: the home's devices keep their names (``cpu``,
``gpu``), the others are named ``cpu@N`` / ``gpu@N`` after the type's index. Costs are those
measured on each type; copies inside a type are its measured host<->device copies; copies between
types go over the network, modelled (latency + bytes / bandwidth, labelled estimated) because
they were not measured. The throughput objective (events per second with many events in flight)
and the energy objective (joules per event) are answered for every home.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from auditor.placement import (PlacementError, PlacementProblem, Resources, Stage, TransferCost, TransferModel,
                               plan)
from auditor.placement_report import build_problem

#: The network between node types, when not given: 10 Gb/s Ethernet, 50 us per message.
NETWORK_BYTES_PER_S = 1.25e9
NETWORK_LATENCY_S = 50e-6


def _rename(name: str, index: int) -> str:
    return name if index == 0 else f"{name}@{index}"


def _problem(chain: Any, results: Sequence[Mapping[str, Any]], min_agreement: float) -> tuple[PlacementProblem, dict]:
    """The pool's problem with ``results[0]`` as the home type; and device name -> node type."""
    parts = [build_problem(chain, dict(result), min_agreement) for result in results]
    names = _device_names(parts, results)
    stages = [Stage(stage.name, _pooled_options(parts, position)) for position, stage in enumerate(parts[0].stages)]
    transfers = [TransferCost(_rename(t.src, i), _rename(t.dst, i), t.product, t.time_s, t.energy_j)
                 for i, part in enumerate(parts) for t in part.transfers]
    network = [TransferModel(a, b, NETWORK_LATENCY_S, NETWORK_BYTES_PER_S, energy_j_per_byte=0.0)
               for a in names for b in names if names[a] != names[b]]
    cores = {_rename("cpu", i): part.resources.cpu_cores for i, part in enumerate(parts) if i}
    problem = PlacementProblem(stages=stages, edges=parts[0].edges, transfers=transfers, transfer_models=network,
                               resources=Resources(parts[0].resources.cpu_cores, cores), min_agreement=min_agreement)
    return problem, names


def _device_names(parts: Sequence[PlacementProblem], results: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Pool device name -> node type."""
    return {_rename(device, index): result["node_type"] for index, (part, result) in enumerate(zip(parts, results))
            for stage in part.stages for device in stage.implementations}


def _pooled_options(parts: Sequence[PlacementProblem], position: int) -> dict[str, Any]:
    """Every node type's implementations of the stage at ``position``, under pool device names."""
    return {_rename(device, index): impl for index, part in enumerate(parts)
            for device, impl in part.stages[position].implementations.items()}


def _answer(solved: Mapping[str, Any], objective: str) -> dict[str, Any]:
    """The optimum of one objective in brief, or why it has none."""
    entry = solved["results"].get(objective)
    if entry is None:
        return {"status": "not available", "reason": solved["unavailable"].get(objective, "not solved")}
    figures = entry["figures"]
    return {"status": "solved", "placement": entry["placement"], "value": entry["value"], "unit": entry["unit"],
            "estimated": entry["estimated"], "verdict": entry["verdict"],
            "events_per_s": figures.get("throughput_events_per_s"), "bottleneck": figures.get("bottleneck")}


def mixed_pool(chain: Any, results: Sequence[Mapping[str, Any]], min_agreement: float) -> dict[str, Any]:
    """The best placement over one node of each type, for each choice of home type."""
    if len(results) < 2:
        return {"status": "not available", "reason": "one node type only"}
    homes = []
    for shift in range(len(results)):
        ordered = list(results[shift:]) + list(results[:shift])
        try:
            problem, names = _problem(chain, ordered, min_agreement)
            solved = plan(problem).to_json()
        except PlacementError as error:
            homes.append({"home": ordered[0]["node_type"], "status": "not available", "reason": str(error)})
            continue
        homes.append({"home": ordered[0]["node_type"], "status": "solved", "devices": names,
                      "throughput": _answer(solved, "throughput"), "energy": _answer(solved, "energy")})
    return {"status": "solved" if any(h["status"] == "solved" for h in homes) else "not available",
            "node_types": [r["node_type"] for r in results], "homes": homes,
            "network": {"bytes_per_s": NETWORK_BYTES_PER_S, "latency_s": NETWORK_LATENCY_S,
                        "note": "copies between node types are modelled, not measured; their energy is not counted"}}
