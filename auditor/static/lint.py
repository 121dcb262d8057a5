"""pylint, run in-process on chunks of files, with the score computed twice.

``fast`` (the default) enables only pylint's design checker (too many arguments, branches,
locals, statements, ...), the size checks (too-many-lines, too-many-nested-blocks) and the McCabe
extension (too-complex); ``full`` runs every default checker plus McCabe. pylint's score depends on
what is installed: ``import-error`` and ``no-name-in-module`` appear when the audited package or
its dependencies are not importable. hepaudit reports the raw score and the score without those.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

#: Messages whose presence depends on the environment rather than on the code.
ENVIRONMENT_MESSAGES = frozenset({"import-error", "no-name-in-module"})
CATEGORIES = ("fatal", "error", "warning", "refactor", "convention", "info")

_COMMON = ["--load-plugins=pylint.extensions.mccabe", "--persistent=n", "--reports=n",
           "--score=n", "--clear-cache-post-run=y"]
PROFILES: dict[str, list[str]] = {
    "fast": ["--disable=all",
             "--enable=design,too-complex,too-many-lines,too-many-nested-blocks"],
    "full": [],
}


def _reporter_class():
    from pylint.reporters import CollectingReporter

    class ModuleMapReporter(CollectingReporter):
        """Collects messages and remembers which file each module name came from."""

        def __init__(self) -> None:
            super().__init__()
            self.module_files: dict[str, str] = {}

        def on_set_current_module(self, module: str, filepath: str | None) -> None:
            if filepath:
                self.module_files[module] = os.path.abspath(filepath)

    return ModuleMapReporter


def run_pylint(paths: Sequence[str], profile: str) -> dict[str, dict[str, Any]]:
    """Lint ``paths`` (absolute); per absolute path: statements, message counts, messages."""
    from pylint.lint import Run

    reporter = _reporter_class()()
    run = Run([*_COMMON, *PROFILES[profile], "--", *paths], reporter=reporter, exit=False)
    by_module = run.linter.stats.by_module
    results: dict[str, dict[str, Any]] = {}
    for module, path in reporter.module_files.items():
        stats = by_module.get(module, {})
        results[path] = {"statements": int(stats.get("statement", 0)),
                         "counts": {c: int(stats.get(c, 0)) for c in CATEGORIES},
                         "messages": []}
    for message in reporter.messages:
        entry = results.setdefault(os.path.abspath(message.abspath), {
            "statements": 0, "counts": dict.fromkeys(CATEGORIES, 0), "messages": []})
        entry["messages"].append({
            "line": message.line, "column": message.column, "symbol": message.symbol,
            "id": message.msg_id, "category": message.category, "object": message.obj,
            "message": message.msg})
    return results


def lint_chunk(paths: Sequence[str], profile: str) -> dict[str, dict[str, Any]]:
    """Worker entry point: never raises for a chunk; a pylint crash becomes a fatal entry."""
    try:
        return run_pylint(paths, profile)
    except Exception as exc:  # noqa: BLE001 - pylint crashing must not lose the audit
        return {path: {"statements": 0, "counts": {**dict.fromkeys(CATEGORIES, 0), "fatal": 1},
                       "messages": [], "crash": f"pylint crashed: {type(exc).__name__}: {exc}"}
                for path in paths}


def score(files: Sequence[dict[str, Any]], drop: frozenset[str] = frozenset()) -> float | None:
    """pylint's default evaluation over ``files``, ignoring messages whose symbol is in ``drop``."""
    counts = dict.fromkeys(CATEGORIES, 0)
    statements = 0
    for entry in files:
        statements += entry["statements"]
        for category in CATEGORIES:
            counts[category] += entry["counts"][category]
        for message in entry["messages"]:
            if message["symbol"] in drop:
                counts[message["category"]] -= 1
    if statements == 0:
        return None
    if counts["fatal"]:
        return 0.0
    penalty = 5 * counts["error"] + counts["warning"] + counts["refactor"] + counts["convention"]
    return round(max(0.0, 10.0 - penalty / statements * 10), 2)


def pylint_version() -> str:
    from importlib.metadata import version

    return f"pylint {version('pylint')}, astroid {version('astroid')}"
