"""Batch-1 CPU inference of the "stats" student without torch's per-operation dispatch.

An online monitor scores one window at a time. At batch 1 the student's arithmetic (about 6,000
multiply-accumulates) is far below the cost of dispatching its dozen torch operations, so its
torch latency measures the framework, not the model. :func:`compile_student` copies a trained
``Student(arch="stats")``'s weights into a :class:`StatsStudentKernel`, whose one numba-compiled
function computes the same window statistics, maxima and dense layers in one pass over the
window (float64 accumulators, float32 output); tests hold it to the torch forward.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.dqm.models import STATS_FLOOR, Student, latency_summary
from reference.dqm.xlstm import DQMModelError


@njit(cache=True)
def _statistics(window, features):
    """WindowStatistics of one window (T, F) into features (4F,)."""
    steps, n_features = window.shape
    for j in range(n_features):
        total = 0.0
        squares = 0.0
        low = high = np.float64(window[0, j])
        for t in range(steps):
            value = np.float64(window[t, j])
            total += value
            squares += value * value
            low = min(low, value)
            high = max(high, value)
        mean = total / steps
        centred = 0.0
        for t in range(steps):
            deviation = window[t, j] - mean
            centred += deviation * deviation
        peak = max(high - mean, mean - low)
        features[j] = math.log(max(centred / steps, STATS_FLOOR))
        features[n_features + j] = math.log(max(peak * peak, STATS_FLOOR))
        features[2 * n_features + j] = math.log(max(squares / steps, STATS_FLOOR))
        features[3 * n_features + j] = mean


@njit(cache=True)
def _maxima_skip(features, offset, skip):
    """The ChannelMaxima of the features through the skip layer (skip: 3 weights, then the bias)."""
    n_features = offset.shape[0] // 2
    maxima = np.full(3, -np.inf)
    for c in range(2 * n_features):
        shifted = features[c] + offset[c]
        group = c // n_features
        maxima[group] = max(maxima[group], shifted)
        maxima[2] = max(maxima[2], shifted)
    return skip[3] + skip[0] * maxima[0] + skip[1] * maxima[1] + skip[2] * maxima[2]


@njit(cache=True)
def _forward(x, vectors, hidden_w):
    """vectors: (maxima offsets, hidden bias, out weights then out bias, skip weights then bias)."""
    offset, hidden_b, out, skip = vectors
    n = x.shape[0]
    features = np.empty(hidden_w.shape[1])
    result = np.empty(n, np.float32)
    for i in range(n):
        _statistics(x[i], features)
        value = out[-1] + _maxima_skip(features, offset, skip)
        for h in range(hidden_w.shape[0]):
            activation = hidden_b[h]
            for k in range(features.shape[0]):
                activation += hidden_w[h, k] * features[k]
            if activation > 0.0:
                value += out[h] * activation
        result[i] = value
    return result


@dataclass(frozen=True)
class StatsStudentKernel:
    """The weights of a "stats" student as float64 arrays, callable on windows (n, T, F): the
    maxima offsets (2F), the hidden layer's weights (hidden, 4F) and bias, the output layer's
    weights with its bias appended, and the skip layer's 3 weights with its bias appended."""

    n_features: int
    window: int
    offset: np.ndarray
    hidden_w: np.ndarray
    hidden_b: np.ndarray
    out: np.ndarray
    skip: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[1:] != (self.window, self.n_features):
            shape = getattr(x, "shape", type(x).__name__)
            raise DQMModelError(f"the student kernel expects windows of shape (n, {self.window}, "
                                f"{self.n_features}), got {shape}.")
        return _forward(np.ascontiguousarray(x, np.float32), (self.offset, self.hidden_b, self.out, self.skip),
                        self.hidden_w)


def compile_student(student: Student) -> StatsStudentKernel:
    """A StatsStudentKernel with a copy of the student's weights (a "stats" Student only)."""
    if not isinstance(student, Student) or student.config.arch != "stats":
        raise DQMModelError("only a Student with arch='stats' has a compiled CPU kernel.")

    def weights(*tensors):
        return np.concatenate([t.detach().cpu().double().reshape(-1).numpy() for t in tensors])

    cfg = student.config
    return StatsStudentKernel(cfg.n_features, cfg.window, weights(student.maxima.offset),
                              np.ascontiguousarray(student.hidden.weight.detach().cpu().double().numpy()),
                              weights(student.hidden.bias), weights(student.out.weight, student.out.bias),
                              weights(student.skip.weight, student.skip.bias))


def kernel_latency(kernel: StatsStudentKernel, batch: int = 1, repeats: int = 100) -> dict:
    """Seconds per call of the kernel on random windows (batch, T, F), after compilation and
    warm-up; the same summary as ``models.latency``."""
    x = np.random.default_rng(0).standard_normal((batch, kernel.window, kernel.n_features)).astype(np.float32)
    warmup = max(3, repeats // 10)
    times = []
    for call in range(warmup + repeats):
        start = time.perf_counter()
        kernel(x)
        if call >= warmup:
            times.append(time.perf_counter() - start)
    return latency_summary(times, warmup=warmup, batch=batch, window=kernel.window, device="cpu",
                           method="perf-counter, numba kernel")
