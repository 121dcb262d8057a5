"""Headline metrics of an audit report as github-action-benchmark's ``customSmallerIsBetter`` JSON.

The action reads a list of ``{"name", "unit", "value"}`` entries (``range`` and ``extra`` optional)
and charts each name over commits, alerting when a value rises by more than its ``alert-threshold``
ratio. Every entry here is smaller-is-better: mean and max CCN, functions over the CCN threshold and
over any threshold, and NLOC, for the whole tree, per language and per top-level folder. The
maintainability index is bigger-is-better, so it is given as ``100 - median MI`` (its shortfall from
the best score; the median itself is in ``extra``) so that a falling MI raises an alert too.
Values that do not exist (no functions, no Python) are left out rather than written as 0.
"""

from __future__ import annotations

from typing import Any

_METRICS = (
    # (key in the summary group, name, unit)
    ("mean_ccn", "mean CCN", "CCN"),
    ("max_ccn", "max CCN", "CCN"),
    ("functions_over_ccn_threshold", "functions over the CCN threshold", "functions"),
    ("functions_over_any_threshold", "functions over any threshold", "functions"),
    ("nloc", "NLOC", "lines"),
)


def _entries(scope: str, group: dict[str, Any]) -> list[dict[str, Any]]:
    extra = f"{group.get('files', 0):,} files, {group.get('functions', 0):,} functions"
    entries = []
    for key, name, unit in _METRICS:
        value = group.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            entries.append({"name": f"{name} [{scope}]", "unit": unit, "value": value, "extra": extra})
    mi = group.get("mi")
    if isinstance(mi, dict) and isinstance(mi.get("median"), (int, float)):
        entries.append({"name": f"100 - median MI [{scope}]", "unit": "MI points",
                        "value": round(100.0 - mi["median"], 3),
                        "range": f"MI q1 {mi['q1']:.1f}, q3 {mi['q3']:.1f}" if "q1" in mi and "q3" in mi else "",
                        "extra": f"median maintainability index {mi['median']:.1f} (Python files); {extra}"})
        if not entries[-1]["range"]:
            del entries[-1]["range"]
    return entries


def render(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries (a JSON-ready list) for the report's whole tree, languages and top-level folders."""
    summary = report["summary"]
    entries = _entries("all", summary["total"])
    for language, group in sorted(summary["by_language"].items()):
        entries += _entries(language, group)
    if len(summary["by_folder"]) > 1:
        for folder, group in sorted(summary["by_folder"].items()):
            entries += _entries(f"{folder}/" if folder != "." else "./", group)
    return entries
