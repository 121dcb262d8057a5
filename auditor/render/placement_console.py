"""Rich rendering of a placement: the objectives table and the chain drawn with its devices."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from auditor.render.placement_text import OBJECTIVE_NAMES, chain_drawing, devices_text, gain_text, value_text


def render_placement(placement: dict[str, Any]) -> Any:
    if placement.get("status") != "solved":
        return Text(f"Placement not available: {placement.get('reason')}.", style="yellow")
    table = Table(title="Placement (device per stage)", box=box.SIMPLE_HEAVY, title_justify="left")
    for name in ("Objective", "Placement", "Value", "vs all-CPU", "vs all-GPU", "Verdict"):
        table.add_column(name, overflow="fold")
    for objective, result in placement["results"].items():
        chosen = result["placement"]
        value = value_text(objective, result["value"]) + (" (est.)" if result["estimated"] else "")
        gains = result["gains"]
        table.add_row(OBJECTIVE_NAMES[objective], devices_text(chosen), value, gain_text(gains.get("all-cpu", {}), chosen),
                      gain_text(gains.get("all-gpu", {}), chosen), result["verdict"])
    unavailable = placement.get("unavailable", {})
    for objective in unavailable:
        table.add_row(OBJECTIVE_NAMES.get(objective, objective), "–", "–", "–", "–", Text("not available (below)", style="dim"))
    parts: list[Any] = [table]
    for reason in dict.fromkeys(unavailable.values()):
        names = ", ".join(OBJECTIVE_NAMES.get(o, o) for o, r in unavailable.items() if r == reason)
        parts.append(Text(f"{names}: {reason}", style="dim"))
    latency = placement["results"].get("latency")
    if latency:
        parts.append(Text("Fastest: " + chain_drawing(latency["figures"], placement["stages"]), style="bold"))
        for excluded in latency["excluded"]:
            parts.append(Text(f"Excluded: {excluded['reason']}", style="yellow"))
    return Group(*parts)
