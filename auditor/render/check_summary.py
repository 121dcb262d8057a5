"""Markdown job summary of a ``hepaudit check`` result (e.g. ``--summary "$GITHUB_STEP_SUMMARY"``).

The verdict, every offender (rule, function, place, old -> new, threshold), then the 20 worst
pre-existing findings of each top-level folder in a ``<details>`` block. GitHub rejects a step
summary over 1 MiB, so rows are added while they fit under :data:`MAX_BYTES` and what was left out
is said; the SARIF and JUnit outputs keep every offender.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from auditor.gate import Finding, GateResult
from auditor.render.markdown import MAX_BYTES

TOP_DEBT = 20
MAX_CELL = 300


def _cell(text: str, code: bool = False) -> str:
    text = str(text).replace("\n", " ").replace("|", "\\|")
    if len(text) > MAX_CELL:
        text = text[:MAX_CELL - 1] + "…"
    if code:
        text = text.replace("`", "'")
        return f"`{text}`"
    return text


def _folder(path: str) -> str:
    head, sep, _ = path.partition("/")
    return head if sep and head not in ("", ".") else "."


def _row(finding: Finding) -> str:
    function = finding.function
    change = f"{finding.new} (new)" if finding.old is None else f"{finding.old} → {finding.new}"
    moved = f" (formerly {_cell(finding.was, code=True)})" if finding.was else ""
    return (f"| {finding.rule.id} {finding.rule.name} | {_cell(function.qualified_name, code=True)}{moved} | "
            f"{_cell(f'{function.path}:{function.start_line or 0}', code=True)} | {change} | {finding.limit} |")


HEADER = ["| Rule | Function | Place | Old → new | Threshold |", "|---|---|---|--:|--:|"]


def _verdict(result: GateResult, accepting: bool) -> str:
    offenders = len({(f.function.path, f.function.qualified_name, f.function.start_line) for f in result.violations})
    if result.passed:
        return "✅ **hepaudit check passed**: no function is new or worse above a threshold."
    if accepting:
        return (f"⚠️ **{len(result.violations):,} regression(s) in {offenders:,} function(s) accepted** "
                "as debt in the new baseline (--update-baseline).")
    return f"❌ **hepaudit check failed**: {len(result.violations):,} regression(s) in {offenders:,} function(s)."


def _head(result: GateResult, baseline: Path | str, report: dict[str, Any] | None, accepting: bool) -> list[str]:
    lines = ["## hepaudit check", "", _verdict(result, accepting), "",
             f"{result.compared:,} functions compared, {result.matched:,} found in `{_cell(str(baseline))}`, "
             f"{result.removed:,} baseline functions gone, {len(result.debt):,} pre-existing finding(s) not worse.", ""]
    notes = []
    if result.moved:
        notes.append(f"Followed {len(result.moved):,} moved or renamed function(s).")
    if result.threshold_changes:
        notes.append(f"Thresholds differ from the baseline's: {_cell(', '.join(result.threshold_changes))}.")
    if report is not None and report.get("not_analysed"):
        notes.append(f"{len(report['not_analysed']):,} file(s) could not be analysed; their functions are not gated.")
    return lines + [line for note in notes for line in (note, "")]


class _Budget:
    """Markdown parts added whole while they fit in a byte budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.used = 0

    def add(self, lines: list[str]) -> bool:
        text = "\n".join(lines) + "\n"
        size = len(text.encode("utf-8"))
        if self.used + size > self.limit:
            return False
        self.parts.append(text)
        self.used += size
        return True


def _offenders(budget: _Budget, violations: list[Finding]) -> int:
    """Add the offenders table; how many rows did not fit."""
    if not violations:
        return 0
    budget.add(["### Offenders", "", *HEADER])
    for index, finding in enumerate(violations):
        if not budget.add([_row(finding)]):
            return len(violations) - index
    budget.add([""])
    return 0


def _debt(budget: _Budget, debt: list[Finding]) -> int:
    """Add one ``<details>`` block per top-level folder; how many folders did not fit."""
    by_folder: dict[str, list[Finding]] = defaultdict(list)
    for finding in debt:  # already worst first
        by_folder[_folder(finding.function.path)].append(finding)
    budget.add(["### Pre-existing findings (not worse than the baseline)", ""])
    for number, (folder, findings) in enumerate(sorted(by_folder.items())):
        shown = findings[:TOP_DEBT]
        name = f"{_cell(folder)}/" if folder != "." else "top level"
        title = f"{name}: {len(findings):,} finding(s)" + (f", the {len(shown)} worst shown" if len(findings) > len(shown) else "")
        if not budget.add([f"<details><summary>{title}</summary>", "", *HEADER, *map(_row, shown), "", "</details>", ""]):
            return len(by_folder) - number
    return 0


def render(result: GateResult, baseline: Path | str, report: dict[str, Any] | None = None,
           accepting: bool = False, max_bytes: int = MAX_BYTES) -> str:
    """The summary as GitHub-flavoured Markdown, at most ``max_bytes`` bytes of UTF-8."""
    budget = _Budget(max_bytes - 512)  # room for the truncation note
    budget.add(_head(result, baseline, report, accepting))
    left_out = _offenders(budget, result.violations)
    what = [f"{left_out:,} of {len(result.violations):,} offenders"] if left_out else []
    if result.debt and left_out:
        what.append("the pre-existing findings")
    elif result.debt:
        folders = _debt(budget, result.debt)
        if folders:
            what.append(f"the pre-existing findings of {folders:,} folder(s)")
    text = "".join(budget.parts)
    if what:
        text += (f"\n_Summary truncated to fit GitHub's 1 MiB step-summary limit: {' and '.join(what)} "
                 "left out; the SARIF and JUnit outputs list every offender._\n")
    return text
