"""Runtime and energy regressions between two run reports, gated on size *and* significance.

A stage on a device regresses when its median time (or measured energy) per event grew by more
than ``ratio`` (default 1.10) and a one-sided Mann–Whitney U test says the new samples are larger
with p < ``alpha`` (default 0.01), with at least ``min_samples`` (default 5) on each side. A large
ratio without significance is a warning ("too noisy to decide"), never a failure. Estimated energy
(codecarbon's model) is never gated.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class PerfLimits:
    ratio: float = 1.10
    alpha: float = 0.01
    min_samples: int = 5


@dataclass(frozen=True)
class PerfFinding:
    """One compared quantity: ``verdict`` is regression, warning, improvement or unchanged."""

    chain: str
    stage: str
    device: str
    quantity: str  # "time" or "energy"
    old: float
    new: float
    ratio: float
    p_value: float | None
    samples: tuple[int, int]
    verdict: str
    reason: str

    def describe(self) -> str:
        p = "n/a" if self.p_value is None else f"{self.p_value:.2g}"
        return (f"{self.chain}/{self.stage} on {self.device}: {self.quantity} {self.old:.4g} -> {self.new:.4g} "
                f"(x{self.ratio:.3f}, Mann-Whitney p = {p}, n = {self.samples[0]}/{self.samples[1]}): {self.reason}")


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Average ranks (1-based) and the tie-correction sum of t^3 - t."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        size = j - i + 1
        ties += size ** 3 - size
        i = j + 1
    return ranks, ties


def mann_whitney_greater(new: Sequence[float], old: Sequence[float]) -> float:
    """One-sided p-value that ``new`` tends to be larger than ``old`` (normal approximation with
    tie and continuity corrections; exact enumeration of the null distribution for small samples
    without ties)."""
    n1, n2 = len(new), len(old)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples must be non-empty")
    ranks, ties = _ranks(list(new) + list(old))
    u = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    if ties == 0 and n1 * n2 <= 400:
        return _exact_upper_tail(u, n1, n2)
    n = n1 + n2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - mean - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _exact_upper_tail(u: float, n1: int, n2: int) -> float:
    """P(U >= u) under the null, from the recurrence on counts of arrangements."""
    # counts[i][j] = distribution of U for samples of size i and j, as a list indexed by U.
    previous = [[[1]] * (n2 + 1)]
    for i in range(1, n1 + 1):
        row = [[1]]
        for j in range(1, n2 + 1):
            # U(i, j) = U(i-1, j) + j (largest value from the first sample) or U(i, j-1).
            a = [0] * j + previous[i - 1][j]
            b = row[j - 1]
            size = max(len(a), len(b))
            row.append([(a[k] if k < len(a) else 0) + (b[k] if k < len(b) else 0) for k in range(size)])
        previous.append(row)
    distribution = previous[n1][n2]
    total = sum(distribution)
    start = math.ceil(u - 1e-9)
    return sum(distribution[start:]) / total


def _energy_samples(data: dict[str, Any]) -> tuple[list[float], bool] | None:
    energy = data.get("energy") or {}
    values = energy.get("per_window_j_per_event")
    if not values:
        return None
    value = energy.get("net_per_event") or energy.get("gross_per_event") or {}
    return values, bool(value.get("estimated", True))


def _measured(report: dict[str, Any]) -> Iterable[tuple[tuple[str, str, str], dict[str, Any]]]:
    """((chain, stage, device), device data) for every measured implementation."""
    for chain in report.get("chains", []):
        for stage in chain.get("stages", []):
            for device, data in stage.get("devices", {}).items():
                if data.get("status") == "measured":
                    yield (chain["name"], stage["name"], device), data


def _stage_samples(report: dict[str, Any]) -> Iterable[tuple[tuple[str, str, str, str], list[float], bool]]:
    """((chain, stage, device, quantity), samples, estimated) for everything measured."""
    for where, data in _measured(report):
        if data.get("time_samples"):
            yield (*where, "time"), data["time_samples"], False
        energy = _energy_samples(data)
        if energy is not None:
            yield (*where, "energy"), energy[0], energy[1]


def compare_runs(old: dict[str, Any], new: dict[str, Any], limits: PerfLimits = PerfLimits()) -> list[PerfFinding]:
    """Compare every (chain, stage, device, quantity) present in both reports."""
    before = {key: (samples, estimated) for key, samples, estimated in _stage_samples(old)}
    findings = []
    for key, samples, estimated in _stage_samples(new):
        if key in before:
            old_samples, old_estimated = before[key]
            findings.append(_judge(key, old_samples, samples, estimated or old_estimated, limits))
    return findings


def _judge(key: tuple[str, str, str, str], old: list[float], new: list[float], estimated: bool,
           limits: PerfLimits) -> PerfFinding:
    old_median, new_median = statistics.median(old), statistics.median(new)
    ratio = new_median / old_median if old_median > 0 else math.inf
    counts = (len(old), len(new))

    def finding(verdict: str, reason: str, p: float | None = None) -> PerfFinding:
        return PerfFinding(*key, old_median, new_median, ratio, p, counts, verdict, reason)

    if estimated:
        return finding("unchanged", "estimated energy is never gated")
    if min(counts) < limits.min_samples:
        return finding("warning" if ratio > limits.ratio else "unchanged",
                       f"fewer than {limits.min_samples} samples on a side: not tested")
    p_worse = mann_whitney_greater(new, old)
    if ratio > limits.ratio:
        if p_worse < limits.alpha:
            return finding("regression", f"over x{limits.ratio:g} and p < {limits.alpha:g}", p_worse)
        return finding("warning", f"over x{limits.ratio:g} but p >= {limits.alpha:g}: too noisy to decide", p_worse)
    p_better = mann_whitney_greater(old, new)
    if ratio < 1 / limits.ratio and p_better < limits.alpha:
        return finding("improvement", f"under x{1 / limits.ratio:.3f} and p < {limits.alpha:g}", p_better)
    return finding("unchanged", f"within x{limits.ratio:g}", p_worse)
