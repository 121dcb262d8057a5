"""The audit never crashes on bad input, caches by content, and runs the same in parallel."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from auditor.static import engine
from auditor.static.engine import run_audit
from tests.auditor.conftest import write

GOOD_PY = "def f(a):\n    if a:\n        return 1\n    return 2\n"
GOOD_CPP = "int g(int a) { return a > 0 ? a : -a; }\n"


def _reasons(report) -> dict[str, str]:
    return {entry["path"]: entry["reason"] for entry in report["not_analysed"]}


def test_bad_inputs_are_listed_with_reasons_and_the_rest_completes(tmp_path: Path, config) -> None:
    write(tmp_path, "good.py", GOOD_PY)
    write(tmp_path, "good.cpp", GOOD_CPP)
    write(tmp_path, "syntax.py", "def broken(:\n")
    write(tmp_path, "undecodable.py", b"x = '\xff\xfe\xfd'\n")
    write(tmp_path, "binary.cpp", b"\x7fELF\x00\x00\x01\x02" * 100)
    write(tmp_path, "empty.py", "")
    write(tmp_path, "huge.c", "int x;\n" * 200_000)
    os.symlink("missing.py", tmp_path / "dangling.py")
    os.symlink("selfloop.cu", tmp_path / "selfloop.cu")
    os.mkfifo(tmp_path / "pipe.py")
    report = run_audit([tmp_path], replace(config, max_file_mb=1.0), None)
    assert {f["path"] for f in report["files"]} == {"good.py", "good.cpp"}
    reasons = _reasons(report)
    assert "cannot parse it" in reasons["syntax.py"]
    assert "undecodable bytes" in reasons["undecodable.py"]
    assert "binary content" in reasons["binary.cpp"]
    assert reasons["empty.py"] == "empty file"
    assert "size cap" in reasons["huge.c"]
    assert reasons["dangling.py"] == "broken symbolic link"
    assert reasons["selfloop.cu"] == "symbolic link loop"
    assert reasons["pipe.py"] == "not a regular file"
    assert all(entry["language"] for entry in report["not_analysed"])


def test_unreadable_file_is_reported(tmp_path: Path, config, monkeypatch) -> None:
    write(tmp_path, "good.py", GOOD_PY)
    locked = write(tmp_path, "locked.py", GOOD_PY)
    real_open = open

    def fake_open(path, *args, **kwargs):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(engine, "open", fake_open, raising=False)
    report = run_audit([tmp_path], config, None)
    assert _reasons(report) == {"locked.py": "cannot be read: Permission denied"}
    assert [f["path"] for f in report["files"]] == ["good.py"]


def test_syntax_newer_than_the_interpreter(tmp_path: Path, config) -> None:
    # PEP 701 f-strings (Python 3.12) reuse the outer quote inside the braces.
    write(tmp_path, "new.py", 'names = ["a"]\nmessage = f"{", ".join(names)}"\n')
    report = run_audit([tmp_path], config, None)
    if sys.version_info >= (3, 12):
        assert [f["path"] for f in report["files"]] == ["new.py"]
    else:
        assert "cannot parse it" in _reasons(report)["new.py"]
        assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in _reasons(report)["new.py"]


def test_cache_reanalyses_only_changed_files(tmp_path: Path, config) -> None:
    cache = tmp_path / "cache"
    tree = tmp_path / "tree"
    for index in range(6):
        write(tree, f"m{index}.py", GOOD_PY + f"\nX = {index}\n")
    write(tree, "k.cu", GOOD_CPP)
    cold = run_audit([tree], config, cache)
    assert (cold["cache"]["hits"], cold["cache"]["analysed"]) == (0, 7)
    warm = run_audit([tree], config, cache)
    assert (warm["cache"]["hits"], warm["cache"]["analysed"]) == (7, 0)
    assert warm["files"] == cold["files"]
    write(tree, "m3.py", GOOD_PY + "\ndef extra():\n    return 3\n")
    changed = run_audit([tree], config, cache)
    assert (changed["cache"]["hits"], changed["cache"]["analysed"]) == (6, 1)
    assert changed["summary"]["total"]["functions"] == cold["summary"]["total"]["functions"] + 1
    # A copy of a known file under another name is a hit: the key is the content, not the path.
    write(tree, "copy.cu", GOOD_CPP)
    copied = run_audit([tree], config, cache)
    assert copied["cache"]["analysed"] == 0


def test_unusable_cache_folder_still_audits(tmp_path: Path, config) -> None:
    blocker = write(tmp_path, "not-a-folder", "x")
    write(tmp_path, "tree/a.py", GOOD_PY)
    report = run_audit([tmp_path / "tree"], config, blocker / "cache")
    assert report["cache"]["enabled"] is False
    assert "cache disabled" in report["cache"]["problem"]
    assert len(report["files"]) == 1


def test_parallel_run_equals_serial_run(tmp_path: Path, config, monkeypatch) -> None:
    monkeypatch.setattr(engine, "_PARALLEL_MIN_BYTES", 0)
    for index in range(30):
        write(tmp_path, f"pkg/m{index}.py", GOOD_PY * (index + 1))
        write(tmp_path, f"src/k{index}.cpp", GOOD_CPP.replace("g(", f"g{index}(") * (index + 1))
    serial = run_audit([tmp_path], config, None)
    parallel = run_audit([tmp_path], replace(config, jobs=2), None)
    assert parallel["performance"]["jobs"] == 2
    assert parallel["files"] == serial["files"]
    assert parallel["summary"] == serial["summary"]


def test_aggregates_per_language_and_folder(tmp_path: Path, config) -> None:
    write(tmp_path, "core/a.py", GOOD_PY)
    write(tmp_path, "core/b.cpp", GOOD_CPP)
    complex_body = "".join(f"    if a == {i}:\n        return {i}\n" for i in range(12))
    write(tmp_path, "plugins/c.py", "def hard(a):\n" + complex_body + "    return -1\n")
    write(tmp_path, "setup.py", "X = 1\n")
    report = run_audit([tmp_path], replace(config, top=2), None)
    summary = report["summary"]
    assert set(summary["by_folder"]) == {"core", "plugins", "."}
    assert summary["by_language"]["Python"]["functions"] == 2
    assert summary["by_language"]["C++"]["max_ccn"] == 2
    assert summary["total"]["functions_over_ccn_threshold"] == 1
    assert summary["hotspots"][0]["qualified_name"] == "hard"
    assert summary["hotspots"][0]["ccn"] == 13
    assert summary["hotspots"][0]["exceeds"] == ["ccn"]
    assert len(summary["hotspots"]) == 2
    assert summary["cc_grades"]["C"] == 1
