"""``hepaudit run --scheduler`` and ``hepaudit sweep``: jobs of work units, saved and rendered like
a run (the sweep adds its scaling analysis)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console

from auditor.cluster.execute import UnitStore
from auditor.cluster.job import JobSpec, run_job
from auditor.cluster.units import UnitSettings
from auditor.errors import UserError


@dataclass(frozen=True)
class RunRequest:
    """What ``hepaudit run`` or ``sweep`` was asked to measure."""

    chains: tuple[str, ...]
    stages: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ("cpu", "gpu")
    settings: UnitSettings = UnitSettings()
    out: Path | None = None
    quiet: bool = False


@dataclass(frozen=True)
class ScaleOut:
    """Where and how to spread the work: scheduler address (None: serially here), events per unit,
    and whether to reuse the unit outcomes already saved in the output folder."""

    scheduler: str | None = None
    events_per_unit: int | None = None
    resume: bool = False


def resolve_scheduler(flag: str | None) -> str | None:
    """``--scheduler``, else ``scheduler`` from ``[tool.hepaudit]``, else None."""
    if flag:
        return flag
    from auditor import config

    finder = getattr(config, "configured_scheduler", None)
    return finder(Path.cwd()) if finder else None


def _chain_names(names: tuple[str, ...]) -> tuple[str, ...]:
    from auditor.registry import available_chains

    known = available_chains()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"Unknown chain {', '.join(map(repr, unknown))}; chains: {', '.join(sorted(known)) or 'none'}.")
    return names or tuple(sorted(known))


def _progress(err: Console, quiet: bool):
    from auditor.runner import _status

    holder: dict[str, Any] = {}

    def start(total: int):
        holder["bar"] = None if quiet else _status(err, total)
        return holder["bar"].update if holder["bar"] else (lambda message: None)

    return start, holder


def measure(request: RunRequest, configurations: tuple[Mapping[str, Any], ...], scale: ScaleOut,
            err: Console) -> tuple[dict[str, Any], Path]:
    """Run the job and build its run report (saved per unit as it goes); the report and folder."""
    from auditor.cluster.report import add_chain_results
    from auditor.profiler import ProfileOptions
    from auditor.run import new_report
    from auditor.runner import _placement, default_output, prepare_output

    folder = prepare_output(request.out or default_output())
    spec = JobSpec(_chain_names(request.chains), configurations, request.devices, request.stages,
                   scale.events_per_unit, request.settings)
    start, holder = _progress(err, request.quiet)
    try:
        job, cluster = run_job(spec, scale.scheduler, UnitStore(folder), scale.resume, start)
    finally:
        if holder.get("bar"):
            holder["bar"].stop()
    report = new_report(ProfileOptions(devices=request.devices, stages=request.stages,
                                       parameters=dict(request.parameters), mode=request.settings.mode,
                                       min_agreement=request.settings.min_agreement))
    add_chain_results(report, job, cluster, _placement(request.settings.min_agreement))
    report["energy"] = {"status": "measured on each worker, per unit" if request.settings.energy
                        else "not measured (--no-energy)"}
    return report, folder


def execute_job_run(request: RunRequest, scale: ScaleOut, err: Console) -> int:
    """``hepaudit run`` through work units: save, render; exit code 0, 1 (units failed) or 130."""
    from auditor.runner import save_report

    report, folder = measure(request, (dict(request.parameters),), scale, err)
    written = save_report(report, folder)
    _show(report, request.quiet, err, written)
    return exit_code(report)


def exit_code(report: Mapping[str, Any]) -> int:
    cluster = report["cluster"]
    if report["interrupted"]:
        return 130
    return 1 if cluster["failed"] or cluster["missing"] else 0


def _show(report: dict[str, Any], quiet: bool, err: Console, written: list[Path]) -> None:
    if quiet:
        return
    from auditor.render import run_console

    run_console.render(report, Console())
    err.print(f"Report saved: {', '.join(str(p) for p in written)}", highlight=False)


def execute_sweep(request: RunRequest, grid: Mapping[str, list[Any]], scale: ScaleOut, err: Console) -> int:
    """``hepaudit sweep``: every grid point as one job; the run report plus the scaling analysis."""
    from auditor.render import sweep as sweep_render
    from auditor.runner import save_report
    from auditor.sweep import configurations, scaling

    points = configurations(grid, request.parameters)
    report, folder = measure(request, points, scale, err)
    report["sweep"] = {"grid": {k: list(v) for k, v in grid.items()}, "points": len(points),
                       "scaling": scaling(report["chains"], grid)}
    report["sweep"]["plots"] = sweep_render.write_plots(report["sweep"], folder)
    written = save_report(report, folder)
    if not request.quiet:
        sweep_render.render_console(report["sweep"], Console())
        _cluster_lines(report, err)
        err.print(f"Report saved: {', '.join(str(p) for p in written)}", highlight=False)
    return exit_code(report)


def _cluster_lines(report: Mapping[str, Any], err: Console) -> None:
    cluster = report["cluster"]
    err.print(f"{cluster['completed']} of {cluster['planned']} units done on {cluster['workers']} worker(s) "
              f"({cluster['scheduler']}); {cluster['resumed']} resumed, {len(cluster['retried'])} retried after a "
              f"lost worker, {len(cluster['failed'])} failed.", highlight=False)
    for key, reason in cluster["failed"].items():
        err.print(f"[red]unit {key} failed:[/] {reason}", highlight=False)
