"""Rich console rendering of an audit report."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_GRADE_STYLE = {"A": "green", "B": "green", "C": "yellow", "D": "dark_orange", "E": "red", "F": "bold red"}


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _summary_panel(report: dict[str, Any]) -> Panel:
    total = report["summary"]["total"]
    perf = report["performance"]
    cache = report["cache"]
    lines = Text()
    lines.append(f"{report['root']}\n", style="bold")
    lines.append(f"{total['files']:,} files analysed, {len(report['not_analysed']):,} not analysed · "
                 f"{total['functions']:,} functions · {total['nloc']:,} lines of code\n")
    lines.append(f"Mean CCN {_num(total['mean_ccn'], 2)}, max {_num(total['max_ccn'])} · "
                 f"{total['functions_over_ccn_threshold']:,} functions over the CCN threshold "
                 f"({_num((total['share_over_ccn_threshold'] or 0) * 100, 1)} %) · "
                 f"{total['functions_over_any_threshold']:,} over any threshold\n")
    if "mi" in total:
        mi = total["mi"]
        lines.append(f"Maintainability index (Python): median {mi['median']:.1f}, min {mi['min']:.1f}\n")
    pylint = report["pylint"]
    if pylint["mode"] != "off":
        lines.append(f"pylint ({pylint['mode']}): score {_num(pylint['score'], 2)}/10, "
                     f"{_num(pylint['score_without_environment'], 2)}/10 without "
                     f"{' and '.join(pylint['environment_messages'])}\n")
    cached = f"{cache['hits']:,} from cache" if cache["enabled"] else "cache off"
    lines.append(f"{perf['seconds']['total']:.2f} s with {perf['jobs']} worker(s), {cached}",
                 style="dim")
    return Panel(lines, title="hepaudit audit", border_style="cyan", expand=False)


def _group_table(title: str, groups: dict[str, Any], first: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column(first, overflow="fold", ratio=1)
    for name in ("Files", "Funcs", "NLOC", "CCN mean", "CCN max", "Over CCN", "MI med"):
        table.add_column(name, justify="right", no_wrap=True)
    for name, group in groups.items():
        share = group["share_over_ccn_threshold"]
        table.add_row(name, _num(group["files"]), _num(group["functions"]), _num(group["nloc"]),
                      _num(group["mean_ccn"], 2), _num(group["max_ccn"]),
                      f"{share * 100:.1f} %" if share is not None else "–",
                      _num(group["mi"]["median"]) if "mi" in group else "–")
    return table


def _grades(report: dict[str, Any]) -> Table:
    table = Table(title="Grade distribution", box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("Scale")
    grades = report["summary"]["cc_grades"]
    for grade in grades:
        table.add_column(grade, justify="right", style=_GRADE_STYLE[grade])
    table.add_row("Cyclomatic complexity (functions)", *[_num(v) for v in grades.values()])
    mi = report["summary"]["total"].get("mi")
    if mi:
        table.add_row("Maintainability index (Python files)", *[_num(v) for v in mi["grades"].values()], "", "", "")
    return table


def _hotspots(report: dict[str, Any]) -> Table:
    table = Table(title=f"Top {len(report['summary']['hotspots'])} functions by complexity "
                        "(* = over a threshold)", box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("Function", overflow="fold", ratio=3)
    table.add_column("Where", overflow="fold", ratio=3)
    for name in ("CCN", "Cog", "NLOC", "Args", "Nest"):
        table.add_column(name, justify="right", no_wrap=True)
    for spot in report["summary"]["hotspots"]:
        over = set(spot["exceeds"])

        def cell(key: str, value: Any) -> Text:
            return Text(_num(value) + ("*" if key in over else " "), style="bold" if key in over else "")

        star = "*" if "ccn" in over else " "
        ccn = Text(f"{spot['ccn']}{star} {spot['grade']}", style=_GRADE_STYLE[spot["grade"]])
        table.add_row(spot["qualified_name"], f"{spot['path']}:{spot['start_line']}", ccn,
                      cell("cognitive", spot["cognitive"]), cell("nloc", spot["nloc"]),
                      cell("params", spot["params"]), cell("nesting", spot["nesting"]))
    return table


def _not_analysed(report: dict[str, Any], limit: int = 5) -> Table:
    table = Table(title=f"Not analysed ({len(report['not_analysed']):,} files)", box=box.SIMPLE_HEAVY,
                  title_justify="left")
    table.add_column("Reason", overflow="fold")
    table.add_column("Files", justify="right")
    table.add_column("Examples", overflow="fold")
    reasons: dict[str, list[str]] = {}
    for entry in report["not_analysed"]:
        reasons.setdefault(_reason_kind(entry["reason"]), []).append(f"{entry['path']}: {entry['reason']}")
    for reason, items in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        more = f"\n… and {len(items) - limit:,} more" if len(items) > limit else ""
        table.add_row(reason, f"{len(items):,}", "\n".join(items[:limit]) + more)
    return table


def _reason_kind(reason: str) -> str:
    """Group reasons that differ only in their details (line numbers, sizes)."""
    for marker in (":", " ("):
        if marker in reason:
            reason = reason.split(marker, 1)[0]
    return reason


def _pylint(report: dict[str, Any], limit: int = 10) -> Table:
    pylint = report["pylint"]
    table = Table(title=f"pylint messages ({pylint['mode']} profile, {pylint['version']})",
                  box=box.SIMPLE_HEAVY, title_justify="left")
    table.add_column("Message")
    table.add_column("Count", justify="right")
    for symbol, count in list(pylint["messages_by_symbol"].items())[:limit]:
        table.add_row(symbol, f"{count:,}")
    return table


def render(report: dict[str, Any], console: Console | None = None) -> None:
    """Print the audit report."""
    console = console or Console()
    parts: list[Any] = [_summary_panel(report)]
    summary = report["summary"]
    parts.append(_group_table("By language", summary["by_language"], "Language"))
    if len(summary["by_folder"]) > 1:
        parts.append(_group_table("By top-level folder", summary["by_folder"], "Folder"))
    parts.append(_grades(report))
    if summary["hotspots"]:
        parts.append(_hotspots(report))
    if report["pylint"]["mode"] != "off" and report["pylint"]["messages_by_symbol"]:
        parts.append(_pylint(report))
    if report["not_analysed"]:
        parts.append(_not_analysed(report))
    if report["cache"]["problem"]:
        parts.append(Text(report["cache"]["problem"], style="yellow"))
    console.print(Group(*parts))
