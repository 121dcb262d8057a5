"""GitLab Code Quality JSON of a ``hepaudit check`` result (``artifacts: reports: codequality:``).

GitLab reads a JSON array of Code Climate issues; it needs ``description``, ``check_name``,
``fingerprint``, ``severity`` (``info``, ``minor``, ``major``, ``critical`` or ``blocker``) and
``location.path`` with ``location.lines.begin``. Violations of the ratchet are ``major`` (``critical``
at twice the threshold or more); passing pre-existing debt is ``info``, so the widget can tell them
apart.

The fingerprint follows the SARIF one (rule, path and qualified name, so it survives line shifts)
and adds the metric's value: GitLab's merge-request widget lists an issue as new when its
fingerprint is absent from the target branch's report, so a function that got worse shows up as a
new issue (and its old value as resolved) instead of being hidden as unchanged. Functions that share
a path and a name (C++ overloads) get an occurrence number, so fingerprints stay unique.
"""

from __future__ import annotations

import hashlib
from typing import Any

from auditor.gate import Finding, GateResult

SEVERITIES = ("info", "minor", "major", "critical", "blocker")


def fingerprint(finding: Finding, occurrence: int = 0) -> str:
    function = finding.function
    parts = [finding.rule.id, function.path, function.qualified_name, str(finding.new)]
    if occurrence:
        parts.append(str(occurrence))
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def severity(finding: Finding, violation: bool) -> str:
    if not violation:
        return "info"
    return "critical" if finding.limit > 0 and finding.new >= 2 * finding.limit else "major"


def _issue(finding: Finding, violation: bool, print_: str) -> dict[str, Any]:
    function = finding.function
    begin = function.start_line or 1
    lines = {"begin": begin}
    if function.end_line and function.end_line >= begin:
        lines["end"] = function.end_line
    verdict = "new or worse than the baseline" if violation else "pre-existing debt, not worse than the baseline"
    return {
        "type": "issue",
        "engine_name": "hepaudit",
        "check_name": f"{finding.rule.id} {finding.rule.name}",
        "description": f"{function.qualified_name}: {finding.describe()}; {verdict}.",
        "categories": ["Complexity"],
        "severity": severity(finding, violation),
        "fingerprint": print_,
        "location": {"path": function.path, "lines": lines},
    }


def render(result: GateResult) -> list[dict[str, Any]]:
    """The Code Quality report (a JSON-ready list): violations first, then debt, worst first in each."""
    ranked = [(f, True) for f in result.violations] + [(f, False) for f in result.debt]
    issues: list[dict[str, Any]] = [{} for _ in ranked]
    seen: dict[str, int] = {}
    # Occurrence numbers follow the line within a (rule, path, name, value) group, not the ranking.
    order = sorted(range(len(ranked)), key=lambda i: (ranked[i][0].rule.id, ranked[i][0].function.path,
                                                      ranked[i][0].function.qualified_name, ranked[i][0].new,
                                                      ranked[i][0].function.start_line or 0))
    for index in order:
        finding, violation = ranked[index]
        base = fingerprint(finding)
        seen[base] = seen.get(base, -1) + 1
        issues[index] = _issue(finding, violation, fingerprint(finding, seen[base]))
    return issues
