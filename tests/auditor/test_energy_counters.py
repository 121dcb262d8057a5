"""Energy counters: RAPL discovery on a fake powercap tree, NVML through a fake pynvml module,
and the real counters of this machine where it has them."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from auditor.energy.counters import (
    CounterUnavailable,
    EnergyCounter,
    NvmlEnergyCounter,
    RaplCounter,
    available_counters,
    nvml_counters,
    rapl_counters,
)
from auditor.energy.windows import WindowConfig, measure_energy


def zone(root: Path, name: str, domain: str, energy_uj: int, max_uj: int = 262143328850,
         max_power_uw: int | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "name").write_text(domain + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    if max_power_uw is not None:
        (path / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")
    return path


def test_rapl_uses_package_domains_only(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000, max_power_uw=250_000_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 500_000)
    zone(tmp_path, "intel-rapl:0:1", "dram", 300_000)
    zone(tmp_path, "intel-rapl:1", "package-1", 7_000_000)
    zone(tmp_path, "intel-rapl:2", "psys", 9_000_000)
    zone(tmp_path, "intel-rapl-mmio:0", "package-0", 1_000_000)
    counters, reasons = rapl_counters(tmp_path)
    assert [c.name for c in counters] == ["rapl:package-0", "rapl:package-1"]
    assert reasons == []
    first = counters[0]
    assert isinstance(first, EnergyCounter)
    assert first.method == "rapl"
    assert first.read_joules() == pytest.approx(1.0)
    assert first.wrap_joules == pytest.approx(262143.32885)
    assert first.max_power_w == pytest.approx(250.0)
    assert counters[1].max_power_w is None
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("3500000\n")
    assert first.read_joules() == pytest.approx(3.5)


def test_mirrored_package_counters_are_counted_once(tmp_path):
    zone(tmp_path, "intel-rapl:0", "package-0", 123_456_789)
    zone(tmp_path, "intel-rapl:1", "package-0", 123_456_789)  # per-die mirror (AMD)
    counters, reasons = rapl_counters(tmp_path)
    assert len(counters) == 1
    assert any("mirrors" in reason for reason in reasons)


def test_missing_or_empty_powercap_says_why(tmp_path):
    counters, reasons = rapl_counters(tmp_path / "absent")
    assert counters == [] and "absent" in reasons[0]
    zone(tmp_path, "intel-rapl:0", "psys", 1)
    counters, reasons = rapl_counters(tmp_path)
    assert counters == [] and "no intel-rapl package domain" in reasons[0]


def test_unreadable_rapl_says_it_needs_permission(tmp_path, monkeypatch):
    zone(tmp_path, "intel-rapl:0", "package-0", 1)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(RaplCounter, "read_joules", denied)
    counters, reasons = rapl_counters(tmp_path)
    assert counters == []
    assert "not readable" in reasons[0] and "chmod" in reasons[0]


def test_rapl_counter_feeds_the_window_accounting(tmp_path):
    """A real RaplCounter over a file that a fake clock advances: 50 W for 0.2 s calls."""
    path = zone(tmp_path, "intel-rapl:0", "package-0", 0, max_uj=99_999_999)  # wraps at 100 J
    state = {"now": 0.0, "uj": 0}

    def advance(seconds: float, watts: float) -> None:
        state["now"] += seconds
        state["uj"] = (state["uj"] + round(watts * seconds * 1e6)) % 100_000_000
        (path / "energy_uj").write_text(f"{state['uj']}\n")

    counter = RaplCounter(path)
    result = measure_energy(lambda: advance(0.01, 50.0), [counter],
                            WindowConfig(min_window_s=0.5, min_windows=3, wrap_check_s=0.1),
                            clock=lambda: state["now"], sleep=lambda s: advance(s, 10.0))
    energy = result.counter("rapl:package-0")
    assert energy.baseline_power.value == pytest.approx(10.0, rel=0.01)
    low, high = energy.net_per_event.bounds
    assert low <= 0.4 <= high  # (50 - 10) W x 0.01 s


class FakeNvmlError(Exception):
    pass


def fake_pynvml(devices: list[tuple[str, int | None]]) -> types.ModuleType:
    """A pynvml stand-in: (name, mJ or None for no energy counter) per device."""
    module = types.ModuleType("pynvml")
    module.NVMLError = FakeNvmlError
    module.nvmlInit = lambda: None
    module.nvmlDeviceGetCount = lambda: len(devices)
    module.nvmlDeviceGetHandleByIndex = lambda index: index
    module.nvmlDeviceGetName = lambda handle: devices[handle][0].encode()

    def energy(handle):
        if devices[handle][1] is None:
            raise FakeNvmlError("Not Supported")
        return devices[handle][1]

    module.nvmlDeviceGetTotalEnergyConsumption = energy
    return module


def test_nvml_counter_reads_millijoules_and_skips_gpus_without_counter(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml([("NVIDIA H100", 123_456),
                                                            ("Tesla K80", None)]))
    counters, reasons = nvml_counters()
    assert [c.name for c in counters] == ["nvml:0"]
    assert counters[0].read_joules() == pytest.approx(123.456)
    assert counters[0].method == "nvml-energy" and counters[0].wrap_joules is None
    assert counters[0].update_period_s == pytest.approx(0.1)
    assert "NVIDIA H100" in counters[0].device
    assert len(reasons) == 1 and "Tesla K80" in reasons[0] and "Volta" in reasons[0]


def test_nvml_missing_package_gives_a_clear_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    counters, reasons = nvml_counters()
    assert counters == [] and "nvidia-ml-py" in reasons[0]
    with pytest.raises(CounterUnavailable, match="nvidia-ml-py"):
        NvmlEnergyCounter(0)


def test_nvml_driver_failure_gives_a_clear_reason(monkeypatch):
    module = fake_pynvml([])

    def broken():
        raise FakeNvmlError("NVML Shared Library Not Found")

    module.nvmlInit = broken
    monkeypatch.setitem(sys.modules, "pynvml", module)
    counters, reasons = nvml_counters()
    assert counters == [] and "driver library" in reasons[0]


def test_available_counters_on_this_machine_explains_what_is_missing():
    discovery = available_counters()
    assert all(isinstance(c, EnergyCounter) for c in discovery.counters)
    if not discovery.counters:
        assert discovery.unavailable  # never silently empty
    if not Path("/sys/class/powercap").is_dir():
        assert any("no RAPL" in reason for reason in discovery.unavailable)


def _real(kind: str) -> list:
    counters = [c for c in available_counters().counters if c.method == kind]
    if not counters:
        pytest.skip(f"no {kind} counter on this machine: "
                    + "; ".join(available_counters().unavailable))
    return counters


def test_real_nvml_counter_advances():
    counter = _real("nvml-energy")[0]
    first = counter.read_joules()
    time.sleep(0.3)  # > 2 update periods
    assert counter.read_joules() > first


def test_real_rapl_counter_advances():
    counter = _real("rapl")[0]
    first = counter.read_joules()
    time.sleep(0.05)
    second = counter.read_joules()
    assert second != first  # may have wrapped, but it moved
