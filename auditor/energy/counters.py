"""Cumulative hardware energy counters: NVML (per GPU) and RAPL (per CPU package).

A counter reports the energy its device has used since some origin, in joules. It may wrap
around (RAPL: at ``max_energy_range_uj``) and it only advances when the hardware updates it
(NVML on H100: about every 100 ms; RAPL: about every 1 ms). The accounting in
:mod:`auditor.energy.windows` turns two reads into an energy with these properties in mind.

``available_counters()`` finds what this machine offers and says, in one sentence each, what is
not available and why, so a report can state that a number is missing rather than show a zero.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: Nominal update period of the NVML total-energy counter (H100, measured: median 100 ms).
NVML_UPDATE_PERIOD_S = 0.1
#: Nominal update period of RAPL energy counters (Intel documents about 1 ms).
RAPL_UPDATE_PERIOD_S = 0.001
#: Where Linux exposes RAPL (Intel, and AMD Zen since kernel 5.8) through powercap.
POWERCAP_ROOT = Path("/sys/class/powercap")

_TOP_LEVEL_RAPL_ZONE = re.compile(r"^intel-rapl:(\d+)$")


@runtime_checkable
class EnergyCounter(Protocol):
    """A cumulative energy counter of one device.

    ``name`` is unique among the counters of a run (``nvml:0``, ``rapl:package-0``); ``method`` is
    the Measurement method of its values (``nvml-energy``, ``rapl``); ``device`` says what it
    measures in words; ``wrap_joules`` is the value at which the counter returns to zero (None:
    it does not wrap in practice); ``update_period_s`` is how often the hardware advances it.
    A counter may also have ``max_power_w`` (an upper bound on its device's power, or None) so
    that a wrapping counter is read at least twice per wrap period.
    """

    name: str
    method: str
    device: str
    wrap_joules: float | None
    update_period_s: float

    def read_joules(self) -> float:
        """The cumulative energy in joules (only differences are meaningful)."""
        ...


@dataclass
class NvmlEnergyCounter:
    """The NVML total-energy counter of one NVIDIA GPU (Volta or newer), in mJ since driver load.

    One read costs about 4 ms on the project's H100 VM, so reads belong at window edges, never
    inside a timed region.
    """

    index: int
    name: str = ""
    method: str = "nvml-energy"
    device: str = ""
    wrap_joules: float | None = None  # 64-bit mJ: wraps after ~5.8e11 years at 1 kW
    update_period_s: float = NVML_UPDATE_PERIOD_S
    _handle: Any = field(default=None, repr=False)
    _nvml: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        nvml = _import_pynvml()
        try:
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.index)
            model = nvml.nvmlDeviceGetName(self._handle)
        except nvml.NVMLError as error:
            raise CounterUnavailable(f"NVML cannot open GPU {self.index}: {error}") from error
        if isinstance(model, bytes):
            model = model.decode("utf-8", errors="replace")
        self._nvml = nvml
        self.name = self.name or f"nvml:{self.index}"
        self.device = self.device or f"GPU {self.index} ({model})"
        try:
            self.read_joules()
        except self._nvml.NVMLError as error:
            raise CounterUnavailable(
                f"{self.device} has no total-energy counter (NVML: {error}); it needs a Volta or "
                "newer GPU, and vGPU setups often hide it") from error

    def read_joules(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0


@dataclass
class RaplCounter:
    """One RAPL package domain exposed by Linux powercap (``<zone>/energy_uj``, µJ)."""

    zone: Path
    name: str = ""
    method: str = "rapl"
    device: str = ""
    wrap_joules: float | None = None
    update_period_s: float = RAPL_UPDATE_PERIOD_S
    max_power_w: float | None = None

    def __post_init__(self) -> None:
        self.zone = Path(self.zone)
        domain = _read_text(self.zone / "name") or self.zone.name
        self.name = self.name or f"rapl:{domain}"
        self.device = self.device or f"CPU {domain} (RAPL {self.zone.name})"
        try:
            max_uj = int(_read_text(self.zone / "max_energy_range_uj"))
        except (OSError, ValueError):
            max_uj = 0
        # The counter counts 0 .. max_energy_range_uj inclusive, then restarts at 0.
        self.wrap_joules = (max_uj + 1) / 1e6 if max_uj > 0 else None
        # The largest power limit the zone accepts bounds its power: enough to pace wrap checks.
        limits = []
        for limit in self.zone.glob("constraint_*_max_power_uw"):
            try:
                limits.append(int(_read_text(limit) or 0) / 1e6)
            except ValueError:
                continue
        if self.max_power_w is None and any(limit > 0 for limit in limits):
            self.max_power_w = max(limits)
        try:
            self.read_joules()
        except PermissionError as error:
            raise CounterUnavailable(
                f"RAPL {self.zone / 'energy_uj'} is not readable by this user (root only since the "
                "PLATYPUS mitigation; an administrator can run `chmod a+r` on it)") from error
        except (OSError, ValueError) as error:
            raise CounterUnavailable(f"RAPL {self.zone / 'energy_uj'} cannot be read: {error}") from error

    def read_joules(self) -> float:
        return int((self.zone / "energy_uj").read_text().strip()) / 1e6


class CounterUnavailable(Exception):
    """A counter that exists in principle but cannot be used here; the message says why."""


@dataclass(frozen=True)
class CounterDiscovery:
    """Counters found on this machine, and one sentence for each kind that is unavailable."""

    counters: tuple[EnergyCounter, ...]
    unavailable: tuple[str, ...]


def available_counters(*, gpus: bool = True, rapl: bool = True,
                       powercap_root: Path = POWERCAP_ROOT) -> CounterDiscovery:
    """Every usable NVML GPU counter and RAPL package counter, plus reasons for what is missing."""
    counters: list[EnergyCounter] = []
    reasons: list[str] = []
    if gpus:
        found, why = nvml_counters()
        counters += found
        reasons += why
    if rapl:
        found, why = rapl_counters(powercap_root)
        counters += found
        reasons += why
    return CounterDiscovery(tuple(counters), tuple(reasons))


def nvml_counters() -> tuple[list[EnergyCounter], list[str]]:
    """One counter per NVIDIA GPU that has a total-energy counter; reasons for the others."""
    try:
        nvml = _import_pynvml()
    except CounterUnavailable as error:
        return [], [str(error)]
    try:
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
    except nvml.NVMLError as error:
        return [], [f"no NVML GPU counters: the NVIDIA driver library cannot be used ({error})"]
    if count == 0:
        return [], ["no NVML GPU counters: NVML reports no GPU"]
    counters: list[EnergyCounter] = []
    reasons: list[str] = []
    for index in range(count):
        try:
            counters.append(NvmlEnergyCounter(index))
        except CounterUnavailable as error:
            reasons.append(str(error))
    return counters, reasons


def rapl_counters(powercap_root: Path = POWERCAP_ROOT) -> tuple[list[EnergyCounter], list[str]]:
    """One counter per RAPL package domain under ``powercap_root``; reasons if there are none.

    Only top-level ``intel-rapl:N`` zones named ``package-*`` are used: sub-domains (core, uncore,
    dram) are parts of a package and must not be added to it, ``psys`` contains the packages, and
    ``intel-rapl-mmio`` zones duplicate the MSR package counters. Packages whose counters read the
    same value (the per-die mirrors some AMD parts expose) are counted once.
    """
    root = Path(powercap_root)
    if not root.is_dir():
        return [], [f"no RAPL: {root} absent (typical of VMs and containers)"]
    zones = sorted((path for path in root.iterdir() if _TOP_LEVEL_RAPL_ZONE.match(path.name)),
                   key=lambda path: int(_TOP_LEVEL_RAPL_ZONE.match(path.name).group(1)))
    packages = [zone for zone in zones if (_read_text(zone / "name") or "").startswith("package")]
    if not packages:
        return [], [f"no RAPL: {root} has no intel-rapl package domain"]
    counters: list[EnergyCounter] = []
    reasons: list[str] = []
    seen: list[float] = []
    for zone in packages:
        try:
            counter = RaplCounter(zone)
            value = counter.read_joules()
        except CounterUnavailable as error:
            reasons.append(str(error))
            continue
        if any(abs(value - other) <= 1.0 for other in seen):
            reasons.append(f"{counter.name} mirrors another package counter (same value); counted once")
            continue
        seen.append(value)
        counters.append(counter)
    return counters, reasons


def _import_pynvml() -> Any:
    try:
        import pynvml  # provided by the nvidia-ml-py distribution
    except ImportError as error:
        raise CounterUnavailable(
            "no NVML GPU counters: the nvidia-ml-py package is not installed "
            "(pip install 'hepaudit[gpu]' or pip install nvidia-ml-py)") from error
    return pynvml


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
