"""The ``hepaudit run`` command: choose chains and devices, measure, save and show the report."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from rich.console import Console

from auditor.devices import gpu_status
from auditor.errors import UserError
from auditor.profiler import ProfileOptions
from auditor.registry import load_chains


def default_output(now: datetime | None = None) -> Path:
    return Path("reports") / (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


def _check_stages(chains: Sequence[Any], stages: Sequence[str]) -> None:
    if not stages:
        return
    known = {name for chain in chains for name in chain.stages}
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise UserError(f"No chosen chain has stage {', '.join(map(repr, unknown))}; "
                        f"stages: {', '.join(sorted(known))}.")


def prepare_output(folder: Path) -> Path:
    """Create the output folder before measuring, so a bad --out fails before any work is lost."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".hepaudit-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"Cannot write reports to {folder}: {exc.strerror or exc}.") from None
    return folder


def save_report(report: dict[str, Any], folder: Path) -> list[Path]:
    """Write report.json, report.md and report.html into ``folder``."""
    from auditor.render import json_report, run_html, run_markdown

    written = []
    for name, text in (("report.json", json_report.dumps(report)),
                       ("report.md", run_markdown.render(report)),
                       ("report.html", run_html.render(report))):
        path = folder / name
        json_report.write_text(path, text, name)
        written.append(path)
    return written


def execute_run(chain_names: list[str], stages: tuple[str, ...], parameters: dict[str, Any],
                devices: tuple[str, ...], mode: str, energy: bool, min_agreement: float,
                out: Path | None, quiet: bool, err: Console, country: str = "FRA") -> int:
    """Run, save, render; return the exit code (0, or 130 when interrupted)."""
    from auditor.run import run_chains

    chains, problems = load_chains(chain_names)
    for problem in problems:
        err.print(f"[yellow]hepaudit:[/] {problem}", highlight=False)
    _check_stages(chains, stages)
    usable, reason = gpu_status()
    if devices == ("gpu",) and not usable:
        raise UserError(f"The GPU was requested but cannot be used: {reason}.")
    folder = prepare_output(out or default_output())
    options = ProfileOptions(devices=devices, stages=stages, parameters=parameters, mode=mode,
                             min_agreement=min_agreement)
    from auditor.energy_meter import EnergyMeter

    meter = EnergyMeter(mode, country) if energy else None
    placement = _placement(min_agreement)
    progress = None if quiet else _status(err, planned_steps(chains, options))
    try:
        report = run_chains(chains, options, meter, progress.update if progress else None, placement)
    finally:
        if progress:
            progress.stop()
        if meter is not None:
            meter.close()
    report["energy"] = meter.describe() if meter is not None else {"status": "not measured (--no-energy)"}
    written = save_report(report, folder)
    if not quiet:
        from auditor.render import run_console

        run_console.render(report, Console())
        err.print(f"Report saved: {', '.join(str(p) for p in written)}", highlight=False)
    return 130 if report["interrupted"] else 0


class _status:
    """A progress bar over the measurement steps, labelled with the current one (terminal only)."""

    def __init__(self, console: Console, total: int | None = None):
        self.progress = None
        self.steps = 0
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
            self.task = self.progress.add_task("starting", total=total)
            self.progress.start()

    def update(self, message: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=message, completed=self.steps)
            self.steps += 1

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def planned_steps(chains: Sequence[Any], options: ProfileOptions) -> int:
    """How many progress messages a run will print: events, reference pass, stage x device, copies."""
    usable = gpu_status()[0]
    steps = 0
    for chain in chains:
        devices = [d for d in options.devices if d == "cpu" or usable]
        stages = chain.select(list(options.stages)) if options.stages else list(chain.stages.values())
        steps += 2 + sum(1 for s in stages for d in devices if d in s.implementations)
        steps += 1 if "gpu" in devices else 0
    return steps


def _placement(min_agreement: float):
    from auditor.placement_report import placement_for_chain

    return lambda chain, result: placement_for_chain(chain, result, min_agreement)
