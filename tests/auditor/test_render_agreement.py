"""The run report shows every stage's matching rate at each tolerance, like traccc's printout."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from rich.console import Console

from auditor import Chain
from auditor.profiler import ProfileOptions
from auditor.render import run_console, run_markdown, run_tables
from auditor.run import run_chains

TRACCC_LIKE = {"rates": {"0.01%": 0.99996, "0.1%": 0.9999, "1%": 1.0, "5%": 1.0}, "headline": "0.01%", "events": 2,
               "statistic": "lowest rate over the events", "details": [{"n_cpu": 25000, "n_gpu": 25001}]}


def _events(_parameters):
    for seed in range(2):
        yield {"x": np.arange(100, dtype=np.float64) + seed}


@pytest.fixture(name="report", scope="module")
def report_fixture() -> dict:
    """A measured CPU report in which the stages' GPU results are filled in as the profiler writes them."""
    chain = Chain("tiny", inputs=_events, package="tests")
    chain.add_stage("double", lambda x: 2 * x, inputs=["x"], outputs=["y"])
    chain.add_stage("half", lambda y: y / 2, inputs=["y"], outputs=["z"])
    chain.add_stage("sum", lambda z: z.sum(), inputs=["z"], outputs=["s"])
    measured = run_chains([chain], ProfileOptions(mode="quick", devices=("cpu",)))
    result = measured["chains"][0]
    result["devices"].update({"gpu": "available", "measured": ["cpu", "gpu"]})
    double, half, total = result["stages"]
    double["devices"]["gpu"] = {**copy.deepcopy(double["devices"]["cpu"]), "agreement": TRACCC_LIKE}
    half["devices"]["gpu"] = {**copy.deepcopy(half["devices"]["cpu"]),
                              "agreement": {"rates": {"exact": 0.5}, "headline": "exact", "events": 2}}
    total["devices"]["gpu"] = {"status": "no implementation"}
    return measured


def test_rates_round_down_so_only_a_full_match_reads_100_percent() -> None:
    assert run_tables.rate_text(0.99996) == "99.99 %"
    assert run_tables.rate_text(1.0) == "100.00 %"
    assert run_tables.rate_text(0.9999) == "99.99 %"
    assert run_tables.rate_text(0.0) == "0.00 %"


def test_agreement_table_has_one_column_per_tolerance(report: dict) -> None:
    chain = report["chains"][0]
    assert run_tables.agreement_header(chain) == ["Stage", "Device", "Events", "0.01%", "0.1%", "1%", "5%",
                                                  "exact", "Gate at"]
    assert run_tables.agreement_rows(chain) == [
        ["double", "GPU", "2", "99.99 %", "99.99 %", "100.00 %", "100.00 %", "–", "0.01%"],
        ["half", "GPU", "2", "–", "–", "–", "–", "50.00 %", "exact"]]
    assert run_tables.stage_rows(chain)[0][7] == "99.99 % at 0.01%"


def test_console_and_markdown_show_every_tolerance(report: dict) -> None:
    out = io.StringIO()
    run_console.render(report, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "Matching rates against the reference device" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("double") and "GPU" in line)
    assert row.split() == ["double", "GPU", "2", "99.99", "%", "99.99", "%", "100.00", "%", "100.00", "%", "–",
                           "0.01%"]
    markdown = run_markdown.render(report)
    assert "| Stage | Device | Events | 0.01% | 0.1% | 1% | 5% | exact | Gate at |" in markdown
    assert "| double | GPU | 2 | 99.99 % | 99.99 % | 100.00 % | 100.00 % | – | 0.01% |" in markdown
    assert "| half | GPU | 2 | – | – | – | – | 50.00 % | exact |" in markdown


def test_no_agreement_table_without_compared_implementations(report: dict) -> None:
    plain = copy.deepcopy(report)
    for stage in plain["chains"][0]["stages"]:
        stage["devices"].pop("gpu")
    assert run_tables.agreement_rows(plain["chains"][0]) == []
    assert "Matching rates" not in run_markdown.render(plain)
    out = io.StringIO()
    run_console.render(plain, Console(file=out, width=200, color_system=None))
    assert "Matching rates" not in out.getvalue()
