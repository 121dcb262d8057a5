"""Rank the stages of a measured chain by speed, energy and code quality, and combine the ranks.

Ranks follow the measurement uncertainty: a stage whose interval overlaps the one ranked just
above it shares that rank and is marked as not distinguishable from it. The combined "where to act
first" order is the Borda count of the three rankings (sum of ranks, lowest first), ties broken by
the time a stage costs.
"""

from __future__ import annotations

from typing import Any, Callable

from auditor.measurement import Measurement


def _measurement(data: dict[str, Any] | None) -> Measurement | None:
    return None if data is None else Measurement.from_json(data)


def rank(items: list[tuple[str, Measurement]]) -> list[dict[str, Any]]:
    """Largest first; equal rank for items not distinguishable from the one above."""
    ordered = sorted(items, key=lambda item: -item[1].value)
    ranked: list[dict[str, Any]] = []
    for index, (name, value) in enumerate(ordered):
        tied = index > 0 and not value.distinguishable_from(ordered[index - 1][1])
        position = ranked[-1]["rank"] if tied else index + 1
        ranked.append({"stage": name, "rank": position, "value": value.value, "unit": value.unit,
                       "tied_with_previous": tied, "estimated": bool(value.estimated)})
    return ranked


def speedup(cpu: Measurement, gpu: Measurement) -> dict[str, Any]:
    """CPU time / GPU time with the interval from the two intervals' bounds."""
    cpu_low, cpu_high = cpu.bounds
    gpu_low, gpu_high = gpu.bounds
    return {"value": cpu.value / gpu.value, "low": cpu_low / gpu_high if gpu_high else None,
            "high": cpu_high / gpu_low if gpu_low else None,
            "distinguishable_from_1": cpu.distinguishable_from(gpu)}


def _device(stage: dict[str, Any]) -> dict[str, Any] | None:
    reference = stage["devices"].get(stage.get("reference_device", "cpu"), {})
    return reference if reference.get("status") == "measured" else None


def _quality_key(stage: dict[str, Any]) -> Measurement | None:
    worst = [d["quality"]["max_ccn"] for d in stage["devices"].values()
             if d.get("status") == "measured" and d.get("quality", {}).get("status") == "analysed"]
    return Measurement(float(max(worst)), "CCN", "derived") if worst else None


def rank_chain(chain: dict[str, Any]) -> dict[str, Any]:
    """Rankings of a chain's measured stages (JSON-ready)."""
    stages = [s for s in chain["stages"] if _device(s) is not None]

    def collect(key: Callable[[dict[str, Any]], Measurement | None]) -> list[tuple[str, Measurement]]:
        found = []
        for stage in stages:
            value = key(stage)
            if value is not None:
                found.append((stage["name"], value))
        return found

    def energy(stage: dict[str, Any]) -> Measurement | None:
        data = (_device(stage) or {}).get("energy") or {}
        return _measurement(data.get("net_per_event") or data.get("gross_per_event"))

    by_speed = rank(collect(lambda s: _measurement(_device(s)["time"])))
    by_energy = rank(collect(energy))
    by_quality = rank(collect(_quality_key))
    scores: dict[str, int] = {}
    for ranking in (by_speed, by_energy, by_quality):
        worst = len(stages) + 1
        positions = {entry["stage"]: entry["rank"] for entry in ranking}
        for stage in stages:
            scores[stage["name"]] = scores.get(stage["name"], 0) + positions.get(stage["name"], worst)
    time_of = {entry["stage"]: entry["value"] for entry in by_speed}
    act_first = sorted(scores, key=lambda name: (scores[name], -time_of.get(name, 0.0)))
    total = sum(time_of.values())
    return {
        "by_time": by_speed, "by_energy": by_energy, "by_quality": by_quality,
        "act_first": [{"stage": name, "score": scores[name],
                       "time_share": round(time_of.get(name, 0.0) / total, 4) if total else None}
                      for name in act_first],
        "method": "Borda count of the time, energy and quality ranks (lower is more urgent); "
                  "stages whose intervals overlap share a rank",
        "energy_estimated": any(entry["estimated"] for entry in by_energy),
    }
