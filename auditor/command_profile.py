"""``hepaudit profile -- COMMAND``: measure any command as a single stage.

For codebases that declare no stages: the command runs once to warm up (reported as its first
call), then ``repeats`` times; each run's wall time, CPU time and the peak memory of its whole
process tree are recorded, and energy is measured with the same windows and labels as
``hepaudit run``. With ``--source`` the report adds the quality of that code.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import psutil

from auditor.errors import UserError
from auditor.measurement import Measurement, summarise
from auditor.profiler import EnergyMeter
from auditor.ranking import rank_chain
from auditor.run import SCHEMA_NAME, SCHEMA_VERSION, environment, git_commit


class _Run:
    """One execution of the command with its tree's peak RSS sampled every 10 ms."""

    def __init__(self, command: list[str]):
        self.command = command
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.peak_mb = 0.0
        self.returncode = 0
        self.stderr_tail = ""

    def __call__(self) -> "_Run":
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with tempfile.TemporaryFile() as errors:
            started = time.perf_counter()
            process = psutil.Popen(self.command, stdout=subprocess.DEVNULL, stderr=errors, stdin=subprocess.DEVNULL)
            done = threading.Event()
            sampler = threading.Thread(target=self._sample, args=(process, done), daemon=True)
            sampler.start()
            self.returncode = process.wait()
            self.seconds = time.perf_counter() - started
            done.set()
            sampler.join()
            errors.seek(0)
            self.stderr_tail = errors.read()[-2000:].decode("utf-8", "replace").strip()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return self

    def _sample(self, process: psutil.Process, done: threading.Event) -> None:
        while not done.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
                self.peak_mb = max(self.peak_mb, sum(p.memory_info().rss for p in tree) / 1e6)
            except psutil.Error:
                pass
            done.wait(0.01)


def check_command(command: list[str]) -> None:
    if not command:
        raise UserError("Give the command to profile after '--', e.g. hepaudit profile -- python job.py.")
    program = command[0]
    if os.sep in program:
        if not os.access(program, os.X_OK):
            raise UserError(f"Command '{program}' is not an executable file.")
    elif shutil.which(program) is None:
        raise UserError(f"Command '{program}' was not found on PATH.")


def _source_quality(source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    from auditor.config import load_config
    from auditor.static.cache import default_cache_dir
    from auditor.static.engine import run_audit

    if not source.exists():
        raise UserError(f"Source path '{source}' does not exist.")
    report = run_audit([source], load_config(source if source.is_dir() else source.parent), default_cache_dir())
    total = report["summary"]["total"]
    if not total["functions"]:
        return {"status": "source not found", "functions": []}, report["summary"]
    from radon.complexity import cc_rank

    quality = {"status": "analysed", "max_ccn": total["max_ccn"], "mean_ccn": total["mean_ccn"],
               "grade": cc_rank(total["max_ccn"]), "nloc": total["nloc"],
               "mi": total["mi"]["median"] if "mi" in total else None,
               "functions": report["summary"]["hotspots"][:10], "files": [f["path"] for f in report["files"]][:50]}
    return quality, {"total": total, "by_language": report["summary"]["by_language"],
                     "hotspots": report["summary"]["hotspots"][:10]}


def profile_command(command: list[str], name: str, repeats: int, energy_meter: EnergyMeter | None,
                    source: Path | None, precise: bool = False,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The run report of ``command`` measured as one stage."""
    check_command(command)
    say = progress or (lambda message: None)
    say(f"{name}: first run")
    first = _Run(command)()
    if first.returncode != 0:
        device = {"status": "failed", "error": f"command exited with status {first.returncode}: {first.stderr_tail[-500:]}",
                  "backend": "numpy", "function": shlex.join(command)}
        return _report(command, name, device, None, source)
    runs = []
    for index in range(repeats):
        say(f"{name}: run {index + 1} of {repeats}")
        runs.append(_Run(command)())
        if runs[-1].returncode != 0:
            device = {"status": "failed", "error": f"run {index + 1} exited with status {runs[-1].returncode}: "
                                                   f"{runs[-1].stderr_tail[-500:]}", "backend": "numpy",
                      "function": shlex.join(command)}
            return _report(command, name, device, None, source)
    time_measure = summarise([r.seconds for r in runs], "s", "perf-counter")
    device: dict[str, Any] = {
        "status": "measured", "backend": "numpy", "function": shlex.join(command),
        "time": time_measure.to_json(),
        "first_call": Measurement(first.seconds, "s", "perf-counter", note="first run: cold caches").to_json(),
        "first_call_overhead_s": max(0.0, first.seconds - time_measure.value),
        "samples": len(runs),
        "cpu_time": summarise([r.cpu_seconds for r in runs], "s", "rusage",
                              note="user + system time of the command's processes").to_json(),
        "memory": {"host_peak_mb": round(max(r.peak_mb for r in runs), 1), "host_added_mb": None,
                   "device_peak_mb": None, "device_method": None,
                   "note": "peak resident set size of the command's process tree"},
        "agreement": None,
    }
    if energy_meter is not None:
        say(f"{name}: energy windows")
        # A command may use the GPU too: measure its counters (NVML) along with the host's (RAPL).
        from auditor.devices import gpu_status

        def run_once() -> None:
            if _Run(command)().returncode != 0:
                raise UserError(f"the command failed during the energy windows: {shlex.join(command)}")

        device["energy"] = energy_meter(run_once, "gpu" if gpu_status()[0] else "cpu", "numpy", precise)
    return _report(command, name, device, runs, source)


def _report(command: list[str], name: str, device: dict[str, Any], runs: list[_Run] | None,
            source: Path | None) -> dict[str, Any]:
    quality, audit = (_source_quality(source) if source is not None else (None, None))
    if quality is not None:
        device["quality"] = quality
    stage = {"name": name, "inputs": [], "outputs": [], "reference_device": "cpu",
             "status": "measured" if device["status"] == "measured" else f"failed: {device.get('error', '')}",
             "devices": {"cpu": device, "gpu": {"status": "no implementation"}}}
    chain = {"name": name, "description": f"the command `{shlex.join(command)}` as one stage",
             "parameters": {"command": command}, "events": 1, "input_preparation_s": 0.0,
             "devices": {"requested": ["cpu"], "measured": ["cpu"], "gpu": "not separated: a command is one stage"},
             "stages": [stage], "transfers": [], "interrupted": False, "product_bytes": {},
             "source": {"package": str(source) if source else None, "git": git_commit(Path.cwd())}}
    if audit is not None:
        chain["source_audit"] = audit
    chain["ranking"] = rank_chain(chain)
    return {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "environment": environment(),
            "options": {"devices": ["cpu"], "stages": [], "mode": "command", "parameters": {},
                        "min_repeats": len(runs or []), "min_seconds": 0.0, "min_agreement": 0.0},
            "chains": [chain], "interrupted": False}


@dataclass(frozen=True)
class ProfileRequest:
    """What ``hepaudit profile`` was asked to do."""

    command: list[str]
    name: str | None = None
    repeats: int = 5
    source: Path | None = None
    energy: bool = True
    precise: bool = False
    country: str = "FRA"
    out: Path | None = None
    quiet: bool = False


def _checked_output(request: ProfileRequest) -> Path:
    """Validate the request; create the output folder (before any measuring)."""
    from auditor.runner import default_output, prepare_output

    if request.repeats < 1:
        raise UserError("--repeats must be at least 1.")
    check_command(request.command)
    if request.source is not None and not request.source.exists():
        raise UserError(f"Source path '{request.source}' does not exist.")
    return prepare_output(request.out or default_output())


def _meter(request: ProfileRequest) -> Any:
    from auditor.energy_meter import EnergyMeter

    if not request.energy:
        return None
    return EnergyMeter("precise" if request.precise else "normal", request.country)


def run_profile(request: ProfileRequest, err: Any) -> tuple[dict[str, Any], list[Path]]:
    """The ``hepaudit profile`` command: check the inputs, measure, save; (report, files written)."""
    from auditor.runner import _status, save_report

    folder = _checked_output(request)
    status = _status(err, request.repeats + 1 + int(request.energy)) if not request.quiet else None
    meter = _meter(request)
    try:
        report = profile_command(request.command, request.name or Path(request.command[0]).name, request.repeats,
                                 meter, request.source, request.precise, status.update if status else None)
    finally:
        for closing in (status.stop if status else None, meter.close if meter else None):
            if closing is not None:
                closing()
    report["energy"] = meter.describe() if meter is not None else {"status": "not measured (--no-energy)"}
    return report, save_report(report, folder)
