"""CI outputs of ``hepaudit check``/``audit``: GitLab Code Quality, github-action-benchmark JSON, job summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import Thresholds
from auditor.gate import Function, compare
from auditor.render import benchmark_json, check_summary, gitlab
from tests.auditor.conftest import write

runner = CliRunner()
LIMITS = Thresholds()
MANY = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(12))


def fn(name: str, ccn: int, path: str = "pkg/a.py", line: int = 1, body: str | None = None, **metrics) -> Function:
    values = {"ccn": ccn, "cognitive": 0, "nloc": 5, "params": 1, "nesting": 1, **metrics}
    return Function(path=path, language="Python", qualified_name=name, body_hash=body or name, metrics=values,
                    start_line=line, end_line=line + 4)


def assert_code_quality(issues) -> None:
    """The structure GitLab's code-quality widget reads."""
    assert isinstance(issues, list)
    for issue in issues:
        assert isinstance(issue["description"], str) and issue["description"]
        assert isinstance(issue["check_name"], str) and issue["check_name"]
        assert isinstance(issue["fingerprint"], str) and len(issue["fingerprint"]) == 64
        assert issue["severity"] in gitlab.SEVERITIES
        assert isinstance(issue["location"]["path"], str) and not issue["location"]["path"].startswith("/")
        assert isinstance(issue["location"]["lines"]["begin"], int) and issue["location"]["lines"]["begin"] >= 1
    prints = [issue["fingerprint"] for issue in issues]
    assert len(prints) == len(set(prints)), "fingerprints must be unique"


def assert_benchmark(entries) -> None:
    """What github-action-benchmark's customSmallerIsBetter parser accepts."""
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert set(entry) <= {"name", "unit", "value", "range", "extra"}
        assert isinstance(entry["name"], str) and isinstance(entry["unit"], str)
        assert isinstance(entry["value"], (int, float)) and not isinstance(entry["value"], bool)
        for key in ("range", "extra"):
            assert isinstance(entry.get(key, ""), str)
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names))


# --- GitLab Code Quality -------------------------------------------------------------------------


def test_gitlab_severities_distinguish_violations_from_debt() -> None:
    result = compare([fn("debt", 14)], [fn("debt", 14), fn("new", 11, line=20), fn("huge", 25, line=40)], LIMITS)
    issues = gitlab.render(result)
    assert_code_quality(issues)
    by_name = {issue["description"].split(":")[0]: issue for issue in issues}
    assert {name: issue["severity"] for name, issue in by_name.items()} == {
        "huge": "critical", "new": "major", "debt": "info"}
    assert by_name["new"]["location"] == {"path": "pkg/a.py", "lines": {"begin": 20, "end": 24}}
    assert by_name["new"]["check_name"] == "HA001 cyclomatic-complexity"
    assert [i["severity"] for i in issues] == ["critical", "major", "info"]  # violations first, worst first


def test_gitlab_fingerprints_are_stable_over_line_shifts_and_change_when_worse() -> None:
    before = gitlab.render(compare([], [fn("f", 12, line=3), fn("g", 13)], LIMITS))
    shifted = gitlab.render(compare([], [fn("f", 12, line=50), fn("g", 13, line=90)], LIMITS))
    worse = gitlab.render(compare([], [fn("f", 14, line=3), fn("g", 13)], LIMITS))
    prints = lambda issues: {i["description"].split(":")[0]: i["fingerprint"] for i in issues}
    assert prints(before) == prints(shifted)
    assert prints(before)["g"] == prints(worse)["g"] and prints(before)["f"] != prints(worse)["f"]


def test_gitlab_fingerprints_stay_unique_for_overloads() -> None:
    overloads = [fn("ns::f", 12, path="src/a.cpp", line=line, body=f"b{line}") for line in (1, 10, 20)]
    issues = gitlab.render(compare([], overloads, LIMITS))
    assert len(issues) == 3
    assert_code_quality(issues)


def test_assert_code_quality_catches_broken_reports() -> None:
    issues = gitlab.render(compare([], [fn("f", 12), fn("g", 12, line=9)], LIMITS))
    broken = [dict(issues[0]), dict(issues[1], fingerprint=issues[0]["fingerprint"])]
    with pytest.raises(AssertionError):
        assert_code_quality(broken)
    with pytest.raises(KeyError):
        assert_code_quality([{k: v for k, v in issues[0].items() if k != "severity"}])


# --- job summary ---------------------------------------------------------------------------------


def test_summary_lists_offenders_and_debt_per_folder() -> None:
    baseline = [fn("grows", 11, path="src/a.py"), *[fn(f"d{i}", 11 + i, path="src/b.py", line=i * 10 + 1)
                                                   for i in range(25)], fn("tool", 30, path="tools/t.py")]
    current = [fn("grows", 13, path="src/a.py", body="x"), fn("fresh|pipe", 12, path="src/c.py", line=7),
               *baseline[1:]]
    text = check_summary.render(compare(baseline, current, LIMITS), "base.json")
    assert "❌ **hepaudit check failed**: 2 regression(s) in 2 function(s)." in text
    assert "| HA001 cyclomatic-complexity | `grows` | `src/a.py:1` | 11 → 13 | 10 |" in text
    assert "| `fresh\\|pipe` | `src/c.py:7` | 12 (new) | 10 |" in text
    assert "<details><summary>src/: 25 finding(s), the 20 worst shown</summary>" in text
    assert "<details><summary>tools/: 1 finding(s)</summary>" in text
    assert text.count("<details>") == text.count("</details>") == 2
    assert "`d24`" in text and "`d4`" not in text  # the 20 worst of src/
    assert "truncated" not in text


def test_summary_of_a_pass() -> None:
    text = check_summary.render(compare([fn("debt", 14)], [fn("debt", 14)], LIMITS), "base.json")
    assert "✅ **hepaudit check passed**" in text and "### Offenders" not in text


def test_summary_stays_under_one_mib_and_says_it_was_truncated() -> None:
    current = [fn(f"function_with_a_long_name_{i:06d}", 11 + i % 40, path=f"d{i % 7}/m{i}.py", line=i + 1)
               for i in range(30000)]
    result = compare([], current, LIMITS)
    text = check_summary.render(result, "base.json")
    size = len(text.encode("utf-8"))
    assert size <= 1024 * 1024 and size > 900 * 1024
    assert "Summary truncated to fit GitHub's 1 MiB step-summary limit" in text
    rows = sum(1 for line in text.splitlines() if line.startswith("| HA001"))
    assert f"{30000 - rows:,} of 30,000 offenders left out" in text
    assert text.endswith("_\n")


# --- github-action-benchmark --------------------------------------------------------------------


def report(folders: dict[str, dict]) -> dict:
    def group(mean, mx, over, nloc, mi=None):
        g = {"files": 2, "functions": 4, "nloc": nloc, "mean_ccn": mean, "max_ccn": mx,
             "functions_over_ccn_threshold": over, "share_over_ccn_threshold": 0.1, "functions_over_any_threshold": over}
        if mi is not None:
            g["mi"] = {"mean": mi, "min": 0, "q1": mi - 5, "median": mi, "q3": mi + 5, "max": 100, "grades": {}}
        return g
    return {"summary": {"total": group(3.5, 12, 1, 400, 62.5),
                        "by_language": {"Python": group(3.0, 12, 1, 300, 62.5), "C++": group(4.0, 8, 0, 100)},
                        "by_folder": {name: group(**g) for name, g in folders.items()}}}


def test_benchmark_entries_cover_totals_languages_and_folders() -> None:
    entries = benchmark_json.render(report({"src": {"mean": 3.0, "mx": 12, "over": 1, "nloc": 300},
                                            "empty": {"mean": None, "mx": None, "over": 0, "nloc": 0}}))
    assert_benchmark(entries)
    values = {entry["name"]: entry["value"] for entry in entries}
    assert values["mean CCN [all]"] == 3.5 and values["max CCN [all]"] == 12
    assert values["functions over the CCN threshold [Python]"] == 1 and values["NLOC [C++]"] == 100
    assert values["100 - median MI [all]"] == 37.5 and "100 - median MI [C++]" not in values
    assert values["max CCN [src/]"] == 12 and "mean CCN [empty/]" not in values  # no functions: no value
    assert "median maintainability index 62.5" in next(e["extra"] for e in entries if e["name"] == "100 - median MI [all]")


def test_single_folder_trees_have_no_folder_entries() -> None:
    entries = benchmark_json.render(report({".": {"mean": 3.5, "mx": 12, "over": 1, "nloc": 400}}))
    assert not any(entry["name"].endswith("/]") for entry in entries)


# --- the command line ----------------------------------------------------------------------------


def test_check_writes_all_ci_outputs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "src/pkg/a.py", f"def debt(x):\n{MANY}    return 0\n")
    write(tmp_path, "src/tools/b.py", "def small(x):\n    return x\n")
    assert runner.invoke(app, ["check", "src", "--baseline", "base.json", "--update-baseline", "--no-cache"]).exit_code == 0
    write(tmp_path, "src/pkg/a.py", f"def debt(x):\n{MANY}    return 0\n\n\ndef fresh(a, b, c, d, e, f):\n    return a\n")
    result = runner.invoke(app, ["check", "src", "--baseline", "base.json", "--no-cache", "--gitlab", "out/gl.json",
                                 "--summary", "out/summary.md", "--benchmark-json", "out/bench.json"])
    assert result.exit_code == 1, result.output
    issues = json.loads((tmp_path / "out/gl.json").read_text())
    assert_code_quality(issues)
    assert [(i["check_name"], i["severity"], i["location"]["path"]) for i in issues] == [
        ("HA004 parameter-count", "major", "src/pkg/a.py"), ("HA001 cyclomatic-complexity", "info", "src/pkg/a.py")]
    summary = (tmp_path / "out/summary.md").read_text()
    assert "hepaudit check failed" in summary and "`src/pkg/a.py:29`" in summary
    entries = json.loads((tmp_path / "out/bench.json").read_text())
    assert_benchmark(entries)
    names = {e["name"] for e in entries}
    assert {"max CCN [all]", "NLOC [Python]", "100 - median MI [all]"} <= names


def test_audit_writes_benchmark_json(tmp_path: Path) -> None:
    write(tmp_path, "src/a.py", f"def debt(x):\n{MANY}    return 0\n")
    write(tmp_path, "lib/b.py", "def small(x):\n    return x\n")
    result = runner.invoke(app, ["audit", str(tmp_path), "--no-cache", "--pylint", "off", "-q",
                                 "--benchmark-json", str(tmp_path / "bench.json")])
    assert result.exit_code == 0, result.output
    entries = json.loads((tmp_path / "bench.json").read_text())
    assert_benchmark(entries)
    values = {e["name"]: e["value"] for e in entries}
    assert values["max CCN [all]"] == 13 and values["max CCN [src/]"] == 13 and values["max CCN [lib/]"] == 1


@pytest.mark.parametrize("option", ["--gitlab", "--summary", "--benchmark-json"])
def test_bad_destination_is_one_sentence_and_exit_2(tmp_path: Path, monkeypatch, option: str) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "src/a.py", "def f(x):\n    return x\n")
    write(tmp_path, "blocker", "a file, not a folder")
    assert runner.invoke(app, ["check", "src", "--baseline", "base.json", "--update-baseline", "--no-cache"]).exit_code == 0
    result = runner.invoke(app, ["check", "src", "--baseline", "base.json", "--no-cache", option, "blocker/out"])
    assert result.exit_code == 2, result.output
    assert "Cannot write the" in result.output and "Traceback" not in result.output
