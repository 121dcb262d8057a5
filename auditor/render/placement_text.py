"""Plain-text and Markdown lines describing a placement (used by the Markdown and HTML reports)."""

from __future__ import annotations

from typing import Any

from auditor.render.units import energy_text, seconds_text, size_text

OBJECTIVE_NAMES = {"latency": "time per event", "energy": "energy per event", "edp": "energy × delay",
                   "throughput": "busiest resource per event (pipelined)"}


def value_text(objective: str, value: dict[str, Any] | None) -> str:
    if value is None:
        return "–"
    if objective in ("latency", "throughput"):
        return seconds_text(value)
    if objective == "energy":
        return energy_text(value)
    return f"{value['value']:.3g} J·s"


def devices_text(placement: dict[str, str]) -> str:
    """``all CPU``, or the stages per device: ``GPU: seeding, ckf · CPU: the rest``."""
    devices = set(placement.values())
    if len(devices) == 1:
        return f"all {devices.pop().upper()}"
    by_device: dict[str, list[str]] = {}
    for stage, device in placement.items():
        by_device.setdefault(device, []).append(stage)
    return " · ".join(f"{device.upper()}: {', '.join(stages)}" for device, stages in sorted(by_device.items()))


def gain_text(gain: dict[str, Any], placement: dict[str, str] | None = None) -> str:
    if not gain.get("available"):
        return gain.get("reason") or "not available"
    if placement is not None and gain.get("placement") == placement:
        return "same placement"
    ratio = gain["ratio"]
    suffix = "" if gain.get("distinguishable") else " (not distinguishable)"
    return f"{ratio['value']:.2f}×{suffix}"


def chain_drawing(figures: dict[str, Any], stages: list[str]) -> str:
    """``input ─▶ stage[CPU] ─(H2D product 1 MB, 0.2 ms)▶ stage[GPU] … ─▶ output``."""
    placement = figures["placement"]
    copies: dict[str, list[str]] = {}
    for transfer in figures.get("transfers", []):
        for consumer in transfer["consumers"]:
            label = "H2D" if transfer["direction"] == "cpu->gpu" else "D2H" if transfer["direction"] == "gpu->cpu" \
                else transfer["direction"]
            copies.setdefault(consumer, []).append(
                f"{label} {transfer['product']} {size_text(int(transfer['bytes_per_event']))}, "
                f"{seconds_text(transfer['time_s'])}")
    parts = ["input"]
    for stage in stages + ["host"]:
        arrow = f" ─({'; '.join(copies[stage])})▶ " if stage in copies else " ─▶ "
        parts.append(arrow + (f"{stage}[{placement[stage].upper()}]" if stage in placement else "output"))
    return "".join(parts)


def placement_markdown(placement: dict[str, Any]) -> list[str]:
    if placement.get("status") != "solved":
        return ["#### Placement", "", f"Not available: {placement.get('reason')}.", ""]
    lines = ["#### Placement", "", "| Objective | Placement | Value | vs all-CPU | vs all-GPU | Verdict |",
             "|---|---|--:|--:|--:|---|"]
    for objective, result in placement["results"].items():
        gains = result["gains"]
        chosen = result["placement"]
        lines.append(f"| {OBJECTIVE_NAMES[objective]} | {devices_text(chosen)} | "
                     f"{value_text(objective, result['value'])}{' (estimated)' if result['estimated'] else ''} | "
                     f"{gain_text(gains.get('all-cpu', {}), chosen)} | {gain_text(gains.get('all-gpu', {}), chosen)} | "
                     f"{result['verdict']} |")
    for objective, reason in placement.get("unavailable", {}).items():
        lines.append(f"| {OBJECTIVE_NAMES.get(objective, objective)} | – | – | – | – | {reason} |")
    lines.append("")
    latency = placement["results"].get("latency")
    if latency:
        lines += ["Fastest placement:", "", "```", chain_drawing(latency["figures"], placement["stages"]), "```", ""]
        for excluded in latency["excluded"]:
            lines.append(f"- Excluded: {excluded['reason']}")
        for note in latency["notes"]:
            lines.append(f"- {note}")
        lines.append("")
    return lines
