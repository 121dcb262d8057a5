"""hepaudit profile: any command measured as one stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
from typer.testing import CliRunner

from auditor.cli import app
from auditor.render.json_report import schema

runner = CliRunner()


def test_profile_measures_time_memory_and_source_quality(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "job.py").write_text("def work(n):\n    if n:\n        return n\n    return 0\n")
    out = tmp_path / "out"
    code = "import numpy as np; x = np.ones(4_000_000); print(x.sum())"
    result = runner.invoke(app, ["profile", "--name", "job", "--repeats", "3", "--no-energy", "--source", str(source),
                                 "--out", str(out), "-q", "--", sys.executable, "-c", code])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    jsonschema.Draft202012Validator(schema("run-report.schema.json")).validate(report)
    device = report["chains"][0]["stages"][0]["devices"]["cpu"]
    assert device["status"] == "measured" and device["samples"] == 3
    assert device["time"]["value"] > 0 and device["cpu_time"]["method"] == "rusage"
    assert device["memory"]["host_peak_mb"] > 32  # the 32 MB array is resident at its peak
    assert device["quality"]["max_ccn"] == 2
    assert report["chains"][0]["source_audit"]["total"]["functions"] == 1


def test_failing_command_is_reported_with_its_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profile", "--no-energy", "--out", str(tmp_path / "o"), "-q", "--",
                                 sys.executable, "-c", "import sys; sys.exit('bad input file')"])
    assert result.exit_code == 1
    assert "exited with status 1" in result.output and "bad input file" in result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["chains"][0]["stages"][0]["devices"]["cpu"]["status"] == "failed"


def test_profile_bad_input(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["profile", "--no-energy", "--", "surely-not-a-program-xyz"])
    assert missing.exit_code == 2 and "was not found on PATH" in missing.output
    empty = runner.invoke(app, ["profile", "--no-energy", "--repeats", "0", "--", "true"])
    assert empty.exit_code == 2 and "--repeats" in empty.output
    source = runner.invoke(app, ["profile", "--no-energy", "--source", str(tmp_path / "nope"), "--out",
                                 str(tmp_path / "o"), "--", "true"])
    assert source.exit_code == 2 and "does not exist" in source.output


def test_profile_energy_with_a_counter(monkeypatch) -> None:
    from auditor import energy_meter
    from auditor.command_profile import profile_command
    from auditor.energy import CounterDiscovery
    from tests.auditor.test_energy_meter import WallCounter

    monkeypatch.setitem(energy_meter.WINDOWS, "normal", (0.3, 2))
    meter = energy_meter.EnergyMeter("normal")
    meter.discovery = CounterDiscovery((WallCounter(),), ())
    report = profile_command([sys.executable, "-c", "pass"], "noop", 2, meter, None)
    meter.close()
    energy = report["chains"][0]["stages"][0]["devices"]["cpu"]["energy"]
    assert energy["status"] in ("measured", "too short to measure"), energy
    assert energy["method"] == "rapl" and energy["windows"] >= 2
