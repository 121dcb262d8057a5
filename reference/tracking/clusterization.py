"""Clusterization: connected-component labelling of cells per module -> measurements.

Like traccc's SparseCCL: cells are ordered by (module, ch1, ch0); a two-pass union-find joins
8-connected cells (|d ch0| <= 1 and |d ch1| <= 1) of the same module. Each cluster becomes a
measurement: charge-weighted mean of the cell centres and weighted variance plus pitch^2/12.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.tracking.buckets import bucket_order


@dataclass(frozen=True)
class Clusters:
    """Measurements made from clusters (local coordinates on their module, in mm).

    cell_label maps every input cell (input order) to its cluster; rep_cell is the cell with
    the largest charge in each cluster.
    """

    module_index: np.ndarray
    local0: np.ndarray
    local1: np.ndarray
    var0: np.ndarray
    var1: np.ndarray
    n_cells: np.ndarray
    charge: np.ndarray
    rep_cell: np.ndarray
    cell_label: np.ndarray

    def __len__(self) -> int:
        return len(self.module_index)


@njit(cache=True)
def sort_cells(module, ch0, ch1, n_modules):
    """Order of cells by (module, ch1, ch0): counting sort on module, then a sort inside each
    module (insertion sort for small modules, quicksort otherwise)."""
    order, counts = bucket_order(module, n_modules)
    for m in range(n_modules):
        a = counts[m]
        b = counts[m + 1]
        if b - a > 24:
            seg = order[a:b].copy()
            keys = np.empty(b - a, np.int64)
            for i in range(b - a):
                keys[i] = (np.int64(ch1[seg[i]]) << 32) | np.int64(ch0[seg[i]])
            perm = np.argsort(keys)
            for i in range(b - a):
                order[a + i] = seg[perm[i]]
            continue
        for i in range(a + 1, b):
            cur = order[i]
            key = (np.int64(ch1[cur]) << 32) | np.int64(ch0[cur])
            j = i - 1
            while j >= a:
                o = order[j]
                kj = (np.int64(ch1[o]) << 32) | np.int64(ch0[o])
                if kj <= key:
                    break
                order[j + 1] = o
                j -= 1
            order[j + 1] = cur
    return order


@njit(cache=True, inline="always")
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def ccl_sorted(module, ch0, ch1):
    """Cluster labels (0..n_clusters-1, in order of first cell) of cells already sorted by
    (module, ch1, ch0). Returns (labels, n_clusters)."""
    n = module.shape[0]
    parent = np.arange(n)
    for i in range(n):
        j = i - 1
        while j >= 0:
            if module[j] != module[i] or ch1[j] < ch1[i] - 1:
                break
            if abs(ch0[j] - ch0[i]) <= 1:
                ri = _find(parent, i)
                rj = _find(parent, j)
                if ri != rj:
                    if ri < rj:
                        parent[rj] = ri
                    else:
                        parent[ri] = rj
            j -= 1
    labels = np.empty(n, np.int64)
    n_cl = 0
    for i in range(n):
        r = _find(parent, i)
        if r == i:
            labels[i] = n_cl
            n_cl += 1
        else:
            labels[i] = labels[r]
    return labels, n_cl


@njit(cache=True)
def _measurements(order, labels, n_cl, module, ch0, ch1, value, minhu, maxhu, hv, pitch_u, pitch_v):
    sw = np.zeros(n_cl)
    su = np.zeros(n_cl)
    sv = np.zeros(n_cl)
    suu = np.zeros(n_cl)
    svv = np.zeros(n_cl)
    ncell = np.zeros(n_cl, np.int64)
    mod = np.empty(n_cl, np.int64)
    rep = np.empty(n_cl, np.int64)
    best = np.full(n_cl, -1.0)
    cell_label = np.empty(order.shape[0], np.int64)
    for k in range(order.shape[0]):
        c = order[k]
        lab = labels[k]
        cell_label[c] = lab
        m = module[c]
        v = (ch1[c] + 0.5) * pitch_v[m] - hv[m]
        hu = (minhu[m] * (hv[m] + v) + maxhu[m] * (hv[m] - v)) / (2.0 * hv[m])
        u = (ch0[c] + 0.5) * pitch_u[m] - hu
        w = value[c]
        if w <= 0.0:
            w = 1e-6
        sw[lab] += w
        su[lab] += w * u
        sv[lab] += w * v
        suu[lab] += w * u * u
        svv[lab] += w * v * v
        ncell[lab] += 1
        mod[lab] = m
        if w > best[lab]:
            best[lab] = w
            rep[lab] = c
    l0 = su / sw
    l1 = sv / sw
    v0 = np.empty(n_cl)
    v1 = np.empty(n_cl)
    for i in range(n_cl):
        m = mod[i]
        v0[i] = max(suu[i] / sw[i] - l0[i] * l0[i], 0.0) + pitch_u[m] * pitch_u[m] / 12.0
        v1[i] = max(svv[i] / sw[i] - l1[i] * l1[i], 0.0) + pitch_v[m] * pitch_v[m] / 12.0
    return mod, l0, l1, v0, v1, ncell, sw, rep, cell_label


def clusterize(cell_module, ch0, ch1, value, detector) -> Clusters:
    """Cluster cells (module row index per cell, channels, charge) into measurements."""
    cell_module = np.ascontiguousarray(cell_module, np.int64)
    ch0 = np.ascontiguousarray(ch0, np.int64)
    ch1 = np.ascontiguousarray(ch1, np.int64)
    value = np.ascontiguousarray(value, np.float64)
    order = sort_cells(cell_module, ch0, ch1, len(detector))
    labels, n_cl = ccl_sorted(cell_module[order], ch0[order], ch1[order])
    D = detector
    mod, l0, l1, v0, v1, ncell, charge, rep, cell_label = _measurements(
        order, labels, n_cl, cell_module, ch0, ch1, value, D.minhu_mm, D.maxhu_mm, D.hv_mm,
        D.pitch_u_mm, D.pitch_v_mm)
    return Clusters(mod, l0, l1, v0, v1, ncell, charge, rep, cell_label)
