"""The static ratchet of ``hepaudit check``: compare the functions of a current audit with a baseline.

A function fails the gate on a metric when its value now is above the threshold and either it
is new (no function of the baseline is the same one) or its value got worse. Functions that were
already above a threshold and did not get worse pass: pre-existing debt does not block a change.

Identity across versions, in order: the same path and qualified name; then the same body hash
(the function was moved and/or renamed, but not edited); then the same qualified name, when it is
unique among the functions still unmatched on both sides (moved to another file and edited).

Pure functions over report dicts: the CLI and the renderers (console, SARIF, JUnit) only format
the :class:`GateResult`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import posixpath
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from auditor.config import Thresholds
from auditor.errors import UserError

BASELINE_SCHEMA = "hepaudit.baseline"
BASELINE_VERSION = "1.0"


@dataclass(frozen=True)
class Rule:
    """One gated metric; ``id`` is stable across releases (SARIF rule id, JUnit test name)."""

    id: str
    metric: str
    name: str
    title: str


RULES: tuple[Rule, ...] = (
    Rule("HA001", "ccn", "cyclomatic-complexity", "cyclomatic complexity"),
    Rule("HA002", "cognitive", "cognitive-complexity", "cognitive complexity"),
    Rule("HA003", "nloc", "function-length", "lines of code"),
    Rule("HA004", "params", "parameter-count", "parameters"),
    Rule("HA005", "nesting", "nesting-depth", "nesting depth"),
)
RULE_BY_METRIC = {rule.metric: rule for rule in RULES}
METRICS = tuple(rule.metric for rule in RULES)


def limit_for(metric: str, language: str, limits: Thresholds) -> int:
    if metric == "ccn":
        return limits.ccn_for(language)
    if metric == "params":
        return limits.params_for(language)
    return getattr(limits, metric)


@dataclass(frozen=True)
class Function:
    """A function as the gate sees it; ``path`` is relative to the working folder where known."""

    path: str
    language: str
    qualified_name: str
    metrics: dict[str, int | None]
    body_hash: str | None = None
    start_line: int | None = None
    end_line: int | None = None

    @property
    def label(self) -> str:
        return f"{self.path}::{self.qualified_name}"


@dataclass(frozen=True)
class Finding:
    """A function above a threshold on one metric: a violation (new or worse) or passing debt."""

    rule: Rule
    function: Function
    new: int
    old: int | None
    limit: int
    status: str  #: "new" (no baseline function), "worse", or "unchanged" / "better" for debt
    was: str | None = None  #: the baseline's path::name when the function was moved or renamed

    @property
    def severity(self) -> float:
        """How far above its threshold, for "worst first" ordering."""
        return self.new / self.limit if self.limit > 0 else float(self.new)

    def describe(self) -> str:
        old = "new function" if self.old is None else f"was {self.old}"
        moved = f", formerly {self.was}" if self.was else ""
        return (f"{self.rule.title} {self.new} ({old}{moved}) is above the threshold {self.limit}")


@dataclass
class GateResult:
    violations: list[Finding]
    debt: list[Finding]
    compared: int  #: functions in the current audit
    matched: int  #: of which found in the baseline
    moved: list[tuple[str, str]] = field(default_factory=list)  #: (baseline label, current label)
    removed: int = 0  #: baseline functions no longer present
    threshold_changes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations


def _ordered(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity, f.function.path, f.function.start_line or 0,
                                           f.function.qualified_name, f.rule.id))


# --- reading reports and baselines -------------------------------------------------------------


def _prefixed(root: str) -> bool:
    """Whether report paths are shown with the report's root in front (a root below the working folder)."""
    return not (not root or root == "." or Path(root).is_absolute() or root.startswith(".."))


def _located(root: str, rel: str) -> str:
    """A report path relative to the working folder when the report's root is relative to it."""
    if not _prefixed(root):
        return rel
    return posixpath.normpath(posixpath.join(Path(root).as_posix(), rel))


def file_location(root: str, path: str) -> str:
    """The absolute path of a :class:`Function`'s file, from ``path`` and its report's root."""
    return os.path.abspath(path if _prefixed(root) else os.path.join(root, path))


def functions_of_audit(report: dict[str, Any]) -> list[Function]:
    """The functions of an audit report (``hepaudit audit --json``)."""
    root = str(report.get("root", "."))
    found = []
    for entry in report["files"]:
        path = _located(root, entry["path"])
        for function in entry["functions"]:
            found.append(Function(path=path, language=entry["language"],
                                  qualified_name=function["qualified_name"],
                                  metrics={m: function.get(m) for m in METRICS},
                                  body_hash=function.get("body_hash"),
                                  start_line=function.get("start_line"), end_line=function.get("end_line")))
    return found


def functions_of_baseline(data: dict[str, Any]) -> list[Function]:
    return [Function(path=item["path"], language=item["language"], qualified_name=item["qualified_name"],
                     metrics={m: item.get(m) for m in METRICS}, body_hash=item.get("body_hash"))
            for item in data["functions"]]


def load_baseline(path: Path) -> tuple[list[Function], Thresholds | None]:
    """Baseline functions (and the thresholds recorded with them) from a baseline file or a saved
    audit report; UserError when the file is neither."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"Baseline file {path} does not exist; create it with --update-baseline.") from None
    except OSError as exc:
        raise UserError(f"Cannot read the baseline {path}: {exc.strerror}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"Baseline {path} is not a JSON file: {exc}.") from None
    kind = data.get("schema") if isinstance(data, dict) else None
    if kind not in (BASELINE_SCHEMA, "hepaudit.audit"):
        raise UserError(f"Baseline {path} is neither a hepaudit baseline nor a saved audit report "
                        "(hepaudit audit --json).")
    major = str(data.get("schema_version", "")).split(".")[0]
    if major != "1":
        raise UserError(f"Baseline {path} has schema version {data.get('schema_version')!r}; this hepaudit reads 1.x.")
    try:
        if kind == BASELINE_SCHEMA:
            functions = functions_of_baseline(data)
            recorded = data.get("thresholds")
        else:
            functions = functions_of_audit(data)
            recorded = (data.get("config") or {}).get("thresholds")
        limits = Thresholds(**recorded) if isinstance(recorded, dict) else None
    except (KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"Baseline {path} does not match its schema (missing or wrong field {exc}).") from None
    return functions, limits


def baseline_document(report: dict[str, Any], limits: Thresholds) -> str:
    """The text of a baseline file for this audit: one function per line, so that updates diff well.

    Line numbers are left out on purpose: they change with every edit above a function.
    """
    rows = sorted(functions_of_audit(report), key=lambda f: (f.path, f.qualified_name, f.body_hash or ""))
    head = {
        "schema": BASELINE_SCHEMA,
        "schema_version": BASELINE_VERSION,
        "created": report.get("created"),
        "tool": report.get("tool"),
        "thresholds": dataclasses.asdict(limits),
    }
    lines = [json.dumps({"path": f.path, "language": f.language, "qualified_name": f.qualified_name,
                         "body_hash": f.body_hash, **f.metrics}, ensure_ascii=False) for f in rows]
    body = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    listing = ",\n  ".join(lines)
    return f'{body},\n "functions": [\n  {listing}\n ]\n}}\n' if lines else f'{body},\n "functions": []\n}}\n'


# --- matching ----------------------------------------------------------------------------------


def match(baseline: Sequence[Function], current: Sequence[Function]) -> dict[int, int]:
    """Index in ``current`` -> index in ``baseline`` of the same function (see module docstring)."""
    pairs: dict[int, int] = {}
    free_old = set(range(len(baseline)))

    # 1. same path and qualified name; among duplicates (overloads, conditional definitions)
    #    the same body hash first, then in order.
    by_key: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for index, function in enumerate(baseline):
        by_key[(function.language, function.path, function.qualified_name)].append(index)
    for prefer_hash in (True, False):
        for index, function in enumerate(current):
            if index in pairs:
                continue
            for old in by_key.get((function.language, function.path, function.qualified_name), ()):
                if old in free_old and (not prefer_hash or baseline[old].body_hash == function.body_hash):
                    pairs[index] = old
                    free_old.discard(old)
                    break

    # 2. same body hash: moved and/or renamed, not edited. Prefer the same name, then the same file.
    by_hash: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index in sorted(free_old):
        if baseline[index].body_hash:
            by_hash[(baseline[index].language, baseline[index].body_hash)].append(index)
    for index, function in enumerate(current):
        if index in pairs or not function.body_hash:
            continue
        candidates = [old for old in by_hash.get((function.language, function.body_hash), ()) if old in free_old]
        if candidates:
            old = min(candidates, key=lambda o: (baseline[o].qualified_name != function.qualified_name,
                                                 baseline[o].path != function.path, o))
            pairs[index] = old
            free_old.discard(old)

    # 3. same qualified name, unique among the unmatched on both sides: moved to another file and edited.
    left_new: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, function in enumerate(current):
        if index not in pairs:
            left_new[(function.language, function.qualified_name)].append(index)
    left_old: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index in free_old:
        left_old[(baseline[index].language, baseline[index].qualified_name)].append(index)
    for key, news in left_new.items():
        olds = left_old.get(key, [])
        if len(news) == 1 and len(olds) == 1:
            pairs[news[0]] = olds[0]
            free_old.discard(olds[0])
    return pairs


# --- the gate ----------------------------------------------------------------------------------


def _finding(rule: Rule, function: Function, before: Function | None, was: str | None,
             limits: Thresholds) -> Finding | None:
    """The finding of ``function`` on ``rule``, or None when it is not above its threshold."""
    new = function.metrics.get(rule.metric)
    limit = limit_for(rule.metric, function.language, limits)
    if new is None or new <= limit:
        return None
    old = before.metrics.get(rule.metric) if before is not None else None
    if old is None:
        status = "new"
    elif new > old:
        status = "worse"
    else:
        status = "unchanged" if new == old else "better"
    return Finding(rule, function, new, old, limit, status, was)


def _threshold_changes(limits: Thresholds, baseline_limits: Thresholds | None) -> list[str]:
    if baseline_limits is None:
        return []
    return [f"{name} {getattr(baseline_limits, name)} -> {value}"
            for name, value in dataclasses.asdict(limits).items() if getattr(baseline_limits, name) != value]


def _was(before: Function | None, function: Function) -> str | None:
    """The baseline's label of a function that was moved or renamed, else None."""
    if before is None or (before.path, before.qualified_name) == (function.path, function.qualified_name):
        return None
    return before.label


def _findings(function: Function, before: Function | None, limits: Thresholds) -> list[Finding]:
    was = _was(before, function)
    return [f for f in (_finding(rule, function, before, was, limits) for rule in RULES) if f is not None]


#: Finding statuses that fail the gate; the others are pre-existing debt.
FAILING = ("new", "worse")


def compare(baseline: Sequence[Function], current: Sequence[Function], limits: Thresholds,
            baseline_limits: Thresholds | None = None, *,
            limits_for: Callable[[Function], Thresholds] | None = None) -> GateResult:
    """Violations (new or worse, and above the threshold) and passing debt of ``current``.

    ``limits`` are the thresholds of every function unless ``limits_for`` gives those of its file
    (per-folder overrides); ``baseline_limits``, when known, are compared with ``limits``.
    """
    pairs = match(baseline, current)
    findings: list[Finding] = []
    for index, function in enumerate(current):
        before = baseline[pairs[index]] if index in pairs else None
        findings += _findings(function, before, limits if limits_for is None else limits_for(function))
    moved = [(baseline[old].label, current[new].label) for new, old in pairs.items() if _was(baseline[old], current[new])]
    return GateResult(violations=_ordered(f for f in findings if f.status in FAILING),
                      debt=_ordered(f for f in findings if f.status not in FAILING),
                      compared=len(current), matched=len(pairs), moved=sorted(moved),
                      removed=len(baseline) - len(pairs), threshold_changes=_threshold_changes(limits, baseline_limits))
