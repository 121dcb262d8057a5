"""Runtime and energy gates: a regression needs both size and significance."""

from __future__ import annotations

import random

import pytest

from auditor.perf_gate import PerfLimits, compare_runs, mann_whitney_greater


def _report(times: list[float], energy: list[float] | None = None, estimated: bool = False) -> dict:
    device = {"status": "measured", "time_samples": times}
    if energy is not None:
        device["energy"] = {"per_window_j_per_event": energy,
                            "net_per_event": {"value": sum(energy) / len(energy), "estimated": estimated}}
    return {"chains": [{"name": "c", "stages": [{"name": "s", "devices": {"cpu": device}}]}]}


def test_mann_whitney_matches_scipy() -> None:
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    for n1, n2, shift, ties in ((5, 5, 0.5, False), (8, 12, 0.2, False), (30, 40, 0.3, False), (20, 20, 0.0, True)):
        new = [rng.gauss(shift, 1) for _ in range(n1)]
        old = [rng.gauss(0, 1) for _ in range(n2)]
        if ties:
            new = [round(v, 1) for v in new]
            old = [round(v, 1) for v in old]
        method = "asymptotic" if ties or n1 * n2 > 400 else "exact"
        expected = scipy_stats.mannwhitneyu(new, old, alternative="greater", method=method).pvalue
        assert mann_whitney_greater(new, old) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_exact_tail_on_a_hand_case() -> None:
    # new entirely above old, 3 vs 3: only 1 of the 20 arrangements is that extreme.
    assert mann_whitney_greater([4, 5, 6], [1, 2, 3]) == pytest.approx(1 / 20)


def test_real_slowdown_is_a_regression_and_noise_is_not() -> None:
    rng = random.Random(1)
    base = [rng.gauss(1.0, 0.01) for _ in range(50)]
    slower = [rng.gauss(1.2, 0.01) for _ in range(50)]
    noisy_slower = [rng.gauss(1.12, 0.6) for _ in range(6)]
    same = [rng.gauss(1.0, 0.01) for _ in range(50)]
    assert compare_runs(_report(base), _report(slower))[0].verdict == "regression"
    assert compare_runs(_report(base), _report(same))[0].verdict == "unchanged"
    noisy = compare_runs(_report(base), _report(noisy_slower))[0]
    if noisy.ratio > 1.10:
        assert noisy.verdict == "warning" and "too noisy" in noisy.reason
    faster = compare_runs(_report(slower), _report(base))[0]
    assert faster.verdict == "improvement"


def test_few_samples_and_estimated_energy_are_never_gated() -> None:
    few = compare_runs(_report([1.0, 1.0, 1.0]), _report([2.0, 2.0, 2.0]))[0]
    assert few.verdict == "warning" and "not tested" in few.reason
    estimated = [f for f in compare_runs(_report([1.0] * 10, [1.0] * 10, estimated=True),
                                         _report([1.0] * 10, [3.0] * 10, estimated=True)) if f.quantity == "energy"][0]
    assert estimated.verdict == "unchanged" and "never gated" in estimated.reason
    measured = [f for f in compare_runs(_report([1.0] * 10, [1.0 + i * 1e-3 for i in range(10)]),
                                        _report([1.0] * 10, [3.0 + i * 1e-3 for i in range(10)])) if f.quantity == "energy"][0]
    assert measured.verdict == "regression"
    assert PerfLimits().ratio == 1.10


def test_compare_command_exit_codes(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from auditor.cli import app

    rng = random.Random(2)

    def write(name: str, centre: float) -> str:
        report = {"schema": "hepaudit.run", "schema_version": "1.0",
                  **_report([rng.gauss(centre, 0.01) for _ in range(40)])}
        path = tmp_path / name
        path.write_text(json.dumps(report))
        return str(path)

    base, same, slow = write("a.json", 1.0), write("b.json", 1.0), write("c.json", 1.3)
    runner = CliRunner()
    assert runner.invoke(app, ["compare", base, same]).exit_code == 0
    failed = runner.invoke(app, ["compare", base, slow], terminal_width=200)
    assert failed.exit_code == 1 and "regression" in failed.output and "c / s" in failed.output
    (tmp_path / "audit.json").write_text(json.dumps({"schema": "hepaudit.audit", "schema_version": "1.0"}))
    wrong = runner.invoke(app, ["compare", base, str(tmp_path / "audit.json")])
    assert wrong.exit_code == 2 and "audit report" in wrong.output
    assert runner.invoke(app, ["compare", base, same, "--ratio", "0.9"]).exit_code == 2
