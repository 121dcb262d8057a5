"""Measurements: a value with its unit, spread, sample count and the method that produced it.

Every number hepaudit reports about time, energy or power is a :class:`Measurement`. Estimated
values (``estimated=True``, e.g. codecarbon's TDP-based CPU energy) are labelled as such in every
renderer and are never ranked as if they were measured.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

#: Methods and whether they measure (False) or estimate (True).
METHODS: dict[str, bool] = {
    "perf-counter": False,        # host wall clock (time.perf_counter) around synchronised work
    "cuda-events": False,         # CUDA events recorded on the stream around the work
    "nvml-energy": False,         # NVML total-energy counter of a GPU (mJ, ~100 ms updates)
    "rapl": False,                # Intel/AMD RAPL package energy counter (µJ) from powercap
    "codecarbon-estimate": True,  # codecarbon's model (e.g. TDP share) where no counter exists
    "derived": False,             # computed from other measurements (ratios, sums)
    "rss": False,                 # resident set size sampled by the OS
    "rusage": False,              # CPU (user + system) time reported by the OS for finished processes
    "cuda-memory": False,         # device allocator peak
}


@dataclass(frozen=True)
class Measurement:
    """A measured (or estimated) quantity.

    ``low``/``high`` bound the interval named by ``interval`` (``ci95``: 95 % confidence interval
    of the median or mean; ``iqr``: inter-quartile range; ``propagated``: the ends of sums or
    products of other intervals; ``none``: a single sample).
    """

    value: float
    unit: str
    method: str
    samples: int = 1
    low: float | None = None
    high: float | None = None
    interval: str = "none"
    estimated: bool | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown measurement method {self.method!r}")
        if self.estimated is None:
            object.__setattr__(self, "estimated", METHODS[self.method])

    @property
    def bounds(self) -> tuple[float, float]:
        """The interval, or the value itself when there is none."""
        low = self.value if self.low is None else self.low
        high = self.value if self.high is None else self.high
        return low, high

    def distinguishable_from(self, other: "Measurement") -> bool:
        """True when the two intervals do not overlap (so the ordering is meaningful)."""
        low, high = self.bounds
        other_low, other_high = other.bounds
        return high < other_low or other_high < low

    def scaled(self, factor: float, unit: str | None = None) -> "Measurement":
        """The same measurement multiplied by ``factor`` (e.g. per window -> per event)."""
        low, high = self.bounds
        low, high = sorted((low * factor, high * factor))
        return replace(self, value=self.value * factor, low=low, high=high, unit=unit or self.unit)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Measurement":
        return cls(**data)


def median_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Median and a distribution-free confidence interval from order statistics.

    The interval [x_(j), x_(k)] covers the true median with probability >= ``confidence`` under
    the binomial(n, 1/2) law of the number of samples below it; with fewer than 6 samples the
    full range is returned (it is the narrowest interval with that guarantee, or close to it).
    """
    data = sorted(float(v) for v in values)
    n = len(data)
    if n == 0:
        raise ValueError("median of no samples")
    middle = statistics.median(data)
    if n < 6:
        return middle, data[0], data[-1]
    alpha = 1 - confidence
    if n > 200:  # normal approximation of Binomial(n, 1/2); exact sums get slow for large n
        z = statistics.NormalDist().inv_cdf(1 - alpha / 2)
        j = max(1, int(math.floor(n / 2 - z * math.sqrt(n) / 2)))
        return middle, data[j - 1], data[n - j]
    # Largest j with P(B <= j - 1) <= alpha / 2, B ~ Binomial(n, 1/2).
    cumulative = 0.0
    j = 0
    for i in range(n + 1):
        p = math.comb(n, i) / 2 ** n
        if cumulative + p > alpha / 2:
            break
        cumulative += p
        j = i + 1
    j = max(j, 1)
    return middle, data[j - 1], data[n - j]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and a Student-t confidence interval (for sums over windows, e.g. energy)."""
    data = [float(v) for v in values]
    n = len(data)
    if n == 0:
        raise ValueError("mean of no samples")
    mean = statistics.fmean(data)
    if n == 1:
        return mean, mean, mean
    half = _t_quantile(1 - (1 - confidence) / 2, n - 1) * statistics.stdev(data) / math.sqrt(n)
    return mean, mean - half, mean + half


@functools.lru_cache(maxsize=256)
def _t_quantile(p: float, dof: int) -> float:
    """Student-t quantile by bisection on the regularised incomplete beta (no SciPy needed)."""
    def cdf(t: float) -> float:
        x = dof / (dof + t * t)
        tail = 0.5 * _betainc(dof / 2, 0.5, x)
        return 1 - tail if t > 0 else tail

    low, high = 0.0, 1000.0
    for _ in range(200):
        mid = (low + high) / 2
        if cdf(mid) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by continued fraction (Numerical Recipes form)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1 - _betainc(b, a, 1 - x)
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > 1e-300 else 1e-300)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > 1e-300 else 1e-300)
            c = 1 + numerator / c
            c = c if abs(c) > 1e-300 else 1e-300
            result *= c * d
    return front * result / a


def summarise(values: Sequence[float], unit: str, method: str, statistic: str = "median",
              note: str | None = None) -> Measurement:
    """A Measurement from samples: median with order-statistic CI, or mean with t CI."""
    centre, low, high = (median_ci if statistic == "median" else mean_ci)(values)
    interval = "ci95" if len(values) > 1 else "none"
    return Measurement(centre, unit, method, samples=len(values), low=low, high=high,
                       interval=interval, note=note)
