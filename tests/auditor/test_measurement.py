"""Measurements carry spread and method; estimates are labelled."""

from __future__ import annotations

import pytest

from auditor.measurement import Measurement, _t_quantile, mean_ci, median_ci, summarise


@pytest.mark.parametrize("dof, expected", [(1, 12.706), (4, 2.776), (10, 2.228), (30, 2.042)])
def test_student_t_quantiles(dof: int, expected: float) -> None:
    assert _t_quantile(0.975, dof) == pytest.approx(expected, abs=1e-3)


def test_median_interval_uses_order_statistics() -> None:
    # Tabulated 95 % ranks for the median: n = 20 -> (6, 15), n = 10 -> (2, 9).
    assert median_ci(range(1, 21)) == (10.5, 6.0, 15.0)
    assert median_ci(range(1, 11)) == (5.5, 2.0, 9.0)
    assert median_ci([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)


def test_mean_interval() -> None:
    mean, low, high = mean_ci([1, 2, 3, 4, 5])
    assert mean == 3 and high - mean == pytest.approx(2.776 * 1.5811 / 5 ** 0.5, rel=1e-3)
    assert low == pytest.approx(6 - high)


def test_estimates_are_labelled_and_unknown_methods_refused() -> None:
    assert Measurement(1.0, "J", "codecarbon-estimate").estimated is True
    assert Measurement(1.0, "J", "nvml-energy").estimated is False
    with pytest.raises(ValueError):
        Measurement(1.0, "J", "guess")


def test_distinguishable_and_scaled() -> None:
    a = summarise([1.0, 1.1, 0.9, 1.0, 1.05, 0.95], "s", "perf-counter")
    b = summarise([2.0, 2.1, 1.9, 2.0, 2.05, 1.95], "s", "perf-counter")
    c = summarise([1.05, 1.15, 0.95, 1.02, 1.1, 1.0], "s", "perf-counter")
    assert a.distinguishable_from(b) and not a.distinguishable_from(c)
    per_event = a.scaled(0.001, "s/event")
    assert per_event.value == pytest.approx(a.value / 1000) and per_event.unit == "s/event"
    assert Measurement.from_json(a.to_json()) == a
