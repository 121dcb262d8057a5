"""``hepaudit audit``: discover, read, look up the cache, analyse the rest in parallel, lint,
aggregate. The result is one JSON-ready report that every renderer formats.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import resource
import stat
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Sequence

from auditor.config import AuditConfig
from auditor.static import lint
from auditor.static.aggregate import aggregate
from auditor.static.analysis import analyze_chunk, tool_versions
from auditor.static.cache import ResultCache, content_hash, fingerprint
from auditor.static.discovery import Candidate, Skipped, discover
from auditor.static.languages import PYTHON

SCHEMA_NAME = "hepaudit.audit"
SCHEMA_VERSION = "1.0"
#: Below this many bytes of work, starting worker processes costs more than it saves.
_PARALLEL_MIN_BYTES = 256 * 1024
_CHUNKS_PER_WORKER = 8
_PYLINT_CHUNK_FILES = 64

Progress = Callable[[int], None]


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def read_source(candidate: Candidate, max_bytes: int) -> bytes | str:
    """The file's bytes, or the reason it cannot be analysed."""
    try:
        info = os.stat(candidate.path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno == errno.ENOENT:
            return "broken symbolic link" if os.path.islink(candidate.path) else "file vanished during the audit"
        return f"cannot be read: {exc.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > max_bytes:
        return (f"{info.st_size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB size cap "
                "(max_file_mb); usually generated code")
    try:
        with open(candidate.path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if not data:
        return "empty file"
    if b"\0" in data[:8192]:
        return "binary content (NUL bytes) in a source file"
    return data


def _chunks(items: list[Any], size_of: Callable[[Any], int], count: int) -> list[list[Any]]:
    """Largest first, dealt round-robin, so chunks carry similar amounts of work."""
    if not items:
        return []
    ordered = sorted(items, key=size_of, reverse=True)
    count = max(1, min(count, len(ordered)))
    return [ordered[i::count] for i in range(count)]


def _pool(jobs: int) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context)


@dataclass(frozen=True)
class Workers:
    """Where the analysis runs.

    Without ``executor``: a process pool of ``count`` workers on this machine, or this process
    when the work is too small to pay for starting them. With one (any ``concurrent.futures``
    executor, e.g. the Dask one of :mod:`auditor.cluster.audit`): always on it, in chunks sized
    for ``count`` workers; the executor is not shut down here. ``about`` is added to the report's
    ``performance`` section.
    """

    count: int
    executor: Executor | None = None
    about: dict[str, Any] = field(default_factory=dict)


def _local_workers(config: AuditConfig) -> Workers:
    return Workers(config.jobs or available_cores())


def _open(workers: Workers) -> ContextManager[Executor]:
    """The executor of ``workers``: a new process pool (closed on exit) or the one given."""
    return _pool(workers.count) if workers.executor is None else nullcontext(workers.executor)


def _peak_rss_mb() -> dict[str, float]:
    scale = 1024 if os.uname().sysname != "Darwin" else 1  # ru_maxrss is KiB on Linux, bytes on macOS
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / 1e6
    return {"main_process": round(own, 1), "largest_worker": round(children, 1)}


@dataclass
class _Source:
    """A readable file and its cache keys."""

    candidate: Candidate
    data: bytes
    digest: str
    key: str = ""
    lint_key: str | None = None


def _read_all(candidates: Sequence[Candidate], max_bytes: int) -> tuple[list[_Source], list[Skipped]]:
    sources: list[_Source] = []
    skipped: list[Skipped] = []
    for candidate in candidates:
        data = read_source(candidate, max_bytes)
        if isinstance(data, str):
            skipped.append(Skipped(candidate.rel, candidate.language, data))
        else:
            sources.append(_Source(candidate, data, content_hash(data)))
    return sources, skipped


def _lint_fingerprint(mode: str, python: Sequence[_Source], python_version: str) -> str:
    parts = {"pylint": lint.pylint_version(), "profile": mode, "python": python_version}
    if mode == "full":  # inference crosses modules: any change re-lints everything
        parts["tree"] = content_hash("".join(sorted(s.digest for s in python)).encode())
    return fingerprint(parts)


def _missing(keys_and_items: Iterable[tuple[str, Any]], known: dict[str, Any]) -> dict[str, Any]:
    """Work still to do: one item per key that the cache did not have."""
    todo: dict[str, Any] = {}
    for key, item in keys_and_items:
        if key not in known and key not in todo:
            todo[key] = item
    return todo


def _assemble(sources: Sequence[_Source], results: dict[str, Any],
              lint_results: dict[str, Any]) -> tuple[list[dict[str, Any]], list[Skipped], list[dict]]:
    files: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    linted: list[dict[str, Any]] = []
    for source in sources:
        candidate = source.candidate
        outcome = results[source.key]
        if "skip" in outcome:
            skipped.append(Skipped(candidate.rel, candidate.language, outcome["skip"]))
            continue
        entry = {"path": candidate.rel, "language": candidate.language, "size_bytes": len(source.data),
                 "hash": source.digest, "notes": [], **outcome["metrics"]}
        if source.lint_key in lint_results:
            entry["pylint"] = lint_results[source.lint_key]
            linted.append(entry["pylint"])
        files.append(entry)
    return files, skipped, linted


def run_audit(paths: Sequence[Path], config: AuditConfig, cache_dir: Path | None,
              progress: Callable[[int, str], Progress] | None = None,
              workers: Workers | None = None) -> dict[str, Any]:
    """Audit ``paths``; ``progress(total, label)`` returns a callback advanced per finished file.

    ``workers``: where the analysis runs (default: ``config.jobs`` processes on this machine).
    Discovery, reading, hashing and the cache stay in this process wherever the analysis runs.
    """
    clock = _Phases()
    found = discover(paths, config)
    clock.mark("discover")

    versions = tool_versions()
    sources, skipped = _read_all(found.candidates, int(config.max_file_mb * 1e6))
    clock.mark("read_and_hash")

    cache = ResultCache(cache_dir)
    analysis_print = fingerprint({**versions, "config": config.fingerprint()})
    for source in sources:
        source.key = f"{source.candidate.language}:{source.digest}:{analysis_print}"
    known = cache.get_many(s.key for s in sources)
    todo = _missing(((s.key, (s.candidate.language, s.candidate.rel, s.data)) for s in sources), known)
    python = [s for s in sources if s.candidate.language == PYTHON]
    lint_known: dict[str, Any] = {}
    if config.pylint != "off" and python:
        lint_print = _lint_fingerprint(config.pylint, python, versions["python"])
        for source in python:
            source.lint_key = f"pylint:{source.digest}:{lint_print}"
        lint_known = cache.get_many(s.lint_key for s in python)
    lint_todo = _missing(((s.lint_key, s.candidate.path) for s in python if s.lint_key), lint_known)
    clock.mark("cache_lookup")

    workers = workers or _local_workers(config)
    fresh, lint_fresh = _analyse(todo, lint_todo, config.pylint, workers, progress)
    clock.mark("analyse")
    cache.put_many(fresh)
    cache.put_many(lint_fresh)
    cache_summary = {"enabled": cache.connection is not None, "dir": str(cache_dir) if cache_dir else None,
                     "hits": sum(1 for s in sources if s.key in known), "analysed": len(fresh),
                     "lint_hits": sum(1 for s in python if s.lint_key in lint_known),
                     "linted": len(lint_fresh), "problem": cache.problem}
    cache.close()

    files, failed, linted = _assemble(sources, {**known, **fresh}, {**lint_known, **lint_fresh})
    skipped = sorted([*found.skipped, *skipped, *failed], key=lambda s: s.rel)
    files.sort(key=lambda f: f["path"])
    report = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "hepaudit", "versions": versions},
        "root": _display_path(found.root),
        "paths": [str(p) for p in paths],
        "config": _config_summary(config),
        "discovery": {"methods": sorted(found.methods), "pruned_dirs": found.pruned_dirs,
                      "files_found": len(found.candidates)},
        "files": files,
        "not_analysed": [{"path": s.rel, "language": s.language, "reason": s.reason} for s in skipped],
        "summary": aggregate(files, config.thresholds, config.top),
        "pylint": _pylint_summary(config.pylint, linted),
        "cache": cache_summary,
    }
    clock.mark("aggregate")
    report["performance"] = {"jobs": workers.count, **workers.about, "seconds": clock.seconds(),
                             "peak_rss_mb": _peak_rss_mb()}
    return report


class _Phases:
    """Wall time of each phase of the audit."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = now - self.last
        self.last = now

    def seconds(self) -> dict[str, float]:
        return {**{k: round(v, 4) for k, v in self.phases.items()},
                "total": round(time.perf_counter() - self.started, 4)}


def _tasks(items: list, lint_items: list, jobs: int) -> list[tuple[str, list]]:
    """The chunks of work for ``jobs`` workers, as ``(kind, chunk)``; pylint chunks take longest: they go first."""
    tasks = [("analysis", chunk) for chunk in _chunks(items, lambda kv: len(kv[1][2]), jobs * _CHUNKS_PER_WORKER)]
    lint_chunk_count = max(jobs, -(-len(lint_items) // _PYLINT_CHUNK_FILES))
    tasks[:0] = [("lint", chunk) for chunk in _chunks(lint_items, lambda kv: 1, lint_chunk_count)]
    return tasks


def _in_process(items: list, lint_items: list, workers: Workers) -> bool:
    """Whether the work runs here: one local job, or too little work to pay for a process pool."""
    if workers.executor is not None:
        return False
    work_bytes = sum(len(data) for _, (_, _, data) in items)
    small = work_bytes < _PARALLEL_MIN_BYTES and len(lint_items) <= _PYLINT_CHUNK_FILES
    return workers.count == 1 or small


def _analyse(todo: dict[str, tuple[str, str, bytes]], lint_todo: dict[str, str], lint_mode: str,
             workers: Workers | int, progress: Callable[[int, str], Progress] | None) -> tuple[dict, dict]:
    """Run the analysis and pylint work, in worker processes when it pays off (``workers``: where,
    or a number of local processes)."""
    workers = workers if isinstance(workers, Workers) else Workers(workers)
    items = list(todo.items())
    lint_items = list(lint_todo.items())
    total = len(items) + len(lint_items)
    advance = progress(total, "Analysing") if progress and total else (lambda n: None)
    tasks = _tasks(items, lint_items, workers.count)
    fresh: dict[str, Any] = {}
    lint_fresh: dict[str, Any] = {}

    def collect(kind: str, chunk: list, outcome: Any) -> None:
        if kind == "analysis":
            fresh.update((key, result) for (key, _), result in zip(chunk, outcome))
        else:
            lint_fresh.update((key, outcome.get(path) or _unlinted()) for key, path in chunk)
        advance(len(chunk))

    def call(kind: str, chunk: list) -> tuple:
        """(function, *arguments) of one task."""
        if kind == "analysis":
            return analyze_chunk, [item for _, item in chunk]
        return lint.lint_chunk, [path for _, path in chunk], lint_mode

    if _in_process(items, lint_items, workers):
        for kind, chunk in tasks:
            function, *arguments = call(kind, chunk)
            collect(kind, chunk, function(*arguments))
        return fresh, lint_fresh
    with _open(workers) as pool:
        futures = {pool.submit(*call(kind, chunk)): (kind, chunk) for kind, chunk in tasks}
        for future in as_completed(futures):
            collect(*futures[future], future.result())
    return fresh, lint_fresh


def _unlinted() -> dict[str, Any]:
    return {"statements": 0, "counts": dict.fromkeys(lint.CATEGORIES, 0), "messages": [],
            "crash": "pylint did not report on this file"}


def _pylint_summary(mode: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    if mode == "off":
        return {"mode": "off"}
    symbols: dict[str, int] = {}
    for entry in entries:
        for message in entry["messages"]:
            symbols[message["symbol"]] = symbols.get(message["symbol"], 0) + 1
    return {
        "mode": mode,
        "version": lint.pylint_version(),
        "files": len(entries),
        "statements": sum(e["statements"] for e in entries),
        "score": lint.score(entries),
        "score_without_environment": lint.score(entries, lint.ENVIRONMENT_MESSAGES),
        "environment_messages": sorted(lint.ENVIRONMENT_MESSAGES),
        "messages_by_symbol": dict(sorted(symbols.items(), key=lambda kv: (-kv[1], kv[0]))),
        "crashes": [e["crash"] for e in entries if e.get("crash")][:20],
    }


def _config_summary(config: AuditConfig) -> dict[str, Any]:
    summary = asdict(config)
    summary.pop("base_dir")
    summary.pop("scheduler")  # where it ran is in "performance": the results do not depend on it
    for key in ("include", "exclude", "skip_dirs"):
        summary[key] = list(summary[key])
    return summary


def _display_path(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
