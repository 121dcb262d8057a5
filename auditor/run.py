"""``hepaudit run``: measure registered chains and assemble the run report.

The report is one JSON-ready dict; the console, Markdown and HTML renderers only format it.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Sequence

from auditor import __version__
from auditor.devices import cpu_description, gpu_description, gpu_status
from auditor.measurement import Measurement
from auditor.profiler import EnergyMeter, ProfileOptions, profile_chain
from auditor.ranking import rank_chain, speedup
from auditor.stage_quality import _FileMetrics, implementation_quality, unwrap
from auditor.stages import Chain

SCHEMA_NAME = "hepaudit.run"
SCHEMA_VERSION = "1.1"
LIBRARIES = ("numpy", "numba", "numba-cuda", "cupy", "cupy-cuda12x", "cupy-cuda13x", "torch", "codecarbon",
             "nvidia-ml-py", "radon", "lizard", "pylint", "rich")


def library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def git_commit(folder: Path) -> dict[str, Any] | None:
    """Commit (and whether the work tree has changes) of the git repository holding ``folder``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                              timeout=30, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def environment() -> dict[str, Any]:
    usable, reason = gpu_status()
    return {
        "cpu": cpu_description(),
        "gpu": gpu_description() if usable else {"status": reason},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
        "hepaudit": __version__,
    }


def _package_folder(chain: Chain) -> tuple[str | None, Path | None]:
    """The chain's own package (``chain.package`` or that of its first implementation) and the
    folder of that implementation's module."""
    first = next((i for s in chain.stages.values() for i in s.implementations.values()), None)
    if first is None:
        return chain.package, None
    function = unwrap(first.function)
    module_name = getattr(function, "__module__", "") or ""
    module = sys.modules.get(module_name)
    folder = Path(module.__file__).parent if module is not None and getattr(module, "__file__", None) else None
    return chain.package or module_name.split(".")[0], folder


def add_quality(chain: Chain, result: dict[str, Any], files: _FileMetrics) -> None:
    """Code quality of every measured implementation, with the same engine as ``hepaudit audit``."""
    package, _ = _package_folder(chain)
    for entry in result["stages"]:
        stage = chain.stages[entry["name"]]
        for device, implementation in stage.implementations.items():
            measured = entry["devices"].get(device)
            if measured is not None and measured.get("status") in ("measured", "failed", "unavailable"):
                measured["quality"] = implementation_quality(implementation.function, package, files)


def add_speedups(result: dict[str, Any]) -> None:
    for entry in result["stages"]:
        cpu = entry["devices"].get("cpu", {})
        gpu = entry["devices"].get("gpu", {})
        if cpu.get("status") == "measured" and gpu.get("status") == "measured":
            entry["speedup"] = speedup(Measurement.from_json(cpu["time"]), Measurement.from_json(gpu["time"]))


def finish_chain(chain: Chain, result: dict[str, Any], files: _FileMetrics,
                 placement: Callable[[Chain, dict[str, Any]], dict[str, Any]] | None) -> dict[str, Any]:
    """Add what does not depend on where it was measured: source, code quality, speedups, ranking,
    placement."""
    package, folder = _package_folder(chain)
    result["source"] = {"package": package, "git": git_commit(folder) if folder else None}
    add_quality(chain, result, files)
    add_speedups(result)
    result["ranking"] = rank_chain(result)
    if placement is not None:
        result["placement"] = placement(chain, result)
    return result


def new_report(options: ProfileOptions) -> dict[str, Any]:
    """The frame of a run report: identity, environment and options, no chains yet."""
    return {
        "schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(),
        "options": {"devices": list(options.devices), "stages": list(options.stages), "mode": options.mode,
                    "parameters": dict(options.parameters), "min_repeats": options.min_repeats,
                    "min_seconds": options.min_seconds, "min_agreement": options.min_agreement},
        "chains": [], "interrupted": False,
    }


def run_chains(chains: Sequence[Chain], options: ProfileOptions, energy_meter: EnergyMeter | None = None,
               progress: Callable[[str], None] | None = None,
               placement: Callable[[Chain, dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Measure ``chains`` and return the run report."""
    report = new_report(options)
    files = _FileMetrics()
    for chain in chains:
        try:
            result = profile_chain(chain, options, energy_meter, progress)
        except KeyboardInterrupt:
            report["interrupted"] = True
            break
        report["chains"].append(finish_chain(chain, result, files, placement))
        if result["interrupted"]:
            report["interrupted"] = True
            break
    return report
