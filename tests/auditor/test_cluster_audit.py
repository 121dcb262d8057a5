"""``hepaudit audit --scheduler``: the analysis on a Dask cluster gives the local run's report."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from auditor.cli import app
from auditor.config import AuditConfig, configured_scheduler, load_config
from auditor.errors import UserError
from auditor.render.json_report import schema
from auditor.static.engine import run_audit
from tests.auditor.conftest import write

pytest.importorskip("distributed")

runner = CliRunner()

PYTHON = '''"""A module."""


def branchy(a, b, c):
    """Some branches."""
    total = 0
    for item in range(a):
        if item % 2 and b:
            total += item
        elif c:
            total -= 1
    return total


class Thing:
    def method(self, x):
        return [y for y in x if y] or None
'''
CPP = """#include <vector>
int count(const std::vector<int>& v, int limit) {
    int n = 0;
    for (int x : v) { if (x > limit && x % 2) { ++n; } else if (x < 0) { --n; } }
    return n;
}
__global__ void scale(float* x, int n) { int i = threadIdx.x; if (i < n) x[i] *= 2; }
"""


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for index in range(6):
        write(root, f"pkg/mod{index}.py", PYTHON.replace("branchy", f"branchy{index}") + f"\nVALUE = {index}\n")
    write(root, "src/count.cpp", CPP)
    write(root, "src/kernel.cu", CPP)
    write(root, "pkg/broken.py", "def (:\n")
    return root


def unwrapped(text: str) -> str:
    """``text`` without white space (the console wraps long messages anywhere, even in paths)."""
    return "".join(text.split())


def comparable(report: dict) -> dict:
    """The report without the fields that depend on when and where it ran."""
    return {key: value for key, value in report.items() if key not in ("created", "performance")}


@pytest.fixture(scope="module")
def client():
    from auditor.cluster.client import open_client

    with open_client("local:2") as connected:
        yield connected


def test_report_on_a_local_cluster_equals_the_serial_run(client, tree: Path, tmp_path: Path) -> None:
    from auditor.cluster.audit import audit_with_client

    config = AuditConfig(pylint="fast", jobs=1)
    serial = run_audit([tree], config, None)
    cache = tmp_path / "cache"
    on_cluster = audit_with_client(client, [tree], dataclasses.replace(config, scheduler="local:2"), cache)
    assert json.dumps(comparable(on_cluster)) == json.dumps({**comparable(serial), "cache": on_cluster["cache"]})
    assert len(on_cluster["files"]) == 8 and on_cluster["pylint"]["files"] == 6
    performance = on_cluster["performance"]
    assert performance["jobs"] == 2
    assert performance["scheduler"]["address"] == "local:2" and performance["scheduler"]["workers"] == 2
    assert performance["scheduler"]["scheduler_address"].startswith("tcp://")
    # The cache is written by this process: a second run finds everything there.
    assert on_cluster["cache"]["analysed"] == 9 and on_cluster["cache"]["linted"] == 7
    again = audit_with_client(client, [tree], dataclasses.replace(config, scheduler="local:2"), cache)
    assert again["cache"]["hits"] == 9 and again["cache"]["analysed"] == 0 and again["cache"]["lint_hits"] == 7
    assert comparable(again)["files"] == serial["files"]


def test_pylint_on_a_worker_that_cannot_see_the_files_is_a_user_error(client) -> None:
    from auditor.cluster.audit import run_task
    from auditor.static import lint

    future = client.submit(run_task, lint.lint_chunk, ["/nonexistent/hepaudit/x.py"], "fast", pure=False)
    with pytest.raises(UserError, match="shared filesystem"):
        future.result()


def test_workers_with_other_tool_versions_are_refused() -> None:
    from auditor.cluster.audit import _check_versions, worker_versions

    class Client:
        def run(self, function, *arguments):
            return {"tcp://w:1": {**function(*arguments), "radon": "0.0.1"}}

    with pytest.raises(UserError, match=r"tcp://w:1 runs radon 0\.0\.1 \(here "):
        _check_versions(Client(), "off")
    assert "pylint" in worker_versions("fast") and "pylint" not in worker_versions("off")


def test_scheduler_setting_runs_the_command_on_the_cluster(tree: Path, tmp_path: Path) -> None:
    write(tree, "pyproject.toml", '[tool.hepaudit]\nscheduler = "local:2"\npylint = "off"\n')
    out = tmp_path / "audit.json"
    result = runner.invoke(app, ["audit", str(tree), "--no-cache", "-q", "--json", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker()).validate(data)
    assert data["performance"]["scheduler"]["workers"] == 2
    serial = run_audit([tree], load_config(tree), None)
    assert json.dumps(comparable(data)) == json.dumps(json.loads(json.dumps(comparable(serial))))


def test_the_command_line_flag_wins_over_the_setting(tree: Path, monkeypatch) -> None:
    import auditor.cluster.audit as cluster_audit

    used = []

    def fake(paths, config, cache_dir, progress=None):
        used.append(config.scheduler)
        return run_audit(paths, dataclasses.replace(config, jobs=1), cache_dir, progress)

    monkeypatch.setattr(cluster_audit, "run_audit_on_cluster", fake)
    write(tree, "hepaudit.toml", 'scheduler = "tcp://from-settings:8786"\npylint = "off"\n')
    assert runner.invoke(app, ["audit", str(tree), "--no-cache", "-q"]).exit_code == 0
    assert runner.invoke(app, ["audit", str(tree), "--no-cache", "-q", "--scheduler", "local:3"]).exit_code == 0
    assert used == ["tcp://from-settings:8786", "local:3"]
    assert configured_scheduler(tree) == "tcp://from-settings:8786"
    assert configured_scheduler(tree / "pkg" / "mod0.py") == "tcp://from-settings:8786"


@pytest.mark.parametrize(("value", "message"), [
    ("2", "Setting 'hepaudit.scheduler' in {} must be a string, not an integer."),
    ('"  "', "Setting 'scheduler' from {} must name a Dask scheduler"),
])
def test_bad_scheduler_settings_are_one_sentence(tree: Path, value: str, message: str) -> None:
    config = write(tree, "hepaudit.toml", f"scheduler = {value}\n")
    result = runner.invoke(app, ["audit", str(tree), "--no-cache", "-q"])
    assert result.exit_code == 2 and unwrapped(message.format(config)) in unwrapped(result.output)
    with pytest.raises(UserError):
        configured_scheduler(tree)


def test_no_setting_means_no_scheduler(tree: Path) -> None:
    assert configured_scheduler(tree) is None


def test_unreachable_scheduler_is_one_sentence(tree: Path, monkeypatch) -> None:
    from auditor.cluster import client as connection

    monkeypatch.setattr(connection, "CONNECT_TIMEOUT_S", 1)  # 20 s in real use
    result = runner.invoke(app, ["audit", str(tree), "--no-cache", "-q", "--scheduler", "tcp://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:1" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert result.output.count("hepaudit:") == 1 and result.output.strip().endswith("after 1 s.")


def test_a_malformed_address_exits_at_once_without_a_traceback(tree: Path) -> None:
    # A half-made distributed.Client, left to interpreter exit, blocks 40 s and prints a traceback.
    done = subprocess.run([sys.executable, "-m", "auditor", "audit", str(tree), "--no-cache", "-q",
                           "--scheduler", "slurm"], capture_output=True, text=True, check=False, timeout=30,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 2
    assert "Cannot reach the Dask scheduler at slurm" in done.stderr and "Traceback" not in done.stderr


NO_DASK = """
import sys
from typer.testing import CliRunner
from auditor.cli import app
result = CliRunner().invoke(app, ["audit", sys.argv[1], "--no-cache", "-q", "--jobs", "2"])
assert result.exit_code == 0, result.output
print(sorted(name for name in sys.modules if name.split(".")[0] in ("dask", "distributed")))
"""


def test_without_a_scheduler_dask_is_never_imported(tree: Path) -> None:
    done = subprocess.run([sys.executable, "-c", NO_DASK, str(tree)], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
