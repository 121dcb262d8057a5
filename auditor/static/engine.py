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
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

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
    ordered = sorted(items, key=size_of, reverse=True)
    count = max(1, min(count, len(ordered)))
    return [ordered[i::count] for i in range(count)]


def _pool(jobs: int) -> ProcessPoolExecutor:
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context)


def _peak_rss_mb() -> dict[str, float]:
    scale = 1024 if os.uname().sysname != "Darwin" else 1  # ru_maxrss is KiB on Linux, bytes on macOS
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / 1e6
    return {"main_process": round(own, 1), "largest_worker": round(children, 1)}


def run_audit(paths: Sequence[Path], config: AuditConfig, cache_dir: Path | None,
              progress: Callable[[int, str], Progress] | None = None) -> dict[str, Any]:
    """Audit ``paths``; ``progress(total, label)`` returns a callback advanced per finished file."""
    started = time.perf_counter()
    phases: dict[str, float] = {}
    found = discover(paths, config)
    phases["discover"] = time.perf_counter() - started

    tick = time.perf_counter()
    max_bytes = int(config.max_file_mb * 1e6)
    versions = tool_versions()
    analysis_fp = fingerprint({**versions, "config": config.fingerprint()})
    readable: list[tuple[Candidate, bytes, str]] = []
    skipped: list[Skipped] = list(found.skipped)
    for candidate in found.candidates:
        data = read_source(candidate, max_bytes)
        if isinstance(data, str):
            skipped.append(Skipped(candidate.rel, candidate.language, data))
        else:
            readable.append((candidate, data, content_hash(data)))
    phases["read_and_hash"] = time.perf_counter() - tick

    tick = time.perf_counter()
    cache = ResultCache(cache_dir)
    keys = [f"{c.language}:{digest}:{analysis_fp}" for c, _, digest in readable]
    known = cache.get_many(keys)
    todo: dict[str, tuple[str, str, bytes]] = {}
    for (candidate, data, _), key in zip(readable, keys):
        if key not in known and key not in todo:
            todo[key] = (candidate.language, candidate.rel, data)

    lint_mode = config.pylint
    python_files = [(c, data, digest) for c, data, digest in readable if c.language == PYTHON]
    lint_keys: list[str] = []
    lint_todo: dict[str, str] = {}
    lint_known: dict[str, Any] = {}
    if lint_mode != "off" and python_files:
        lint_fp = {"pylint": lint.pylint_version(), "profile": lint_mode, "python": versions["python"]}
        if lint_mode == "full":  # inference crosses modules: any change re-lints everything
            lint_fp["tree"] = content_hash("".join(sorted(d for _, _, d in python_files)).encode())
        lint_print = fingerprint(lint_fp)
        lint_keys = [f"pylint:{digest}:{lint_print}" for _, _, digest in python_files]
        lint_known = cache.get_many(lint_keys)
        for (candidate, _, _), key in zip(python_files, lint_keys):
            if key not in lint_known and key not in lint_todo:
                lint_todo[key] = candidate.path
    phases["cache_lookup"] = time.perf_counter() - tick

    tick = time.perf_counter()
    jobs = config.jobs or available_cores()
    fresh, lint_fresh = _analyse(todo, lint_todo, lint_mode, jobs, progress)
    phases["analyse"] = time.perf_counter() - tick
    cache.put_many(fresh)
    cache.put_many(lint_fresh)
    results = {**known, **fresh}
    lint_results = {**lint_known, **lint_fresh}

    files: list[dict[str, Any]] = []
    for (candidate, data, digest), key in zip(readable, keys):
        outcome = results[key]
        if "skip" in outcome:
            skipped.append(Skipped(candidate.rel, candidate.language, outcome["skip"]))
            continue
        files.append({"path": candidate.rel, "language": candidate.language, "size_bytes": len(data),
                      "hash": digest, "notes": [], **outcome["metrics"]})
    analysed = {entry["path"] for entry in files}
    linted = []
    for (candidate, _, _), key in zip(python_files, lint_keys):
        if candidate.rel in analysed and key in lint_results:
            linted.append((candidate.rel, lint_results[key]))
    by_path = {entry["path"]: entry for entry in files}
    for rel, entry in linted:
        by_path[rel]["pylint"] = entry

    files.sort(key=lambda f: f["path"])
    skipped.sort(key=lambda s: s.rel)
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
        "pylint": _pylint_summary(lint_mode, [entry for _, entry in linted]),
        "cache": {"enabled": cache.connection is not None, "dir": str(cache_dir) if cache_dir else None,
                  "hits": sum(1 for k in keys if k in known),
                  "analysed": len(fresh), "lint_hits": len(lint_keys) - len(lint_fresh),
                  "linted": len(lint_fresh), "problem": cache.problem},
    }
    cache.close()
    phases["total"] = time.perf_counter() - started
    report["performance"] = {"jobs": jobs, "seconds": {k: round(v, 4) for k, v in phases.items()},
                             "peak_rss_mb": _peak_rss_mb()}
    return report


def _analyse(todo: dict[str, tuple[str, str, bytes]], lint_todo: dict[str, str], lint_mode: str,
             jobs: int, progress: Callable[[int, str], Progress] | None) -> tuple[dict, dict]:
    """Run the analysis and pylint work, in worker processes when it pays off."""
    items = list(todo.items())
    lint_items = list(lint_todo.items())
    total = len(items) + len(lint_items)
    advance = progress(total, "Analysing") if progress and total else (lambda n: None)
    work_bytes = sum(len(data) for _, (_, _, data) in items)
    fresh: dict[str, Any] = {}
    lint_fresh: dict[str, Any] = {}
    if jobs == 1 or (work_bytes < _PARALLEL_MIN_BYTES and len(lint_items) <= _PYLINT_CHUNK_FILES):
        for key, item in items:
            fresh[key] = analyze_chunk([item])[0]
            advance(1)
        if lint_items:
            by_path = lint.lint_chunk([path for _, path in lint_items], lint_mode)
            for key, path in lint_items:
                lint_fresh[key] = by_path.get(path) or _unlinted()
            advance(len(lint_items))
        return fresh, lint_fresh

    chunks = _chunks(items, lambda kv: len(kv[1][2]), jobs * _CHUNKS_PER_WORKER)
    lint_chunks = _chunks(lint_items, lambda kv: 1, max(jobs, -(-len(lint_items) // _PYLINT_CHUNK_FILES)))
    with _pool(jobs) as pool:
        futures: dict[Future, tuple[str, list]] = {}
        for chunk in lint_chunks:  # pylint chunks are the longest: start them first
            futures[pool.submit(lint.lint_chunk, [path for _, path in chunk], lint_mode)] = ("lint", chunk)
        for chunk in chunks:
            futures[pool.submit(analyze_chunk, [item for _, item in chunk])] = ("analysis", chunk)
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            kind, chunk = futures[future]
            if kind == "analysis":
                for (key, _), outcome in zip(chunk, future.result()):
                    fresh[key] = outcome
            else:
                by_path = future.result()
                for key, path in chunk:
                    lint_fresh[key] = by_path.get(path) or _unlinted()
            advance(len(chunk))
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
    for key in ("include", "exclude", "skip_dirs"):
        summary[key] = list(summary[key])
    return summary


def _display_path(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
