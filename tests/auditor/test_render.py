"""Renderers format the one report model; the Markdown fits a CI job summary."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from auditor.render import console, markdown
from auditor.static.engine import run_audit
from tests.auditor.conftest import write


def _report(tmp_path: Path, config) -> dict:
    write(tmp_path, "pkg/a.py", "def f(a, b, c, d, e, g):\n    return a if b else c\n")
    write(tmp_path, "src/k.cuh", "__device__ int k(int a) { return a ? 1 : 0; }\n")
    write(tmp_path, "pkg/bad.py", "def (:\n")
    return run_audit([tmp_path], config, None)


def test_console_shows_every_section(tmp_path: Path, config) -> None:
    out = io.StringIO()
    console.render(_report(tmp_path, config), Console(file=out, width=120, color_system=None))
    text = out.getvalue()
    for heading in ("hepaudit audit", "By language", "By top-level folder", "Grade distribution",
                    "functions by complexity", "Not analysed (1 files)"):
        assert heading in text
    assert "f " in text and "pkg/a.py:1" in text and "CUDA" in text
    assert "6*" in text  # six parameters, over the Python threshold of 5


def test_markdown_is_truncated_to_fit_a_job_summary(tmp_path: Path, config) -> None:
    report = _report(tmp_path, config)
    report["not_analysed"] = [{"path": f"gen/file_{i:06d}.py", "language": "Python",
                               "reason": "Python 3.11 cannot parse it: invalid syntax (line 1)"} for i in range(30000)]
    text = markdown.render(report)
    assert len(text.encode()) <= 1024 * 1024
    assert text.rstrip().endswith("the JSON report has everything._")
    assert text.startswith("## hepaudit audit")


def test_markdown_escapes_table_cells(tmp_path: Path, config) -> None:
    report = _report(tmp_path, config)
    report["not_analysed"][0]["reason"] = "a | b"
    assert "a \\| b" in markdown.render(report)


def test_time_energy_plot_shows_every_placement_and_the_front() -> None:
    from auditor.render.run_html import _pareto

    placement = {"pareto_front": [{"label": "GPU GPU", "latency_s": 0.01, "energy_j": 1.0},
                                  {"label": "CPU GPU", "latency_s": 0.02, "energy_j": 0.5}],
                 "placements": [{"label": "CPU CPU", "latency_s": 0.5, "energy_j": 20.0},
                                {"label": "GPU CPU", "latency_s": 0.3, "energy_j": 12.0}]}
    svg = _pareto(placement)
    assert svg.startswith("<svg") and "every placement" in svg and "not dominated" in svg
    assert _pareto({"pareto_front": []}) is None
