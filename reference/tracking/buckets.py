"""Counting sort into integer buckets, shared by the clusterization (cells by module) and the
seeding grid (spacepoints by phi-z cell)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def bucket_order(bucket, n_buckets):
    """(order, start): indices sorted by ``bucket`` (0 <= bucket < n_buckets), stable; the items
    of bucket b are order[start[b]:start[b + 1]]."""
    n = bucket.shape[0]
    start = np.zeros(n_buckets + 1, np.int64)
    for i in range(n):
        start[bucket[i] + 1] += 1
    for b in range(n_buckets):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        order[fill[bucket[i]]] = i
        fill[bucket[i]] += 1
    return order, start
