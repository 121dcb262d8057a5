"""Rows of the run report's tables, shared by the Markdown and HTML renderers."""

from __future__ import annotations

import math
from typing import Any

from auditor.render.units import energy_text, seconds_text, size_text


def time_text(device: dict[str, Any] | None) -> str:
    if not device:
        return "–"
    if device.get("status") == "measured":
        return seconds_text(device["time"]) + ("*" if device.get("concurrent_with") else "")
    return device.get("status", "–")


def energy_cell_text(device: dict[str, Any] | None) -> str:
    energy = (device or {}).get("energy")
    if not energy:
        return "–"
    value = energy.get("net_per_event") or energy.get("gross_per_event")
    if energy.get("attributed") is False:
        return f"({energy_text(value)}, not attributed)" if value else "not attributed"
    return energy_text(value) if value else energy.get("status", "–")


def rate_text(rate: float) -> str:
    """A matching rate in percent, rounded down: only a full match reads 100.00 %."""
    return f"{math.floor(rate * 1e4 + 1e-6) / 100:.2f} %"


def agreement_text(device: dict[str, Any] | None) -> str:
    agreement = (device or {}).get("agreement")
    if not agreement or agreement.get("headline") is None:
        return "–"
    return f"{rate_text(agreement['rates'][agreement['headline']])} at {agreement['headline']}"


def _agreements(chain: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(stage, device, agreement) of every implementation compared with its reference device."""
    return [(stage["name"], device, data["agreement"]) for stage in chain["stages"]
            for device, data in stage["devices"].items() if (data or {}).get("agreement")]


def agreement_header(chain: dict[str, Any]) -> list[str]:
    """Columns of the matching-rate table: one per label (tolerance) any comparator reported."""
    labels = dict.fromkeys(label for _, _, agreement in _agreements(chain) for label in agreement["rates"])
    return ["Stage", "Device", "Events", *labels, "Gate at"]


def agreement_rows(chain: dict[str, Any]) -> list[list[str]]:
    """Per compared implementation: its matching rate at every label (the lowest over the events,
    as traccc prints 'Matching rate(s): ... at 0.01% uncertainty') and the label that gates it."""
    labels = agreement_header(chain)[3:-1]
    return [[stage, device.upper(), str(agreement.get("events", "–")),
             *(rate_text(agreement["rates"][label]) if label in agreement["rates"] else "–"
               for label in labels),
             agreement.get("headline") or "–"]
            for stage, device, agreement in _agreements(chain)]


def quality_text(device: dict[str, Any] | None) -> str:
    quality = (device or {}).get("quality") or {}
    if quality.get("status") != "analysed":
        return "–"
    mi = f", MI {quality['mi']:.0f}" if quality.get("mi") is not None else ""
    return f"CCN {quality['max_ccn']} ({quality['grade']}){mi}"


STAGE_HEADER = ["Stage", "Status", "CPU / event", "GPU / event", "Speedup", "Energy CPU / event",
                "Energy GPU / event", "GPU agreement", "Quality CPU", "Quality GPU"]


def stage_rows(chain: dict[str, Any]) -> list[list[str]]:
    rows = []
    for stage in chain["stages"]:
        cpu, gpu = stage["devices"].get("cpu"), stage["devices"].get("gpu")
        speed = stage.get("speedup")
        speed_text = "–" if speed is None else f"{speed['value']:.2f}×" + (
            "" if speed["distinguishable_from_1"] else " (not distinguishable from 1)")
        rows.append([stage["name"], stage.get("status", "measured"), time_text(cpu), time_text(gpu), speed_text,
                     energy_cell_text(cpu), energy_cell_text(gpu), agreement_text(gpu), quality_text(cpu), quality_text(gpu)])
    return rows


TRANSFER_HEADER = ["Product", "From → to", "Size", "H2D pageable", "H2D pinned", "D2H"]


def transfer_rows(chain: dict[str, Any]) -> list[list[str]]:
    rows = []
    for transfer in chain.get("transfers", []):
        cells = [f"{seconds_text(transfer[k]['time'])} ({transfer[k]['gb_per_s'] or 0:.1f} GB/s)"
                 for k in ("h2d_pageable", "h2d_pinned", "d2h")]
        rows.append([transfer["product"], f"{transfer['producer'] or 'input'} → {transfer['consumer'] or 'output'}",
                     size_text(transfer["bytes"]), *cells])
    return rows


ACT_HEADER = ["#", "Stage", "Share of chain time", "Time rank", "Energy rank", "Quality rank"]


def act_rows(chain: dict[str, Any]) -> list[list[str]]:
    ranking = chain["ranking"]
    ranks = {key: {e["stage"]: e for e in ranking[key]} for key in ("by_time", "by_energy", "by_quality")}

    def cell(key: str, stage: str) -> str:
        entry = ranks[key].get(stage)
        return "–" if entry is None else ("≈" if entry["tied_with_previous"] else "") + str(entry["rank"])

    return [[str(i), e["stage"], f"{(e['time_share'] or 0) * 100:.1f} %", cell("by_time", e["stage"]),
             cell("by_energy", e["stage"]), cell("by_quality", e["stage"])]
            for i, e in enumerate(ranking["act_first"], 1)]


def environment_lines(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    gpu = env["gpu"]
    gpu_text = (f"{gpu.get('name', 'GPU')}, {gpu.get('memory_gb', '?')} GB, driver {gpu.get('driver', '?')}"
                if "status" not in gpu else gpu["status"])
    return [f"CPU: {env['cpu']['model']} ({env['cpu']['cores']} cores)", f"GPU: {gpu_text}",
            f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["libraries"].items()),
            f"Mode {report['options']['mode']}; created {report['created']}"]


def carbon_line(chain: dict[str, Any]) -> str | None:
    """Carbon per event of the chain on its reference devices, with the grid it assumes."""
    total = 0.0
    estimated = False
    note = None
    for stage in chain["stages"]:
        device = stage["devices"].get(stage.get("reference_device", "cpu")) or {}
        carbon = (device.get("energy") or {}).get("carbon_g_per_event")
        if not carbon:
            return None
        total += carbon["value"]
        estimated = estimated or bool(carbon.get("estimated"))
        note = carbon.get("note")
    if note is None:
        return None
    grid = note.split(" x ", 1)[-1] if " x " in note else note
    return (f"Carbon: {'~' if estimated else ''}{total:.3g} gCO2e per event on the reference devices "
            f"({'estimated energy' if estimated else 'measured energy'} x {grid})")
