"""Rich console rendering of a history report: trend per sub-project and top movers."""

from __future__ import annotations

from typing import Any, Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

SPARK = "▁▂▃▄▅▆▇█"
#: Sparklines longer than this are sampled evenly.
SPARK_WIDTH = 10


def sparkline(values: Sequence[float | None]) -> str:
    """One block character per value, scaled between the series' minimum and maximum; a gap
    where the value is missing (the folder did not exist at that commit)."""
    present = [v for v in values if v is not None]
    if not present:
        return ""
    low, high = min(present), max(present)
    span = high - low
    return "".join(" " if v is None else SPARK[0 if span == 0 else round((v - low) / span * (len(SPARK) - 1))]
                   for v in values)


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _change(first: Any, last: Any, digits: int = 2) -> str:
    """The last value and its change since the first, red when it grew (more is worse here)."""
    if last is None:
        return "–" if first is None else "[dim]gone[/]"
    if first is None:
        return f"{_num(last, digits)}\n[dim]new[/]"
    delta = last - first
    if delta == 0:
        return _num(last, digits)
    style = "red" if delta > 0 else "green"
    shown = f"{delta:+,.{digits}f}" if isinstance(delta, float) else f"{delta:+,}"
    return f"{_num(last, digits)}\n[{style}]{shown}[/]"


def _sample(values: Sequence[Any], width: int) -> list[Any]:
    """At most ``width`` values, evenly spaced, always with the first and the last."""
    if len(values) <= width:
        return list(values)
    step = (len(values) - 1) / (width - 1)
    return [values[round(i * step)] for i in range(width)]


def trend_rows(report: dict[str, Any]) -> list[tuple[str, dict | None, dict | None, list]]:
    """Per sub-project (and the total): first and last commit's group and its commit series."""
    commits = report["commits"]
    names = sorted({name for commit in commits for name in commit["by_folder"]})
    rows = [("(total)", commits[0]["total"], commits[-1]["total"], [c["total"] for c in commits])]
    for name in names:
        series = [c["by_folder"].get(name) for c in commits]
        rows.append((name, series[0], series[-1], series))
    return rows


def _value(group: dict | None, key: str) -> Any:
    return None if group is None else group.get(key)


def _trend_table(report: dict[str, Any]) -> Table:
    table = Table(title="Trend per sub-project: last commit, change since the first", box=box.SIMPLE_HEAD,
                  pad_edge=False, title_justify="left", caption="CCN: mean cyclomatic complexity; over: functions over the "
                  "CCN threshold; MI: median maintainability index (Python)", caption_justify="left")
    table.add_column("sub-project", no_wrap=True, min_width=min(24, max(len(n) for n, *_ in trend_rows(report))))
    for header in ("files", "funcs", "NLOC", "CCN", "over", "MI"):
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("CCN trend", no_wrap=True)
    for name, first, last, series in trend_rows(report):
        table.add_row(escape(name), *(_change(_value(first, key), _value(last, key), digits) for key, digits in _TREND_KEYS),
                      sparkline(_sample([_value(g, "mean_ccn") for g in series], SPARK_WIDTH)))
    return table


_TREND_KEYS = (("files", 0), ("functions", 0), ("nloc", 0), ("mean_ccn", 2), ("functions_over_ccn_threshold", 0),
               ("mi_median", 1))


def _movers_table(movers: dict[str, Any]) -> Table:
    table = Table(title="Top movers: functions whose CCN changed most", box=box.SIMPLE_HEAD, title_justify="left")
    for header in ("function", "file", "CCN", "Δ CCN", "NLOC"):
        table.add_column(header, justify="left" if header in ("function", "file") else "right")
    for mover in movers["changed"]:
        delta = mover["delta_ccn"]
        table.add_row(escape(mover["qualified_name"]), escape(mover["path"]),
                      f"{mover['ccn_first']} → {mover['ccn_last']}",
                      f"[{'red' if delta > 0 else 'green'}]{delta:+d}[/]",
                      f"{mover['nloc_first']} → {mover['nloc_last']}")
    return table


def header_lines(report: dict[str, Any]) -> list[str]:
    commits = report["commits"]
    first, last = commits[0], commits[-1]
    run = report["run"]
    return [
        f"{report['repository']} (folder {report['path']}): {len(commits)} commits, "
        f"{first['sha'][:10]} ({first['date'][:10]}) → {last['sha'][:10]} ({last['date'][:10]})",
        f"{run['commits_measured']} commits measured, {run['commits_from_database']} read from {report['database']}; "
        f"{run['blobs_read']} blobs read, {run['analysed']} contents analysed, {run['cache_hits']} from the cache; "
        f"{run['seconds']:.1f} s",
    ]


def render(report: dict[str, Any], console: Console) -> None:
    if report["shallow"]["note"]:
        console.print(f"[yellow]{escape(report['shallow']['note'])}[/]", highlight=False)
    if not report["commits"]:
        console.print("No commits to show.")
        return
    for line in header_lines(report):
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(_trend_table(report))
    movers = report["movers"]
    if movers["changed"]:
        console.print(_movers_table(movers))
    console.print(f"Between the first and last commit: {movers['changed_count']} functions changed CCN, "
                  f"{movers['added']} were added and {movers['removed']} removed (a moved file counts as removed "
                  "and added).", highlight=False)
