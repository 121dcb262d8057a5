"""CI end to end: ``hepaudit check --baseline-ref`` over real commits of a small package, and
``hepaudit compare`` over saved run reports, as a CI job runs them.

The repository has three commits: a base; a refactor that renames a module and moves a function
(carrying complexity debt) to another module without changing it; and a real complexity
regression. Per-folder threshold overrides from pyproject.toml apply throughout.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from tests.auditor.conftest import git, write

runner = CliRunner()


def branches(name: str, count: int, params: str = "x") -> str:
    """A function of cyclomatic complexity ``count + 1``."""
    body = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(count))
    return f"def {name}({params}):\n{body}    return -1\n"


HELIX_FIT = ("def helix_fit(x, y, z, bfield, charge, mass, tolerance):\n"  # debt: 7 parameters
             "    radius = (x * x + y * y) ** 0.5 / (charge * bfield)\n"
             "    return radius, z / mass, tolerance\n")


def reader(sign: str) -> str:
    """``process`` with 6 parameters (debt); both reader modules define one."""
    return f"def process(a, b, c, d, e, f):\n    return a + b + c + d + e {sign} f\n"


PYPROJECT = """[project]
name = "tinypkg"
version = "0.1"

[tool.hepaudit]
pylint = "off"

[[tool.hepaudit.overrides]]
paths = ["pkg/legacy/"]
ccn_python = 20
"""


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commit 1 (base) and commit 2 (the refactor), checked out at commit 2; cwd is the repository."""
    root = tmp_path / "repo"
    write(root, "pyproject.toml", PYPROJECT)
    write(root, "pkg/__init__.py", '"""A tiny package."""\n')
    write(root, "pkg/geometry.py", branches("classify", 7) + "\n\n" + HELIX_FIT)
    write(root, "pkg/io/csv_reader.py", reader("+"))
    write(root, "pkg/io/root_reader.py", reader("+"))
    write(root, "pkg/legacy/old.py", branches("legacy_lookup", 11))  # CCN 12: fine under the override's 20
    git(root, "init", "-q", "-b", "main")
    commit(root, "base")

    # The refactor: geometry.py becomes shapes.py, helix_fit moves unchanged to fitting.py.
    (root / "pkg/geometry.py").unlink()
    write(root, "pkg/shapes.py", branches("classify", 7))
    write(root, "pkg/fitting.py", '"""Track fits."""\n\n\n' + HELIX_FIT)
    commit(root, "Split geometry into shapes and fitting")

    # Temporary folders of the baseline audit land here, to see that they are removed.
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(root)
    return root


def check(*args: str, cache: Path):
    return runner.invoke(app, ["check", *args, "--cache-dir", str(cache), "--jobs", "1"], terminal_width=200)


def offenders(output: str) -> list[str]:
    return [line for line in output.splitlines() if re.match(r"HA00\d ", line)]


def assert_repository_untouched(root: Path) -> None:
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    assert status.stdout == ""
    trees = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True, text=True, check=True)
    assert len(trees.stdout.splitlines()) == 1
    assert list(Path(tempfile.tempdir).iterdir()) == []


def test_refactor_passes_and_regression_fails_against_the_previous_commit(repo: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    refactor = check("pkg", "--baseline-ref", "HEAD~1", cache=cache)
    assert refactor.exit_code == 0, refactor.output
    assert offenders(refactor.output) == []
    assert "hepaudit check passed" in refactor.output
    # classify and helix_fit moved (pkg/geometry.py::helix_fit -> pkg/fitting.py::helix_fit).
    assert "Followed 2 moved or renamed function(s)" in refactor.output
    # Five source files at HEAD~1; all but geometry.py are identical now and come from the cache.
    assert "Baseline HEAD~1 (" in refactor.output
    assert "5 source file(s), 4 from the analysis cache" in refactor.output
    assert_repository_untouched(repo)

    # The regression: classify from CCN 8 to 12. Both readers' process (debt, same name in two
    # files) are edited without getting worse: only a path-for-path match keeps them passing.
    # legacy_lookup grows from 12 to 14, under its folder's override of 20.
    write(repo, "pkg/shapes.py", branches("classify", 11))
    write(repo, "pkg/io/csv_reader.py", reader("-"))
    write(repo, "pkg/io/root_reader.py", reader("*"))
    write(repo, "pkg/legacy/old.py", branches("legacy_lookup", 13))
    commit(repo, "Classify more cases")

    failed = check("pkg", "--baseline-ref", "HEAD~1", "--junit", str(tmp_path / "junit.xml"), cache=cache)
    assert failed.exit_code == 1, failed.output
    assert offenders(failed.output) == [
        "HA001 pkg/shapes.py:1 classify: cyclomatic complexity 8 -> 12, threshold 10"]
    assert "hepaudit check failed: 1 regression(s) in 1 function(s)" in failed.output
    assert "found in HEAD~1 (" in failed.output
    assert 'classify: cyclomatic complexity 12 (was 8) is above the threshold 10' in (tmp_path / "junit.xml").read_text()
    assert_repository_untouched(repo)

    # The same gate from another folder with an absolute PATH: paths are relative to PATH on both sides.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    from_outside = subprocess.run(
        [sys.executable, "-m", "auditor", "check", str(repo / "pkg"), "--baseline-ref", "HEAD~1", "--cache-dir", str(cache),
         "--jobs", "1"], cwd=elsewhere, capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "COLUMNS": "200",
             "TMPDIR": tempfile.tempdir})
    assert from_outside.returncode == 1, from_outside.stdout + from_outside.stderr
    assert offenders(from_outside.stdout) == [
        "HA001 shapes.py:1 classify: cyclomatic complexity 8 -> 12, threshold 10"]

    # Without the folder override, legacy_lookup's growth is a regression too.
    write(tmp_path, "plain.toml", "pylint = 'off'\n")
    strict = check("pkg", "--baseline-ref", "HEAD~1", "--config", str(tmp_path / "plain.toml"), cache=cache)
    assert strict.exit_code == 1
    assert offenders(strict.output) == [
        "HA001 pkg/legacy/old.py:1 legacy_lookup: cyclomatic complexity 12 -> 14, threshold 10",
        "HA001 pkg/shapes.py:1 classify: cyclomatic complexity 8 -> 12, threshold 10"]
    assert_repository_untouched(repo)


def test_a_baseline_ref_older_than_the_audited_folder(repo: Path, tmp_path: Path) -> None:
    write(repo, "pkg/new/tool.py", branches("brand_new", 10))
    commit(repo, "add a folder")
    result = check("pkg/new", "pkg/io", "--baseline-ref", "HEAD~1", cache=tmp_path / "cache")
    assert result.exit_code == 1
    assert offenders(result.output) == [
        "HA001 pkg/new/tool.py:1 brand_new: cyclomatic complexity 11 (new function), threshold 10"]
    assert "2 source file(s)" in result.output


@pytest.mark.parametrize("args, message", [
    (["pkg", "--baseline-ref", "origin/main"], "Git ref 'origin/main' does not name a commit"),
    (["pkg", "--baseline-ref", "HEAD~7"], "Git ref 'HEAD~7' does not name a commit"),
    (["pkg", "--baseline-ref", "HEAD", "--baseline", "b.json"], "not both"),
    (["pkg"], "Give the baseline as a file (--baseline FILE) or as a git revision (--baseline-ref REF)."),
    (["pkg", "--baseline-ref", "HEAD", "--update-baseline"], "needs --baseline FILE"),
])
def test_bad_baseline_refs_exit_2_with_one_sentence(repo: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = check(*args, cache=tmp_path / "cache")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert_repository_untouched(repo)


def test_a_folder_outside_git_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "plain/a.py", branches("f", 1))
    result = check(str(tmp_path / "plain"), "--baseline-ref", "HEAD", cache=tmp_path / "cache")
    assert result.exit_code == 2
    assert "is not inside a git work tree" in " ".join(result.output.split())


# --- hepaudit compare on saved run reports -----------------------------------------------------


def run_report(seed: int, scale: dict[str, float]) -> dict:
    """A `hepaudit run` report of a two-stage chain, 30 timed repeats per stage: each stage's time
    (seconds per event) is its nominal value times ``scale``, with 2 % noise and one slow outlier."""
    rng = random.Random(seed)
    stages = []
    for name, nominal in (("seeding", 0.020), ("ckf", 0.050)):
        samples = [nominal * scale.get(name, 1.0) * rng.gauss(1.0, 0.02) for _ in range(30)]
        samples[rng.randrange(30)] *= 1.4  # a scheduler hiccup
        stages.append({"name": name, "status": "measured",
                       "devices": {"cpu": {"status": "measured", "time_samples": samples}}})
    return {"schema": "hepaudit.run", "schema_version": "1.0", "created": "2026-11-26T12:00:00+00:00",
            "chains": [{"name": "tracking", "stages": stages}]}


def test_compare_passes_noise_and_fails_a_slowdown(tmp_path: Path) -> None:
    paths = {}
    for name, seed, scale in (("main", 1, {}), ("rerun", 2, {}), ("slower", 3, {"ckf": 1.25})):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(run_report(seed, scale)))

    noise = runner.invoke(app, ["compare", str(paths["main"]), str(paths["rerun"])], env={"COLUMNS": "200"})
    assert noise.exit_code == 0, noise.output
    assert noise.output.count("unchanged: within x1.1") == 2
    assert not [line for line in noise.output.splitlines() if line.startswith("regression:")]

    slow = runner.invoke(app, ["compare", str(paths["main"]), str(paths["slower"])], env={"COLUMNS": "200"})
    assert slow.exit_code == 1, slow.output
    regressions = [line for line in slow.output.splitlines() if line.startswith("regression:")]
    assert len(regressions) == 1 and regressions[0].startswith("regression: tracking/ckf on cpu: time")
