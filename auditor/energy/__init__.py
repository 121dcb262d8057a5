"""Energy of stages: hardware counters, aligned measurement windows, and codecarbon.

- :mod:`~auditor.energy.counters`: cumulative counters (NVML per GPU, RAPL per CPU package) and
  ``available_counters()`` with the reasons for what is missing.
- :mod:`~auditor.energy.windows`: ``measure_energy()`` — repeat-to-window, edges aligned to
  counter updates, idle baseline in the same state, gross and net energy per event with 95 %
  intervals, and the measurement's own overhead.
- :mod:`~auditor.energy.codecarbon_tracker`: the one long-lived offline codecarbon tracker (the
  system of record), its task API around windows, method labels, and carbon from the offline
  grid intensity.

Optional dependencies (nvidia-ml-py, codecarbon) are imported only when used.
"""

from auditor.energy.codecarbon_tracker import (
    DEFAULT_COUNTRY_ISO_CODE,
    CodecarbonTracker,
    GridIntensity,
    TaskEnergy,
    TrackerConfig,
    grid_intensity,
)
from auditor.energy.counters import (
    CounterDiscovery,
    CounterUnavailable,
    EnergyCounter,
    NvmlEnergyCounter,
    RaplCounter,
    available_counters,
    nvml_counters,
    rapl_counters,
)
from auditor.energy.windows import (
    PRECISE,
    CounterEnergy,
    EnergyResult,
    Overhead,
    WindowConfig,
    WindowRecord,
    energy_delta,
    measure_energy,
)

__all__ = [
    "DEFAULT_COUNTRY_ISO_CODE", "CodecarbonTracker", "GridIntensity", "TaskEnergy",
    "TrackerConfig", "grid_intensity",
    "CounterDiscovery", "CounterUnavailable", "EnergyCounter", "NvmlEnergyCounter", "RaplCounter",
    "available_counters", "nvml_counters", "rapl_counters",
    "PRECISE", "CounterEnergy", "EnergyResult", "Overhead", "WindowConfig", "WindowRecord",
    "energy_delta", "measure_energy",
]
