"""Greedy ambiguity resolution on shared measurements.

Tracks are ranked by quality (more measurements first, then lower chi2 per measurement). In
that order a track is accepted when it shares at most ``max_shared`` measurements with the
tracks accepted before it and keeps at least ``min_measurements`` unshared ones; otherwise it
is dropped as a duplicate (or a fake built on another track's hits). This is the one-pass form
of the ACTS/traccc greedy solver, which repeatedly removes the track with the most shared
measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.tracking.ckf import Tracks


@dataclass(frozen=True)
class AmbiguityConfig:
    """max_shared: measurements a track may share with better tracks; min_measurements:
    unshared measurements a kept track must have."""

    max_shared: int = 1
    min_measurements: int = 7


@njit(cache=True, nogil=True)  # host threads of the GPU throughput mode run it side by side
def _greedy(order, offsets, meas, n_meas_total, max_shared, min_meas):
    owner = np.full(n_meas_total, -1, np.int64)
    keep = np.zeros(order.shape[0], np.bool_)
    for o in order:
        a = offsets[o]
        b = offsets[o + 1]
        shared = 0
        for k in range(a, b):
            if owner[meas[k]] >= 0:
                shared += 1
        if shared > max_shared or (b - a - shared) < min_meas:
            continue
        keep[o] = True
        for k in range(a, b):
            if owner[meas[k]] < 0:
                owner[meas[k]] = o
    return keep


def resolve_ambiguities(tracks: Tracks, n_measurements: int, config: AmbiguityConfig = AmbiguityConfig()) -> Tracks:
    """Keep the best tracks so that no two share more than ``max_shared`` measurements."""
    if len(tracks) == 0:
        return tracks
    n = tracks.n_meas
    quality = tracks.chi2 / np.maximum(n, 1)
    order = np.lexsort((np.arange(len(n)), quality, -n))
    keep = _greedy(order.astype(np.int64), tracks.offsets, tracks.meas, n_measurements, config.max_shared,
                   config.min_measurements)
    return tracks.subset(keep)
