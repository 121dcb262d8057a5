"""The ``hepaudit`` command line."""

from __future__ import annotations

import dataclasses
import sys
from enum import Enum
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Optional

import typer
from rich.console import Console

from auditor import __version__
from auditor.errors import UserError

if TYPE_CHECKING:  # imported by the commands that need them, to keep start-up fast
    from auditor.config import AuditConfig, Thresholds
    from auditor.gate import GateResult
    from auditor.git_baseline import RefTarget

app = typer.Typer(
    name="hepaudit",
    help=(
        "Tell what code costs and where it should run: time, transfers, energy and code quality "
        "for each stage of a computing chain, and audits of whole codebases (Python, C, C++, "
        "CUDA, HIP, SYCL).\n\n"
        "Examples:\n\n"
        "  hepaudit audit .                      # code quality of this tree\n\n"
        "  hepaudit audit src include --json audit.json --markdown summary.md\n\n"
        "  hepaudit report audit.json            # render a saved report again"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

err = Console(stderr=True)


class PylintMode(str, Enum):
    off = "off"
    fast = "fast"
    full = "full"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hepaudit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """hepaudit command line."""


def fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    err.print(f"[bold red]hepaudit:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def _progress_factory(enabled: bool) -> Optional[Callable]:
    if not enabled or not err.is_terminal:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    def start(total: int, label: str):
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=True)
        task = progress.add_task(label, total=total)
        progress.start()

        def advance(count: int) -> None:
            progress.advance(task, count)
            if progress.finished:
                progress.stop()

        return advance

    return start


AUDIT_EPILOG = """
Examples:

  hepaudit audit .                                   audit this tree (honours .gitignore)

  hepaudit audit src tests --top 50                  list the 50 most complex functions

  hepaudit audit . --json audit.json --markdown "$GITHUB_STEP_SUMMARY"

  hepaudit audit . --pylint full --jobs 2            every pylint checker, two workers

  hepaudit audit . --exclude "tests/**" --skip-dir generated

  hepaudit audit . --scheduler tcp://scheduler:8786  analyse on a Dask cluster (or local, local:N)

Settings can also live in \\[tool.hepaudit] of pyproject.toml (or in hepaudit.toml): include,
exclude, skip_dirs, max_file_mb, pylint, jobs, scheduler, top and \\[tool.hepaudit.thresholds].
Options given here win. Results are cached by file content in ~/.cache/hepaudit
(HEPAUDIT_CACHE_DIR moves it); with --scheduler the cache stays with this process, so on a cluster
put it on a shared filesystem for other runs and clients to reuse.
Exit codes: 0 done, 2 bad input (missing path, nothing to analyse, bad settings).
"""


@app.command(epilog=AUDIT_EPILOG)
def audit(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to audit.", show_default=False)],
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON (schema-versioned) to this file.")] = None,
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Write a Markdown report, e.g. for a CI job summary.")] = None,
    pylint: Annotated[Optional[PylintMode], typer.Option(help="pylint profile: off; fast = design, size and complexity checkers [default]; full = all checkers.")] = None,
    top: Annotated[Optional[int], typer.Option(help="How many of the most complex functions to list \\[default: 20].")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help="Worker processes; 0 = one per core \\[default: 0].")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Analyse every file again and leave the cache untouched.")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Cache folder \\[default: $HEPAUDIT_CACHE_DIR or ~/.cache/hepaudit].")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Settings file (pyproject.toml or hepaudit.toml) instead of the nearest one.")] = None,
    include: Annotated[Optional[list[str]], typer.Option(help="Only audit files matching this gitignore-style pattern (repeatable).")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Leave out files matching this gitignore-style pattern (repeatable).")] = None,
    skip_dir: Annotated[Optional[list[str]], typer.Option(help="Also skip folders with this name or glob (repeatable).")] = None,
    no_default_skips: Annotated[bool, typer.Option("--no-default-skips", help="Do not skip build, vendored and cache folders.")] = False,
    max_file_mb: Annotated[Optional[float], typer.Option(help="Files larger than this are listed as not analysed \\[default: 2].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors (use with --json/--markdown).")] = False,
    benchmark_json: Annotated[Optional[Path], typer.Option("--benchmark-json", help="Write headline metrics for github-action-benchmark (tool: customSmallerIsBetter).")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Analyse on Dask: 'local', 'local:N', a scheduler address or a scheduler .json file \\[default: \\[tool.hepaudit] scheduler, else this machine's --jobs].")] = None,
) -> None:
    """Audit code quality: complexity, size, maintainability and lint of Python, C, C++ and GPU code."""
    from auditor.config import load_config, validate
    from auditor.render import console as console_renderer
    from auditor.render import json_report, markdown as markdown_renderer
    from auditor.static.cache import default_cache_dir
    from auditor.static.discovery import audit_root

    try:
        for path in paths:
            if not path.exists() and not path.is_symlink():
                raise UserError(f"Path '{path}' does not exist.")
        settings = load_config(audit_root(paths), config)
        changes: dict[str, object] = {}
        if pylint is not None:
            changes["pylint"] = pylint.value
        changes.update(_given(top=top, jobs=jobs, max_file_mb=max_file_mb, scheduler=scheduler))
        if include:
            changes["include"] = settings.include + tuple(include)
        if exclude:
            changes["exclude"] = settings.exclude + tuple(exclude)
        skip_dirs = () if no_default_skips else settings.skip_dirs
        changes["skip_dirs"] = tuple(skip_dirs) + tuple(skip_dir or ())
        settings = validate(dataclasses.replace(settings, **changes))
        cache = None if no_cache else (cache_dir or default_cache_dir())
        report = _audit_function(settings)(paths, settings, cache, progress=_progress_factory(not quiet))
        if not report["files"] and not report["not_analysed"]:
            raise UserError(f"Nothing to analyse under {', '.join(map(str, paths))}: no Python, C, C++, CUDA, HIP or SYCL files.")
        if json_out is not None:
            json_report.write_text(json_out, json_report.dumps(report), "JSON report")
        if markdown is not None:
            json_report.write_text(markdown, markdown_renderer.render(report), "Markdown report")
        _write_benchmark_json(benchmark_json, report)
        if not quiet:
            console_renderer.render(report, Console())
        if not report["files"]:
            raise UserError(f"None of the {len(report['not_analysed'])} files found could be analysed; the reasons are listed above.")
    except UserError as exc:
        fail(str(exc), exc.exit_code)


def _given(**options: object) -> dict[str, object]:
    """The options given on the command line (not None), which win over the settings file."""
    return {name: value for name, value in options.items() if value is not None}


def _audit_function(settings: AuditConfig) -> Callable:
    """``run_audit``, or its Dask variant when a scheduler is set (only then is Dask imported)."""
    if settings.scheduler is None:
        from auditor.static.engine import run_audit

        return run_audit
    from auditor.cluster.audit import run_audit_on_cluster

    return run_audit_on_cluster


RUN_EPILOG = """
Examples:

  hepaudit run                                   every registered chain, quick mode, all devices here

  hepaudit run --chain tracking --pileup 200 --events 5 --mode normal

  hepaudit run --chain tracking --stage seeding --devices gpu --precise

  hepaudit run --param size=100000 --out reports/today

  hepaudit run --chain tracking --scheduler local --events 40 --events-per-unit 10

  hepaudit run --scheduler tcp://scheduler:8786 --out reports/cluster     then --resume after a crash

With --scheduler (or `scheduler` in \\[tool.hepaudit]) the work is cut into units (chain x device x
node type x event range) run on Dask workers; each unit is saved in OUT/units/ as it finishes, the
report has one result per chain and node type, and lists retried, resumed and concurrent units.

Chains come from installed packages (entry points "hepaudit.chains") and from \\[tool.hepaudit.chains]
in pyproject.toml of the current folder. The report is written to reports/<timestamp>/ as
report.json, report.md and report.html. Exit codes: 0 done, 2 bad input (unknown chain or stage,
absent device), 1 some work units failed, 130 interrupted (what was measured is saved).
"""


def _parse_params(values: list[str] | None) -> dict[str, object]:
    from auditor.sweep import parse_value

    parsed: dict[str, object] = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param {item!r} must look like KEY=VALUE.")
        parsed[key] = parse_value(raw)
    return parsed


@app.command(epilog=RUN_EPILOG)
def run(
    chain: Annotated[Optional[list[str]], typer.Option("--chain", "-c", help="Chain to run (repeatable) \\[default: all registered].")] = None,
    stage: Annotated[Optional[list[str]], typer.Option("--stage", "-s", help="Only these stages (repeatable).")] = None,
    events: Annotated[Optional[int], typer.Option(help="Events per chain \\[default: the chain's, fewer in quick mode].")] = None,
    pileup: Annotated[Optional[int], typer.Option(help="Pile-up for chains that simulate collisions (e.g. tracking).")] = None,
    param: Annotated[Optional[list[str]], typer.Option(help="Any chain parameter as KEY=VALUE (repeatable).")] = None,
    devices: Annotated[str, typer.Option(help="Comma-separated devices to measure: cpu, gpu.")] = "cpu,gpu",
    mode: Annotated[str, typer.Option(help="quick (small inputs, short timing), normal, or precise.")] = "quick",
    precise: Annotated[bool, typer.Option("--precise", help="Same as --mode precise: longer timing and 10 s energy windows.")] = False,
    energy: Annotated[bool, typer.Option("--energy/--no-energy", help="Measure energy per stage (adds the energy windows to the run time).")] = True,
    min_agreement: Annotated[float, typer.Option(help="Exclude a device implementation from the placement below this matching rate.")] = 0.99,
    country: Annotated[str, typer.Option(help="ISO 3166 alpha-3 code of the electricity grid for carbon (codecarbon's offline data).")] = "FRA",
    out: Annotated[Optional[Path], typer.Option(help="Output folder \\[default: reports/<timestamp>].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
    scheduler: Annotated[Optional[str], typer.Option(help="Spread the work over Dask: 'local', 'local:N', a scheduler address or a scheduler .json file \\[default: \\[tool.hepaudit] scheduler, else no Dask].")] = None,
    events_per_unit: Annotated[Optional[int], typer.Option(help="Split each chain's events into work units of this many (needs --events).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the unit results already saved in --out and measure only the rest.")] = False,
) -> None:
    """Measure chains stage by stage on CPU and GPU: time, transfers, energy, agreement, code quality, placement."""
    from auditor.runner import execute_run

    try:
        mode = _mode(mode, precise)
        wanted = _devices(devices)
        parameters = _fixed_parameters(param, events)
        if pileup is not None:
            parameters["pileup"] = pileup
        if not 0 <= min_agreement <= 1:
            raise UserError("--min-agreement is a rate between 0 and 1.")
        scale = _scale_out(scheduler, events_per_unit, resume, out)
        if scale is not None:
            from auditor.cluster.commands import RunRequest, execute_job_run
            from auditor.cluster.units import UnitSettings

            request = RunRequest(tuple(chain or ()), tuple(stage or ()), parameters, wanted,
                                 UnitSettings(mode, energy, country, min_agreement), out, quiet)
            code = execute_job_run(request, scale, err)
        else:
            code = execute_run(list(chain or []), tuple(stage or ()), parameters, wanted, mode, energy, min_agreement,
                               out, quiet, err, country)
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    raise typer.Exit(code)


def _scale_out(scheduler: Optional[str], events_per_unit: Optional[int], resume: bool, out: Optional[Path]):
    """The scale-out settings when a job of work units is asked for (a scheduler, split events or a
    resume), else None: the plain in-process run."""
    from auditor.cluster.commands import ScaleOut, resolve_scheduler

    scheduler = resolve_scheduler(scheduler)
    if events_per_unit is not None and events_per_unit < 1:
        raise UserError("--events-per-unit must be at least 1.")
    if resume and out is None:
        raise UserError("--resume needs --out: the folder whose saved unit results to reuse.")
    if scheduler is None and events_per_unit is None and not resume:
        return None
    return ScaleOut(scheduler, events_per_unit, resume)


SWEEP_EPILOG = """
Examples:

  hepaudit sweep --chain tracking --grid pileup=20,60,100,140,200,300 --events 2

  hepaudit sweep --chain dqm --grid runs=20,40,80 --scheduler local --out reports/dqm-sweep

  hepaudit sweep --chain tracking --grid pileup=50,200 --grid events=2,4 --scheduler tcp://scheduler:8786

Each grid point is measured like `hepaudit run` (every device and node type), serially here or as
work units on Dask with --scheduler (or `scheduler` in \\[tool.hepaudit]). The report (report.json,
.md, .html in --out) has every point's results, and for each numeric parameter each stage's time
versus the parameter with the fitted power-law exponent k (time = a * value^k), plotted on log-log
axes (scaling-*.png). Unit results are saved in OUT/units/ as they finish: --resume reuses them.
Exit codes: 0 done, 1 some units failed, 2 bad input, 130 interrupted.
"""


@app.command(epilog=SWEEP_EPILOG)
def sweep(
    grid: Annotated[list[str], typer.Option("--grid", "-g", help="NAME=V1,V2,... a chain parameter and its values (repeatable: the grid is their product).")],
    chain: Annotated[Optional[list[str]], typer.Option("--chain", "-c", help="Chain to sweep (repeatable) \\[default: all registered].")] = None,
    stage: Annotated[Optional[list[str]], typer.Option("--stage", "-s", help="Only these stages (repeatable).")] = None,
    events: Annotated[Optional[int], typer.Option(help="Events per point \\[default: the chain's].")] = None,
    param: Annotated[Optional[list[str]], typer.Option(help="A fixed chain parameter KEY=VALUE (repeatable).")] = None,
    devices: Annotated[str, typer.Option(help="Comma-separated devices to measure: cpu, gpu.")] = "cpu,gpu",
    mode: Annotated[str, typer.Option(help="quick, normal or precise timing (quick still uses the grid's values).")] = "normal",
    energy: Annotated[bool, typer.Option("--energy/--no-energy", help="Measure energy per stage.")] = False,
    scheduler: Annotated[Optional[str], typer.Option(help="'local', 'local:N', a scheduler address or .json file \\[default: \\[tool.hepaudit] scheduler, else serial].")] = None,
    events_per_unit: Annotated[Optional[int], typer.Option(help="Split each point's events into units of this many (needs --events).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the unit results saved in --out.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Output folder \\[default: reports/<timestamp>].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Measure chains over a grid of parameters (e.g. pile-up) and fit how each stage's cost grows."""
    try:
        from auditor.cluster.commands import RunRequest, ScaleOut, execute_sweep, resolve_scheduler
        from auditor.cluster.units import UnitSettings
        from auditor.sweep import parse_grid

        request = RunRequest(tuple(chain or ()), tuple(stage or ()), _fixed_parameters(param, events),
                             _devices(devices), UnitSettings(_mode(mode, False), energy), out, quiet)
        scale = _scale_out(scheduler, events_per_unit, resume, out) or ScaleOut(resolve_scheduler(None))
        code = execute_sweep(request, parse_grid(grid), scale, err)
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    raise typer.Exit(code)


def _fixed_parameters(param: Optional[list[str]], events: Optional[int]) -> dict[str, object]:
    parameters = _parse_params(param)
    if events is not None:
        if events < 1:
            raise UserError("--events must be at least 1.")
        parameters["events"] = events
    return parameters


def _devices(devices: str) -> tuple[str, ...]:
    wanted = tuple(d.strip() for d in devices.split(",") if d.strip())
    bad = [d for d in wanted if d not in ("cpu", "gpu")]
    if bad or not wanted:
        raise UserError(f"--devices takes cpu and/or gpu, not {devices!r}.")
    return wanted


def _mode(mode: str, precise: bool) -> str:
    mode = "precise" if precise else mode
    if mode not in ("quick", "normal", "precise"):
        raise UserError(f"--mode must be quick, normal or precise, not {mode!r}.")
    return mode


PROFILE_EPILOG = """
Examples:

  hepaudit profile -- python reconstruct.py --events 10

  hepaudit profile --name fit --repeats 10 --source src/ -- ./build/fit input.root

Everything after -- is the command. It runs once to warm up, then --repeats times; its standard
output is discarded. The report (time, CPU time, peak memory of the process tree, energy with its
method, and with --source the code quality of that path) goes to reports/<timestamp>/.
"""


@app.command(epilog=PROFILE_EPILOG)
def profile(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.", show_default=False)],
    name: Annotated[Optional[str], typer.Option(help="Name of the stage in the report \\[default: the program name].")] = None,
    repeats: Annotated[int, typer.Option(help="Timed runs after the warm-up run.")] = 5,
    source: Annotated[Optional[Path], typer.Option(help="Also audit this code and attach its quality to the stage.")] = None,
    energy: Annotated[bool, typer.Option("--energy/--no-energy", help="Measure energy over extra windows of runs.")] = True,
    precise: Annotated[bool, typer.Option("--precise", help="Longer energy windows (10 s).")] = False,
    country: Annotated[str, typer.Option(help="ISO 3166 alpha-3 code of the electricity grid for carbon.")] = "FRA",
    out: Annotated[Optional[Path], typer.Option(help="Output folder \\[default: reports/<timestamp>].")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Measure any command as a single stage: time, CPU time, peak memory, energy, and code quality."""
    from auditor.command_profile import ProfileRequest, run_profile

    try:
        request = ProfileRequest(list(command), name, repeats, source, energy, precise, country, out, quiet)
        report, written = run_profile(request, err)
    except UserError as exc:
        fail(str(exc), exc.exit_code)
        return
    if not quiet:
        from auditor.render import run_console

        run_console.render(report, Console())
        err.print(f"Report saved: {', '.join(str(p) for p in written)}", highlight=False)
    device = report["chains"][0]["stages"][0]["devices"]["cpu"]
    if device["status"] == "failed":
        fail(device["error"].splitlines()[0], 1)


REPORT_EPILOG = """
Examples:

  hepaudit report audit.json --markdown summary.md

  hepaudit report reports/20261126-1200/report.json --html report.html

  hepaudit report history.json --html history.html     a saved `hepaudit history --json`

Audit reports render as Markdown, run reports as Markdown or HTML, history reports as HTML.
"""


@app.command(epilog=REPORT_EPILOG)
def report(
    file: Annotated[Path, typer.Argument(help="A report saved with --json (audit, run or history).")],
    markdown: Annotated[Optional[Path], typer.Option("--markdown", help="Also write it as Markdown to this file.")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write it as a self-contained HTML page to this file.")] = None,
) -> None:
    """Render a saved JSON report (of `audit`, `run` or `history`) again: console, and optionally Markdown or HTML."""
    from auditor.render import json_report

    try:
        data = json_report.load(file)
        renderers = _report_renderers(data["schema"])
        for out, kind, what in ((markdown, "markdown", "Markdown report"), (html, "html", "HTML report")):
            if out is not None:
                json_report.write_text(out, _rendered(renderers, kind, data, file), what)
        renderers["console"](data, Console())
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    except (KeyError, TypeError) as exc:
        fail(f"{file} does not match the report schema (missing or wrong field {exc}).")


def _report_renderers(schema: str) -> dict[str, Callable]:
    """The renderers of a saved report by its schema: console, and markdown / html where there is one."""
    if schema == "hepaudit.run":
        from auditor.render import run_console, run_html, run_markdown

        return {"console": run_console.render, "markdown": run_markdown.render, "html": run_html.render}
    if schema == "hepaudit.history":
        from auditor.render import history_console, history_html

        return {"console": history_console.render, "html": history_html.render}
    from auditor.render import console as console_renderer
    from auditor.render import markdown as markdown_renderer

    return {"console": console_renderer.render, "markdown": markdown_renderer.render}


def _rendered(renderers: dict[str, Callable], kind: str, data: dict, file: Path) -> str:
    if kind not in renderers:
        what = data["schema"].removeprefix("hepaudit.")
        others = " or ".join(k for k in ("markdown", "html") if k in renderers)
        raise UserError(f"{file} is a {what} report, which has no {kind} rendering; use --{others}.")
    return renderers[kind](data)


CHECK_EPILOG = """
Examples:

  hepaudit check . --baseline hepaudit-baseline.json --update-baseline    create or accept a baseline

  hepaudit check . --baseline hepaudit-baseline.json --sarif check.sarif --junit check.xml

  hepaudit check . -b hepaudit-baseline.json --summary "$GITHUB_STEP_SUMMARY" --gitlab gl-code-quality.json

  hepaudit check src --baseline main-audit.json     a saved `hepaudit audit --json` report as baseline

  hepaudit check src --baseline-ref origin/main      src as it is on origin/main is the baseline

  hepaudit check . --baseline-ref HEAD~1             what the last commit changed

A function fails when it is above a threshold and is new, or got worse than in the baseline;
functions already above a threshold that did not get worse pass. Functions are followed across
moves and renames (same path and name, then the same body, then a unique name). Thresholds come
from \\[tool.hepaudit.thresholds], per folder from \\[\\[tool.hepaudit.overrides]] (the last matching
override wins for each key it sets). Run it with the same PATH as the baseline and from the same
folder (paths are kept relative to it). --update-baseline writes the current functions as the new
baseline and accepts whatever it lists.

--baseline-ref REF audits PATH as it is in the commit REF names: its files are read from git into
a temporary folder (removed afterwards; the work tree, index and refs are not touched) and audited
with the same settings and analysis cache. A shallow CI checkout must fetch REF first (e.g.
actions/checkout with fetch-depth: 0). Symbolic links and submodules are not part of that baseline.
Exit codes: 0 pass, 1 regression found, 2 bad input (missing path, unreadable baseline, unknown
ref, PATH not in a git work tree).
"""


@app.command(epilog=CHECK_EPILOG)
def check(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to audit.", show_default=False)],
    baseline: Annotated[Optional[Path], typer.Option("--baseline", "-b", help="Baseline file (written by --update-baseline) or a saved `hepaudit audit --json` report.", show_default=False)] = None,
    baseline_ref: Annotated[Optional[str], typer.Option("--baseline-ref", help="Git revision (origin/main, HEAD~1, a tag or sha) whose version of PATH is audited as the baseline, instead of --baseline; unchanged files come from the analysis cache.", show_default=False)] = None,
    update_baseline: Annotated[bool, typer.Option("--update-baseline", help="Write the current functions to --baseline and exit 0 (accepts the regressions listed).")] = False,
    sarif: Annotated[Optional[Path], typer.Option("--sarif", help="Write SARIF 2.1.0 (violations, then pre-existing debt as notes; at most 5,000 results).")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write JUnit XML: one test case per gated metric.")] = None,
    gitlab: Annotated[Optional[Path], typer.Option("--gitlab", help="Write GitLab Code Quality JSON (violations major/critical, debt info).")] = None,
    summary: Annotated[Optional[Path], typer.Option("--summary", help="Write a Markdown job summary (at most 1 MiB), e.g. \"$GITHUB_STEP_SUMMARY\".")] = None,
    benchmark_json: Annotated[Optional[Path], typer.Option("--benchmark-json", help="Write headline metrics for github-action-benchmark (tool: customSmallerIsBetter).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the current audit report as JSON.")] = None,
    pylint: Annotated[PylintMode, typer.Option(help="pylint profile for the --json report; the gate does not use it.")] = PylintMode.off,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help="Worker processes; 0 = one per core \\[default: 0].")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Analyse every file again and leave the cache untouched.")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Cache folder \\[default: $HEPAUDIT_CACHE_DIR or ~/.cache/hepaudit].")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Settings file (pyproject.toml or hepaudit.toml) instead of the nearest one.")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Leave out files matching this gitignore-style pattern (repeatable).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the offenders and the verdict.")] = False,
) -> None:
    """Ratchet code quality against a baseline file or git revision: fail on new or worse functions above a threshold."""
    import time

    from auditor.static.cache import default_cache_dir

    started = time.perf_counter()
    out = Console()
    try:
        source = _check_baseline(paths, baseline, baseline_ref, update_baseline)
        settings = _check_settings(paths, config, pylint.value, jobs, exclude)
        cache = None if no_cache else (cache_dir or default_cache_dir())
        report = _check_audit(paths, settings, cache, quiet, json_out)
        result = _check_result(source, report, settings, cache, None if quiet else out)
        _write_check_outputs(result, report,
                             {"sarif": sarif, "junit": junit, "gitlab": gitlab, "summary": summary,
                              "benchmark_json": benchmark_json},
                             {"baseline": source.label, "accepting": update_baseline,
                              "seconds": time.perf_counter() - started})
        _print_check(out, result, source.label, report, quiet, update_baseline)
        if update_baseline:
            _write_baseline(out, source, report, settings.thresholds, result.compared)
            return
    except UserError as exc:
        fail(str(exc), exc.exit_code)
    if not result.passed:
        raise typer.Exit(1)


@dataclasses.dataclass(frozen=True)
class _BaselineSource:
    """Where ``check`` takes its baseline from: a file (``path``) or a git revision (``ref``)."""

    label: str  #: how the outputs name it: the file, or the ref and its commit
    path: Optional[Path] = None
    functions: tuple = ()  #: the functions of a baseline file
    limits: Optional[Thresholds] = None  #: the thresholds recorded in a baseline file, when it has them
    ref: Optional[RefTarget] = None


def _check_baseline(paths: list[Path], baseline: Optional[Path], ref: Optional[str], updating: bool) -> _BaselineSource:
    """Check PATH and the baseline options; read a baseline file, or find the git revision."""
    from auditor import gate

    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise UserError(f"Path '{path}' does not exist.")
    if (baseline is None) == (ref is None):
        raise UserError("Give the baseline as a file (--baseline FILE) or as a git revision (--baseline-ref REF)."
                        if baseline is None else "Give either --baseline FILE or --baseline-ref REF, not both.")
    if ref is not None:
        return _ref_baseline(paths, ref, updating)
    if updating and not baseline.exists():
        return _BaselineSource(str(baseline), path=baseline)
    functions, limits = gate.load_baseline(baseline)
    return _BaselineSource(str(baseline), baseline, tuple(functions), limits)


def _ref_baseline(paths: list[Path], ref: str, updating: bool) -> _BaselineSource:
    from auditor.git_baseline import open_ref

    if updating:
        raise UserError("--update-baseline writes a baseline file, so it needs --baseline FILE, not --baseline-ref.")
    target = open_ref(paths, ref)
    return _BaselineSource(target.label, ref=target)


def _check_settings(paths: list[Path], config: Optional[Path], pylint: str, jobs: Optional[int],
                    exclude: Optional[list[str]]) -> AuditConfig:
    """The audit settings of ``check``: the nearest configuration with the command-line options."""
    from auditor.config import load_config, validate
    from auditor.static.discovery import audit_root

    settings = load_config(audit_root(paths), config)
    changes: dict[str, object] = {"pylint": pylint}
    if jobs is not None:
        changes["jobs"] = jobs
    if exclude:
        changes["exclude"] = settings.exclude + tuple(exclude)
    return validate(dataclasses.replace(settings, **changes))


def _check_audit(paths: list[Path], settings: AuditConfig, cache: Optional[Path], quiet: bool,
                 json_out: Optional[Path]) -> dict:
    """The audit of the working tree, also written as JSON when asked for."""
    from auditor.render import json_report
    from auditor.static.engine import run_audit

    report = run_audit(paths, settings, cache, progress=_progress_factory(not quiet))
    if not report["files"]:
        raise UserError(f"Nothing could be analysed under {', '.join(map(str, paths))}: no readable Python, C, C++, CUDA, HIP or SYCL files.")
    if json_out is not None:
        json_report.write_text(json_out, json_report.dumps(report), "JSON report")
    return report


def _check_result(source: _BaselineSource, report: dict, settings: AuditConfig, cache: Optional[Path],
                  out: Optional[Console]) -> GateResult:
    """The gate: the working tree's functions against the baseline's, each with its file's thresholds."""
    from auditor import gate
    from auditor.config import ThresholdLookup

    functions = list(source.functions)
    if source.ref is not None:
        from auditor.git_baseline import audit_ref

        found = audit_ref(source.ref, settings, cache, report["root"], _progress_factory(out is not None))
        functions = list(found.functions)
        if out is not None:
            out.print(f"Baseline {source.label}: {found.files} source file(s), {found.cache_hits} from the analysis "
                      f"cache, {len(functions)} functions.", highlight=False, markup=False, soft_wrap=True)
    lookup = ThresholdLookup(settings)
    return gate.compare(functions, gate.functions_of_audit(report), settings.thresholds, source.limits,
                        limits_for=lambda f: lookup.for_file(gate.file_location(report["root"], f.path)))


def _write_baseline(out: Console, source: _BaselineSource, report: dict, limits: Thresholds, count: int) -> None:
    from auditor import gate
    from auditor.render import json_report

    json_report.write_text(source.path, gate.baseline_document(report, limits), "baseline")
    out.print(f"Baseline written: {source.path} ({count} functions).", highlight=False)


def _write_benchmark_json(path: Optional[Path], report: dict) -> None:
    """github-action-benchmark JSON (customSmallerIsBetter) of an audit report, when asked for."""
    import json

    from auditor.render import benchmark_json as benchmark_renderer
    from auditor.render import json_report

    if path is not None:
        json_report.write_text(path, json.dumps(benchmark_renderer.render(report), indent=1, ensure_ascii=False) + "\n",
                               "benchmark JSON")


def _write_check_outputs(result, report: dict, paths: dict[str, Optional[Path]], context: dict) -> None:
    """The CI outputs of ``check`` that were asked for (``paths``: SARIF, JUnit, GitLab, job summary,
    benchmark JSON); ``context`` holds the baseline path, whether it is being accepted, and seconds."""
    import json

    from auditor.render import check_summary, gitlab, json_report, junit, sarif

    texts = {
        "sarif": ("SARIF report", lambda: json.dumps(sarif.render(result), indent=1, ensure_ascii=False) + "\n"),
        "junit": ("JUnit report", lambda: junit.render(result, context["seconds"])),
        "gitlab": ("GitLab Code Quality report",
                   lambda: json.dumps(gitlab.render(result), indent=1, ensure_ascii=False) + "\n"),
        "summary": ("job summary", lambda: check_summary.render(result, context["baseline"], report, context["accepting"])),
    }
    for key, (what, text) in texts.items():
        if paths.get(key) is not None:
            json_report.write_text(paths[key], text(), what)
    _write_benchmark_json(paths.get("benchmark_json"), report)


def _print_check(out: Console, result, baseline: str, report: dict, quiet: bool, accepting: bool) -> None:
    """Offenders one per line (greppable in CI logs), then the verdict."""
    from rich.markup import escape

    for finding in result.violations:
        where = f"{finding.function.path}:{finding.function.start_line or 0}"
        change = f"{finding.new} (new function)" if finding.old is None else f"{finding.old} -> {finding.new}"
        moved = f" (formerly {escape(finding.was)})" if finding.was else ""
        out.print(f"[red]{finding.rule.id}[/] {escape(where)} [bold]{escape(finding.function.qualified_name)}[/]{moved}: "
                  f"{finding.rule.title} {change}, threshold {finding.limit}", highlight=False, soft_wrap=True)
    if not quiet:
        if result.moved:
            out.print(f"Followed {len(result.moved)} moved or renamed function(s), e.g. "
                      f"{escape(result.moved[0][0])} -> {escape(result.moved[0][1])}.", highlight=False, soft_wrap=True)
        if result.threshold_changes:
            out.print(f"Thresholds differ from the baseline's: {', '.join(result.threshold_changes)}.", highlight=False)
        if report["not_analysed"]:
            out.print(f"[yellow]{len(report['not_analysed'])} file(s) could not be analysed[/] (their functions are not "
                      f"gated): {escape(', '.join(s['path'] for s in report['not_analysed'][:5]))}", highlight=False,
                      soft_wrap=True)
    offenders = len({(f.function.path, f.function.qualified_name, f.function.start_line) for f in result.violations})
    counts = (f"{result.compared} functions, {result.matched} found in {baseline}, "
              f"{len(result.debt)} pre-existing finding(s) not worse")
    if result.passed:
        out.print(f"[green]hepaudit check passed[/]: {escape(counts)}.", highlight=False, soft_wrap=True)
    else:
        verdict = "accepted as debt in the new baseline" if accepting else "[red]hepaudit check failed[/]"
        out.print(f"{verdict}: {len(result.violations)} regression(s) in {offenders} function(s); {escape(counts)}.",
                  highlight=False, soft_wrap=True)


HISTORY_EPILOG = """
Examples:

  hepaudit history                                  the last 50 commits of this repository

  hepaudit history src --commits 200 --html history.html --json history.json

Walks `git rev-list --first-parent` from HEAD, oldest first, and measures each commit's files that
\\[tool.hepaudit] of the current tree would audit. Only blobs not seen before are read and only
contents not in the analysis cache (shared with `hepaudit audit`) are analysed. Results go to a
SQLite database (default .hepaudit/history.sqlite in the repository); commits already there are not
measured again. A shallow clone is reported with the command that fetches more history.
Exit codes: 0 done, 2 bad input (not a git repository, no commits, bad settings).
"""


@app.command(epilog=HISTORY_EPILOG)
def history(
    path: Annotated[Path, typer.Argument(help="The repository, or a folder in it to restrict the history to.")] = Path("."),
    commits: Annotated[int, typer.Option("--commits", "-n", help="How many commits back from HEAD (first-parent line).")] = 50,
    db: Annotated[Optional[Path], typer.Option("--db", help="History database \\[default: .hepaudit/history.sqlite in the repository root].")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Write a self-contained HTML page with trend plots.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the history report as JSON.")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help="Worker processes; 0 = one per core \\[default: 0].")] = None,
    top: Annotated[Optional[int], typer.Option(help="How many top movers to list \\[default: 20].")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Analysis cache folder \\[default: $HEPAUDIT_CACHE_DIR or ~/.cache/hepaudit].")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Settings file (pyproject.toml or hepaudit.toml) instead of the nearest one.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors and the shallow-clone note.")] = False,
) -> None:
    """Code-quality trends over the last N commits: per sub-project, top movers; console, HTML, JSON."""
    from auditor.history import Storage, run_history
    from auditor.render import history_console, history_html, json_report
    from auditor.static.cache import default_cache_dir

    try:
        settings = _history_settings(path, config, jobs, top)
        report = run_history(path, commits, settings, Storage(db, cache_dir or default_cache_dir()),
                             progress=_progress_factory(not quiet))
        if json_out is not None:
            json_report.write_text(json_out, json_report.dumps(report), "JSON history")
        if html is not None:
            json_report.write_text(html, history_html.render(report), "HTML history")
        if quiet:
            if report["shallow"]["note"]:
                err.print(report["shallow"]["note"], highlight=False, markup=False)
        else:
            history_console.render(report, Console())
    except UserError as exc:
        fail(str(exc), exc.exit_code)


def _history_settings(path: Path, config: Optional[Path], jobs: Optional[int], top: Optional[int]):
    """The audit settings of ``path`` for ``history``, with the command-line overrides."""
    from auditor.config import load_config, validate

    if not path.exists():
        raise UserError(f"Path '{path}' does not exist.")
    settings = load_config(path if path.is_dir() else path.parent, config)
    changes: dict[str, object] = {"pylint": "off"}
    if jobs is not None:
        changes["jobs"] = jobs
    if top is not None:
        changes["top"] = top
    return validate(dataclasses.replace(settings, **changes))


COMPARE_EPILOG = """
Example:

  hepaudit compare reports/main/report.json reports/branch/report.json

Exit codes: 0 no regression, 1 a stage got slower (or used more measured energy) by more than
--ratio with Mann-Whitney p < --alpha, 2 bad input. A large change that the noise cannot confirm is
shown as a warning; estimated energy is never gated.
"""


@app.command(epilog=COMPARE_EPILOG)
def compare(
    baseline: Annotated[Path, typer.Argument(help="The earlier `hepaudit run` report (report.json).")],
    current: Annotated[Path, typer.Argument(help="The new `hepaudit run` report.")],
    ratio: Annotated[float, typer.Option(help="Median ratio above which a change can be a regression.")] = 1.10,
    alpha: Annotated[float, typer.Option(help="One-sided Mann-Whitney U p-value below which it is one.")] = 0.01,
    min_samples: Annotated[int, typer.Option(help="Samples needed on each side to test at all.")] = 5,
) -> None:
    """Runtime and energy regressions between two run reports, respecting the noise."""
    from auditor.compare_runs import compare_files, render
    from auditor.perf_gate import PerfLimits

    try:
        if ratio <= 1 or not 0 < alpha < 1 or min_samples < 2:
            raise UserError("--ratio must be above 1, --alpha between 0 and 1, and --min-samples at least 2.")
        limits = PerfLimits(ratio, alpha, min_samples)
        findings = compare_files(baseline, current, limits)
    except UserError as exc:
        fail(str(exc), exc.exit_code)
        return
    render(findings, limits, Console())
    regressions = [f for f in findings if f.verdict == "regression"]
    for finding in regressions:
        err.print(f"[bold red]regression:[/] {finding.describe()}", highlight=False)
    if regressions:
        raise typer.Exit(1)


def _load_plugins() -> None:
    """Commands contributed by other packages through the ``hepaudit.commands`` entry points."""
    for point in entry_points(group="hepaudit.commands"):
        try:
            register = point.load()
        except Exception:  # noqa: BLE001 - a broken plugin must not take the core commands down
            continue
        register(app)


def main() -> None:
    _load_plugins()
    app(prog_name="hepaudit")


if __name__ == "__main__":
    main()
