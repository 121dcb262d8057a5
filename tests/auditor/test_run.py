"""hepaudit run on a real (small) chain registered through the public API."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

from auditor import Agreement, Chain
from auditor.cli import app
from auditor.devices import gpu_status
from auditor.profiler import ProfileOptions, _agreement, profile_chain
from auditor.render.json_report import schema
from auditor.run import run_chains
from tests.auditor.demo_chain import build_demo_chain

runner = CliRunner()
QUICK = ProfileOptions(mode="quick", devices=("cpu",))


def _validate(report: dict) -> None:
    jsonschema.Draft202012Validator(schema("run-report.schema.json"),
                                    format_checker=jsonschema.FormatChecker()).validate(report)


def test_demo_chain_is_measured_ranked_and_valid() -> None:
    report = run_chains([build_demo_chain()], QUICK)
    _validate(report)
    chain = report["chains"][0]
    assert [s["name"] for s in chain["stages"]] == ["radius", "order", "histogram"]
    for stage in chain["stages"]:
        cpu = stage["devices"]["cpu"]
        assert cpu["status"] == "measured"
        assert cpu["samples"] >= 5 and cpu["time"]["value"] > 0
        assert cpu["time"]["low"] <= cpu["time"]["value"] <= cpu["time"]["high"]
        assert cpu["quality"]["status"] == "analysed" and cpu["quality"]["max_ccn"] >= 1
        assert stage["devices"]["gpu"]["quality"]["status"] == "analysed"  # the port's code is audited too
    assert chain["product_bytes"]["points"] == 5_000 * 3 * 8  # one event
    ranking = chain["ranking"]
    assert {e["stage"] for e in ranking["by_time"]} == {"radius", "order", "histogram"}
    assert ranking["by_time"][0]["stage"] == "order"  # a sort costs more than a square root
    assert len(ranking["act_first"]) == 3


@pytest.mark.skipif(gpu_status()[0], reason="checks the report on a machine without a GPU")
def test_without_gpu_the_gpu_columns_say_why() -> None:
    report = run_chains([build_demo_chain()], ProfileOptions(mode="quick"))
    gpu = report["chains"][0]["stages"][0]["devices"]["gpu"]
    assert gpu["status"] == "unavailable" and "GPU" in gpu["reason"]
    assert report["chains"][0]["transfers"] == []


def _events(parameters):
    for seed in range(2):
        yield {"x": np.arange(1000, dtype=np.float64) + seed}


def test_failing_stage_is_reported_and_the_run_goes_on() -> None:
    chain = Chain("broken", inputs=_events)
    chain.add_stage("double", lambda x: 2 * x, inputs=["x"], outputs=["y"])
    chain.add_stage("explode", lambda y: y[10**9], inputs=["y"], outputs=["z"])
    chain.add_stage("after", lambda z: z + 1, inputs=["z"], outputs=["w"])
    chain.add_stage("side", lambda y: y.sum(), inputs=["y"], outputs=["total"])
    result = profile_chain(chain, QUICK)
    status = {s["name"]: s["status"] for s in result["stages"]}
    assert status["double"] == status["side"] == "measured"
    assert status["explode"].startswith("failed: IndexError")
    assert "test_run.py" in status["explode"]
    assert status["after"] == "skipped: needs z from a failed stage"


def test_agreement_uses_the_comparator_per_event() -> None:
    chain = Chain("cmp", inputs=_events)
    chain.add_stage("round", lambda x: np.round(x * 1.0001, 1), inputs=["x"], outputs=["r"])
    stage = chain.stages["round"]
    stage.reference_device = "gpu"  # pretend the reference ran elsewhere, to compare the CPU with it

    @chain.comparator("round")
    def compare(reference, other):
        same = float(np.mean(reference["r"] == other["r"]))
        return Agreement.from_rates({"exact": same, "loose": 1.0}, headline="exact")

    inputs = [{"x": e["x"]} for e in _events({})]
    reference = [{"r": np.round(e["x"], 1)} for e in inputs]
    agreement = _agreement(stage, "cpu", inputs, reference)
    assert agreement["headline"] == "exact" and agreement["events"] == 2
    assert 0 < agreement["rates"]["exact"] < 1 and agreement["rates"]["loose"] == 1.0


def test_interrupt_keeps_what_was_measured() -> None:
    calls = {"n": 0}

    def stop(y):
        calls["n"] += 1
        if calls["n"] > 2:  # the reference pass (two events) goes through; measuring is interrupted
            raise KeyboardInterrupt
        return y

    chain = Chain("stop", inputs=_events)
    chain.add_stage("fine", lambda x: x + 1, inputs=["x"], outputs=["y"])
    chain.add_stage("stop", stop, inputs=["y"], outputs=["z"])
    report = run_chains([chain], QUICK)
    assert report["interrupted"] is True
    assert report["chains"][0]["stages"][0]["devices"]["cpu"]["status"] == "measured"
    _validate(report)


def test_chain_wiring_is_validated() -> None:
    chain = Chain("bad", inputs=_events)
    chain.add_stage("late", lambda y: y, inputs=["y"], outputs=["z"])
    chain.add_stage("early", lambda x: x, inputs=["x"], outputs=["y"])
    with pytest.raises(ValueError, match="before"):
        chain.validate()
    with pytest.raises(ValueError, match="already has a cpu implementation"):
        chain.add_stage("late", lambda y: y)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch) -> Path:
    """A folder that registers the demo chain through [tool.hepaudit.chains]."""
    (tmp_path / "pyproject.toml").write_text('[tool.hepaudit.chains]\ndemo = "tests.auditor.demo_chain:build_demo_chain"\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_run_writes_json_markdown_and_html(project: Path) -> None:
    result = runner.invoke(app, ["run", "--chain", "demo", "--devices", "cpu", "--no-energy", "--out", "out"],
                           terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "Where to act first" in result.output
    data = json.loads((project / "out" / "report.json").read_text())
    _validate(data)
    assert (project / "out" / "report.md").read_text().startswith("## hepaudit run")
    page = (project / "out" / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    again = runner.invoke(app, ["report", str(project / "out" / "report.json")], terminal_width=160)
    assert again.exit_code == 0 and "radius" in again.output


@pytest.mark.parametrize("args, message", [
    (["--chain", "nope"], "Unknown chain 'nope'"),
    (["--chain", "demo", "--stage", "nope"], "No chosen chain has stage 'nope'"),
    (["--chain", "demo", "--param", "size"], "KEY=VALUE"),
    (["--chain", "demo", "--devices", "tpu"], "--devices takes cpu and/or gpu"),
    (["--chain", "demo", "--mode", "slow"], "--mode must be"),
])
def test_cli_run_bad_input_exits_2(project: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", *args, "--no-energy"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.skipif(gpu_status()[0], reason="needs a machine without a GPU")
def test_cli_run_gpu_only_without_gpu_exits_2(project: Path) -> None:
    result = runner.invoke(app, ["run", "--chain", "demo", "--devices", "gpu", "--no-energy"])
    assert result.exit_code == 2 and "GPU was requested" in result.output


def test_placement_of_a_measured_chain(project: Path) -> None:
    from auditor.placement_report import placement_for_chain

    chain = build_demo_chain()
    report = run_chains([chain], QUICK, placement=lambda c, r: placement_for_chain(c, r, 0.99))
    placement = report["chains"][0]["placement"]
    assert placement["status"] == "solved"
    latency = placement["results"]["latency"]
    assert latency["placement"] == {"radius": "cpu", "order": "cpu", "histogram": "cpu"}
    stage_sum = sum(s["devices"]["cpu"]["time"]["value"] for s in report["chains"][0]["stages"])
    assert latency["value"]["value"] == pytest.approx(stage_sum)
    assert "energy" in placement["unavailable"]  # energy was not measured: never taken as zero
    subset = run_chains([chain], ProfileOptions(mode="quick", devices=("cpu",), stages=("order",)),
                        placement=lambda c, r: placement_for_chain(c, r, 0.99))
    assert subset["chains"][0]["placement"]["status"] == "not available"


def test_broken_chain_is_skipped_unless_named(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.hepaudit.chains]\ndemo = "tests.auditor.demo_chain:build_demo_chain"\n'
                                             'broken = "no_such_module_xyz:build"\n')
    monkeypatch.chdir(tmp_path)
    everything = runner.invoke(app, ["run", "--devices", "cpu", "--no-energy", "--out", "o", "-q",
                                     "--events", "1", "--pileup", "5"])
    assert everything.exit_code == 0, everything.output
    assert "chain 'broken' skipped" in everything.output
    names = [c["name"] for c in json.loads((tmp_path / "o" / "report.json").read_text())["chains"]]
    assert "demo" in names and "broken" not in names  # installed chains (tracking) run too
    named = runner.invoke(app, ["run", "--chain", "broken", "--no-energy"])
    assert named.exit_code == 2 and "no_such_module_xyz" in named.output


def test_unwritable_output_fails_before_measuring(project: Path) -> None:
    (project / "taken").write_text("a file, not a folder")
    result = runner.invoke(app, ["run", "--chain", "demo", "--no-energy", "--out", "taken/report"])
    assert result.exit_code == 2 and "Cannot write reports to taken/report" in result.output
    assert "radius" not in result.output  # nothing was measured and then lost
