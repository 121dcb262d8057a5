"""codecarbon as the system of record: one long-lived offline tracker, one task per window.

hepaudit keeps ONE ``codecarbon.OfflineEmissionsTracker`` per run (hardware detection costs
about a second on first use) and wraps each measurement window in ``start_task``/``stop_task``.
The tracker never touches the network (offline class: no geolocation, no cloud metadata probe)
and writes no file unless ``output_dir`` is given. Every argument that matters is passed
explicitly, so a stray ``.codecarbon.config`` or ``CODECARBON_*`` variable cannot change it.

What codecarbon's numbers are, and how they are labelled here:

- GPU: delta of the NVML total-energy counter (codecarbon >= 2.3.0) -> ``nvml-energy``. Where a
  GPU has no counter, codecarbon >= 3.3.2 averages NVML power samples instead -> labelled
  ``codecarbon-estimate``. Task windows are bounded by two counter reads, so a task shorter than
  the counter's ~100 ms update can read 0; hepaudit's own aligned windows
  (:mod:`auditor.energy.windows`) are the precise path.
- CPU: RAPL package energy when readable (``intel_rapl`` / Windows EMI mode) -> ``rapl``;
  otherwise a model (``cpu_load``: TDP x (0.1 + 0.9 load^3), TDP from a table or 4 W per thread;
  ``constant``: TDP / 2) -> ``codecarbon-estimate``, never shown as measured.
- RAM: always a model (5 W per guessed DIMM, >= 10 W on x86) -> ``codecarbon-estimate``.
- Carbon: energy x the offline grid intensity of ``country_iso_code`` from codecarbon's
  ``data/private_infra/global_energy_mix.json`` (Our World in Data / Ember yearly data; the entry
  carries its year), with source and year in the note.

Default country: ``FRA``. CERN, the largest HEP computing site, is supplied from the French grid
and reports its scope-2 emissions with EDF's (French) factors; codecarbon's FRA entry is
56.0 gCO2e/kWh for 2023. Use ``CHE`` (34.8, 2023) for Swiss-side accounting, or any other ISO-3
code in codecarbon's table.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from auditor.errors import UserError
from auditor.measurement import Measurement

#: Grid whose carbon intensity is used when none is given (see the module docstring).
DEFAULT_COUNTRY_ISO_CODE = "FRA"
#: Oldest codecarbon whose behaviour hepaudit relies on (power fallback for counter-less GPUs,
#: scheduler resumed after tasks, mirrored AMD RAPL packages counted once).
MIN_CODECARBON = (3, 3, 2)
JOULES_PER_KWH = 3.6e6
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_SOURCE = ("codecarbon {version} offline data, codecarbon/data/private_infra/global_energy_mix.json "
           "(Our World in Data / Ember yearly electricity data)")


@dataclass(frozen=True)
class GridIntensity:
    """Carbon intensity of electricity, with where it comes from."""

    g_co2e_per_kwh: float
    country_iso_code: str
    country_name: str
    year: int | None
    source: str

    def carbon(self, energy: Measurement) -> Measurement:
        """gCO2e for an energy Measurement in J (or J per event); estimated if the energy is."""
        if energy.unit != "J":
            raise ValueError(f"carbon needs an energy in J, not {energy.unit!r}")
        factor = self.g_co2e_per_kwh / JOULES_PER_KWH
        year = f", {self.year}" if self.year is not None else ""
        kind = "estimated" if energy.estimated else "measured"
        low = energy.low * factor if energy.low is not None else None
        high = energy.high * factor if energy.high is not None else None
        return Measurement(energy.value * factor, "gCO2e", "derived", samples=energy.samples,
                           low=low, high=high, interval=energy.interval,
                           estimated=bool(energy.estimated),
                           note=f"{kind} energy ({energy.method}) x {self.g_co2e_per_kwh:.4g} "
                                f"gCO2e/kWh ({self.country_name}{year}; {self.source})")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def grid_intensity(country_iso_code: str = DEFAULT_COUNTRY_ISO_CODE) -> GridIntensity:
    """The offline grid intensity codecarbon ships for a 3-letter ISO country code."""
    codecarbon = _import_codecarbon()
    from codecarbon.input import DataSource

    code = str(country_iso_code).upper()
    table = DataSource().get_global_energy_mix_data()
    entry = table.get(code)
    if entry is None or "carbon_intensity" not in entry:
        raise UserError(f"unknown country ISO code {country_iso_code!r}: codecarbon's offline grid "
                        "data has no carbon intensity for it (use a 3-letter code such as FRA or CHE)")
    return GridIntensity(float(entry["carbon_intensity"]), code, str(entry.get("country_name", code)),
                         int(entry["year"]) if entry.get("year") is not None else None,
                         _SOURCE.format(version=codecarbon.__version__))


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of the one codecarbon tracker of a run; every one is passed to codecarbon."""

    country_iso_code: str = DEFAULT_COUNTRY_ISO_CODE
    measure_power_secs: float = 15.0        # periodic scheduler; paused by codecarbon during tasks
    gpu_ids: tuple[int, ...] | None = None  # None: every GPU codecarbon finds
    tracking_mode: str = "machine"          # "machine" or "process" (RAM and CPU-load model only)
    force_cpu_power_w: float | None = None  # known CPU TDP in W, instead of codecarbon's guess
    force_ram_power_w: float | None = None  # known RAM power in W, instead of the DIMM model
    force_g_co2e_per_kwh: float | None = None  # grid intensity override (source: user)
    pue: float = 1.0                        # data-centre PUE; codecarbon multiplies energy by it
    output_dir: str | None = None           # write codecarbon's CSV here on close; None: no files
    log_level: str = "error"                # codecarbon's logger
    project_name: str = "hepaudit"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z]{3}", str(self.country_iso_code)):
            raise UserError(f"country_iso_code must be a 3-letter ISO code such as FRA, "
                            f"not {self.country_iso_code!r}")
        if not self.measure_power_secs > 0:
            raise UserError(f"measure_power_secs must be positive, not {self.measure_power_secs}")
        if self.tracking_mode not in ("machine", "process"):
            raise UserError(f"tracking_mode must be 'machine' or 'process', not {self.tracking_mode!r}")
        if self.log_level not in _LOG_LEVELS:
            raise UserError(f"log_level must be one of {', '.join(_LOG_LEVELS)}, not {self.log_level!r}")
        for name in ("force_cpu_power_w", "force_ram_power_w", "force_g_co2e_per_kwh"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UserError(f"{name} cannot be negative ({value})")
        if not self.pue >= 1.0:
            raise UserError(f"pue must be at least 1, not {self.pue}")


@dataclass(frozen=True)
class TaskEnergy:
    """What codecarbon reports for one task (window), as Measurements in J and gCO2e."""

    name: str
    duration_s: float
    cpu: Measurement
    gpu: Measurement | None           # None: codecarbon tracks no GPU here
    ram: Measurement
    total: Measurement
    carbon: Measurement
    codecarbon_g_co2e: float          # codecarbon's own emissions figure, for cross-checking
    intensity: GridIntensity

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "duration_s": self.duration_s, "cpu": self.cpu.to_json(),
                "gpu": self.gpu.to_json() if self.gpu is not None else None,
                "ram": self.ram.to_json(), "total": self.total.to_json(),
                "carbon": self.carbon.to_json(), "codecarbon_g_co2e": self.codecarbon_g_co2e,
                "intensity": self.intensity.to_json()}


@dataclass
class TaskHandle:
    """Filled in when a ``CodecarbonTracker.task`` block ends."""

    name: str
    result: TaskEnergy | None = None


class CodecarbonTracker:
    """One long-lived ``OfflineEmissionsTracker`` and its task API, with labelled results."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        codecarbon = _import_codecarbon()
        self.version = codecarbon.__version__
        self.notes: list[str] = []
        version = _version_tuple(self.version)
        if version < MIN_CODECARBON:
            # Older releases: no output_methods argument (< 3.x), GPUs without an energy counter
            # silently report 0 J (< 3.3.2), GPU energy from power x time (< 2.3.0).
            raise UserError(f"codecarbon {self.version} is too old: hepaudit needs "
                            "codecarbon>=3.3.2,<4 (pip install -U 'codecarbon>=3.3.2,<4')")
        if version >= (4,):
            self.notes.append(f"codecarbon {self.version} is newer than the tested 3.x series")
        if config.force_g_co2e_per_kwh is not None:
            base = grid_intensity(config.country_iso_code)
            self.intensity = GridIntensity(float(config.force_g_co2e_per_kwh), base.country_iso_code,
                                           base.country_name, None, "user-supplied value")
        else:
            self.intensity = grid_intensity(config.country_iso_code)
        self.tasks: dict[str, TaskEnergy] = {}
        self._active: str | None = None
        self._closed = False
        # codecarbon logs before it applies its own level; set it first.
        logging.getLogger("codecarbon").setLevel(config.log_level.upper())
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.output_methods.base_output import OutputMethod

        kwargs: dict[str, Any] = dict(
            country_iso_code=self.intensity.country_iso_code,
            project_name=config.project_name,
            measure_power_secs=config.measure_power_secs,
            output_methods=[OutputMethod.CSV] if config.output_dir else [],
            output_dir=config.output_dir or ".",
            log_level=config.log_level,
            allow_multiple_runs=True,
            tracking_mode=config.tracking_mode,
            pue=config.pue,
        )
        if config.gpu_ids is not None:
            kwargs["gpu_ids"] = list(config.gpu_ids)
        if config.force_cpu_power_w is not None:
            kwargs["force_cpu_power"] = config.force_cpu_power_w
        if config.force_ram_power_w is not None:
            kwargs["force_ram_power"] = config.force_ram_power_w
        if config.force_g_co2e_per_kwh is not None:
            kwargs["force_carbon_intensity_g_co2e_kwh"] = config.force_g_co2e_per_kwh
        self._tracker = OfflineEmissionsTracker(**kwargs)
        # codecarbon's constructor swallows its own exceptions; check that it finished.
        if not hasattr(self._tracker, "_scheduler_monitor_power"):
            raise RuntimeError("codecarbon's OfflineEmissionsTracker failed to initialise "
                               "(set log_level='warning' to see why)")
        self.hardware = self._tracker.get_detected_hardware()  # detection now, not in a window
        self.cpu_method, self.cpu_description = self._cpu_method()
        self.ram_description = self._ram_description()

    # -- what codecarbon measures with -------------------------------------------------------
    def _hardware_of(self, class_name: str) -> list[Any]:
        return [hw for hw in getattr(self._tracker, "_hardware", [])
                if type(hw).__name__ == class_name]

    def _cpu_method(self) -> tuple[str, str]:
        cpus = self._hardware_of("CPU")
        if not cpus:
            return "codecarbon-estimate", "no CPU tracking in codecarbon"
        mode = getattr(cpus[0], "_mode", "unknown")
        if mode in ("intel_rapl", "windows_emi"):
            return "rapl", f"codecarbon {mode} (RAPL package counter)"
        tdp = getattr(cpus[0], "_tdp", None)
        model = self.hardware.get("cpu_model") or "unknown CPU"
        if mode == "cpu_load":
            how = "TDP x (0.1 + 0.9 x load^3) from psutil load"
        elif mode == "constant":
            how = "TDP x 0.5, constant"
        else:
            how = f"codecarbon {mode} mode"
        source = ("user-given" if self.config.force_cpu_power_w is not None
                  else "from codecarbon's table, or 4 W per thread if the model is unknown")
        return "codecarbon-estimate", f"{how}; TDP {tdp} W ({source}) for {model}"

    def _ram_description(self) -> str:
        if self.config.force_ram_power_w is not None:
            return f"user-given constant {self.config.force_ram_power_w} W"
        size = self.hardware.get("ram_total_size")
        size_text = f"{size:.1f} GB" if isinstance(size, (int, float)) else "unknown size"
        return f"codecarbon RAM model: 5 W per guessed DIMM, >= 10 W on x86 ({size_text})"

    def _gpu_method(self) -> tuple[str, str] | None:
        gpus = self._hardware_of("GPU")
        if not gpus:
            return None
        devices = getattr(getattr(gpus[0], "devices", None), "devices", [])
        fallback = [d.gpu_index for d in devices if getattr(d, "_use_power_fallback", False)]
        if fallback:
            return ("codecarbon-estimate",
                    f"NVML power samples averaged (no energy counter on GPU {fallback})")
        return "nvml-energy", "NVML total-energy counter, read at task start and stop"

    # -- tasks ----------------------------------------------------------------------------------
    def start_task(self, name: str) -> None:
        if self._closed:
            raise RuntimeError("this codecarbon tracker is closed")
        if self._active is not None:
            raise RuntimeError(f"codecarbon task {self._active!r} is still running; stop it first")
        if name in self.tasks:
            raise ValueError(f"codecarbon task name {name!r} was already used in this run")
        self._tracker.start_task(name)
        if getattr(self._tracker, "_active_task", None) != name:
            raise RuntimeError(f"codecarbon did not start task {name!r} (see its log)")
        self._active = name

    def stop_task(self) -> TaskEnergy:
        if self._active is None:
            raise RuntimeError("no codecarbon task is running")
        name, self._active = self._active, None
        data = self._tracker.stop_task(name)
        if data is None:
            raise RuntimeError(f"codecarbon returned nothing for task {name!r}")
        result = self._task_energy(name, data)
        self.tasks[name] = result
        return result

    @contextmanager
    def task(self, name: str) -> Iterator[TaskHandle]:
        """``with tracker.task("window-3") as handle: ...``; ``handle.result`` after the block."""
        handle = TaskHandle(name)
        self.start_task(name)
        try:
            yield handle
        finally:
            handle.result = self.stop_task()

    def window_hook(self, prefix: str = "") -> Callable[[str, int], Any]:
        """A ``measure_energy(around_window=...)`` hook: one task per window, named
        ``{prefix}{kind}-{index}``, results in ``self.tasks``."""
        def around(kind: str, index: int) -> Any:
            return self.task(f"{prefix}{kind}-{index}")
        return around

    def _task_energy(self, name: str, data: Any) -> TaskEnergy:
        duration = float(data.duration)
        cpu = Measurement(float(data.cpu_energy) * JOULES_PER_KWH, "J", self.cpu_method,
                          note=self.cpu_description)
        ram = Measurement(float(data.ram_energy) * JOULES_PER_KWH, "J", "codecarbon-estimate",
                          note=self.ram_description)
        gpu = None
        gpu_method = self._gpu_method()
        if gpu_method is not None:
            method, how = gpu_method
            joules = float(data.gpu_energy) * JOULES_PER_KWH
            note = how
            if method == "nvml-energy" and joules == 0.0:
                note = (f"{how}; the counter did not advance during this {duration:.3g} s task: "
                        "too short to measure")
            gpu = Measurement(joules, "J", method, note=note)
        parts = [m for m in (cpu, gpu, ram) if m is not None]
        estimated = any(m.estimated for m in parts)
        labels = ", ".join(f"{label} {m.method}" for label, m in zip(("cpu", "gpu", "ram"), (cpu, gpu, ram))
                           if m is not None)
        total = Measurement(sum(m.value for m in parts), "J", "derived", estimated=estimated,
                            note=f"codecarbon total ({labels})")
        if gpu is not None and gpu.note and "too short" in gpu.note:
            total = dataclasses.replace(total, note=f"{total.note}; GPU part too short to measure")
        return TaskEnergy(name=name, duration_s=duration, cpu=cpu, gpu=gpu, ram=ram, total=total,
                          carbon=self.intensity.carbon(total),
                          codecarbon_g_co2e=float(data.emissions) * 1000.0,
                          intensity=self.intensity)

    # -- lifetime -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop codecarbon's threads (and write its CSV if ``output_dir`` was given)."""
        if self._closed:
            return
        self._closed = True
        if self._active is not None:
            self.stop_task()
        if getattr(self._tracker, "_start_time", None) is not None:
            self._tracker.stop()
        else:
            for attribute in ("_scheduler", "_scheduler_monitor_power"):
                scheduler = getattr(self._tracker, attribute, None)
                if scheduler is not None:
                    scheduler.stop()

    def __enter__(self) -> "CodecarbonTracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """Methods and sources, for the report."""
        gpu = self._gpu_method()
        return {"codecarbon_version": self.version,
                "cpu": {"method": self.cpu_method, "how": self.cpu_description},
                "gpu": ({"method": gpu[0], "how": gpu[1]} if gpu else None),
                "ram": {"method": "codecarbon-estimate", "how": self.ram_description},
                "intensity": self.intensity.to_json(), "notes": list(self.notes)}


def _import_codecarbon() -> Any:
    try:
        import codecarbon
    except ImportError as error:
        raise UserError("codecarbon is not installed; install it with "
                        "pip install 'codecarbon>=3.3.2,<4'") from error
    return codecarbon


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        match = re.match(r"\d+", piece)
        parts.append(int(match.group()) if match else 0)
    return tuple(parts)
