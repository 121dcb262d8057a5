"""Markdown rendering of an audit report, sized for a CI job summary (GitHub caps them at 1 MiB)."""

from __future__ import annotations

from typing import Any

MAX_BYTES = 1024 * 1024 - 4096


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value).replace("|", "\\|")


def _groups(title: str, first: str, groups: dict[str, Any]) -> list[str]:
    lines = [f"### {title}", "", f"| {first} | Files | Functions | NLOC | Mean CCN | Max CCN | Over CCN threshold | MI median |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for name, group in groups.items():
        share = group["share_over_ccn_threshold"]
        over = f"{group['functions_over_ccn_threshold']:,} ({share * 100:.1f} %)" if share is not None else "–"
        lines.append(f"| {_cell(name)} | {_cell(group['files'])} | {_cell(group['functions'])} | "
                     f"{_cell(group['nloc'])} | {_cell(group['mean_ccn'])} | {_cell(group['max_ccn'])} | "
                     f"{over} | {_cell(group['mi']['median'], 1) if 'mi' in group else '–'} |")
    return lines + [""]


def render(report: dict[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown, truncated (with a note) to fit a job summary."""
    summary = report["summary"]
    total = summary["total"]
    pylint = report["pylint"]
    lines = ["## hepaudit audit", "",
             f"**{_cell(report['root'])}**: {total['files']:,} files analysed, "
             f"{len(report['not_analysed']):,} not analysed, {total['functions']:,} functions, "
             f"{total['nloc']:,} lines of code. Mean CCN {_cell(total['mean_ccn'])}, max {_cell(total['max_ccn'])}; "
             f"{total['functions_over_any_threshold']:,} functions over a threshold.", ""]
    if pylint["mode"] != "off":
        lines += [f"pylint ({pylint['mode']}, {pylint['version']}): **{_cell(pylint['score'])}/10**, "
                  f"{_cell(pylint['score_without_environment'])}/10 without {', '.join(pylint['environment_messages'])}.", ""]
    lines += _groups("By language", "Language", summary["by_language"])
    if len(summary["by_folder"]) > 1:
        lines += _groups("By top-level folder", "Folder", summary["by_folder"])
    grades = summary["cc_grades"]
    lines += ["### Grades", "", "| Scale | " + " | ".join(grades) + " |", "|---|" + "--:|" * len(grades),
              "| Cyclomatic complexity | " + " | ".join(_cell(v) for v in grades.values()) + " |"]
    if "mi" in total:
        lines.append("| Maintainability index (Python) | " + " | ".join(_cell(v) for v in total["mi"]["grades"].values())
                     + " | | | |")
    lines.append("")
    if summary["hotspots"]:
        lines += ["### Hotspots", "", "| Function | Where | CCN | Grade | Cognitive | NLOC | Params | Nesting | Over |",
                  "|---|---|--:|:-:|--:|--:|--:|--:|---|"]
        for spot in summary["hotspots"]:
            lines.append(f"| `{_cell(spot['qualified_name'])}` | `{spot['path']}:{spot['start_line']}` | {spot['ccn']} | "
                         f"{spot['grade']} | {_cell(spot['cognitive'])} | {spot['nloc']} | {spot['params']} | "
                         f"{spot['nesting']} | {', '.join(spot['exceeds'])} |")
        lines.append("")
    if report["not_analysed"]:
        lines += [f"<details><summary>Not analysed: {len(report['not_analysed']):,} files</summary>", "",
                  "| File | Reason |", "|---|---|"]
        lines += [f"| `{entry['path']}` | {_cell(entry['reason'])} |" for entry in report["not_analysed"]]
        lines += ["", "</details>", ""]
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > MAX_BYTES:
        cut = text.encode()[:MAX_BYTES].decode(errors="ignore").rsplit("\n", 1)[0]
        text = cut + "\n\n_Report truncated to fit a 1 MiB job summary; the JSON report has everything._\n"
    return text
