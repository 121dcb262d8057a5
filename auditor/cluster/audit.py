"""``hepaudit audit --scheduler``: the per-file analysis on the workers of a Dask cluster.

Only the analysis moves. Discovery, reading and hashing the files, the cache lookup and the cache
writes stay in this (the client) process, and the chunks are the ones the local process pool gets,
sized for the cluster's worker count, so the report is the same as a local run's apart from its
``performance`` section, which names the scheduler and the workers.

* The cache is the client's cache folder (``--cache-dir``, ``$HEPAUDIT_CACHE_DIR``): on a real
  cluster, put it on a shared filesystem so that later runs and other clients reuse it.
* radon and lizard get the file contents with the task: their workers need hepaudit and the same
  tool versions (checked before any work is sent), not the audited tree. pylint reads the files
  by path: with pylint on, the workers must see the tree at the same absolute path (a shared
  filesystem; a local cluster always does), or use ``--pylint off``.
* The analysis is pure Python and holds the GIL: start workers with one thread each
  (``dask worker ADDRESS --nworkers N --nthreads 1``); one worker process runs one task at a time.
  Dask's sampling profiler (every 10 ms) cost these tasks about 8 % of their CPU time here: it is
  off in the local clusters started here; for other workers, set
  ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`` where they start.
"""

from __future__ import annotations

import os
import resource
import socket
import threading
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, Callable, Sequence

from auditor.cluster import client as connection
from auditor.config import AuditConfig
from auditor.errors import UserError
from auditor.static import lint
from auditor.static.analysis import tool_versions
from auditor.static.engine import Workers, run_audit

#: One hepaudit task at a time per worker process: pylint and astroid keep global state.
_TASK_LOCK = threading.Lock()


def run_audit_on_cluster(paths: Sequence[Path], config: AuditConfig, cache_dir: Path | None,
                         progress: Callable | None = None) -> dict[str, Any]:
    """:func:`auditor.static.engine.run_audit` with the analysis on the Dask cluster of
    ``config.scheduler``; a local cluster it starts (without Dask's profiler in its workers, see
    :func:`auditor.cluster.client.open_client`) is closed at the end."""
    with connection.open_client(config.scheduler) as client:
        return audit_with_client(client, paths, config, cache_dir, progress)


def audit_with_client(client: Any, paths: Sequence[Path], config: AuditConfig, cache_dir: Path | None,
                      progress: Callable | None = None) -> dict[str, Any]:
    """The audit on the workers of a connected ``distributed.Client``."""
    workers = cluster_workers(client, config)
    report = run_audit(paths, config, cache_dir, progress, workers)
    report["performance"]["peak_rss_mb"]["largest_worker"] = _largest_worker_rss(client)
    return report


def cluster_workers(client: Any, config: AuditConfig) -> Workers:
    """The cluster's workers, once they are up and run the same tool versions as this process."""
    address = config.scheduler or client.scheduler.address
    _wait_for_workers(client, address)
    _check_versions(client, config.pylint)
    nthreads = client.nthreads()
    about = {"scheduler": {"address": address, "scheduler_address": client.scheduler.address,
                           "workers": len(nthreads), "threads": sum(nthreads.values())}}
    return Workers(len(nthreads), _ClusterExecutor(client), about)


def _wait_for_workers(client: Any, address: str) -> None:
    """All the workers of a cluster started here, or at least one of an existing scheduler."""
    cluster = getattr(client, "cluster", None)
    expected = len(cluster.worker_spec) if cluster is not None else 1
    try:
        client.wait_for_workers(expected, timeout=connection.CONNECT_TIMEOUT_S)
    except TimeoutError:
        raise UserError(f"The Dask scheduler at {address} has no workers after {connection.CONNECT_TIMEOUT_S} s; "
                        f"start some with 'dask worker {client.scheduler.address} --nthreads 1'.") from None


def worker_versions(pylint_mode: str) -> dict[str, str]:
    """Versions of the tools that shape the results, as the engine fingerprints them (runs on a worker)."""
    versions = tool_versions()
    if pylint_mode != "off":
        versions["pylint"] = lint.pylint_version()
    return versions


def _check_versions(client: Any, pylint_mode: str) -> None:
    """UserError when a worker's results could differ from this process's (and poison the cache)."""
    here = worker_versions(pylint_mode)
    for worker, versions in sorted(client.run(worker_versions, pylint_mode).items()):
        differing = [f"{name} {versions.get(name)} (here {value})" for name, value in here.items()
                     if versions.get(name) != value]
        if differing:
            raise UserError(f"Dask worker {worker} runs {', '.join(differing)}; install the same versions "
                            "on the workers as here: results and cache keys depend on them.")


def run_task(function: Callable, *arguments: Any) -> Any:
    """One engine task on a worker: one at a time per process, with the files pylint needs checked."""
    if function is lint.lint_chunk:
        _require_files(arguments[0])
    with _TASK_LOCK:
        return function(*arguments)


def _require_files(paths: Sequence[str]) -> None:
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise UserError(f"Dask worker on {socket.gethostname()} cannot read {missing[0]}: pylint reads the "
                        "audited files by path, so the workers need them at the same path (a shared "
                        "filesystem); or use --pylint off.")


class _ClusterExecutor(Executor):
    """Submits engine tasks to the cluster through :func:`run_task`; ``concurrent.futures`` futures."""

    def __init__(self, client: Any):
        self._executor = client.get_executor(pure=False)

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        return self._executor.submit(run_task, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)


def _peak_rss_mb_here() -> float:
    """Peak resident memory of the process this runs in (runs on a worker)."""
    scale = 1024 if os.uname().sysname != "Darwin" else 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def _largest_worker_rss(client: Any) -> float:
    """Largest peak RSS of any worker process over its lifetime (the whole audit for a local cluster)."""
    peaks = client.run(_peak_rss_mb_here)
    return round(max(peaks.values(), default=0.0), 1)
