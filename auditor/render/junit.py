"""JUnit XML of a ``hepaudit check`` result: one test case per gate (metric), as CI test reports
(GitLab, Jenkins, GitHub test-report actions) read it. A failing case lists every offending
function with its old and new value and the threshold."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from auditor.gate import RULES, GateResult


def render(result: GateResult, seconds: float = 0.0) -> str:
    cases = []
    failures = 0
    for rule in RULES:
        offenders = [f for f in result.violations if f.rule is rule]
        case = ET.Element("testcase", {"classname": "hepaudit.check.static", "name": f"{rule.id} {rule.name}",
                                       "time": "0"})
        if offenders:
            failures += 1
            failure = ET.SubElement(case, "failure", {
                "type": rule.id,
                "message": (f"{len(offenders)} function{'s' if len(offenders) != 1 else ''} new or worse "
                            f"and above the {rule.title} threshold"),
            })
            failure.text = "\n".join(f"{f.function.path}:{f.function.start_line or 0}: {f.function.qualified_name}: "
                                     f"{f.describe()} [{f.status}]" for f in offenders)
        else:
            passed = sum(1 for f in result.debt if f.rule is rule)
            ET.SubElement(case, "system-out").text = (
                f"No function is new or worse above the threshold; {passed} pre-existing above it.")
        cases.append(case)
    suites = ET.Element("testsuites", {"name": "hepaudit check", "tests": str(len(cases)),
                                       "failures": str(failures), "errors": "0", "time": f"{seconds:.3f}"})
    suite = ET.SubElement(suites, "testsuite", {"name": "hepaudit.check.static", "tests": str(len(cases)),
                                                "failures": str(failures), "errors": "0", "skipped": "0",
                                                "time": f"{seconds:.3f}"})
    suite.extend(cases)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
