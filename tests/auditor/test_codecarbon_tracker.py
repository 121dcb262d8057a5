"""The codecarbon wrapper, for real on this machine (offline, no files), with short tasks."""

from __future__ import annotations

import json
import socket
import time

import pytest

pytest.importorskip("codecarbon", reason="codecarbon is not installed")

from auditor.energy.codecarbon_tracker import (  # noqa: E402
    DEFAULT_COUNTRY_ISO_CODE,
    CodecarbonTracker,
    TrackerConfig,
    grid_intensity,
)
from auditor.energy.windows import WindowConfig, measure_energy  # noqa: E402
from auditor.errors import UserError  # noqa: E402
from auditor.measurement import Measurement  # noqa: E402
from tests.auditor.energy_fakes import FakeClock, FakeCounter, FakeDevice, FakeWorkload  # noqa: E402


@pytest.fixture(scope="module", name="tracker")
def fixture_tracker():
    """One tracker for the module, as in a run: no network, no files."""
    attempts = []
    original = socket.socket.connect

    def refuse(_socket, address):
        attempts.append(address)
        raise OSError("network disabled in this test")

    socket.socket.connect = refuse
    try:
        tracker = CodecarbonTracker(TrackerConfig(measure_power_secs=1.0))
        yield tracker, attempts
        tracker.close()
    finally:
        socket.socket.connect = original


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_grid_intensity_has_value_source_and_year():
    france = grid_intensity()
    assert DEFAULT_COUNTRY_ISO_CODE == "FRA" == france.country_iso_code
    assert france.country_name == "France"
    assert 10 < france.g_co2e_per_kwh < 200 and france.year >= 2020
    assert "global_energy_mix.json" in france.source
    switzerland = grid_intensity("che")
    assert switzerland.country_iso_code == "CHE" and switzerland.g_co2e_per_kwh < 100
    with pytest.raises(UserError, match="unknown country ISO code"):
        grid_intensity("XYZ")


def test_carbon_is_energy_times_intensity_and_keeps_the_label():
    france = grid_intensity("FRA")
    measured = Measurement(3.6e6, "J", "nvml-energy", samples=5, low=3.5e6, high=3.7e6,
                           interval="ci95")
    carbon = france.carbon(measured)
    assert carbon.unit == "gCO2e" and carbon.value == pytest.approx(france.g_co2e_per_kwh)
    assert carbon.low == pytest.approx(france.g_co2e_per_kwh * 3.5 / 3.6)
    assert carbon.estimated is False and "measured" in carbon.note and "2023" in carbon.note
    estimate = france.carbon(Measurement(1.0, "J", "codecarbon-estimate"))
    assert estimate.estimated is True and "estimated" in estimate.note
    with pytest.raises(ValueError, match="energy in J"):
        france.carbon(Measurement(1.0, "W", "nvml-energy"))


def test_config_errors_are_clear():
    with pytest.raises(UserError, match="3-letter"):
        TrackerConfig(country_iso_code="France")
    with pytest.raises(UserError, match="tracking_mode"):
        TrackerConfig(tracking_mode="gpu")
    with pytest.raises(UserError, match="pue"):
        TrackerConfig(pue=0.5)


def test_task_reports_labelled_energy_and_carbon(tracker):
    tracker, attempts = tracker
    with tracker.task("short") as handle:
        spin(0.3)
    result = handle.result
    assert result is tracker.tasks["short"]
    assert 0.3 <= result.duration_s < 1.0
    # This machine has no RAPL: codecarbon's CPU figure is a model and must say so.
    if tracker.cpu_method == "codecarbon-estimate":
        assert result.cpu.estimated is True and "TDP" in result.cpu.note
    else:
        assert result.cpu.method == "rapl" and result.cpu.estimated is False
    assert result.ram.method == "codecarbon-estimate" and result.ram.estimated is True
    assert result.cpu.value > 0 and result.ram.value > 0
    assert result.total.value == pytest.approx(
        result.cpu.value + result.ram.value + (result.gpu.value if result.gpu else 0.0))
    assert result.total.estimated is True
    assert result.carbon.unit == "gCO2e" and result.carbon.estimated is True
    assert result.carbon.value == pytest.approx(result.codecarbon_g_co2e, rel=1e-6)
    assert result.intensity.country_iso_code == "FRA"
    json.dumps(result.to_json())
    assert attempts == []  # offline: not one connection attempt


def test_one_task_at_a_time_and_unique_names(tracker):
    tracker, _ = tracker
    tracker.start_task("a")
    with pytest.raises(RuntimeError, match="still running"):
        tracker.start_task("b")
    tracker.stop_task()
    with pytest.raises(ValueError, match="already used"):
        tracker.start_task("a")
    with pytest.raises(RuntimeError, match="no codecarbon task"):
        tracker.stop_task()


def test_window_hook_gives_one_task_per_window(tracker):
    tracker, _ = tracker
    clock = FakeClock()
    device = FakeDevice(clock, 100.0)
    counter = FakeCounter(device, read_cost_s=0.0)
    work = FakeWorkload(device, seconds=0.01, extra_w=200.0)
    result = measure_energy(work, [counter], WindowConfig(min_window_s=0.2, min_windows=2),
                            clock=clock, sleep=clock.sleep,
                            around_window=tracker.window_hook("stage-"))
    names = [f"stage-{w.kind}-{w.index}" for w in result.windows]
    assert all(name in tracker.tasks for name in names)


def test_describe_names_every_method(tracker):
    tracker, _ = tracker
    described = tracker.describe()
    assert described["codecarbon_version"] == tracker.version
    assert described["cpu"]["method"] in ("rapl", "codecarbon-estimate")
    assert described["ram"]["method"] == "codecarbon-estimate"
    assert described["intensity"]["year"] is not None
    json.dumps(described)


def test_no_files_are_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with CodecarbonTracker(TrackerConfig(country_iso_code="CHE")) as tracker:
        with tracker.task("t"):
            spin(0.05)
    assert list(tmp_path.iterdir()) == []


def test_too_old_codecarbon_is_refused(monkeypatch):
    import codecarbon

    monkeypatch.setattr(codecarbon, "__version__", "2.8.4")
    with pytest.raises(UserError, match="too old"):
        CodecarbonTracker()
