"""Rendering of a sweep's scaling analysis: console tables, Markdown, and log-log plots."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from auditor.render.units import seconds_text


def _groups(series: Sequence[Mapping[str, Any]]) -> dict[tuple, list[Mapping[str, Any]]]:
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for item in series:
        fixed = ", ".join(f"{k}={v}" for k, v in item["fixed"].items())
        groups.setdefault((item["chain"], item["node_type"] or "this machine", item["parameter"], fixed), []).append(item)
    return groups


def exponent_text(fit: Mapping[str, Any] | None) -> str:
    if fit is None:
        return "–"
    error = fit.get("exponent_stderr")
    return f"{fit['exponent']:.2f}" + (f" ± {error:.2f}" if error is not None else " (2 points)")


def _time(point: Mapping[str, Any]) -> str:
    text = seconds_text({"value": point["time_s"], "low": point["low"], "high": point["high"]})
    return text + ("*" if point["concurrent"] else "")


def _rows(items: Sequence[Mapping[str, Any]], values: Sequence[Any]) -> list[list[str]]:
    rows = []
    for item in items:
        by_value = {p["value"]: p for p in item["points"]}
        cells = [_time(by_value[v]) if v in by_value else "–" for v in values]
        rows.append([item["stage"], item["device"].upper(), *cells, exponent_text(item["fit"])])
    return rows


def _values(items: Sequence[Mapping[str, Any]]) -> list[Any]:
    return sorted({p["value"] for item in items for p in item["points"]})


def _title(key: tuple) -> str:
    chain, kind, parameter, fixed = key
    return f"{chain} on {kind}: time per event versus {parameter}" + (f" ({fixed})" if fixed else "")


def render_console(sweep: Mapping[str, Any], console: Console) -> None:
    for key, items in _groups(sweep["scaling"]).items():
        values = _values(items)
        table = Table(title=_title(key), box=box.SIMPLE_HEAVY, title_justify="left")
        for name in ("Stage", "Device", *(f"{key[2]}={v}" for v in values), "Exponent k"):
            table.add_column(name, justify="left" if name in ("Stage", "Device") else "right")
        for row in _rows(items, values):
            table.add_row(*row)
        console.print(table)
    if any(p["concurrent"] for item in sweep["scaling"] for p in item["points"]):
        console.print("[dim]* measured while other units ran on the same host or GPU[/]")
    for path in sweep.get("plots", []):
        console.print(f"[dim]plot: {path}[/]")


def markdown_lines(sweep: Mapping[str, Any]) -> list[str]:
    lines = ["## Sweep: scaling with the grid parameters", "",
             "Time per event; the exponent k of a power-law fit time = a · value^k (± standard error).", ""]
    for key, items in _groups(sweep["scaling"]).items():
        values = _values(items)
        header = ["Stage", "Device", *(f"{key[2]}={v}" for v in values), "k"]
        lines += [f"### {_title(key)}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in _rows(items, values)]
        lines.append("")
    return lines


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60]


def _plot_series(axes: Any, item: Mapping[str, Any], colour: str) -> None:
    """One stage on one device: measured points with their interval, solid for CPU, dashed otherwise."""
    points = item["points"]
    values = [p["time_s"] for p in points]
    lows = [v - (p["low"] if p["low"] is not None else v) for v, p in zip(values, points)]
    highs = [(p["high"] if p["high"] is not None else v) - v for v, p in zip(values, points)]
    axes.errorbar([p["value"] for p in points], values, yerr=[lows, highs], marker="o", capsize=3, color=colour,
                  linestyle="-" if item["device"] == "cpu" else "--",
                  label=f"{item['stage']} {item['device'].upper()} (k={exponent_text(item['fit'])})")


def write_plots(sweep: Mapping[str, Any], folder: Path) -> list[str]:
    """One log-log PNG per chain, node type and parameter; the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for index, (key, items) in enumerate(_groups(sweep["scaling"]).items()):
        figure, axes = plt.subplots(figsize=(8, 5))
        colours = {stage: f"C{n % 10}" for n, stage in enumerate(dict.fromkeys(i["stage"] for i in items))}
        for item in items:
            _plot_series(axes, item, colours[item["stage"]])
        axes.set(xscale="log", yscale="log", xlabel=key[2], ylabel="time per event (s)")
        axes.set_title(_title(key).replace(": ", ":\n", 1), fontsize=9)
        axes.legend(fontsize=7, ncol=2)
        figure.tight_layout()
        name = f"scaling-{index + 1}-{_slug(key[0])}-{_slug(key[2])}.png"
        figure.savefig(folder / name, dpi=120)
        plt.close(figure)
        written.append(name)
    return written
