"""``hepaudit check``: the static ratchet, function identity across moves and renames, outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import Thresholds
from auditor.gate import Function, compare, file_location, load_baseline, match
from auditor.errors import UserError
from auditor.static.clike_metrics import analyze_clike
from auditor.static.python_metrics import analyze_python
from tests.auditor.conftest import git, write

runner = CliRunner()
LIMITS = Thresholds()


def fn(name: str, path: str = "a.py", body: str | None = "h1", language: str = "Python", **metrics) -> Function:
    values = {"ccn": 1, "cognitive": 0, "nloc": 3, "params": 1, "nesting": 0, **metrics}
    return Function(path=path, language=language, qualified_name=name, metrics=values, body_hash=body,
                    start_line=1, end_line=3)


# --- the ratchet on synthetic functions ---------------------------------------------------------


def test_new_function_above_a_threshold_fails_and_one_below_passes() -> None:
    result = compare([fn("old")], [fn("old"), fn("big", body="h2", ccn=11), fn("small", body="h3", ccn=10)], LIMITS)
    assert [(v.function.qualified_name, v.rule.id, v.old, v.new, v.limit, v.status) for v in result.violations] == [
        ("big", "HA001", None, 11, 10, "new")]


def test_existing_function_fails_only_when_worse_and_above() -> None:
    baseline = [fn("debt", ccn=14, body="d"), fn("grows", ccn=10, body="g"), fn("stays_low", ccn=4, body="s"),
                fn("improves", ccn=20, body="i")]
    current = [fn("debt", ccn=14, body="d"), fn("grows", ccn=11, body="g2"), fn("stays_low", ccn=9, body="s2"),
               fn("improves", ccn=15, body="i2")]
    result = compare(baseline, current, LIMITS)
    assert [(v.function.qualified_name, v.old, v.new, v.status) for v in result.violations] == [("grows", 10, 11, "worse")]
    assert {(d.function.qualified_name, d.status) for d in result.debt} == {("debt", "unchanged"), ("improves", "better")}


def test_debt_that_gets_worse_fails() -> None:
    result = compare([fn("debt", ccn=14)], [fn("debt", ccn=15, body="other")], LIMITS)
    assert [(v.old, v.new, v.status) for v in result.violations] == [(14, 15, "worse")]


def test_language_specific_limits_and_missing_cognitive() -> None:
    cpp = fn("k", path="k.cu", language="CUDA", ccn=15, params=8, cognitive=None)
    result = compare([], [cpp], LIMITS)
    assert [(v.rule.metric, v.limit) for v in result.violations] == [("params", 7)]


def test_identity_follows_renames_moves_and_edited_moves() -> None:
    baseline = [fn("A.run", path="x.py", body="same"), fn("helper", path="x.py", body="h"),
                fn("Fit.step", path="x.py", body="before")]
    current = [fn("B.execute", path="y.py", body="same"),  # moved and renamed, not edited
               fn("helper", path="x.py", body="changed"),  # edited in place
               fn("Fit.step", path="z.py", body="after")]  # moved and edited: unique name
    assert match(baseline, current) == {0: 0, 1: 1, 2: 2}


def test_ambiguous_names_are_not_matched_by_name_alone() -> None:
    baseline = [fn("__init__", path="a.py", body="1"), fn("__init__", path="b.py", body="2")]
    current = [fn("__init__", path="c.py", body="3"), fn("__init__", path="d.py", body="4")]
    assert match(baseline, current) == {}


def test_duplicates_with_one_name_pair_by_body_first() -> None:
    baseline = [fn("f", body="one"), fn("f", body="two")]
    current = [fn("f", body="two"), fn("f", body="one")]
    assert match(baseline, current) == {0: 1, 1: 0}


def test_violations_are_ordered_worst_first() -> None:
    current = [fn("mild", body="1", ccn=11), fn("awful", body="2", ccn=40), fn("long", body="3", nloc=150)]
    result = compare([], current, LIMITS)
    assert [v.function.qualified_name for v in result.violations] == ["awful", "long", "mild"]


def test_per_file_limits_decide_and_are_reported() -> None:
    lenient = Thresholds(ccn_python=20)
    current = [fn("tangled", path="legacy/a.py", body="1", ccn=15), fn("fresh", path="src/b.py", body="2", ccn=15)]
    result = compare([], current, LIMITS, limits_for=lambda f: lenient if f.path.startswith("legacy/") else LIMITS)
    assert [(v.function.qualified_name, v.limit) for v in result.violations] == [("fresh", 10)]
    # Debt keeps its own file's limit too.
    strict = compare([fn("tangled", path="legacy/a.py", body="1", ccn=15)], current, lenient,
                     limits_for=lambda f: Thresholds(ccn_python=12) if f.path.startswith("legacy/") else lenient)
    assert [(d.function.qualified_name, d.limit, d.status) for d in strict.debt] == [("tangled", 12, "unchanged")]
    assert strict.violations == []


def test_file_location_follows_the_report_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert file_location("src", "src/pkg/a.py") == str(tmp_path / "src/pkg/a.py")
    assert file_location(".", "pkg/a.py") == str(tmp_path / "pkg/a.py")
    assert file_location("/elsewhere/repo", "pkg/a.py") == "/elsewhere/repo/pkg/a.py"
    assert file_location("../up", "a.py") == str(tmp_path.parent / "up/a.py")


# --- body hashes --------------------------------------------------------------------------------


def _hashes(analysis: dict) -> dict[str, str]:
    return {f["qualified_name"]: f["body_hash"] for f in analysis["functions"]}


def test_python_body_hash_ignores_name_indentation_and_blank_lines() -> None:
    one = _hashes(analyze_python(b"class A:\n    def go(self, x):\n        return x + 1\n", "a.py"))
    two = _hashes(analyze_python(b"def moved(self,  x):\n\n    return x + 1\n", "b.py"))
    three = _hashes(analyze_python(b"def go(self, x):\n    return x + 2\n", "c.py"))
    assert one["A.go"] == two["moved"] != three["go"]


def test_cpp_body_hash_ignores_the_declared_name_and_its_qualifiers() -> None:
    code = "int {name}(int a, int b)\n{{\n    return a * b;\n}}\n"
    one = _hashes(analyze_clike(code.format(name="Foo::area").encode(), "a.cpp"))
    two = _hashes(analyze_clike(code.format(name="surface").encode(), "b.cpp"))
    three = _hashes(analyze_clike(code.format(name="area").replace("a * b", "a + b").encode(), "c.cpp"))
    assert one["Foo::area"] == two["surface"] != three["area"]


# --- the command on a git repository with a regression and a refactor ---------------------------


def branches(name: str, count: int, indent: str = "") -> str:
    """A function with cyclomatic complexity count + 1."""
    lines = [f"{indent}def {name}(x):"]
    lines += [f"{indent}    if x == {i}:\n{indent}        return {i}" for i in range(count)]
    lines.append(f"{indent}    return -1\n")
    return "\n".join(lines)


LEGACY = "def legacy(a, b, c, d, e, f, g):\n    return a + b + c + d + e + f + g\n"
KERNEL = "int {name}(int a, int b, int c, int d, int e, int f, int g, int h)\n{{\n    return a + b + c + d + e + f + g + h;\n}}\n"


def check(root: Path, *args: str):
    return runner.invoke(app, ["check", str(root), "--baseline", str(root / "hepaudit-baseline.json"),
                               "--no-cache", "--jobs", "1", *args])


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "pkg/core.py", branches("classify", 9) + "\n\n" + LEGACY)
    write(root, "pkg/tracker.py", "class Tracker:\n" + branches("fit", 12, "    "))
    write(root, "src/kernels.cpp", KERNEL.format(name="sum8"))
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "v1")
    created = check(root, "--update-baseline")
    assert created.exit_code == 0, created.output
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "baseline")
    return root


def test_baseline_lists_every_function_without_line_numbers(repo: Path) -> None:
    data = json.loads((repo / "hepaudit-baseline.json").read_text())
    assert data["schema"] == "hepaudit.baseline" and data["thresholds"]["ccn_python"] == 10
    names = {f["qualified_name"] for f in data["functions"]}
    assert names == {"classify", "legacy", "Tracker.fit", "sum8"}
    assert all("start_line" not in f and len(f["body_hash"]) == 16 for f in data["functions"])


def test_refactor_passes_and_real_regression_fails_with_its_numbers(repo: Path, tmp_path: Path) -> None:
    # Refactor: legacy (debt: 7 parameters) moves to another module under a new name; Tracker.fit
    # (debt: CCN 13) moves to another file and gains a comment; the C++ kernel is renamed.
    (repo / "pkg/core.py").write_text(branches("classify", 9) + "\n")
    write(repo, "pkg/compat.py", "# moved from core\n\n\n" + LEGACY.replace("def legacy", "def legacy_sum"))
    (repo / "pkg/tracker.py").unlink()
    write(repo, "pkg/tracking/fit.py", "class Tracker:\n    # the fit\n" + branches("fit", 12, "    "))
    (repo / "src/kernels.cpp").write_text("// kernels\n" + KERNEL.format(name="sum_eight"))
    refactor = check(repo)
    assert refactor.exit_code == 0, refactor.output
    assert "passed" in refactor.output and "moved or renamed" in refactor.output

    # Regression: classify goes from CCN 10 (at the threshold) to 12, and a new function is too long.
    (repo / "pkg/core.py").write_text(branches("classify", 11) + "\n")
    write(repo, "pkg/new.py", "def huge():\n" + "".join(f"    x{i} = {i}\n" for i in range(101)))
    sarif, junit = tmp_path / "out.sarif", tmp_path / "out.xml"
    failed = check(repo, "--sarif", str(sarif), "--junit", str(junit))
    assert failed.exit_code == 1, failed.output
    lines = [line for line in failed.output.splitlines() if line.startswith("HA")]
    assert lines == ["HA001 pkg/core.py:1 classify: cyclomatic complexity 10 -> 12, threshold 10",
                     "HA003 pkg/new.py:1 huge: lines of code 102 (new function), threshold 100"]
    assert "2 regression(s) in 2 function(s)" in failed.output
    for name in ("legacy", "fit", "sum_eight"):
        assert f" {name}:" not in failed.output

    suites = ET.parse(junit).getroot()
    assert suites.get("failures") == "2" and suites.get("tests") == "5"
    failures = {case.get("name"): case.find("failure") for case in suites.iter("testcase")}
    assert failures["HA001 cyclomatic-complexity"].text.startswith("pkg/core.py:1: classify:")
    assert failures["HA004 parameter-count"] is None
    log = json.loads(sarif.read_text())
    errors = [r for r in log["runs"][0]["results"] if r["level"] == "error"]
    assert [(r["ruleId"], r["baselineState"]) for r in errors] == [("HA001", "updated"), ("HA003", "new")]


def test_update_baseline_locks_in_improvements(repo: Path) -> None:
    (repo / "pkg/tracker.py").write_text("class Tracker:\n" + branches("fit", 11, "    "))
    assert check(repo, "--update-baseline").exit_code == 0
    (repo / "pkg/tracker.py").write_text("class Tracker:\n" + branches("fit", 12, "    "))
    result = check(repo)
    assert result.exit_code == 1
    assert "Tracker.fit: cyclomatic complexity 12 -> 13, threshold 10" in result.output


def test_a_saved_audit_report_is_a_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "src/pkg/a.py", branches("grow", 10))
    saved = runner.invoke(app, ["audit", "src", "--json", "audit.json", "--no-cache", "--pylint", "off", "-q"])
    assert saved.exit_code == 0, saved.output
    functions, limits = load_baseline(Path("audit.json"))
    assert [(f.path, f.qualified_name) for f in functions] == [("src/pkg/a.py", "grow")] and limits == Thresholds()
    write(tmp_path, "src/pkg/a.py", branches("grow", 11))
    result = runner.invoke(app, ["check", ".", "--baseline", "audit.json", "--no-cache"])
    assert result.exit_code == 1
    assert "src/pkg/a.py:1 grow: cyclomatic complexity 11 -> 12, threshold 10" in result.output


@pytest.mark.parametrize("content, message", [
    (None, "does not exist; create it with --update-baseline"),
    ("{not json", "is not a JSON file"),
    ('{"schema": "hepaudit.run", "schema_version": "1.0"}', "neither a hepaudit baseline nor a saved audit report"),
    ('{"schema": "hepaudit.baseline", "schema_version": "2.0", "functions": []}', "schema version '2.0'"),
    ('{"schema": "hepaudit.baseline", "schema_version": "1.0", "functions": [{"path": "a.py"}]}', "does not match its schema"),
])
def test_bad_baselines_exit_2_with_one_sentence(tmp_path: Path, content: str | None, message: str) -> None:
    write(tmp_path, "a.py", "def f():\n    return 1\n")
    if content is not None:
        write(tmp_path, "hepaudit-baseline.json", content)
    result = check(tmp_path)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    with pytest.raises(UserError):
        load_baseline(tmp_path / "hepaudit-baseline.json")


def test_missing_path_and_empty_tree_exit_2(tmp_path: Path) -> None:
    assert check(tmp_path / "nope").exit_code == 2
    write(tmp_path, "notes.txt", "nothing")
    result = check(tmp_path, "--update-baseline")
    assert result.exit_code == 2 and "Nothing could be analysed" in " ".join(result.output.split())
