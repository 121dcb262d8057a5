"""Code quality of a stage implementation: the function, and the code it calls in its package.

An implementation is resolved to its source (unwrapping numba dispatchers and decorators), its
module is analysed with the ``hepaudit audit`` engine, and the functions it calls are followed
through the module's globals as long as they belong to the chain's package (three calls deep).
CPU and GPU implementations are measured separately, so the report shows what a port costs in
maintainability.
"""

from __future__ import annotations

import ast
import inspect
import statistics
import textwrap
from pathlib import Path
from typing import Any, Callable

from radon.complexity import cc_rank

from auditor.static.analysis import analyze_bytes
from auditor.static.languages import PYTHON

MAX_DEPTH = 3


def unwrap(function: Any) -> Any:
    """The plain Python function behind numba dispatchers, CUDA kernels and decorators."""
    seen = set()
    while id(function) not in seen:
        seen.add(id(function))
        inner = getattr(function, "py_func", None) or getattr(function, "__wrapped__", None)
        if inner is None:
            break
        function = inner
    return function


class _FileMetrics:
    def __init__(self) -> None:
        self.cache: dict[str, dict[str, Any] | None] = {}

    def get(self, path: str) -> dict[str, Any] | None:
        if path not in self.cache:
            try:
                outcome = analyze_bytes(PYTHON, path, Path(path).read_bytes())
            except OSError:
                outcome = {"skip": "unreadable"}
            self.cache[path] = outcome.get("metrics")
        return self.cache[path]


def _called_names(function: Any) -> set[str]:
    try:
        source = inspect.getsource(function)
        tree = ast.parse(textwrap.dedent(source))
    except (OSError, TypeError, SyntaxError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            target = node.func
            if isinstance(target, ast.Name):
                names.add(target.id)
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                names.add(f"{target.value.id}.{target.attr}")
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            names.add(node.value.id)  # CUDA launches: kernel[blocks, threads](...)
    return names


def _resolve(name: str, namespace: dict[str, Any]) -> Any:
    head, _, tail = name.partition(".")
    value = namespace.get(head)
    if tail and value is not None:
        value = getattr(value, tail, None)
    return value


def _belongs(function: Any, package: str) -> bool:
    module = getattr(function, "__module__", None) or ""
    return inspect.isfunction(function) and (module == package or module.startswith(package + "."))


def implementation_quality(function: Callable[..., Any], package: str | None = None,
                           files: _FileMetrics | None = None) -> dict[str, Any]:
    """Complexity, NLOC and MI of ``function`` and the package code it calls."""
    files = files or _FileMetrics()
    root = unwrap(function)
    package = package or (getattr(root, "__module__", "") or "").split(".")[0]
    visited: dict[int, Any] = {}
    frontier = [(root, 0)]
    while frontier:
        current, depth = frontier.pop()
        if id(current) in visited:
            continue
        visited[id(current)] = current
        if depth >= MAX_DEPTH:
            continue
        namespace = getattr(current, "__globals__", {})
        for name in _called_names(current):
            callee = unwrap(_resolve(name, namespace))
            if callee is not None and _belongs(callee, package):
                frontier.append((callee, depth + 1))
    entries = []
    mis: dict[str, float] = {}
    for current in visited.values():
        entry = _function_entry(current, files, mis)
        if entry is not None:
            entries.append(entry)
    if not entries:
        return {"status": "source not found", "functions": []}
    ccns = [e["ccn"] for e in entries]
    return {
        "status": "analysed", "package": package,
        "functions": sorted(entries, key=lambda e: -e["ccn"]),
        "max_ccn": max(ccns), "mean_ccn": round(statistics.fmean(ccns), 2), "grade": cc_rank(max(ccns)),
        "nloc": sum(e["nloc"] for e in entries),
        "mi": round(statistics.fmean(mis.values()), 2) if mis else None,
        "files": sorted(mis),
    }


def _function_entry(function: Any, files: _FileMetrics, mis: dict[str, float]) -> dict[str, Any] | None:
    try:
        path = inspect.getsourcefile(function)
    except TypeError:
        return None
    if path is None:
        return None
    metrics = files.get(path)
    if metrics is None:
        return None
    qualified = function.__qualname__.replace(".<locals>", "")
    match = next((f for f in metrics["functions"] if f["qualified_name"] == qualified), None)
    if match is None:
        return None
    mis[_short(path)] = metrics["mi"]
    return {"qualified_name": f"{function.__module__}.{qualified}", "file": _short(path),
            "line": match["start_line"], "ccn": match["ccn"], "cognitive": match["cognitive"],
            "nloc": match["nloc"], "grade": match["grade"]}


def _short(path: str) -> str:
    """The path from the top-level package folder on (no machine-specific prefix)."""
    file = Path(path)
    top = file.parent
    while (top / "__init__.py").exists() and top.parent != top:
        top = top.parent
    return file.relative_to(top).as_posix()
