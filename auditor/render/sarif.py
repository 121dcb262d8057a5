"""SARIF 2.1.0 of a ``hepaudit check`` result, for GitHub code scanning and other SARIF viewers.

Violations of the ratchet are ``error`` results (``baselineState`` ``new`` or ``updated``); passing
pre-existing debt follows as ``note`` results (``unchanged``), worst first within each, at most
:data:`MAX_RESULTS` in all (GitHub's upload limit per run is 25,000; a few thousand keeps the
upload fast and the alert list readable). Paths are relative to the working folder (the
repository root in CI); fingerprints identify a function by rule, path and qualified name, so an
alert survives edits that shift line numbers.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from auditor import __version__
from auditor.gate import RULES, Finding, GateResult

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
MAX_RESULTS = 5000

_RULE_HELP = {
    "ccn": "Number of independent paths through the function (McCabe); the threshold is per language.",
    "cognitive": "How hard the control flow is to follow (SonarSource cognitive complexity; Python only).",
    "nloc": "Lines of code in the function, without blank and comment lines.",
    "params": "Number of parameters; the threshold is per language.",
    "nesting": "Deepest nesting of control structures in the function.",
}
_STATE = {"new": "new", "worse": "updated", "unchanged": "unchanged", "better": "unchanged"}


def fingerprint(finding: Finding) -> str:
    identity = "\0".join((finding.rule.id, finding.function.path, finding.function.qualified_name))
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()


def _result(finding: Finding, violation: bool) -> dict[str, Any]:
    function = finding.function
    region: dict[str, int] = {}
    if function.start_line:
        region["startLine"] = function.start_line
        if function.end_line and function.end_line >= function.start_line:
            region["endLine"] = function.end_line
    physical: dict[str, Any] = {"artifactLocation": {"uri": quote(function.path, safe="/")}}
    if region:
        physical["region"] = region
    verdict = "is new or got worse" if violation else "is pre-existing debt (not worse than the baseline)"
    return {
        "ruleId": finding.rule.id,
        "ruleIndex": RULES.index(finding.rule),
        "level": "error" if violation else "note",
        "baselineState": _STATE[finding.status],
        "message": {"text": f"`{function.qualified_name}`: {finding.describe()}; it {verdict}."},
        "locations": [{
            "physicalLocation": physical,
            "logicalLocations": [{"fullyQualifiedName": function.qualified_name, "kind": "function"}],
        }],
        "fingerprints": {"hepaudit/function/v1": fingerprint(finding)},
        "properties": {"metric": finding.rule.metric, "value": finding.new, "baseline": finding.old,
                       "threshold": finding.limit, "status": finding.status, "language": function.language},
    }


def render(result: GateResult, max_results: int = MAX_RESULTS) -> dict[str, Any]:
    """The SARIF log (a JSON-ready dict) of a gate result."""
    ranked = [(f, True) for f in result.violations] + [(f, False) for f in result.debt]
    kept = ranked[:max_results]
    rules = [{
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": f"Function {rule.title} above the threshold, new or worse than the baseline"},
        "fullDescription": {"text": _RULE_HELP[rule.metric]},
        "defaultConfiguration": {"level": "error"},
        "properties": {"metric": rule.metric, "tags": ["maintainability"]},
    } for rule in RULES]
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if len(ranked) > len(kept):
        invocation["toolExecutionNotifications"] = [{
            "level": "warning",
            "message": {"text": f"{len(ranked) - len(kept)} of {len(ranked)} results were left out "
                                f"(at most {max_results}, worst first)."},
        }]
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": {"name": "hepaudit", "version": __version__, "semanticVersion": __version__,
                                "rules": rules}},
            "invocations": [invocation],
            "results": [_result(finding, violation) for finding, violation in kept],
            "columnKind": "unicodeCodePoints",
            "properties": {"violations": len(result.violations), "debt": len(result.debt),
                           "truncated": len(ranked) > len(kept)},
        }],
    }
