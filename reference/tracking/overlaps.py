"""Second measurements of found tracks on overlapping modules of the same layer.

Neighbouring modules of a layer overlap, so a particle often leaves two measurements on one
layer a few mm apart. The CKF picks up such a second measurement only on the layers it
navigates itself; on the seed's layers (where it stays on the seed measurements) and on the
layers added by the inward extension it never looks for one. On pile-up 200 the free
measurements of a track's own particle on a layer where the track has a measurement were 0.5 %
of the TrackML score weight; this step recovers 0.35 % of it on the pixel barrel.

For every measurement of every track (on a layer where the track has only that measurement)
this step builds a local helix from the measurement and its two neighbours on the track
(circle through the three transverse positions, straight line in z versus arc length), goes
along it from the measurement to the planes of the free measurements of the same layer within
a window (different module, path length at most ``max_path_mm``) and takes the one with the
lowest chi2 below ``chi2_max``. It is inserted after the measurement it belongs to. A
measurement already on a track is never taken; each goes to one track at most.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.tracking.ckf import Tracks, phi_difference
from reference.tracking.geometry import KIND_CYLINDER
from reference.tracking.helix import helix_advance, helix_plane_path
from reference.tracking.spacepoints import Measurements

# rows of the float table of measurements (one column per measurement, sorted by bin, then phi;
# row-major, so that the search reads contiguous phi, z, owner and layer values)
_PLANE = 0  # 12 rows: centre, U, V, W
_GX = 12  # global x, y, z
_L0 = 15
_L1 = 16
_V0 = 17
_V1 = 18
_PHI = 19
_C2 = 20  # z on cylinders, r on disks
_LAYER = 21
_OWNER = 22  # track holding the measurement, -1 if free
_BIN = 23  # (layer, coordinate 2) bin, numbered layer after layer
_BIN_LO = 24  # lower coordinate-2 edge of that bin
_ANCHOR = 25  # 1 on the layers searched for overlaps (OverlapConfig.volumes), else 0
_N_COLUMNS = 26
BIN_WIDTH_MM = 20.0  # coordinate-2 bin width of the candidate search


@dataclass(frozen=True)
class OverlapConfig:
    """Overlap pick-up settings.

    chi2_max: cut on the 2D chi2 of a candidate against the local helix; sigma_mm: prediction
    uncertainty added to the candidate's variances in both local directions; window_mm: half
    width of the candidate search around the track measurement (in the transverse direction
    and along z on cylinders or r on disks); max_path_mm: longest helix path from the track
    measurement to the candidate; volumes: detector volumes whose layers are searched (8: the
    pixel barrel). The defaults were chosen on two pile-up 200 events (TrackML score +0.0035,
    0.035 s per event): the pixel end caps (7, 9) added 0.0002 for another 0.03 s, the strip
    layers (12-18) 0.0001; windows of 15 and 20 mm added 0.0002 and 0.0004 for 0.01 and
    0.02 s; chi2_max 9 or 25 and sigma_mm 0.05 or 0.2 changed the score by <= 0.0001.
    """

    chi2_max: float = 16.0
    sigma_mm: float = 0.1
    window_mm: float = 10.0
    max_path_mm: float = 40.0
    volumes: tuple = (8,)


@njit(cache=True)
def local_helix(p0, p1, p2, k):
    """Helix state (x, y, z, tx, ty, tz, kappa) at point k (0, 1 or 2) of three global points
    p0, p1, p2 (arrays of 3, in track order): circle through their transverse positions, z
    linear in the transverse arc length; kappa as in :mod:`reference.tracking.helix`."""
    ax, ay = p1[0] - p0[0], p1[1] - p0[1]
    bx, by = p2[0] - p0[0], p2[1] - p0[1]
    cross = ax * by - ay * bx
    chord = max(math.hypot(bx, by), 1e-9)
    pk = (p0, p1, p2)[k]
    if abs(cross) < 1e-9 * chord * chord:  # straight line
        tx, ty, curv = bx / chord, by / chord, 0.0
    else:
        d = 2.0 * cross
        a2 = ax * ax + ay * ay
        b2 = bx * bx + by * by
        xc = p0[0] + (by * a2 - ay * b2) / d
        yc = p0[1] + (ax * b2 - bx * a2) / d
        rx, ry = pk[0] - xc, pk[1] - yc
        radius = math.hypot(rx, ry)
        sense = 1.0 if cross > 0.0 else -1.0  # counter-clockwise: +1
        tx, ty = -sense * ry / radius, sense * rx / radius
        curv = -sense / radius  # clockwise rotation per transverse length
        chord = 2.0 * radius * math.asin(min(chord / (2.0 * radius), 1.0))
    cot = (p2[2] - p0[2]) / max(chord, 1e-9)
    sin_t = 1.0 / math.sqrt(1.0 + cot * cot)
    return pk[0], pk[1], pk[2], tx * sin_t, ty * sin_t, cot * sin_t, curv * sin_t


@njit(cache=True)
def _line_miss(state, m, sigma2, max_path):
    """True when the straight line along the state's direction meets the plane of measurement
    m (its column of the table) further than max_path away, or misses the measurement by more
    than the helix sagitta plus 10 standard deviations (a cheap test before the helix)."""
    x, y, z, tx, ty, tz, kappa = state
    tn = tx * m[_PLANE + 9] + ty * m[_PLANE + 10] + tz * m[_PLANE + 11]
    if abs(tn) < 1e-9:
        return True
    ex, ey, ez = x - m[_PLANE], y - m[_PLANE + 1], z - m[_PLANE + 2]
    s = -(ex * m[_PLANE + 9] + ey * m[_PLANE + 10] + ez * m[_PLANE + 11]) / tn
    if abs(s) > max_path:
        return True
    ex, ey, ez = ex + s * tx, ey + s * ty, ez + s * tz
    u = ex * m[_PLANE + 3] + ey * m[_PLANE + 4] + ez * m[_PLANE + 5] - m[_L0]
    v = ex * m[_PLANE + 6] + ey * m[_PLANE + 7] + ez * m[_PLANE + 8] - m[_L1]
    sagitta = 0.5 * abs(kappa) * s * s
    return abs(u) > sagitta + 10.0 * math.sqrt(m[_V0] + sigma2) or \
        abs(v) > sagitta + 10.0 * math.sqrt(m[_V1] + sigma2)


@njit(cache=True)
def _candidate_chi2(state, m, sigma2, max_path):
    """chi2 of measurement m (its column of the table) against the helix state; inf when the
    helix does not reach its plane within max_path."""
    x, y, z, tx, ty, tz, kappa = state
    if _line_miss(state, m, sigma2, max_path):
        return math.inf
    s = helix_plane_path(x, y, z, tx, ty, tz, kappa, m[_PLANE], m[_PLANE + 1], m[_PLANE + 2],
                         m[_PLANE + 9], m[_PLANE + 10], m[_PLANE + 11])
    if math.isnan(s) or abs(s) > max_path:
        return math.inf
    px, py, pz, _, _, _ = helix_advance(x, y, z, tx, ty, tz, kappa, s)
    ex, ey, ez = px - m[_PLANE], py - m[_PLANE + 1], pz - m[_PLANE + 2]
    u = ex * m[_PLANE + 3] + ey * m[_PLANE + 4] + ez * m[_PLANE + 5]
    v = ex * m[_PLANE + 6] + ey * m[_PLANE + 7] + ez * m[_PLANE + 8]
    return (u - m[_L0]) ** 2 / (m[_V0] + sigma2) + (v - m[_L1]) ** 2 / (m[_V1] + sigma2)


@njit(cache=True)
def _same_module(a, b):
    """Whether measurements a and b (columns of the table) lie on the same module plane."""
    return abs(a[_PLANE] - b[_PLANE]) + abs(a[_PLANE + 1] - b[_PLANE + 1]) + abs(a[_PLANE + 2] - b[_PLANE + 2]) < 1e-6


@njit(cache=True)
def _best_candidate(table, segment, state, cfg):
    """(column, chi2) of the best free measurement of table[:, segment[0]:segment[1]] for the
    track measurement of column segment[2] with chi2 below segment[3], or (-1, segment[3]);
    cfg = (chi2_max, sigma_mm, window_mm, max_path_mm)."""
    m = segment[2]
    dphi = min(cfg[2] / max(math.hypot(table[_GX, m], table[_GX + 1, m]), 1.0), math.pi)
    best, best_chi = -1, segment[3]
    for j in range(segment[0], segment[1]):
        if table[_OWNER, j] >= 0 or table[_LAYER, j] != table[_LAYER, m] or abs(table[_C2, j] - table[_C2, m]) > cfg[2]:
            continue
        if abs(phi_difference(table[_PHI, j], table[_PHI, m])) > dphi or _same_module(table[:, j], table[:, m]):
            continue
        chi = _candidate_chi2(state, table[:, j], cfg[1] * cfg[1], cfg[3])
        if chi < best_chi:
            best, best_chi = j, chi
    return best, best_chi


@njit(cache=True)
def _phi_segment(table, bin_start, b, col, half_width):
    """(first, end) columns of bin b whose phi lies within the window around measurement
    column ``col`` (the whole bin when the window wraps around +-pi)."""
    lo, hi = bin_start[b], bin_start[b + 1]
    r = math.hypot(table[_GX, col], table[_GX + 1, col])
    dphi = half_width / max(r, 1.0)
    phi = table[_PHI, col]
    if phi - dphi < -math.pi or phi + dphi > math.pi:
        return lo, hi
    return _first_phi_above(table, lo, hi, phi - dphi), _first_phi_above(table, lo, hi, phi + dphi)


@njit(cache=True)
def _first_phi_above(table, a, b, value):
    """First column in [a, b) (sorted by phi) whose phi is >= value (b if none): binary
    search."""
    while a < b:
        mid = (a + b) // 2
        if table[_PHI, mid] < value:
            a = mid + 1
        else:
            b = mid
    return a


@njit(cache=True)
def _best_near(table, bin_start, col, state, cfg):
    """Column of the best overlap partner of measurement column ``col`` in the (layer,
    coordinate 2) bins that the window overlaps (a neighbouring layer's bins are skipped by the
    layer check), or -1."""
    b = int(table[_BIN, col])
    below = (table[_C2, col] - table[_BIN_LO, col]) / BIN_WIDTH_MM
    b0 = max(b + int(math.floor(below - cfg[2] / BIN_WIDTH_MM)), 0)
    b1 = min(b + int(math.floor(below + cfg[2] / BIN_WIDTH_MM)), bin_start.shape[0] - 2)
    cut = cfg[0]
    best = -1
    for nb in range(b0, b1 + 1):
        lo, hi = _phi_segment(table, bin_start, nb, col, cfg[2])
        j, chi = _best_candidate(table, (lo, hi, col, cut), state, cfg)
        if j >= 0:
            best, cut = j, chi
    return best


@njit(cache=True)
def _track_overlaps(track, table, bin_start, cfg, out):
    """For every measurement (table column) of one track, the column of its overlap partner or
    -1, into out; returns the number found."""
    n = track.shape[0]
    found = 0
    for k in range(n):
        out[k] = -1
        col = track[k]
        if col < 0 or table[_ANCHOR, col] == 0.0:
            continue
        layer = table[_LAYER, col]
        if (k > 0 and table[_LAYER, track[k - 1]] == layer) or (k + 1 < n and table[_LAYER, track[k + 1]] == layer):
            continue
        i0 = min(max(k - 1, 0), n - 3)
        state = local_helix(table[_GX:_GX + 3, track[i0]], table[_GX:_GX + 3, track[i0 + 1]],
                            table[_GX:_GX + 3, track[i0 + 2]], k - i0)
        best = _best_near(table, bin_start, col, state, cfg)
        if best >= 0:
            table[_OWNER, best] = table[_OWNER, col]
            out[k] = best
            found += 1
    return found


@njit(cache=True)
def _find_overlaps(offsets, cols, table, bin_start, cfg):
    """Table column of the overlap partner of every track measurement, or -1; cols: the table
    column of every track measurement (-1 if it is not in the table)."""
    n_tracks = offsets.shape[0] - 1
    for t in range(n_tracks):
        for k in range(offsets[t], offsets[t + 1]):
            if cols[k] >= 0:
                table[_OWNER, cols[k]] = t
    partner = np.full(cols.shape[0], -1, np.int64)
    for t in range(n_tracks):
        a, b = offsets[t], offsets[t + 1]
        if b - a >= 3:
            _track_overlaps(cols[a:b], table, bin_start, cfg, partner[a:b])
    return partner


def insert_after(tracks: Tracks, partner: np.ndarray) -> Tracks:
    """Tracks with measurement partner[k] inserted after the k-th track measurement where
    partner[k] >= 0."""
    extra = partner >= 0
    before = np.concatenate([[0], np.cumsum(extra)])  # partners before each position
    offsets = tracks.offsets + before[tracks.offsets]
    flat = np.empty(len(tracks.meas) + before[-1], np.int64)
    pos = np.arange(len(tracks.meas)) + before[:-1]
    flat[pos] = tracks.meas
    flat[pos[extra] + 1] = partner[extra]
    return Tracks(offsets, flat, tracks.chi2, tracks.n_holes, tracks.params, tracks.seed, tracks.stats)


def measurement_table(meas: Measurements, rows: np.ndarray, anchor: np.ndarray) -> tuple:
    """(float table with one column per measurement of ``rows``, sorted by bin then phi; their
    order in ``rows``; first table column of every bin); bins are ``BIN_WIDTH_MM`` wide in coordinate 2 (z
    on cylinders, r on disks), numbered layer after layer; ``anchor`` (bool per measurement)
    fills the anchor row. The table's rows are listed at the top of this module."""
    layers = meas.layers
    pl = meas.planes[rows]
    li = meas.layer_index[rows]
    l0, l1 = meas.local0[rows], meas.local1[rows]
    gpos = pl[:, 0:3] + l0[:, None] * pl[:, 3:6] + l1[:, None] * pl[:, 6:9]
    phi = np.arctan2(gpos[:, 1], gpos[:, 0])
    c2 = np.where(layers.kind[li] == KIND_CYLINDER, gpos[:, 2], np.hypot(gpos[:, 0], gpos[:, 1]))
    lo = layers.lo_mm - BIN_WIDTH_MM  # the measurements may stick out of the layer a little
    n_bins = np.floor((layers.hi_mm - lo) / BIN_WIDTH_MM).astype(np.int64) + 2
    first_bin = np.concatenate([[0], np.cumsum(n_bins)])
    bins = first_bin[li] + np.clip(np.floor((c2 - lo[li]) / BIN_WIDTH_MM).astype(np.int64), 0, n_bins[li] - 1)
    order = np.argsort(bins * 8.0 + (phi + np.pi))  # by bin, then phi (2 pi < 8)
    bin_lo = lo[li] + BIN_WIDTH_MM * (bins - first_bin[li])
    table = np.empty((_N_COLUMNS, len(rows)))
    table[_PLANE:_PLANE + 12] = pl[order].T
    table[_GX:_GX + 3] = gpos[order].T
    for col, values in ((_L0, l0), (_L1, l1), (_V0, meas.var0[rows]), (_V1, meas.var1[rows]), (_PHI, phi),
                        (_C2, c2), (_LAYER, li), (_BIN, bins), (_BIN_LO, bin_lo), (_ANCHOR, anchor[rows])):
        table[col] = values[order]
    table[_OWNER] = -1.0
    bin_start = np.searchsorted(bins[order], np.arange(first_bin[-1] + 1)).astype(np.int64)
    return table, order, bin_start


def add_overlap_measurements(tracks: Tracks, meas: Measurements, config: OverlapConfig = OverlapConfig()) -> Tracks:
    """Insert, after each measurement of every track, the free measurement of the same layer on
    an overlapping module that fits the track best (see the module docstring)."""
    if len(tracks) == 0:
        return tracks
    anchor = np.isin(meas.layers.volume_id[meas.layer_index], np.asarray(config.volumes))
    if not anchor.any():
        return tracks
    # the table holds the searched layers and the track measurements that local helices use
    # (within two places of a track measurement on a searched layer)
    on_anchor = anchor[tracks.meas]
    near = on_anchor.copy()
    for d in (1, 2):
        near[d:] |= on_anchor[:-d]
        near[:-d] |= on_anchor[d:]
    needed = anchor.copy()
    needed[tracks.meas[near]] = True
    rows = np.nonzero(needed)[0]
    table, order, bin_start = measurement_table(meas, rows, anchor)
    order = rows[order]  # table column -> measurement
    rank = np.full(len(meas), -1, np.int64)
    rank[order] = np.arange(len(order))
    cfg = np.array([config.chi2_max, config.sigma_mm, config.window_mm, config.max_path_mm], np.float64)
    partner = _find_overlaps(tracks.offsets.astype(np.int64), rank[tracks.meas], table, bin_start, cfg)
    return insert_after(tracks, np.where(partner >= 0, order[partner], -1))
