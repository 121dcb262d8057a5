"""Human-readable numbers with their uncertainty, shared by every renderer."""

from __future__ import annotations

from typing import Any

_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_ENERGY_UNITS = ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"))


def _scaled(value: float, units: tuple[tuple[float, str], ...]) -> tuple[float, str]:
    for factor, name in units:
        if abs(value) >= factor:
            return factor, name
    return units[-1]


def _with_interval(measurement: dict[str, Any], units: tuple[tuple[float, str], ...]) -> str:
    value = measurement["value"]
    factor, name = _scaled(value, units)
    text = f"{value / factor:.3g} {name}"
    low, high = measurement.get("low"), measurement.get("high")
    if low is not None and high is not None and measurement.get("interval") != "none":
        half = max(value - low, high - value) / factor
        text = f"{value / factor:.3g} ±{half:.2g} {name}"
    return text


def seconds_text(measurement: dict[str, Any]) -> str:
    """``1.23 ±0.02 ms`` from a time Measurement's JSON."""
    return _with_interval(measurement, _TIME_UNITS)


def energy_text(measurement: dict[str, Any]) -> str:
    """Energy with interval; estimated values get a leading ``~``."""
    text = _with_interval(measurement, _ENERGY_UNITS)
    return f"~{text}" if measurement.get("estimated") else text


def size_text(size: int) -> str:
    for factor, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if size >= factor:
            return f"{size / factor:.3g} {name}"
    return f"{size} B"
