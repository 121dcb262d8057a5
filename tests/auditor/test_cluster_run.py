"""Scale-out of ``hepaudit run`` and ``hepaudit sweep``: work units, a real Dask LocalCluster (2 worker
processes), a worker lost mid-run, resuming from saved units, concurrency flags, scaling fits and
the mixed-pool placement."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.cluster.merge import concurrency
from auditor.cluster.pool import mixed_pool
from auditor.cluster.units import WorkUnit, event_ranges, plan_units
from auditor.errors import UserError
from auditor.render.json_report import schema
from auditor.sweep import configurations, parse_grid, power_law

runner = CliRunner()
CHAINS = ('[tool.hepaudit.chains]\ndemo = "tests.auditor.demo_chain:build_demo_chain"\n'
          'crashing = "tests.auditor.cluster_chains:build_crashing_chain"\n')


@pytest.fixture()
def project(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "pyproject.toml").write_text(CHAINS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _invoke(args: list[str]) -> dict:
    """Run the command, check its report against the run-report schema, return the report."""
    result = runner.invoke(app, args, terminal_width=160)
    assert result.exit_code == 0, result.output
    out = Path(args[args.index("--out") + 1])
    report = json.loads((out / "report.json").read_text())
    jsonschema.Draft202012Validator(schema("run-report.schema.json"),
                                    format_checker=jsonschema.FormatChecker()).validate(report)
    assert (out / "report.md").read_text().count("### Work units") == (1 if "cluster" in report else 0)
    return report


def _physics(report: dict) -> dict:
    """What must not depend on where or how fast it ran: per chain and configuration, the events,
    stage statuses, agreement rates, product sizes and code quality."""
    found = {}
    for chain in report["chains"]:
        key = (chain["name"], json.dumps(chain["parameters"], sort_keys=True))
        found[key] = {"events": chain["events"], "bytes": chain["product_bytes"],
                      "stages": [(s["name"], s["status"], {d: (e.get("status"), (e.get("agreement") or {}).get("rates"),
                                                               e.get("quality"))
                                                           for d, e in s["devices"].items()}) for s in chain["stages"]]}
    return found


# ----------------------------------------------------------------------------------- pure parts


def test_unit_keys_are_stable_and_round_trip() -> None:
    unit = WorkUnit("tracking", "gpu", (("events", 4), ("pileup", 200)), ("seeding",), (0, 2), "Xeon x16 + H100")
    assert WorkUnit.from_json(json.loads(json.dumps(unit.to_json()))) == unit
    assert unit.key == WorkUnit.from_json(unit.to_json()).key
    assert unit.key != WorkUnit("tracking", "cpu", unit.parameters, unit.stages, unit.event_range, unit.node_type).key


def test_event_ranges_cover_every_event_once() -> None:
    assert event_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert event_ranges(3, None) == [None]
    assert event_ranges(3, 5) == [None]


def test_plan_covers_configurations_node_types_devices_and_ranges() -> None:
    units = plan_units(["demo"], [{"size": 1}, {"size": 2}], ["cpu", "gpu"], {"A": ["cpu", "gpu"], "B": ["cpu"]},
                       (10, 4))
    assert len(units) == 2 * 3 * (2 + 1)
    assert len({u.key for u in units}) == len(units)
    assert not [u for u in units if u.node_type == "B" and u.device == "gpu"]


def test_power_law_recovers_the_exponent() -> None:
    fit = power_law([(x, 3e-3 * x ** 2) for x in (20, 60, 100, 200)])
    assert fit["exponent"] == pytest.approx(2.0) and fit["prefactor"] == pytest.approx(3e-3)
    assert fit["exponent_stderr"] == pytest.approx(0.0, abs=1e-9)
    noisy = power_law([(20, 1.0), (40, 2.2), (80, 3.9)])
    assert 0.9 < noisy["exponent"] < 1.0 and noisy["exponent_stderr"] > 0
    assert power_law([(10, 1.0), (20, 2.0)])["exponent_stderr"] is None
    assert power_law([(10, 1.0), (0, 2.0)]) is None


@pytest.mark.parametrize("items, message", [
    (["pileup"], "NAME=V1,V2"), (["pileup="], "NAME=V1,V2"), (["=1,2"], "NAME=V1,V2"),
    (["pileup=1", "pileup=2"], "twice"), (["pileup=20,20"], "repeats a value"), ([], "at least one --grid"),
])
def test_bad_grids_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_grid(items)


def test_grid_points_and_fixed_parameters() -> None:
    grid = parse_grid(["pileup=20,60", "seed=1,2,3"])
    assert grid == {"pileup": [20, 60], "seed": [1, 2, 3]}
    points = configurations(grid, {"events": 2})
    assert len(points) == 6 and points[0] == {"events": 2, "pileup": 20, "seed": 1}
    with pytest.raises(UserError, match="both swept"):
        configurations(grid, {"pileup": 5})


def _outcome(key: str, host: str, device: str, window: tuple[float, float], slot: str | None = None) -> dict:
    return {"key": key, "unit": {"device": device}, "node": {"host": host, "gpu_slot": slot},
            "started": window[0], "finished": window[1]}


def test_concurrency_is_flagged_per_shared_device() -> None:
    flags = concurrency([
        _outcome("a", "n1", "cpu", (0, 10)), _outcome("b", "n1", "gpu", (5, 15), "0"),
        _outcome("c", "n1", "gpu", (12, 20), "0"), _outcome("d", "n2", "cpu", (0, 30)),
        _outcome("e", "n1", "cpu", (20, 25)),
    ])
    assert flags["a"] == {"host": ["b"]}
    assert flags["b"] == {"host": ["a"], "gpu": ["c"]}
    assert "d" not in flags and "e" not in flags


# ------------------------------------------------------------------------- serial jobs (no Dask)


def test_split_events_pool_timing_and_record_every_unit(project: Path) -> None:
    report = _invoke(["run", "--chain", "demo", "--devices", "cpu", "--no-energy", "--events", "4",
                      "--events-per-unit", "2", "--out", "split", "-q"])
    cluster = report["cluster"]
    assert cluster["planned"] == cluster["completed"] == 2 and not cluster["failed"]
    assert sorted(u["event_range"] for u in cluster["units"]) == [[0, 2], [2, 4]]
    chain, = report["chains"]
    assert chain["events"] == 4
    radius = chain["stages"][0]["devices"]["cpu"]
    parts = [json.loads(p.read_text())["result"]["stages"][0]["devices"]["cpu"]
             for p in (project / "split" / "units").glob("*.json")]
    assert radius["event_ranges"] == 2 and radius["samples"] == sum(p["samples"] for p in parts)
    assert len(radius["time_samples"]) == sum(len(p["time_samples"]) for p in parts)
    assert len(list((project / "split" / "units").glob("*.json"))) == 2


def test_resume_measures_only_the_missing_units(project: Path) -> None:
    args = ["sweep", "--chain", "demo", "--grid", "size=1000,2000", "--devices", "cpu", "--mode", "quick",
            "--out", "sweep", "-q"]
    first = _invoke(args)
    saved = sorted((project / "sweep" / "units").glob("*.json"))
    assert len(saved) == 2
    saved[0].unlink()
    second = _invoke(args + ["--resume"])
    assert second["cluster"]["resumed"] == 1 and second["cluster"]["completed"] == 2
    assert [u["resumed"] for u in second["cluster"]["units"]].count(True) == 1
    assert _physics(second) == _physics(first)


def test_serial_run_and_sweep_do_not_import_dask(project: Path) -> None:
    code = ("import sys; from typer.testing import CliRunner; from auditor.cli import app; r = CliRunner();"
            "a = r.invoke(app, ['run', '--chain', 'demo', '--devices', 'cpu', '--no-energy', '--out', 'o', '-q']);"
            "b = r.invoke(app, ['sweep', '--chain', 'demo', '--grid', 'size=1000,2000', '--devices', 'cpu',"
            " '--mode', 'quick', '--out', 's', '-q']);"
            "print(a.exit_code, b.exit_code, 'distributed' in sys.modules, 'dask' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.split()[-4:] == ["0", "0", "False", "False"], done.stdout + done.stderr


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "local:0"], "at least 1"), (["--scheduler", "missing.json"], "does not exist"),
    (["--scheduler", "slurm"], "Cannot reach the Dask scheduler at slurm"),
    (["--events-per-unit", "0"], "at least 1"), (["--resume"], "--resume needs --out"),
    (["--events-per-unit", "2"], "needs the number of events"),
])
def test_bad_scale_out_options_exit_2(project: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", "--chain", "demo", "--devices", "cpu", "--no-energy", *args],
                           terminal_width=200)
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output


def test_mixed_pool_sends_work_to_the_faster_node_type(project: Path) -> None:
    report = _invoke(["run", "--chain", "demo", "--devices", "cpu", "--no-energy", "--out", "one", "-q"])
    from tests.auditor.demo_chain import build_demo_chain

    slow = copy.deepcopy(report["chains"][0])
    slow["node_type"], slow["node"] = "slow x2", {"cpu": {"cores": 2}}
    fast = copy.deepcopy(slow)
    fast["node_type"], fast["node"] = "fast x8", {"cpu": {"cores": 8}}
    for stage in fast["stages"]:
        time = stage["devices"]["cpu"]["time"]
        for key in ("value", "low", "high"):
            time[key] /= 4
    pool = mixed_pool(build_demo_chain(), [slow, fast], 0.99)
    assert pool["status"] == "solved" and [h["home"] for h in pool["homes"]] == ["slow x2", "fast x8"]
    from_slow = pool["homes"][0]["throughput"]
    assert from_slow["status"] == "solved" and "cpu@1" in from_slow["placement"].values()
    assert pool["homes"][0]["devices"]["cpu@1"] == "fast x8"


# ---------------------------------------------------------------------------- a real LocalCluster


def test_sweep_on_a_local_cluster_equals_the_serial_sweep(project: Path) -> None:
    args = ["sweep", "--chain", "demo", "--grid", "size=2000,4000,8000", "--devices", "cpu", "--mode", "quick"]
    serial = _invoke(args + ["--out", "serial", "-q"])
    spread = _invoke(args + ["--scheduler", "local:2", "--out", "spread", "-q"])
    assert _physics(spread) == _physics(serial)
    cluster = spread["cluster"]
    assert cluster["scheduler"] == "local:2" and cluster["workers"] == 2
    assert sorted(u["key"] for u in cluster["units"]) == sorted(u["key"] for u in serial["cluster"]["units"])
    assert len({u["worker"] for u in cluster["units"]}) >= 1 and not cluster["failed"]
    series = {(s["stage"], s["device"]): s for s in spread["sweep"]["scaling"]}
    assert series["radius", "cpu"]["fit"]["points"] == 3
    assert [p["value"] for p in series["radius", "cpu"]["points"]] == [2000, 4000, 8000]
    assert (project / "spread" / spread["sweep"]["plots"][0]).stat().st_size > 1000
    for unit in cluster["units"]:
        for other in unit["concurrent_with"].get("host", []):
            assert unit["key"] in next(u for u in cluster["units"] if u["key"] == other)["concurrent_with"]["host"]


def test_a_lost_worker_is_replaced_and_its_unit_retried(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "first-attempt"
    report = _invoke(["run", "--chain", "crashing", "--devices", "cpu", "--no-energy", "--scheduler", "local:2",
                      "--param", f"marker={marker}", "--param", f"client_pid={os.getpid()}", "--out", "lost", "-q"])
    assert marker.exists(), "the first attempt should have killed its worker"
    cluster = report["cluster"]
    assert cluster["planned"] == cluster["completed"] == 1 and not cluster["failed"] and not cluster["missing"]
    unit, = cluster["units"]
    assert unit["retried_after_lost_worker"] == 1 and cluster["retried"] == {unit["key"]: 1}
    assert report["chains"][0]["stages"][0]["status"] == "measured"


def test_the_scheduler_setting_of_the_project_is_used(project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.hepaudit]\nscheduler = "local:2"\n\n' + CHAINS)
    report = _invoke(["run", "--chain", "demo", "--devices", "cpu", "--no-energy", "--mode", "quick",
                      "--out", "configured", "-q"])
    assert report["cluster"]["scheduler"] == "local:2" and report["cluster"]["workers"] == 2
    assert report["cluster"]["completed"] == 1


def test_energy_is_measured_on_the_workers_and_not_attributed_when_units_overlap(project: Path) -> None:
    report = _invoke(["sweep", "--chain", "demo", "--stage", "radius", "--grid", "size=20000,40000", "--devices",
                      "cpu", "--mode", "quick", "--energy", "--scheduler", "local:2", "--out", "energy", "-q"])
    units = {u["key"]: u for u in report["cluster"]["units"]}
    assert len(units) == 2 and len({u["worker"] for u in units.values()}) == 2
    flagged = 0
    for chain in report["chains"]:
        entry = chain["stages"][0]["devices"]["cpu"]
        energy = entry["energy"]
        assert energy["method"] in ("codecarbon-estimate", "rapl") and energy["gross_per_event"]["value"] > 0
        if entry.get("concurrent_with"):
            flagged += 1
            assert energy["attributed"] is False and "not attributed" in energy["attribution"]
        else:
            assert energy.get("attributed", True) is True
    assert flagged == 2, "two units on two idle workers run at the same time"


def _unit_outcome(key: str, device: str, gpu_status: str) -> dict:
    measured = {"status": "measured", "time": {"value": 1.0, "unit": "s", "method": "perf-counter", "samples": 5},
                "time_samples": [1.0] * 5, "samples": 5}
    other = {"status": "unavailable", "reason": "not requested"}
    devices = {"cpu": measured if device == "cpu" else other, "gpu": measured if device == "gpu" else other}
    result = {"stages": [{"name": "s", "status": "measured", "devices": devices}], "events": 2, "interrupted": False,
              "devices": {"gpu": gpu_status, "measured": [device], "requested": [device]},
              "transfers": [{"product": "x"}] if device == "gpu" else []}
    return {"key": key, "unit": {"device": device, "event_range": None}, "result": result}


def test_merging_takes_each_device_from_its_own_unit() -> None:
    from auditor.cluster.merge import merge_group

    merged = merge_group([_unit_outcome("c", "cpu", "no CUDA GPU"), _unit_outcome("g", "gpu", "available")], {})
    assert merged["devices"]["gpu"] == "available" and merged["devices"]["measured"] == ["cpu", "gpu"]
    assert {d: e["status"] for d, e in merged["stages"][0]["devices"].items()} == {"cpu": "measured", "gpu": "measured"}
    assert merged["transfers"] == [{"product": "x"}] and merged["events"] == 2
