"""``hepaudit sweep``: one job over a grid of chain parameters, and how each stage's cost grows.

The grid (``pileup=20,60,100,140,200,300``, several ``--grid`` multiply) becomes one configuration
per point; the job measures every configuration like ``hepaudit run`` (serially, or spread over a
Dask cluster). For every numeric grid parameter with at least two values, each stage's time per
event on each device and node type is fitted with a power law, time = a * value^k, by least
squares on log-log axes (points with the other grid parameters equal); the exponent k comes with
its standard error when there are three points or more.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

from auditor.errors import UserError


def parse_value(raw: str) -> Any:
    """'20' -> 20, '0.5' -> 0.5, anything else stays text (as ``--param`` values)."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw


def _grid_item(item: str) -> tuple[str, list[Any]]:
    name, sep, values = item.partition("=")
    parts = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name.strip() or not parts:
        raise UserError(f"--grid takes NAME=V1,V2,..., not {item!r}.")
    parsed = [parse_value(v) for v in parts]
    if len(set(map(repr, parsed))) != len(parsed):
        raise UserError(f"--grid {name.strip()} repeats a value: {values}.")
    return name.strip(), parsed


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["pileup=20,60", "seed=1,2"]`` -> ``{"pileup": [20, 60], "seed": [1, 2]}`` (UserError if malformed)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, values = _grid_item(item)
        if name in grid:
            raise UserError(f"--grid names '{name}' twice; give all its values in one --grid.")
        grid[name] = values
    if not grid:
        raise UserError("hepaudit sweep needs at least one --grid NAME=V1,V2,...")
    return grid


def configurations(grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """Every grid point, with the fixed parameters (``--param``, ``--events``) added."""
    clash = sorted(set(grid) & set(fixed))
    if clash:
        raise UserError(f"{', '.join(clash)} is both swept (--grid) and fixed; keep one.")
    names = list(grid)
    return tuple({**fixed, **dict(zip(names, values))} for values in itertools.product(*(grid[n] for n in names)))


def _logs(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(math.log(x), math.log(t)) for x, t in points if x > 0 and t > 0]


def power_law(points: Sequence[tuple[float, float]]) -> dict[str, Any] | None:
    """Least-squares fit of log(t) = log(a) + k log(x); None with fewer than two usable points."""
    usable = _logs(points)
    if len({x for x, _ in usable}) < 2:
        return None
    n = len(usable)
    mean_x = sum(x for x, _ in usable) / n
    mean_y = sum(y for _, y in usable) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in usable)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in usable) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in usable)
    error = math.sqrt(residual / (n - 2) / sxx) if n > 2 else None
    return {"exponent": slope, "exponent_stderr": error, "prefactor": math.exp(intercept), "points": n,
            "model": "time = prefactor * value ** exponent (least squares on log-log axes)"}


def _numeric(values: Iterable[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _series_key(chain: Mapping[str, Any], parameter: str, grid: Mapping[str, Sequence[Any]]) -> tuple:
    others = tuple((name, repr(chain["parameters"].get(name))) for name in grid if name != parameter)
    return chain["name"], chain.get("node_type"), others


def _stage_points(chains: Sequence[Mapping[str, Any]], parameter: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Per (stage, device): the measured time per event at each value of ``parameter``."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for chain in sorted(chains, key=lambda c: c["parameters"][parameter]):
        for stage in chain["stages"]:
            for device, entry in stage["devices"].items():
                if entry.get("status") == "measured":
                    time = entry["time"]
                    found.setdefault((stage["name"], device), []).append(
                        {"value": chain["parameters"][parameter], "time_s": time["value"],
                         "low": time.get("low"), "high": time.get("high"),
                         "concurrent": bool(entry.get("concurrent_with"))})
    return found


def scaling(chains: Sequence[Mapping[str, Any]], grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The scaling series of every numeric grid parameter, with the power-law fit of each."""
    series = []
    for parameter, values in grid.items():
        if len(values) >= 2 and _numeric(values):
            series += _parameter_series(chains, parameter, grid)
    return series


def _parameter_series(chains: Sequence[Mapping[str, Any]], parameter: str,
                      grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The series of one parameter: chain results with the other grid parameters equal."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for chain in chains:
        if parameter in chain["parameters"]:
            groups.setdefault(_series_key(chain, parameter, grid), []).append(chain)
    series = []
    for (name, kind, others), members in groups.items():
        for (stage, device), points in _stage_points(members, parameter).items():
            series.append({"chain": name, "node_type": kind, "parameter": parameter, "fixed": dict(others),
                           "stage": stage, "device": device, "points": points,
                           "fit": power_law([(p["value"], p["time_s"]) for p in points])})
    return series
