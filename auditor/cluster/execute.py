"""Run work units serially or on a Dask cluster, keep every outcome on disk, resume from it.

Each finished unit is written at once to ``OUT/units/<key>.json`` (a temporary file renamed into
place), so Ctrl-C, a crash of the client or a lost cluster loses only the units still running;
``--resume`` loads the saved outcomes and submits only the rest. A unit's Dask key is its own key,
so the scheduler never runs two copies of one unit. When a worker dies, the scheduler moves its
units to other workers; the job asks the scheduler how often that happened per unit and the
report lists those units as retried.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from auditor.cluster.units import UnitSettings, WorkUnit, execute_unit
from auditor.errors import UserError

Advance = Callable[[str], None]


class UnitStore:
    """Outcomes of a job, one JSON file per unit under ``folder/units``."""

    def __init__(self, folder: Path):
        self.folder = folder / "units"

    def load(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Saved outcomes by key, and the files that could not be read (named, then ignored)."""
        found: dict[str, dict[str, Any]] = {}
        problems = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                outcome = json.loads(path.read_text(encoding="utf-8"))
                found[outcome["key"]] = outcome
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(f"{path.name}: {exc}")
        return found, problems

    def save(self, outcome: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{outcome['key']}.json"
        partial = path.with_suffix(".json.part")
        partial.write_text(json.dumps(outcome, default=_plain), encoding="utf-8")
        os.replace(partial, path)


def _plain(value: Any) -> Any:
    """numpy scalars and other stragglers in a result, as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


@dataclass
class JobOutcome:
    """What a job produced: outcomes by unit key, and what happened on the way."""

    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    interrupted: bool = False

    def record(self, outcome: dict[str, Any], store: UnitStore) -> None:
        store.save(outcome)
        self.outcomes[outcome["key"]] = outcome


def resume_from(store: UnitStore, units: Sequence[WorkUnit], job: JobOutcome) -> list[WorkUnit]:
    """Load the saved outcomes of ``units`` into ``job``; the units still to run."""
    saved, _ = store.load()
    todo = []
    for unit in units:
        if unit.key in saved:
            job.outcomes[unit.key] = saved[unit.key]
            job.resumed.append(unit.key)
        else:
            todo.append(unit)
    return todo


def run_serial(units: Sequence[WorkUnit], settings: UnitSettings, store: UnitStore, job: JobOutcome,
               advance: Advance) -> None:
    """Every unit in this process, one after another (no Dask)."""
    for unit in units:
        advance(f"{unit.chain} {dict(unit.parameters)} on {unit.device}")
        try:
            job.record(execute_unit(unit, settings), store)
        except KeyboardInterrupt:
            job.interrupted = True
            return
        except UserError as exc:
            job.failed[unit.key] = str(exc)


def submit_options(unit: WorkUnit, hosts: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Where a unit may run: the hosts of its node type; GPU units only on GPU workers."""
    options: dict[str, Any] = {"key": unit.key, "pure": False}
    if unit.node_type is not None:
        options["workers"] = list(hosts[unit.node_type])
    if unit.device == "gpu":
        from auditor.cluster.client import GPU_RESOURCE

        options["resources"] = {GPU_RESOURCE: 1}
    return options


def run_distributed(client: Any, units: Sequence[WorkUnit], settings: UnitSettings,
                    hosts: Mapping[str, Sequence[str]], context: tuple[UnitStore, JobOutcome, Advance]) -> None:
    """Submit every unit, save outcomes as they finish, then ask the scheduler which were retried."""
    from distributed import as_completed

    store, job, advance = context
    futures = {client.submit(execute_unit, unit, settings, **submit_options(unit, hosts)): unit for unit in units}
    try:
        for future in as_completed(futures, loop=client.loop):
            unit = futures[future]
            advance(f"{unit.chain} {dict(unit.parameters)} on {unit.device}")
            _collect(future, unit, store, job)
        job.retried = retried_units(client, [u.key for u in units])
    except KeyboardInterrupt:
        job.interrupted = True
        client.cancel(list(futures))


def _collect(future: Any, unit: WorkUnit, store: UnitStore, job: JobOutcome) -> None:
    try:
        job.record(future.result(), store)
    except UserError as exc:
        job.failed[unit.key] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a lost worker (KilledWorker) or a crash on it: reported per unit
        job.failed[unit.key] = f"{type(exc).__name__}: {exc}"


def _suspicious_counts(dask_scheduler: Any = None, keys: Sequence[str] = ()) -> dict[str, int]:
    """On the scheduler: for each unit, how many workers died while running it."""
    tasks = dask_scheduler.tasks
    return {key: tasks[key].suspicious for key in keys if key in tasks and tasks[key].suspicious}


def retried_units(client: Any, keys: Sequence[str]) -> dict[str, int]:
    return client.run_on_scheduler(_suspicious_counts, keys=list(keys))
