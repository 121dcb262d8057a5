"""A self-contained HTML page of a history report: trend plots (inline matplotlib SVG) and tables."""

from __future__ import annotations

import html
import math
from typing import Any

from auditor.render.history_console import trend_rows
from auditor.render.run_html import STYLE, _svg, _table

#: (group key, axis label) of the plotted series.
PLOTS = (
    ("nloc", "lines of code (NLOC)"),
    ("mean_ccn", "mean cyclomatic complexity"),
    ("functions_over_ccn_threshold", "functions over the CCN threshold"),
    ("mi_median", "median maintainability index (Python)"),
)


def _num(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


def _series(report: dict[str, Any], key: str) -> list[tuple[str, list[float]]]:
    """Per sub-project (and the total): ``key`` per commit, NaN where it is missing."""
    return [(name, [float("nan") if g is None or g.get(key) is None else g[key] for g in series])
            for name, _, _, series in trend_rows(report)]


def _plot(report: dict[str, Any], key: str, label: str) -> str | None:
    """One line per sub-project and a thicker one for the total, over the commits."""
    lines = _series(report, key)
    if all(math.isnan(v) for _, values in lines for v in values):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.2))
    x = list(range(len(report["commits"])))
    for name, values in lines:
        axis.plot(x, values, marker="o", markersize=2, linewidth=2 if name == "(total)" else 1,
                  color="black" if name == "(total)" else None, label=name)
    ticks = x[:: max(1, len(x) // 10)]
    axis.set_xticks(ticks, [report["commits"][i]["sha"][:7] for i in ticks], rotation=30, fontsize=7)
    axis.set_xlabel("commit (oldest → newest)")
    axis.set_ylabel(label)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _svg(figure)


def _trend_table(report: dict[str, Any]) -> str:
    header = ["sub-project", "files", "functions", "NLOC", "mean CCN", "max CCN", "over CCN threshold", "MI median"]
    keys = ("files", "functions", "nloc", "mean_ccn", "max_ccn", "functions_over_ccn_threshold", "mi_median")
    rows = []
    for name, first, last, _ in trend_rows(report):
        rows.append([name, *(f"{_num(None if first is None else first.get(k))} → {_num(None if last is None else last.get(k))}"
                             for k in keys)])
    return _table(header, rows)


def _movers_table(movers: dict[str, Any]) -> str:
    rows = [[m["qualified_name"], m["path"], f"{m['ccn_first']} → {m['ccn_last']}", f"{m['delta_ccn']:+d}",
             f"{m['nloc_first']} → {m['nloc_last']}"] for m in movers["changed"]]
    return _table(["function", "file", "CCN", "Δ CCN", "NLOC"], rows)


def _commits_table(report: dict[str, Any]) -> str:
    rows = [[c["sha"][:10], c["date"][:19], c["author"], c["subject"][:80], _num(c["total"].get("files")),
             _num(c["total"].get("functions")), _num(c["total"].get("nloc")), _num(c["total"].get("mean_ccn")),
             _num(c["total"].get("functions_over_ccn_threshold"))] for c in reversed(report["commits"])]
    return _table(["commit", "date", "author", "subject", "files", "functions", "NLOC", "mean CCN",
                   "over CCN threshold"], rows)


def render(report: dict[str, Any]) -> str:
    commits = report["commits"]
    parts = [f"<h1>hepaudit history: {html.escape(report['repository'])}</h1>"]
    if report["shallow"]["note"]:
        parts.append(f"<p class='note'>{html.escape(report['shallow']['note'])}</p>")
    if commits:
        parts.append(f"<p>Folder {html.escape(report['path'])}: {len(commits)} commits, "
                     f"{html.escape(commits[0]['sha'][:10])} ({html.escape(commits[0]['date'][:10])}) → "
                     f"{html.escape(commits[-1]['sha'][:10])} ({html.escape(commits[-1]['date'][:10])}).</p>")
        figures = [_plot(report, key, label) for key, label in PLOTS]
        parts += [f"<figure>{svg}</figure>" for svg in figures if svg]
        parts += ["<h2>Trend per sub-project (first → last commit)</h2>", _trend_table(report)]
        movers = report["movers"]
        parts += ["<h2>Top movers</h2>",
                  f"<p>{movers['changed_count']} functions changed CCN, {movers['added']} were added and "
                  f"{movers['removed']} removed (a moved file counts as removed and added).</p>",
                  _movers_table(movers), "<h2>Commits (newest first)</h2>", _commits_table(report)]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hepaudit history</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>\n")
