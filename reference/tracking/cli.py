"""Command-line commands of the tracking chain: ``simulate`` and ``reconstruct``.

Registered into the main ``hepaudit`` typer app through the ``hepaudit.commands`` entry
point (``register``). User errors print one sentence and exit with code 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from reference.tracking.errors import TrackingInputError


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def simulate(
    out: Path = typer.Option(..., "--out", help="Directory to write the TrackML CSV events into."),
    pileup: int = typer.Option(200, "--pileup", min=0, help="Number of pile-up vertices per event (mu)."),
    events: int = typer.Option(10, "--events", min=1, help="Number of events."),
    seed: int = typer.Option(1, "--seed", help="Random seed (event i uses the pair (seed, i))."),
    detector: Optional[Path] = typer.Option(None, "--detector", help="TrackML detectors.csv to simulate in "
                                            "(default: the built-in TrackML-like generic detector)."),
) -> None:
    """Generate pile-up events in the TrackML-like detector and write TrackML CSV files."""
    from rich.console import Console
    from rich.progress import Progress

    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
    from reference.tracking.trackml_io import read_detector, write_detector, write_event

    console = Console()
    try:
        det = read_detector(detector) if detector is not None else build_generic_detector()
        out.mkdir(parents=True, exist_ok=True)
        write_detector(out / "detectors.csv", det)
        planes = module_planes(det)
        config = SimulationConfig(pileup=pileup)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("simulating", total=events)
            for i in range(events):
                ev = simulate_event(det, config, seed=[seed, i], planes=planes)
                write_event(out, f"event{i + 1:09d}", ev)
                progress.advance(task)
    except TrackingInputError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"Cannot write to {out}: {exc.strerror}.")
    console.print(f"wrote {events} event(s) with pile-up {pileup} and detectors.csv to {out}")


def _table(summary: dict, per_event: list):
    from rich.table import Table

    t = Table(title="Tracking physics performance (truth-matched)")
    t.add_column("metric")
    t.add_column("value", justify="right")

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.2f} %"

    t.add_row("events", str(summary.get("events", 0)))
    t.add_row("seeding efficiency (pT>1 GeV, |eta|<2.5, >=3 pixel hits)", pct(summary.get("seeding_efficiency")))
    t.add_row("track efficiency (pT>1 GeV, |eta|<2.5, >=7 hits)", pct(summary["after_ambiguity"]["efficiency"]))
    for name in ("before_ambiguity", "after_ambiguity"):
        s = summary[name]
        label = name.replace("_", " ")
        t.add_row(f"tracks {label}", str(s["tracks"]))
        t.add_row(f"fake rate {label}", pct(s["fake_rate"]))
        t.add_row(f"duplicate rate {label}", pct(s["duplicate_rate"]))
    score = summary.get("trackml_score")
    t.add_row("TrackML score", "n/a" if score is None else f"{score:.4f}")
    res = summary.get("seed_parameter_resolution", {})
    if res.get("sigma_pt_rel") is not None:
        t.add_row("seed resolution phi / theta (68% half width)",
                  f"{res['sigma_phi_rad'] * 1e3:.2f} / {res['sigma_theta_rad'] * 1e3:.2f} mrad")
        t.add_row("seed resolution pT (relative)", f"{100 * res['sigma_pt_rel']:.1f} %")
    return t


def _binned_table(summary: dict):
    from rich.table import Table

    t = Table(title="Efficiency in bins (primary particles, |eta| < 2.5; pT > 1 GeV for the eta bins)")
    t.add_column("bin")
    t.add_column("seeding", justify="right")
    t.add_column("tracking", justify="right")
    for var, unit in (("pt", " GeV"), ("eta", "")):
        seed_rows = summary.get(f"seeding_efficiency_vs_{var}", [])
        track_rows = summary.get(f"track_efficiency_vs_{var}", [])
        for a, b in zip(seed_rows, track_rows):
            def cell(r):
                return "-" if r["efficiency"] is None else f"{100 * r['efficiency']:.1f} % ({r['n']})"
            t.add_row(f"{var} {a['lo']:g}..{a['hi']:g}{unit}", cell(a), cell(b))
    return t


def _event_runner(device: str, batch: int = 1) -> tuple:
    """(the function that reconstructs one event on ``device``, the one that reconstructs a batch
    of events or None); one sentence when they cannot run."""
    if device not in ("cpu", "gpu"):
        _fail(f"Unknown device '{device}'; use --device cpu or --device gpu.")
    if device == "cpu":
        if batch > 1:
            _fail("--batch runs several events at once on the GPU; use it with --device gpu.")
        from reference.tracking.chain import reconstruct_event

        return reconstruct_event, None
    from reference.tracking.gpu.backend import GPUUnavailable, xp

    try:
        xp()
    except GPUUnavailable as exc:
        _fail(str(exc))
    from reference.tracking.gpu.chain import reconstruct_batch_gpu, reconstruct_event_gpu

    return reconstruct_event_gpu, (reconstruct_batch_gpu if batch > 1 else None)


def _reconstructed(items: list, det, config, runners: tuple, notes: list) -> list:
    """(prefix, event, result or the TrackingInputError) for every (prefix, event) of ``items``:
    as one batch when there is a batch runner, else one at a time. A batch refused for bad input
    runs again one event at a time, so that only the bad events are skipped; so does a batch that
    does not fit in the GPU's memory (with a note)."""
    run_event, run_batch = runners
    if run_batch is not None and len(items) > 1:
        try:
            return [(p, ev, r) for (p, ev), r in zip(items, run_batch([ev for _, ev in items], det, config))]
        except TrackingInputError:
            pass
        except MemoryError:  # CuPy's OutOfMemoryError is one
            from reference.tracking.gpu.backend import free_cached_memory

            free_cached_memory()
            notes.append(f"{items[0][0]}: the batch of {len(items)} events from here did not fit in the GPU's "
                         "memory and ran one event at a time; a smaller --batch avoids that")
    out = []
    for prefix, ev in items:
        try:
            out.append((prefix, ev, run_event(ev, det, config)))
        except TrackingInputError as exc:
            out.append((prefix, ev, exc))
    return out


@dataclass
class _Tally:
    """What the reconstruct command collects over the events."""

    per_event: list
    skipped: list
    notes: list


def _read_batch(directory: Path, prefixes: list, det, tally: _Tally) -> list:
    """(prefix, event) of the events that read; the others go to the skipped ones."""
    from reference.tracking.trackml_io import read_event

    items = []
    for prefix in prefixes:
        try:
            ev = read_event(directory, prefix)
        except TrackingInputError as exc:
            tally.skipped.append(f"{prefix}: {exc}")
            continue
        if ev.cells is not None and det is None:
            tally.notes.append(f"{prefix}: cells ignored (no detector description); hits used as spacepoints")
        items.append((prefix, ev))
    return items


def _record(result: tuple, where: tuple, tally: _Tally) -> None:
    """Write one (prefix, event, result or error) into ``where`` = (folder, plots?) and the tally."""
    prefix, ev, res = result
    try:
        if isinstance(res, TrackingInputError):
            raise res
        perf, notes = _write_event(prefix, ev, res, *where)
    except TrackingInputError as exc:
        tally.skipped.append(f"{prefix}: {exc}")
        return
    tally.notes.extend(notes)
    if perf is not None:
        tally.per_event.append(perf)


def _write_event(prefix: str, ev, res, out: Path, plots: bool) -> tuple:
    """Submission and performance JSON of one reconstructed event: (performance or None, notes)."""
    from reference.tracking.chain import submission
    from reference.tracking.performance import evaluate, plot_performance
    from reference.tracking.trackml_io import write_submission

    hit_id, track_id = submission(res, ev.hits.hit_id)
    write_submission(out / f"{prefix}-submission.csv", hit_id, track_id)
    notes = [f"{prefix}: {res.info[key]} {key.replace('_', ' ')}"
             for key in ("hits_dropped_nonfinite", "cells_skipped_unknown_module", "cells_skipped_out_of_module",
                         "hits_skipped_unknown_module", "ckf_window_overflow") if res.info.get(key)]
    record = {"event": prefix, "timings_s": res.timings_s, "info": res.info}
    perf = None
    if ev.truth is not None and ev.particles is not None:
        perf = evaluate(ev, res, sub_track_id=track_id)
        record["performance"] = perf
        if plots:
            plot_performance(perf, out / f"{prefix}-efficiency.png")
    (out / f"{prefix}-performance.json").write_text(json.dumps(record, indent=1))
    return perf, notes


def _chain_config(device: str, low_pt: bool | None):
    """The CPU default chain (three iterations, inward extension, overlap pick-up), or the
    single-pass chain for the GPU or with --no-low-pt; --low-pt on the GPU gives the GPU
    chain's own error."""
    from reference.tracking.chain import CPU_CHAIN, ChainConfig, LowPtIteration

    if low_pt is None:
        low_pt = device == "cpu"
    if not low_pt:
        return ChainConfig()
    return CPU_CHAIN if device == "cpu" else ChainConfig(low_pt=LowPtIteration())


def reconstruct(
    directory: Path = typer.Argument(..., help="Directory with TrackML events (eventNNN-hits.csv ...)."),
    out: Path = typer.Option(..., "--out", help="Directory for submissions and performance JSON."),
    detector: Optional[Path] = typer.Option(None, "--detector", help="TrackML detectors.csv (default: "
                                            "DIR/detectors.csv when present; otherwise layers come from the hits)."),
    device: str = typer.Option("cpu", "--device", help="cpu, or gpu: clusterization to the CKF on the GPU "
                               "(numba.cuda and CuPy), ambiguity resolution on the host."),
    max_events: Optional[int] = typer.Option(None, "--events", min=1, help="Reconstruct at most this many events."),
    plots: bool = typer.Option(False, "--plots", help="Also write efficiency plots (png) per event."),
    low_pt: Optional[bool] = typer.Option(None, "--low-pt/--no-low-pt", help="A second, low-pT (150 MeV) "
                                          "iteration and a last one down to 70 MeV on the measurements left unused, "
                                          "inward track extension and overlap pick-up (TrackML score 0.86 instead of "
                                          "0.41 at pile-up 200, about 3 times the time); default: on for cpu, off for "
                                          "gpu (CPU only)."),
    batch: int = typer.Option(1, "--batch", min=1, help="GPU only: reconstruct this many events at once "
                              "(one copy, clusterization, seeding, estimation and CKF for all of them); "
                              "every event gets the tracks it gets alone, in less time per event. Device memory grows with "
                              "it: the seeding's scratch buffers take about 0.5 GB per pile-up 200 event."),
) -> None:
    """Reconstruct every TrackML event of DIR; write submissions and physics performance."""
    from rich.console import Console
    from rich.progress import Progress

    from reference.tracking.performance import combine
    from reference.tracking.trackml_io import list_events, read_detector

    runners = _event_runner(device, batch)
    console = Console()
    try:
        prefixes = list_events(directory)
        if not prefixes:
            _fail(f"No TrackML event (eventNNN-hits.csv) found in {directory}.")
        if max_events is not None:
            prefixes = prefixes[:max_events]
        if detector is None and (directory / "detectors.csv").is_file():
            detector = directory / "detectors.csv"
        det = read_detector(detector) if detector is not None else None
        out.mkdir(parents=True, exist_ok=True)
    except TrackingInputError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"Cannot use {out}: {exc.strerror}.")
    config = _chain_config(device, low_pt)
    tally = _Tally([], [], [])
    per_event, skipped, notes = tally.per_event, tally.skipped, tally.notes
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("reconstructing", total=len(prefixes))
        for first in range(0, len(prefixes), batch):
            chunk = prefixes[first:first + batch]
            for result in _reconstructed(_read_batch(directory, chunk, det, tally), det, config, runners, notes):
                _record(result, (out, plots), tally)
            progress.advance(task, len(chunk))
    for n in notes:
        console.print(f"[yellow]note:[/] {n}", highlight=False)
    for s in skipped:
        console.print(f"[red]skipped[/] {s}", highlight=False)
    done = len(prefixes) - len(skipped)
    console.print(f"reconstructed {done} of {len(prefixes)} event(s); {len(skipped)} skipped; output in {out}")
    if per_event:
        summary = combine(per_event)
        (out / "performance.json").write_text(json.dumps({"summary": summary, "skipped": skipped}, indent=1))
        console.print(_table(summary, per_event))
        console.print(_binned_table(summary))
    if done == 0:
        raise typer.Exit(code=1)


SIMULATE_EPILOG = """
Examples:

  hepaudit simulate --pileup 200 --events 10 --seed 1 --out events/

  hepaudit simulate --pileup 20 --events 2 --out small/ --detector detectors.csv

Writes TrackML CSV files per event (event000000000-hits.csv, -cells.csv, -particles.csv,
-truth.csv) and detectors.csv into --out.
"""

RECONSTRUCT_EPILOG = """
Examples:

  hepaudit reconstruct events/ --out tracks/

  hepaudit reconstruct trackml/train_sample/ --detector detectors.csv --events 5 --plots --out tracks/

  hepaudit reconstruct events/ --device gpu --batch 8 --out tracks/

Reads every TrackML event in the folder (cells when present, else hits), writes per event a
submission file (hit_id,track_id) and, when truth is present, a performance JSON, and prints the
physics table.
"""


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` and ``reconstruct`` commands to a typer app."""
    app.command("simulate", epilog=SIMULATE_EPILOG)(simulate)
    app.command("reconstruct", epilog=RECONSTRUCT_EPILOG)(reconstruct)
