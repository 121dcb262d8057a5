"""pylint profiles and the two scores."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from auditor.static import lint
from auditor.static.engine import run_audit
from tests.auditor.conftest import write

MANY_ARGS = "def f(a, b, c, d, e, f, g):\n    return a\n"
MISSING_IMPORT = "import surely_not_installed_pkg\n\n\ndef g():\n    return surely_not_installed_pkg\n"


def test_fast_profile_runs_design_checks_only(tmp_path: Path) -> None:
    path = write(tmp_path, "a.py", MANY_ARGS + MISSING_IMPORT)
    result = lint.run_pylint([str(path)], "fast")[str(path)]
    symbols = {m["symbol"] for m in result["messages"]}
    assert "too-many-arguments" in symbols
    assert "import-error" not in symbols  # not a design check
    assert "missing-function-docstring" not in symbols
    assert result["statements"] > 0


def test_full_profile_score_with_and_without_environment_messages(tmp_path: Path, config) -> None:
    padding = "".join(f"VALUE_{i} = {i}\n" for i in range(20))
    write(tmp_path, "a.py", '"""Doc."""\n' + MISSING_IMPORT.replace("def g():", 'def g():\n    """Doc."""') + padding)
    report = run_audit([tmp_path], replace(config, pylint="full"), None)
    pylint = report["pylint"]
    assert pylint["messages_by_symbol"]["import-error"] == 1
    assert pylint["score"] < pylint["score_without_environment"] == 10.0
    statements = pylint["statements"]
    assert statements > 20
    assert pylint["score"] == pytest.approx(10 - 5 / statements * 10, abs=0.01)


def test_score_formula_matches_pylint() -> None:
    entry = {"statements": 20, "counts": {"fatal": 0, "error": 1, "warning": 2, "refactor": 1, "convention": 3, "info": 4},
             "messages": [{"symbol": "import-error", "category": "error"}]}
    assert lint.score([entry]) == pytest.approx(10 - (5 + 2 + 1 + 3) / 20 * 10)
    assert lint.score([entry], lint.ENVIRONMENT_MESSAGES) == pytest.approx(10 - (2 + 1 + 3) / 20 * 10)
    assert lint.score([{**entry, "counts": {**entry["counts"], "fatal": 1}}]) == 0.0
    assert lint.score([{**entry, "statements": 0}]) is None


def test_lint_results_are_cached_per_file(tmp_path: Path, config) -> None:
    write(tmp_path, "tree/a.py", MANY_ARGS)
    write(tmp_path, "tree/b.py", "X = 1\n")
    cfg = replace(config, pylint="fast")
    first = run_audit([tmp_path / "tree"], cfg, tmp_path / "cache")
    assert first["cache"]["linted"] == 2
    again = run_audit([tmp_path / "tree"], cfg, tmp_path / "cache")
    assert (again["cache"]["linted"], again["cache"]["lint_hits"]) == (0, 2)
    assert again["pylint"] == first["pylint"]
    messages = {f["path"]: [m["symbol"] for m in f["pylint"]["messages"]] for f in again["files"]}
    assert "too-many-arguments" in messages["a.py"]


def test_files_that_do_not_parse_are_not_linted(tmp_path: Path, config) -> None:
    write(tmp_path, "ok.py", MANY_ARGS)
    write(tmp_path, "bad.py", "def (:\n")
    report = run_audit([tmp_path], replace(config, pylint="fast"), None)
    assert report["pylint"]["files"] == 1
