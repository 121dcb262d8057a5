"""Turn the outcomes of a job's units into chain results: one per chain, configuration and node type.

* The CPU and GPU units of one (chain, configuration, node type) become one chain result, as if
  measured by one ``hepaudit run`` on that kind of node; units that split the events into ranges
  have their timing samples pooled (energy windows are kept per range, not combined).
* Concurrency: units whose wall-clock windows overlap on one host shared its CPU package (and its
  RAPL counter); GPU units that overlap on one card shared the card. Their timings carry the keys of
  the units they ran beside, and their energy is marked as not attributed: it is kept for
  inspection but never used as the stage's energy by the ranking or the placement.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable, Mapping, Sequence

from auditor.measurement import summarise

NOT_ATTRIBUTED = "not attributed: measured while other units ran on the same device"


def _overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return a["started"] < b["finished"] and b["started"] < a["finished"]


def _shares_device(a: Mapping[str, Any], b: Mapping[str, Any]) -> str | None:
    """'host' when two outcomes ran on one host, 'gpu' when both were GPU units on one card."""
    if a["node"]["host"] != b["node"]["host"]:
        return None
    gpu_a = a["unit"]["device"] == "gpu" and a["node"].get("gpu_slot")
    if gpu_a and b["unit"]["device"] == "gpu" and gpu_a == b["node"].get("gpu_slot"):
        return "gpu"
    return "host"


def concurrency(outcomes: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """For each unit key, the units it overlapped with, by shared device ('host', 'gpu')."""
    items = sorted(outcomes, key=lambda o: o["started"])
    found: dict[str, dict[str, list[str]]] = {}
    for index, first in enumerate(items):
        for second in items[index + 1:]:
            if second["started"] >= first["finished"]:
                break
            shared = _shares_device(first, second) if _overlap(first, second) else None
            if shared:
                found.setdefault(first["key"], {}).setdefault(shared, []).append(second["key"])
                found.setdefault(second["key"], {}).setdefault(shared, []).append(first["key"])
    return found


def group_key(outcome: Mapping[str, Any]) -> tuple[str, str, str]:
    unit = outcome["unit"]
    return unit["chain"], json.dumps(unit["parameters"], sort_keys=True, default=str), unit["node_type"] or ""


def _pooled(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One device entry from the same stage measured over several event ranges."""
    unmeasured = [e for e in entries if e.get("status") != "measured"]
    if unmeasured or len(entries) == 1:
        return (unmeasured or entries)[0]
    merged = copy.deepcopy(entries[0])
    _pool_timing(merged, entries)
    _pool_agreement(merged, [e["agreement"] for e in entries if e.get("agreement")])
    energies = [e.get("energy") for e in entries]
    if any(energies):
        merged["energy_parts"] = energies
        merged["energy"] = None
    return merged


def _pool_timing(merged: dict[str, Any], entries: Sequence[Mapping[str, Any]]) -> None:
    samples = [s for e in entries for s in e["time_samples"]]
    merged["time"] = summarise(samples, "s", merged["time"]["method"]).to_json()
    merged["time_samples"] = samples
    merged["samples"] = sum(e["samples"] for e in entries)
    merged["event_ranges"] = len(entries)


def _pool_agreement(merged: dict[str, Any], agreements: Sequence[Mapping[str, Any]]) -> None:
    """The lowest matching rate over the event ranges, as over the events of one range."""
    if agreements:
        merged["agreement"]["rates"] = {k: min(a["rates"][k] for a in agreements) for k in agreements[0]["rates"]}
        merged["agreement"]["events"] = sum(a["events"] for a in agreements)


def _flag(entry: dict[str, Any], shared: Mapping[str, list[str]]) -> None:
    """Mark a device entry measured beside other units: timings kept, energy not attributed."""
    others = sorted({k for keys in shared.values() for k in keys})
    if not others or entry.get("status") != "measured":
        return
    entry["concurrent_with"] = others
    if entry.get("energy"):
        entry["energy"]["attributed"] = False
        entry["energy"]["attribution"] = NOT_ATTRIBUTED


def _by_device(outcomes: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Outcomes by device, each list in event-range order."""
    by_device: dict[str, list[Mapping[str, Any]]] = {}
    for outcome in sorted(outcomes, key=lambda o: (o["unit"]["event_range"] or [0])[0]):
        by_device.setdefault(outcome["unit"]["device"], []).append(outcome)
    return by_device


def _merge_stage(entry: dict[str, Any], parts: Sequence[Mapping[str, Any]], device: str,
                 flags: Sequence[Mapping[str, list[str]]]) -> None:
    """Put ``device``'s pooled measurement of one stage into ``entry``, flagged where concurrent (the
    stage's status comes from the reference pass, which every unit runs the same way)."""
    entry["devices"][device] = _pooled([copy.deepcopy(part["devices"][device]) for part in parts])
    for shared in flags:
        _flag(entry["devices"][device], shared)


def merge_group(outcomes: Sequence[Mapping[str, Any]], flags: Mapping[str, Mapping[str, list[str]]]) -> dict[str, Any]:
    """One chain result from the units of one chain, configuration and node type."""
    by_device = _by_device(outcomes)
    first_device = "cpu" if "cpu" in by_device else next(iter(by_device))
    base = copy.deepcopy(by_device[first_device][0]["result"])
    for index, entry in enumerate(base["stages"]):
        for device, parts in by_device.items():
            _merge_stage(entry, [p["result"]["stages"][index] for p in parts], device,
                         [flags.get(p["key"], {}) for p in parts])
    gpu_parts = by_device.get("gpu", [])
    if gpu_parts:  # the CPU unit may have run where no GPU is visible: the GPU unit says what the GPU is
        base["devices"]["gpu"] = gpu_parts[0]["result"]["devices"]["gpu"]
        base["transfers"] = gpu_parts[0]["result"].get("transfers", [])
        base["transfer_problems"] = gpu_parts[0]["result"].get("transfer_problems", [])
    base["events"] = sum(p["result"]["events"] for p in by_device[first_device])
    base["event_range"] = None
    base["devices"]["measured"] = sorted(by_device)
    base["devices"]["requested"] = sorted(by_device)
    base["interrupted"] = any(p["result"]["interrupted"] for parts in by_device.values() for p in parts)
    return base


def unit_summary(outcome: Mapping[str, Any], flags: Mapping[str, Any], retried: Mapping[str, int],
                 resumed: Sequence[str]) -> dict[str, Any]:
    unit = outcome["unit"]
    return {"key": outcome["key"], "chain": unit["chain"], "device": unit["device"],
            "configuration": unit["parameters"], "event_range": unit["event_range"], "node_type": unit["node_type"],
            "worker": outcome["worker"], "host": outcome["node"]["host"],
            "wall_s": round(outcome["finished"] - outcome["started"], 3),
            "retried_after_lost_worker": retried.get(outcome["key"], 0), "resumed": outcome["key"] in resumed,
            "concurrent_with": {k: sorted(v) for k, v in flags.get(outcome["key"], {}).items()}}


def grouped(outcomes: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], list[Mapping[str, Any]]]:
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for outcome in outcomes:
        groups.setdefault(group_key(outcome), []).append(outcome)
    return groups
