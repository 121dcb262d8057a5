"""Rich console rendering of a run report."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from auditor.render import run_tables
from auditor.render.cluster_text import chain_title, cluster_lines
from auditor.render.units import seconds_text, size_text

_RANK_STYLE = {1: "bold red", 2: "dark_orange", 3: "yellow"}


def _environment(report: dict[str, Any]) -> Panel:
    env = report["environment"]
    gpu = env["gpu"]
    gpu_text = (f"{gpu.get('name', 'GPU')} ({gpu.get('memory_gb', '?')} GB, driver {gpu.get('driver', '?')})"
                if "status" not in gpu else gpu["status"])
    libraries = ", ".join(f"{k} {v}" for k, v in env["libraries"].items())
    text = Text()
    text.append(f"CPU: {env['cpu']['model']} ({env['cpu']['cores']} cores)\nGPU: {gpu_text}\n")
    text.append(f"Python {env['python']} · {libraries}\n", style="dim")
    options = report["options"]
    text.append(f"Mode {options['mode']}: at least {options['min_repeats']} calls and "
                f"{options['min_seconds']:g} s per stage and device", style="dim")
    return Panel(text, title=f"hepaudit run · {report['created']}", border_style="cyan", expand=False)


def _time_cell(device: dict[str, Any] | None) -> Text:
    text = run_tables.time_text(device)
    status = (device or {}).get("status")
    return Text(text, style="" if status == "measured" else "bold red" if status == "failed" else "dim")


def _energy_cell(device: dict[str, Any] | None) -> Text:
    energy = (device or {}).get("energy") or {}
    value = energy.get("net_per_event") or energy.get("gross_per_event") or {}
    return Text(run_tables.energy_cell_text(device), style="italic" if value.get("estimated") else "")


def _agreement_cell(device: dict[str, Any] | None) -> str:
    return run_tables.agreement_text(device)


def _quality_cell(device: dict[str, Any] | None) -> str:
    return run_tables.quality_text(device)


def _stage_table(chain: dict[str, Any]) -> Table:
    gpu = chain["devices"]["gpu"] == "available" and "gpu" in chain["devices"]["measured"]
    table = Table(title=f"{chain_title(chain)}: {chain['events']} events, {chain['parameters']}", box=box.SIMPLE_HEAVY,
                  title_justify="left")
    columns = [("Stage", "left"), ("CPU / event", "right")]
    if gpu:
        columns += [("GPU / event", "right"), ("Speedup", "right")]
    columns.append(("Energy CPU", "right"))
    if gpu:
        columns += [("Energy GPU", "right"), ("GPU agrees", "right")]
    columns.append(("CCN, MI CPU", "right"))
    if gpu:
        columns.append(("GPU", "right"))
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    for stage in chain["stages"]:
        cpu_data, gpu_data = stage["devices"].get("cpu"), stage["devices"].get("gpu")
        name = Text(stage["name"])
        if stage.get("status", "measured") != "measured":
            name.append(f"\n{stage['status']}", style="red")
        speed = stage.get("speedup")
        speed_text = Text("–", style="dim") if speed is None else Text(
            f"{speed['value']:.2f}×" + ("" if speed["distinguishable_from_1"] else " (≈1)"),
            style="green" if speed["value"] > 1 and speed["distinguishable_from_1"] else "")
        cells: list[Any] = [name, _time_cell(cpu_data)]
        if gpu:
            cells += [_time_cell(gpu_data), speed_text]
        cells.append(_energy_cell(cpu_data))
        if gpu:
            cells += [_energy_cell(gpu_data), _agreement_cell(gpu_data)]
        cells.append(_quality_cell(cpu_data))
        if gpu:
            cells.append(_quality_cell(gpu_data))
        table.add_row(*cells)
    return table


def _agreements(chain: dict[str, Any]) -> list[Table]:
    """Matching rates at every tolerance per compared implementation, the gating one in bold
    (no table when nothing was compared)."""
    rows = run_tables.agreement_rows(chain)
    if not rows:
        return []
    header = run_tables.agreement_header(chain)
    table = Table(title="Matching rates against the reference device (lowest over the events)",
                  box=box.SIMPLE_HEAVY, title_justify="left")
    for name in header:
        table.add_column(name, justify="left" if name in ("Stage", "Device") else "right")
    for row in rows:
        gate = header.index(row[-1]) if row[-1] in header[3:-1] else -1
        table.add_row(*(Text(cell, style="bold" if i == gate else "") for i, cell in enumerate(row)))
    return [table]


def _transfers(chain: dict[str, Any]) -> Table | None:
    if not chain.get("transfers"):
        return None
    table = Table(title="Host ↔ device transfers per event", box=box.SIMPLE_HEAVY, title_justify="left")
    for name in ("Product", "From → to", "Size", "H2D pageable", "H2D pinned", "D2H"):
        table.add_column(name, justify="left" if name in ("Product", "From → to") else "right")
    for transfer in chain["transfers"]:
        route = f"{transfer['producer'] or 'input'} → {transfer['consumer'] or 'output'}"
        cells = [f"{seconds_text(transfer[k]['time'])} ({transfer[k]['gb_per_s'] or 0:.1f} GB/s)"
                 for k in ("h2d_pageable", "h2d_pinned", "d2h")]
        table.add_row(transfer["product"], route, size_text(transfer["bytes"]), *cells)
    return table


def _act_first(chain: dict[str, Any]) -> Table:
    ranking = chain["ranking"]
    table = Table(title="Where to act first (time, energy and quality ranks combined)", box=box.SIMPLE_HEAVY,
                  title_justify="left")
    for name in ("#", "Stage", "Share of chain time", "Time rank", "Energy rank", "Quality rank"):
        table.add_column(name, justify="left" if name in ("Stage", "Share of chain time") else "right")
    ranks = {key: {e["stage"]: e for e in ranking[key]} for key in ("by_time", "by_energy", "by_quality")}

    def cell(key: str, stage: str) -> Text:
        entry = ranks[key].get(stage)
        if entry is None:
            return Text("–", style="dim")
        mark = "≈" if entry["tied_with_previous"] else ""
        return Text(f"{mark}{entry['rank']}", style=_RANK_STYLE.get(entry["rank"], ""))

    for position, entry in enumerate(ranking["act_first"], 1):
        share = entry["time_share"] or 0.0
        bar = Text("█" * max(1, round(share * 12)), style="cyan")
        bar.append(f" {share * 100:.1f} %")
        table.add_row(str(position), entry["stage"], bar, cell("by_time", entry["stage"]),
                      cell("by_energy", entry["stage"]), cell("by_quality", entry["stage"]))
    return table


def _cluster_panel(report: dict[str, Any]) -> list[Panel]:
    lines = cluster_lines(report)
    return [Panel(Text("\n".join(lines)), title="Work units", border_style="cyan", expand=False)] if lines else []


def _sweep(report: dict[str, Any], console: Console) -> None:
    if report.get("sweep"):
        from auditor.render.sweep import render_console

        render_console(report["sweep"], console)


def render(report: dict[str, Any], console: Console | None = None) -> None:
    """Print the run report."""
    console = console or Console()
    parts: list[Any] = [_environment(report)]
    for chain in report["chains"]:
        parts.append(_stage_table(chain))
        parts += _agreements(chain)
        carbon = run_tables.carbon_line(chain)
        if carbon:
            parts.append(Text(carbon, style="dim"))
        transfers = _transfers(chain)
        if transfers is not None:
            parts.append(transfers)
        for problem in chain.get("transfer_problems", []):
            parts.append(Text(f"Not copied: {problem}", style="yellow"))
        if chain["ranking"]["act_first"]:
            parts.append(_act_first(chain))
        placement = chain.get("placement")
        if placement:
            from auditor.render.placement_console import render_placement

            parts.append(render_placement(placement))
        if chain["devices"]["gpu"] != "available":
            parts.append(Text(f"GPU columns: {chain['devices']['gpu']}; the placement is CPU-only.", style="yellow"))
        if chain["ranking"].get("energy_estimated"):
            parts.append(Text("Energy in italics is estimated (codecarbon model), not measured.", style="italic"))
    parts += _cluster_panel(report)
    if report.get("interrupted"):
        parts.append(Text("Interrupted: the report holds what was measured until then.", style="bold yellow"))
    console.print(Group(*parts))
    _sweep(report, console)
