"""Aggregates of an audit: per language, per top-level folder, grade counts and hotspots.

Pure functions over the per-file results, so every renderer shows the same numbers.
"""

from __future__ import annotations

import statistics
from typing import Any, Iterable, Sequence

from auditor.config import Thresholds

CC_GRADES = ("A", "B", "C", "D", "E", "F")
MI_GRADES = ("A", "B", "C")


def exceeded(function: dict[str, Any], language: str, limits: Thresholds) -> list[str]:
    """Names of the thresholds this function is above."""
    over = []
    if function["ccn"] > limits.ccn_for(language):
        over.append("ccn")
    if function.get("cognitive") is not None and function["cognitive"] > limits.cognitive:
        over.append("cognitive")
    if function["nloc"] > limits.nloc:
        over.append("nloc")
    if function["params"] > limits.params_for(language):
        over.append("params")
    if function["nesting"] > limits.nesting:
        over.append("nesting")
    return over


def _group(files: Iterable[dict[str, Any]], limits: Thresholds) -> dict[str, Any]:
    files = list(files)
    ccns: list[int] = []
    above = 0
    mis: list[float] = []
    mi_grades = dict.fromkeys(MI_GRADES, 0)
    for entry in files:
        for function in entry["functions"]:
            ccns.append(function["ccn"])
            above += function["ccn"] > limits.ccn_for(entry["language"])
        if entry.get("mi") is not None:
            mis.append(entry["mi"])
            mi_grades[entry["mi_grade"]] += 1
    group: dict[str, Any] = {
        "files": len(files),
        "functions": len(ccns),
        "nloc": sum(entry["sloc"] for entry in files),
        "mean_ccn": round(statistics.fmean(ccns), 3) if ccns else None,
        "max_ccn": max(ccns) if ccns else None,
        "functions_over_ccn_threshold": above,
        "share_over_ccn_threshold": round(above / len(ccns), 4) if ccns else None,
    }
    if mis:
        quartiles = statistics.quantiles(mis, n=4, method="inclusive") if len(mis) > 1 else [mis[0]] * 3
        group["mi"] = {"mean": round(statistics.fmean(mis), 3), "min": round(min(mis), 3),
                       "q1": round(quartiles[0], 3), "median": round(quartiles[1], 3),
                       "q3": round(quartiles[2], 3), "max": round(max(mis), 3), "grades": mi_grades}
    return group


def top_folder(rel: str) -> str:
    """The sub-project a file belongs to: its first path component, or '.' at the root."""
    head, sep, _ = rel.partition("/")
    return head if sep else "."


def aggregate(files: Sequence[dict[str, Any]], limits: Thresholds, top: int) -> dict[str, Any]:
    """Totals, per-language and per-folder groups, grade distributions and the worst functions."""
    by_language: dict[str, list[dict[str, Any]]] = {}
    by_folder: dict[str, list[dict[str, Any]]] = {}
    cc_grades = dict.fromkeys(CC_GRADES, 0)
    candidates = []
    for entry in files:
        by_language.setdefault(entry["language"], []).append(entry)
        by_folder.setdefault(top_folder(entry["path"]), []).append(entry)
        for function in entry["functions"]:
            cc_grades[function["grade"]] += 1
            over = exceeded(function, entry["language"], limits)
            candidates.append((function["ccn"], function.get("cognitive") or 0, function["nloc"],
                               entry["path"], function["start_line"], entry, function, over))
    candidates.sort(key=lambda c: (-c[0], -c[1], -c[2], c[3], c[4]))
    hotspots = [{
        "path": entry["path"], "language": entry["language"], **{k: function.get(k) for k in (
            "qualified_name", "start_line", "end_line", "ccn", "grade", "cognitive", "nloc",
            "params", "nesting")},
        "exceeds": over,
    } for *_, entry, function, over in candidates[:top]]
    flagged = sum(1 for c in candidates if c[-1])
    return {
        "total": {**_group(files, limits), "functions_over_any_threshold": flagged},
        "by_language": {name: _group(group, limits) for name, group in sorted(by_language.items())},
        "by_folder": {name: _group(group, limits) for name, group in sorted(by_folder.items())},
        "cc_grades": cc_grades,
        "hotspots": hotspots,
    }
