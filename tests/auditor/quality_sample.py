"""Stage code for the per-stage quality tests: a numba kernel calling package helpers."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=False)
def _clip(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def _unused_helper(x):
    for item in x:
        if item:
            return item
    return None


@njit(cache=False)
def kernel(values):
    total = 0.0
    for value in values:
        total += _clip(value, 0.0, 1.0)
    return total


def stage(values):
    """The stage implementation: a plain function calling a jitted kernel and numpy."""
    return kernel(np.asarray(values, dtype=np.float64))
