"""The energy hook of ``hepaudit run`` and ``hepaudit profile``.

For each stage and device it measures energy per event in repeated windows:

* with hardware counters (NVML for a GPU stage, plus RAPL for the host package where readable):
  :func:`auditor.energy.measure_energy` with aligned windows, idle baselines and net energy; the
  one codecarbon tracker records each window as a task alongside, as the system of record;
* without counters (a CPU with no readable RAPL): codecarbon's model for the same windows,
  labelled ``codecarbon-estimate`` and never presented as measured.

Windows: at least 2 s each, 5 of them (``--precise``: 10 s each); a shorter setting is noted in
the result as below the standard.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from auditor.devices import synchronize
from auditor.energy import CodecarbonTracker, TrackerConfig, WindowConfig, available_counters, measure_energy
from auditor.energy.codecarbon_tracker import grid_intensity
from auditor.errors import UserError
from auditor.measurement import Measurement, summarise

WINDOWS = {"quick": (2.0, 5), "normal": (2.0, 5), "precise": (10.0, 5)}
STANDARD = "2 s × 5 windows"


class EnergyMeter:
    """Callable ``meter(workload, device, backend, precise) -> dict`` for the profiler."""

    def __init__(self, mode: str = "normal", country: str | None = None):
        self.mode = mode
        self.discovery = available_counters()
        self.config = TrackerConfig(**({"country_iso_code": country} if country else {}))
        self.intensity = grid_intensity(self.config.country_iso_code)  # an unknown grid fails here, once
        self._tracker: CodecarbonTracker | None = None
        self.problems: list[str] = list(self.discovery.unavailable)
        self.calls = 0

    @property
    def tracker(self) -> CodecarbonTracker | None:
        if self._tracker is None:
            try:
                self._tracker = CodecarbonTracker(self.config)
            except (UserError, ImportError) as exc:
                self.problems.append(f"codecarbon unavailable: {exc}")
                return None
        return self._tracker

    def window(self, precise: bool) -> tuple[float, int]:
        return WINDOWS["precise" if precise else self.mode]

    def __call__(self, workload: Callable[[], None], device: str, backend: str, precise: bool) -> dict[str, Any]:
        window_s, windows = self.window(precise)
        self.calls += 1
        counters = [c for c in self.discovery.counters if (c.method == "nvml-energy") == (device == "gpu")
                    or (device == "gpu" and c.method == "rapl")]
        try:
            if counters:
                return self._with_counters(workload, counters, backend, window_s, windows)
            return self._with_codecarbon(workload, device, backend, window_s, windows)
        except UserError as exc:
            return {"status": "not measured", "reason": str(exc)}

    def _with_counters(self, workload: Callable[[], None], counters: list, backend: str,
                       window_s: float, windows: int) -> dict[str, Any]:
        tracker = self.tracker
        config = WindowConfig(min_window_s=window_s, min_windows=windows)
        result = measure_energy(workload, counters, config, sync=lambda: synchronize(backend),
                                around_window=tracker.window_hook(f"m{self.calls}-") if tracker else None)
        single = result.counters[0] if len(result.counters) == 1 else None
        net = result.total_net_per_event or (single.net_per_event if single else None)
        gross_parts = [c.gross_per_event for c in result.counters if c.gross_per_event is not None]
        gross = single.gross_per_event if single else _sum(gross_parts)
        return {
            "status": "measured" if net is not None else "too short to measure",
            "method": "+".join(sorted({c.method for c in result.counters})),
            "net_per_event": net.to_json() if net else None,
            "gross_per_event": gross.to_json() if gross else None,
            "counters": [c.to_json() for c in result.counters],
            "windows": len([w for w in result.windows if w.kind == "work"]) or windows,
            "per_window_j_per_event": _gross_per_window(result),
            "window_s": window_s, "calls_per_window": result.calls_per_window,
            "overhead": result.overhead.to_json(), "notes": list(result.notes) + self._window_note(window_s, windows),
            "carbon_g_per_event": self._carbon(net),
            "codecarbon": self._codecarbon_summary(f"m{self.calls}-", result.calls_per_window),
        }

    def _with_codecarbon(self, workload: Callable[[], None], device: str, backend: str,
                         window_s: float, windows: int) -> dict[str, Any]:
        tracker = self.tracker
        if tracker is None:
            return {"status": "not measured", "reason": "; ".join(self.problems) or "no energy source"}
        per_event: list[float] = []
        for index in range(windows):
            with tracker.task(f"m{self.calls}-{device}-window-{index}") as handle:
                events = 0
                started = time.perf_counter()
                while time.perf_counter() - started < window_s:
                    workload()
                    events += 1
                synchronize(backend)
            energy = handle.result
            parts = [energy.cpu, energy.ram] + ([energy.gpu] if device == "gpu" and energy.gpu else [])
            per_event.append(sum(p.value for p in parts) / events)
        estimate = summarise(per_event, "J", "codecarbon-estimate", statistic="mean",
                             note=f"codecarbon model ({tracker.cpu_description}); gross, no idle baseline")
        return {"status": "estimated", "method": "codecarbon-estimate", "gross_per_event": estimate.to_json(),
                "per_window_j_per_event": per_event,
                "net_per_event": None, "windows": windows, "window_s": window_s,
                "notes": [f"no hardware counter here ({'; '.join(self.problems)}): codecarbon's estimate"]
                         + self._window_note(window_s, windows),
                "carbon_g_per_event": self._carbon(estimate)}

    def _window_note(self, window_s: float, windows: int) -> list[str]:
        if window_s < 2.0 or windows < 5:
            return [f"{windows} windows of {window_s:g} s: below the {STANDARD} standard"]
        return []

    def _carbon(self, energy: Measurement | None) -> dict[str, Any] | None:
        if energy is None:
            return None
        return self.intensity.carbon(energy).to_json()

    def _codecarbon_summary(self, prefix: str, calls: int) -> dict[str, Any] | None:
        tracker = self._tracker
        if tracker is None:
            return None
        work = [t for name, t in tracker.tasks.items() if name.startswith(prefix + "work")]
        if not work:
            return None
        totals = [t.total.value / calls for t in work]
        return {"gross_per_event_j": statistics.fmean(totals), "windows": len(work),
                "note": "codecarbon's own figure over the same work windows (gross, its methods)"}

    def describe(self) -> dict[str, Any]:
        return {"counters": [f"{c.name} ({c.method})" for c in self.discovery.counters],
                "unavailable": list(self.problems), "country": self.config.country_iso_code,
                "windows": {"mode": self.mode, "window_s": WINDOWS[self.mode][0], "windows": WINDOWS[self.mode][1]}}

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()


def _gross_per_window(result: Any) -> list[float]:
    """Energy per event of each work window, all counters summed (the samples a later run is
    compared with); windows where a counter did not advance are left out."""
    values = []
    for window in result.windows:
        if window.kind != "work" or not window.events or any(j is None for j in window.joules.values()):
            continue
        values.append(sum(window.joules.values()) / window.events)
    return values


def _sum(parts: list[Measurement]) -> Measurement | None:
    if not parts:
        return None
    low = sum(p.bounds[0] for p in parts)
    high = sum(p.bounds[1] for p in parts)
    return Measurement(sum(p.value for p in parts), "J", "derived", samples=min(p.samples for p in parts),
                       low=low, high=high, interval="propagated", estimated=any(p.estimated for p in parts))
