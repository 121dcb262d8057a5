"""The command line: options, outputs, configuration and errors a user can cause."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import ThresholdLookup, ThresholdOverride, Thresholds, load_config
from auditor.render.json_report import schema
from tests.auditor.conftest import write

runner = CliRunner()
GOOD = "def f(a):\n    if a:\n        return 1\n    return 2\n"


def audit(*args: str, cache: Path | None = None):
    extra = ["--cache-dir", str(cache)] if cache else ["--no-cache"]
    return runner.invoke(app, ["audit", *args, *extra, "--pylint", "off"])


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    write(tmp_path, "proj/pkg/a.py", GOOD)
    write(tmp_path, "proj/src/k.cu", "__global__ void k(float* x) { if (x) x[0] = 1; }\n")
    write(tmp_path, "proj/pkg/broken.py", "def (:\n")
    return tmp_path / "proj"


def test_audit_writes_valid_json_and_markdown(tree: Path, tmp_path: Path) -> None:
    out, md = tmp_path / "out" / "audit.json", tmp_path / "summary.md"
    result = audit(str(tree), "--json", str(out), "--markdown", str(md))
    assert result.exit_code == 0, result.output
    assert "hepaudit audit" in result.output and "Not analysed" in result.output
    data = json.loads(out.read_text())
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(data)
    assert {f["path"] for f in data["files"]} == {"pkg/a.py", "src/k.cu"}
    assert data["not_analysed"][0]["path"] == "pkg/broken.py"
    text = md.read_text()
    assert text.startswith("## hepaudit audit") and "| CUDA |" in text and "pkg/broken.py" in text


def test_schema_rejects_a_report_missing_fields(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    assert audit(str(tree), "--json", str(out), "-q").exit_code == 0
    data = json.loads(out.read_text())
    del data["files"][0]["functions"][0]["ccn"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema())


def test_report_command_rerenders_a_saved_report(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    assert audit(str(tree), "--json", str(out), "-q").exit_code == 0
    result = runner.invoke(app, ["report", str(out), "--markdown", str(tmp_path / "again.md")])
    assert result.exit_code == 0 and "By language" in result.output
    assert (tmp_path / "again.md").read_text().startswith("## hepaudit audit")


@pytest.mark.parametrize("args, message", [
    (["does/not/exist"], "does not exist"),
    (["--top", "-1", "."], "must not be negative"),
    (["--max-file-mb", "0", "."], "positive number"),
])
def test_user_errors_exit_2_with_one_sentence(args, message, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "a.py", GOOD)
    result = audit(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_empty_folder_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "notes.txt", "nothing to see")
    result = audit(str(tmp_path))
    assert result.exit_code == 2
    assert "Nothing to analyse" in result.output


def test_only_unanalysable_files_exit_2_after_showing_why(tmp_path: Path) -> None:
    write(tmp_path, "bad.py", "def (:\n")
    result = audit(str(tmp_path))
    assert result.exit_code == 2
    assert "cannot parse it" in result.output and "None of the 1 files" in result.output


def test_bad_output_location_is_a_user_error(tree: Path, tmp_path: Path) -> None:
    blocker = write(tmp_path, "file", "x")
    result = audit(str(tree), "--json", str(blocker / "out.json"))
    assert result.exit_code == 2 and "Cannot write the JSON report" in result.output


@pytest.mark.parametrize("table, message", [
    ('[tool.hepaudit]\nmax_file_mb = "big"\n', "'tool.hepaudit.max_file_mb' in"),
    ("[tool.hepaudit]\ncolour = 1\n", "Unknown setting 'tool.hepaudit.colour'"),
    ("[tool.hepaudit]\nexclude = 'tests'\n", "must be a list of strings"),
    ("[tool.hepaudit.thresholds]\nccn_cpp = 0\n", "'tool.hepaudit.thresholds.ccn_cpp'"),
    ("[tool.hepaudit]\npylint = 'sometimes'\n", "must be one of off, fast, full"),
    ("[tool.hepaudit\n", "is not valid TOML"),
])
def test_malformed_configuration_names_the_key(table: str, message: str, tree: Path) -> None:
    write(tree, "pyproject.toml", table)
    result = audit(str(tree))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_configuration_applies_and_ignores_unrelated_tables(tree: Path) -> None:
    # radon's reader crashes on a '%' in an unrelated table and on arrays of tables (#244, #274).
    write(tree, "pyproject.toml", '[tool.other]\nfmt = "100%"\n[[tool.other.list]]\nname = "x"\n'
                                  '[tool.hepaudit]\nexclude = ["src/"]\ntop = 1\n'
                                  '[tool.hepaudit.thresholds]\nccn_python = 1\n')
    tmp_json = tree / "out.json"
    result = audit(str(tree), "--json", str(tmp_json), "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(tmp_json.read_text())
    assert {f["path"] for f in data["files"]} == {"pkg/a.py"}
    assert data["summary"]["hotspots"][0]["exceeds"] == ["ccn"]
    assert data["config"]["source"].endswith("pyproject.toml")


def test_hepaudit_toml_and_command_line_overrides(tree: Path) -> None:
    write(tree, "hepaudit.toml", 'exclude = ["pkg/"]\n')
    out = tree.parent / "o.json"
    assert audit(str(tree), "--json", str(out), "-q").exit_code == 0
    assert {f["path"] for f in json.loads(out.read_text())["files"]} == {"src/k.cu"}
    assert audit(str(tree), "--json", str(out), "-q", "--include", "*.py", "--exclude", "src/").exit_code == 2


@pytest.mark.parametrize("command", [[], ["audit"], ["report"]])
def test_help_explains_with_examples(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0
    assert "Example" in result.output


def test_module_entry_point_and_version() -> None:
    result = subprocess.run([sys.executable, "-m", "auditor", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("hepaudit ")


def test_settings_hepaudit_does_not_support_are_refused(tree: Path) -> None:
    # Keys that nothing reads are refused: silently ignoring them would mislead.
    write(tree, "pyproject.toml", '[tool.hepaudit]\nslurm_queue = "long"\n')
    result = audit(str(tree))
    assert result.exit_code == 2 and "Unknown setting 'tool.hepaudit.slurm_queue'" in result.output


OVERRIDES = """[tool.hepaudit.thresholds]
ccn_python = 8
nloc = 50

[[tool.hepaudit.overrides]]
paths = ["legacy/", "*.cu"]
ccn_python = 30
ccn_cpp = 30

[[tool.hepaudit.overrides]]
paths = ["legacy/keep/**"]
ccn_python = 12
"""


def test_overrides_last_match_wins_per_key_relative_to_the_config_folder(tmp_path: Path) -> None:
    write(tmp_path, "proj/pyproject.toml", OVERRIDES)
    settings = load_config(tmp_path / "proj" / "src")
    assert settings.overrides[0] == ThresholdOverride(("legacy/", "*.cu"), (("ccn_python", 30), ("ccn_cpp", 30)))
    lookup = ThresholdLookup(settings)
    proj = tmp_path / "proj"
    assert lookup.for_file(str(proj / "src/a.py")) == Thresholds(ccn_python=8, nloc=50)
    assert lookup.for_file(str(proj / "legacy/old/a.py")) == Thresholds(ccn_python=30, ccn_cpp=30, nloc=50)
    assert lookup.for_file(str(proj / "src/kernels/k.cu")).ccn_cpp == 30
    # Both overrides match: the later one sets ccn_python, the earlier one's ccn_cpp stays.
    assert lookup.for_file(str(proj / "legacy/keep/a.py")) == Thresholds(ccn_python=12, ccn_cpp=30, nloc=50)
    # Patterns are relative to the configuration file's folder, not to the current one.
    assert lookup.for_file(str(tmp_path / "legacy/a.py")) == Thresholds(ccn_python=8, nloc=50)


@pytest.mark.parametrize("table, message", [
    ('[[tool.hepaudit.overrides]]\nccn_python = 12\n', "Setting 'tool.hepaudit.overrides[1]' in"),
    ('[[tool.hepaudit.overrides]]\npaths = ["a/"]\nccn_python = 12\n[[tool.hepaudit.overrides]]\n'
     'paths = ["b/"]\nccn_pyton = 12\n', "Unknown setting 'tool.hepaudit.overrides[2].ccn_pyton' in"),
    ('[[tool.hepaudit.overrides]]\npaths = "a/"\nccn_python = 12\n', "'tool.hepaudit.overrides[1].paths'"),
    ('[[tool.hepaudit.overrides]]\npaths = []\nccn_python = 12\n', "must be a non-empty list of glob strings"),
    ('[[tool.hepaudit.overrides]]\npaths = ["a/"]\nnloc = "long"\n',
     "'tool.hepaudit.overrides[1].nloc' in"),
    ('[[tool.hepaudit.overrides]]\npaths = ["a/"]\nnesting = 0\n', "must be a positive integer, not 0"),
    ('[[tool.hepaudit.overrides]]\npaths = ["a/"]\n', "sets no threshold"),
    ('[tool.hepaudit]\noverrides = {paths = ["a/"]}\n', "must be an array of tables ([[tool.hepaudit.overrides]]"),
])
def test_bad_overrides_name_the_key_and_the_file(table: str, message: str, tree: Path) -> None:
    write(tree, "pyproject.toml", table)
    result = audit(str(tree))
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert message in text and "pyproject.toml" in "".join(text.split())
    assert "Traceback" not in result.output
