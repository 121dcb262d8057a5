"""hepaudit history: per-commit aggregates from git, changed blobs only, shallow clones, errors."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from auditor import history
from auditor.cli import app
from auditor.errors import UserError
from auditor.history import Storage, parse_cat_file, run_history, shallow_state
from auditor.render.history_console import sparkline
from auditor.render.json_report import HISTORY_SCHEMA_FILE, schema
from auditor.static import engine
from tests.auditor.conftest import git, write

SIMPLE_PY = "def f(a):\n    if a:\n        return 1\n    return 2\n"
BRANCHY_PY = ("def f(a, b):\n    if a:\n        return 1\n    if b:\n        return 2\n"
              "    for x in range(3):\n        if x:\n            return x\n    return 0\n")
HELPER_PY = "def g(x):\n    return x + 1\n\n\ndef h(x):\n    return x and g(x)\n"
LIB_CPP = "int k(int a) { if (a > 0) { return a; } return -a; }\n"


def _commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """Four commits: add; change and add; move unchanged; delete (plus a non-source file)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "pkg/a.py", SIMPLE_PY)
    write(root, "lib/b.cpp", LIB_CPP)
    _commit(root, "add a and b")
    write(root, "pkg/a.py", BRANCHY_PY)
    write(root, "pkg/c.py", HELPER_PY)
    _commit(root, "change a, add c")
    (root / "src").mkdir()
    (root / "lib" / "b.cpp").rename(root / "src" / "b.cpp")
    _commit(root, "move b")
    (root / "pkg" / "c.py").unlink()
    write(root, "README.md", "# not source\n")
    _commit(root, "delete c")
    return root


@pytest.fixture()
def counted(monkeypatch) -> list[str]:
    """Names of the files that reach the analysis."""
    names: list[str] = []
    real = engine.analyze_chunk

    def counting(items):
        names.extend(name for _, name, _ in items)
        return real(items)

    monkeypatch.setattr(engine, "analyze_chunk", counting)
    return names


def _run(root: Path, config, tmp_path: Path, count: int = 10, db: str = "h.sqlite"):
    return run_history(root, count, config, Storage(tmp_path / db, tmp_path / "cache"))


def test_aggregates_per_commit(repo: Path, config, tmp_path: Path) -> None:
    report = _run(repo, config, tmp_path, count=4)
    commits = report["commits"]
    assert [(c["subject"], c["total"]["files"], c["total"]["functions"], sorted(c["by_folder"])) for c in commits] == [
        ("add a and b", 2, 2, ["lib", "pkg"]), ("change a, add c", 3, 4, ["lib", "pkg"]),
        ("move b", 3, 4, ["pkg", "src"]), ("delete c", 2, 2, ["pkg", "src"])]
    assert commits[0]["by_folder"]["pkg"]["max_ccn"] == 2
    assert commits[1]["by_folder"]["pkg"]["max_ccn"] == 5
    assert commits[2]["by_folder"]["src"]["max_ccn"] == 2
    assert commits[0]["by_language"]["C++"]["files"] == 1
    assert commits[3]["total"]["mi_median"] is not None
    assert report["shallow"] == {"shallow": False, "asked": 4, "available": 4, "note": None}


def test_top_movers(repo: Path, config, tmp_path: Path) -> None:
    movers = _run(repo, config, tmp_path, count=4)["movers"]
    assert movers["changed"][0]["qualified_name"] == "f"
    assert (movers["changed"][0]["ccn_first"], movers["changed"][0]["ccn_last"]) == (2, 5)
    # b.cpp moved from lib/ to src/: counted as removed and added.
    assert (movers["added"], movers["removed"]) == (1, 1)


def test_unchanged_blobs_are_read_and_analysed_once(repo: Path, config, tmp_path: Path, counted: list[str]) -> None:
    report = _run(repo, config, tmp_path)
    # Four distinct contents over four commits: a.py twice, b.cpp (moved, not changed), c.py.
    assert sorted(counted) == ["lib/b.cpp", "pkg/a.py", "pkg/a.py", "pkg/c.py"]
    assert report["run"]["blobs_read"] == 4
    assert report["run"]["commits_measured"] == 4

    write(repo, "pkg/a.py", SIMPLE_PY + "\n\ndef z():\n    return 0\n")
    _commit(repo, "extend a")
    counted.clear()
    again = _run(repo, config, tmp_path)
    assert counted == ["pkg/a.py"]
    assert (again["run"]["commits_measured"], again["run"]["commits_from_database"]) == (1, 4)
    assert again["run"]["blobs_read"] == 1
    assert [c["total"]["functions"] for c in again["commits"]] == [2, 4, 4, 2, 3]


def test_a_new_database_reuses_the_analysis_cache(repo: Path, config, tmp_path: Path, counted: list[str]) -> None:
    first = _run(repo, config, tmp_path)
    counted.clear()
    fresh_db = _run(repo, config, tmp_path, db="other.sqlite")
    assert counted == []
    assert (fresh_db["run"]["cache_hits"], fresh_db["run"]["blobs_read"]) == (4, 4)
    assert fresh_db["commits"] == first["commits"]


def test_audit_and_history_share_cache_keys(repo: Path, config, tmp_path: Path, counted: list[str]) -> None:
    engine.run_audit([repo], config, tmp_path / "cache")
    counted.clear()
    report = _run(repo, config, tmp_path)
    assert sorted(counted) == ["pkg/a.py", "pkg/c.py"]  # older versions; the current files were hits
    assert report["run"]["cache_hits"] == 2


def test_settings_filter_the_tree(repo: Path, config, tmp_path: Path) -> None:
    settings = replace(config, exclude=("src/**",), skip_dirs=("lib",), base_dir=str(repo))
    report = _run(repo, settings, tmp_path)
    assert [c["total"]["files"] for c in report["commits"]] == [1, 2, 2, 1]
    sub = _run(repo / "pkg", config, tmp_path)
    assert sub["path"] == "pkg"
    assert [sorted(c["by_folder"]) for c in sub["commits"]][:2] == [["."], ["."]]


def test_window_and_unreadable_contents(repo: Path, config, tmp_path: Path) -> None:
    write(repo, "pkg/broken.py", "def broken(:\n")
    write(repo, "pkg/blob.cu", b"\x7fELF\x00\x00" * 10)
    _commit(repo, "bad files")
    report = _run(repo, config, tmp_path, count=2)
    assert [c["subject"] for c in report["commits"]] == ["delete c", "bad files"]
    assert report["commits"][-1]["not_analysed"] == 2
    assert report["commits"][-1]["total"]["files"] == 2
    assert report["shallow"]["note"] is None


def test_shallow_clone_is_detected(repo: Path, config, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "2", f"file://{repo}", str(clone)], check=True,
                   capture_output=True)
    report = _run(clone, config, tmp_path, count=10)
    shallow = report["shallow"]
    assert shallow["shallow"] is True and shallow["available"] == 2
    assert "shallow clone" in shallow["note"]
    assert "git fetch --deepen=8" in shallow["note"] and "--unshallow" in shallow["note"]
    assert len(report["commits"]) == 2
    full = _run(repo, config, tmp_path, count=10)
    assert "only 4 commits" in full["shallow"]["note"]
    assert shallow_state(False, 3, 3)["note"] is None


def test_not_a_repository_and_empty_repository(tmp_path: Path, config) -> None:
    plain = tmp_path / "plain"
    write(plain, "x.py", SIMPLE_PY)
    result = CliRunner().invoke(app, ["history", str(plain), "--db", str(tmp_path / "h.sqlite")])
    assert result.exit_code == 2
    assert "not inside a git repository" in result.output
    assert "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    with pytest.raises(UserError, match="no commits"):
        _run(empty, config, tmp_path)
    with pytest.raises(UserError, match="at least 1"):
        _run(plain, config, tmp_path, count=0)


def test_cli_writes_console_html_and_json(repo: Path, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "h.json", tmp_path / "h.html"
    result = CliRunner().invoke(app, ["history", str(repo), "-n", "4", "--db", str(tmp_path / "h.sqlite"),
                                      "--cache-dir", str(tmp_path / "cache"), "--jobs", "1",
                                      "--json", str(out_json), "--html", str(out_html)], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "Trend per sub-project" in result.output and "Top movers" in result.output
    assert "only 4 commits" not in result.output
    data = json.loads(out_json.read_text())
    assert data["schema"] == history.SCHEMA_NAME and len(data["commits"]) == 4
    page = out_html.read_text()
    assert page.count("<svg") >= 3 and "Top movers" in page and "<script" not in page


def test_sparkline_and_cat_file_parsing() -> None:
    assert sparkline([1.0, None, 2.0, 3.0]) == "▁ ▅█"
    assert sparkline([2, 2]) == "▁▁"
    assert sparkline([None]) == ""
    raw = b"aaa blob 3\nxyz\nbbb missing\nccc blob 0\n\n"
    assert parse_cat_file(raw) == {"aaa": b"xyz", "ccc": b""}


def test_last_commit_agrees_with_audit_aggregates(repo: Path, config, tmp_path: Path) -> None:
    write(repo, "pkg/d.py", BRANCHY_PY.replace("def f", "def d") + HELPER_PY)
    write(repo, "src/e.cu", LIB_CPP.replace("int k", "__device__ int e"))
    _commit(repo, "more")
    summary = engine.run_audit([repo], config, None)["summary"]
    last = _run(repo, config, tmp_path, count=2)["commits"][-1]
    keys = ("files", "functions", "nloc", "mean_ccn", "max_ccn", "functions_over_ccn_threshold")
    for scope in ("by_folder", "by_language"):
        assert sorted(last[scope]) == sorted(summary[scope])
        for name, group in summary[scope].items():
            assert {k: last[scope][name][k] for k in keys} == {k: group[k] for k in keys}
            assert last[scope][name]["mi_median"] == (group["mi"]["median"] if "mi" in group else None)
    assert {k: last["total"][k] for k in keys} == {k: summary["total"][k] for k in keys}
    assert last["total"]["functions_over_any_threshold"] == summary["total"]["functions_over_any_threshold"]


def test_history_json_follows_its_schema_and_renders_again(repo: Path, tmp_path: Path) -> None:
    saved = tmp_path / "h.json"
    made = CliRunner().invoke(app, ["history", str(repo), "-n", "4", "--db", str(tmp_path / "h.sqlite"),
                                    "--cache-dir", str(tmp_path / "cache"), "--jobs", "1", "-q", "--json", str(saved)])
    assert made.exit_code == 0, made.output
    data = json.loads(saved.read_text())
    validator = jsonschema.Draft202012Validator(schema(HISTORY_SCHEMA_FILE), format_checker=jsonschema.FormatChecker())
    validator.validate(data)
    assert [c["total"]["functions"] for c in data["commits"]] == [2, 4, 4, 2]

    page = tmp_path / "again.html"
    again = CliRunner().invoke(app, ["report", str(saved), "--html", str(page)], terminal_width=160)
    assert again.exit_code == 0, again.output
    assert "Trend per sub-project" in again.output and "4 commits" in again.output
    assert page.read_text().count("<svg") >= 3
    markdown = CliRunner().invoke(app, ["report", str(saved), "--markdown", str(tmp_path / "h.md")])
    assert markdown.exit_code == 2 and "history report, which has no markdown rendering; use --html" in \
        " ".join(markdown.output.split())
    compare = CliRunner().invoke(app, ["compare", str(saved), str(saved)])
    assert compare.exit_code == 2 and "is a history report" in compare.output


def test_history_schema_rejects_what_renderers_cannot_read(repo: Path, config, tmp_path: Path) -> None:
    report = _run(repo, config, tmp_path, count=2)
    validator = jsonschema.Draft202012Validator(schema(HISTORY_SCHEMA_FILE))
    validator.validate(json.loads(json.dumps(report)))
    broken = json.loads(json.dumps(report))
    del broken["commits"][0]["total"]["mean_ccn"]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    broken = json.loads(json.dumps(report))
    broken["commits"][1]["sha"] = "HEAD"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
