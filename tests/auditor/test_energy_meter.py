"""The run's energy hook: counters where present, codecarbon's labelled estimate otherwise."""

from __future__ import annotations

import time

import pytest

from auditor import energy_meter
from auditor.energy import CounterDiscovery
from auditor.energy_meter import EnergyMeter


class WallCounter:
    """A counter on the real clock: 10 W idle plus 0.05 J for every workload call."""

    name = "wall:0"
    method = "rapl"
    device = "cpu"
    wrap_joules = None
    update_period_s = 0.005
    max_power_w = 100.0

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.extra = 0.0

    def read_joules(self) -> float:
        return 10.0 * (time.perf_counter() - self.started) + self.extra


@pytest.fixture()
def short_windows(monkeypatch):
    monkeypatch.setitem(energy_meter.WINDOWS, "quick", (0.2, 3))


def test_counter_path_recovers_net_energy_per_event(short_windows) -> None:
    counter = WallCounter()
    meter = EnergyMeter("quick")
    meter.discovery = CounterDiscovery((counter,), ())

    def workload() -> None:
        counter.extra += 0.05
        time.sleep(0.002)

    result = meter(workload, "cpu", "numpy", False)
    meter.close()
    assert result["status"] == "measured" and result["method"] == "rapl"
    net = result["net_per_event"]
    assert net["method"] == "rapl" and net["estimated"] is False
    assert net["low"] <= 0.05 <= net["high"]
    assert net["value"] == pytest.approx(0.05, rel=0.2)
    assert result["gross_per_event"]["value"] > net["value"]  # idle power during the call counts in gross
    assert result["carbon_g_per_event"]["unit"] == "gCO2e"
    windows = result["per_window_j_per_event"]  # the samples a later run's energy is compared with
    assert len(windows) == 3 and all(value > 0.05 for value in windows)  # gross: idle power included
    assert any("below the 2 s × 5 windows standard" in note for note in result["notes"])


def test_without_counters_codecarbon_estimates_and_says_so(short_windows) -> None:
    meter = EnergyMeter("quick")
    meter.discovery = CounterDiscovery((), ("no RAPL: test",))
    meter.problems = ["no RAPL: test"]
    result = meter(lambda: sum(range(20_000)), "cpu", "numpy", False)
    meter.close()
    assert result["status"] == "estimated" and result["net_per_event"] is None
    gross = result["gross_per_event"]
    assert gross["method"] == "codecarbon-estimate" and gross["estimated"] is True and gross["value"] > 0
    assert "codecarbon's estimate" in result["notes"][0]


def test_run_reports_estimated_energy_and_never_ranks_it_as_measured(short_windows, tmp_path, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from auditor.cli import app
    from auditor.devices import gpu_status

    if gpu_status()[0]:
        pytest.skip("checks the estimate path of a machine without counters")
    monkeypatch.setattr(energy_meter, "available_counters", lambda: CounterDiscovery((), ("no RAPL: test",)))
    (tmp_path / "pyproject.toml").write_text('[tool.hepaudit.chains]\ndemo = "tests.auditor.demo_chain:build_demo_chain"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "--devices", "cpu", "--out", "o"], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "estimated" in result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    chain = report["chains"][0]
    energies = [s["devices"]["cpu"]["energy"] for s in chain["stages"]]
    assert all(e["status"] == "estimated" and e["gross_per_event"]["estimated"] for e in energies)
    assert chain["ranking"]["energy_estimated"] is True
    assert all(entry["estimated"] for entry in chain["ranking"]["by_energy"])
    energy_result = chain["placement"]["results"]["energy"]
    assert energy_result["estimated"] is True
    assert report["energy"]["unavailable"] == ["no RAPL: test"]


def test_unknown_grid_is_a_user_error() -> None:
    from auditor.errors import UserError

    with pytest.raises(UserError, match="XYZ"):
        EnergyMeter("quick", "XYZ")
    assert EnergyMeter("quick", "CHE").intensity.country_iso_code == "CHE"
