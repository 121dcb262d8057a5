"""Triplet seeding on the device: the algorithm, cuts and :class:`SeedingConfig` of
:mod:`reference.tracking.seeding`, in traccc's count -> allocate -> fill kernel sequence.

1. Grid: ``bin_points`` casts the coordinates, cuts the seeding region and computes each
   spacepoint's phi-z cell (the CPU's binning, traccc's phi-bin count); one stable sort of
   cell * 1024 + r orders them by (cell, radius) with the out-of-region ones last, and bin
   starts come from ``searchsorted``.
2. Doublets, in jobs of (middle, side, phi neighbour) so that the long scans of a middle run in
   parallel: ``count_doublets`` (tops, then bottoms of middles with tops, as the CPU) scans the
   z slices of the middle's collision-region window with the CPU's ``distance_range``,
   ``lower_bound``, ``doublet_compatible``, ``lin_circle`` and ``doublet_helix_compatible``, and
   keeps each job's first doublets; an xp prefix sum over (middle, neighbour) gives every job its
   rows in the CPU's order; ``fill_doublets`` copies the kept doublets (scanning again only the
   jobs that did not fit), sorts each job's tops by cot(theta) and sets the per-middle maxima of
   the triplet window (atomic max).
3. Triplets, one thread per middle-bottom doublet: ``count_triplets`` binary-searches the
   cot(theta) window in each neighbour's sorted tops and runs ``triplet_compatible``, keeping the
   first results; ``fill_triplets`` copies them (or finds them again) and orders them by top
   cot(theta), the order in which the CPU meets them.
4. ``triplet_weights``: one thread per triplet, the seed filter (compatible seeds with other top
   radii, same curvature) and the ATLAS-style experiment cuts.
5. ``select_best``: one thread per middle keeps its best ``max_seeds_per_middle`` triplets
   (stable in weight, as the CPU's streaming list) and applies the per-middle selection;
   ``emit_seeds`` writes the kept ones.

Host synchronisations: the doublet totals, the triplet total and the seed count. ``dtype``:
``"float32"`` (default) keeps coordinates, cot(theta), curvatures and weights in float32 (the
shared helpers then mix in float64 constants); ``"float64"`` reproduces the CPU seeds. Seeds come
out ordered by middle (grid order) and decreasing weight, as on the CPU; :func:`canonical_order`
sorts any seed set by (middle, bottom, top).

The shared cut helpers are the CPU's ``@njit`` functions; kernels and device functions pass them
arrays inside named tuples, which the CUDA simulator leaves as numpy arrays that the CPU build of
those helpers accepts. Kernels run on the default stream of the current device (see
:func:`launch`).
"""

# numba.cuda's intrinsics (cuda.grid, cuda.atomic.max) are typing stubs whose signatures pylint misreads:
# pylint: disable=no-value-for-parameter,too-many-function-args

from __future__ import annotations

import math
from collections import namedtuple
from functools import lru_cache

import numpy as np
from numba import cuda  # kernels must name numba.cuda as a module global (the simulator swaps it)

from reference.tracking.errors import TrackingInputError
from reference.tracking.gpu import backend
from reference.tracking.seeding import (Seeds, SeedingConfig, cut_vector, distance_range, doublet_compatible,
                                        doublet_helix_compatible, grid_shape, lin_circle, lower_bound,
                                        triplet_compatible)
from reference.tracking.spacepoints import Spacepoints

_MAX_DOUBLETS = 2048  # doublets per middle and side (MAXD of the CPU)
_TOP_CHUNK = 8  # tops in a bottom's window gathered before the triplet tests (less divergence)
_TRIPLET_SLOTS = 2  # triplets per bottom doublet kept by the count kernel (the fill copies them)
_DOUBLET_SLOTS = 64  # doublets per (middle, side, phi neighbour) kept by the count kernel
_COMPAT_CAPACITY = 16  # distinct compatible top radii remembered by the seed filter (as the CPU)

# positions in the parameter vector ``c`` (the CPU's, then the grid's and the region's)
(_DR_MIN, _DR_MAX, _COT_MAX, _COLL_MIN, _COLL_MAX, _DZ_MAX, _IMPACT_MAX, _SIGMA_SC, _MAX_PT_SC, _HIGHLAND,
 _PT_PER_HR, _MIN_HD2, _PT2_PER_R, _SCATTER_ANGLE2, _D_INV_HD, _IMPACT_WF, _COMPAT_W, _FILT_DR_MIN,
 _COMPAT_LIMIT, _GOOD_B_R, _GOOD_B_W, _GOOD_T_R, _GOOD_T_W, _GOOD_B_MIN_W, _SEED_MIN_W, _SPB_MIN_R,
 _MAX_SEEDS, _N_PHI, _N_Z, _Z_LO, _Z_BIN, _R_MAX, _Z_MAX) = range(33)

# fields of the per-middle tuple returned by _middle
(_M_PHI_BIN, _M_X, _M_Y, _M_Z, _M_R, _M_VAR_R, _M_VAR_Z, _M_COT0_LO, _M_COT0_HI, _M_ZB_LO, _M_ZB_HI, _M_ZT_LO,
 _M_ZT_HI, _M_CELL0) = range(14)

_PRECISIONS = {"float32": np.float32, "float64": np.float64}

Points = namedtuple("Points", "sp bin_start c event extremes")
Points.__doc__ = """Spacepoints in grid order: sp (6, n) = x, y, z, r, var_r, var_z; bin_start (events * cells
+ 1: event e's cells are e * cells + the cell), whose last entry is the number of spacepoints in the
region (the others follow them); c the parameter vector; event (n) the event of every spacepoint;
extremes (2, events) the smallest radius and the negated largest radius of each event's spacepoints
in the region."""
Doublets = namedtuple("Doublets", "off top_sp top_cot bot_sp bot_cot bot_mid mid_max")
Doublets.__doc__ = """Middle-top and middle-bottom doublets: off (2, 3 n + 1) top and bottom row offsets per
(middle, phi neighbour), so that a middle's rows are [off[s, 3 m], off[s, 3 m + 3]); *_sp grid
index of the other spacepoint and *_cot the doublet's cot(theta), in scan order (a job's tops
sorted by cot(theta)); bot_mid the middle
of a bottom doublet; mid_max (3, n) maxima of the tops' Er, 1/deltaR and |cot(theta)| per middle.
Lin-circles are not stored: the triplet kernels recompute the few they need (cheaper than
writing and reading six floats per doublet)."""
Triplets = namedtuple("Triplets", "off bot top curv imp weight keep")
Triplets.__doc__ = """Triplets: off (bottom doublets + 1) offsets per bottom doublet, each bottom's triplets in
increasing top cot(theta); bot / top doublet indices; curvature, impact parameter, seed-filter
weight and the experiment-cut flag."""
Slots = namedtuple("Slots", "trip weight")
Slots.__doc__ = """Best triplets per middle: max_seeds_per_middle slots each (triplet index or -1, weight)."""
SeedColumns = namedtuple("SeedColumns", "bottom middle top weight z_vertex")
Candidates = namedtuple("Candidates", "top curv imp")
Candidates.__doc__ = """The first _TRIPLET_SLOTS triplets of every bottom doublet, found by the count kernel."""
ScanBuffer = namedtuple("ScanBuffer", "idx cot maxima rescan")
ScanBuffer.__doc__ = """The first _DOUBLET_SLOTS doublets of every doublet job (spacepoint, cot(theta)), found by the
count kernels; maxima (3, 3 n) of the top jobs; rescan = 1 to make the fill kernel scan again
(when the CPU's per-middle limit cut some jobs short)."""
RawPoints = namedtuple("RawPoints", "x y z var_r var_z event")
Binned = namedtuple("Binned", "sp extremes cell key")
Binned.__doc__ = """Binning output in input order: sp (6, n); extremes (2, events), the minima of (r, -r) over each
event's spacepoints in the region (atomic minima; +inf before); the grid cell of the batch (event *
cells + cell; events * cells, the sentinel, outside the region); the sort key within the event,
its cell * 1024 + r (float64: exact for r < 1024 mm down to 2e-9 mm differences)."""


def _real(dtype: str):
    if dtype not in _PRECISIONS:
        raise TrackingInputError(f"The GPU dtype must be 'float32' or 'float64', not {dtype!r}.")
    return _PRECISIONS[dtype]


def _check_config(config: SeedingConfig) -> None:
    if config.max_seeds_per_middle < 1:
        raise TrackingInputError("max_seeds_per_middle must be at least 1.")
    if not 0 <= config.compat_seed_limit <= _COMPAT_CAPACITY:
        raise TrackingInputError(f"compat_seed_limit must lie in [0, {_COMPAT_CAPACITY}] on the GPU.")


def parameter_vector(config: SeedingConfig) -> np.ndarray:
    """The CPU's seeding parameter vector followed by the grid's (n_phi, n_z, z_lo, z_bin) and the
    region's r_max and z_max."""
    n_phi, n_z = grid_shape(config)
    return np.concatenate([cut_vector(config, n_phi, n_z), np.array([config.r_max_mm, config.z_max_mm])])


# ---------------------------------------------------------------- device helpers: grid

@cuda.jit(device=True)
def _bin_point(raw, binned, c, i):
    """Coordinates (cast to the working dtype), radius and grid cell of input spacepoint i (the
    CPU's region cut and binning), and its event's radius extremes."""
    sp = binned.sp
    sp[0, i] = raw.x[i]
    sp[1, i] = raw.y[i]
    sp[2, i] = raw.z[i]
    sp[4, i] = raw.var_r[i]
    sp[5, i] = raw.var_z[i]
    r = math.hypot(sp[0, i], sp[1, i])
    n_phi = int(c[_N_PHI])
    n_z = int(c[_N_Z])
    z = sp[2, i]
    cell = n_phi * n_z
    batch_cell = cell * binned.extremes.shape[1]  # the sentinel: after every event's cells
    if r <= c[_R_MAX] and c[_Z_LO] <= z <= c[_Z_MAX] and math.isfinite(r):
        e = raw.event[i]
        cuda.atomic.min(binned.extremes, (0, e), r)
        cuda.atomic.min(binned.extremes, (1, e), -r)
        ip = min(max(int((math.atan2(sp[1, i], sp[0, i]) + math.pi) / (2 * math.pi / n_phi)), 0), n_phi - 1)
        cell = ip * n_z + min(max(int((z - c[_Z_LO]) / c[_Z_BIN]), 0), n_z - 1)
        batch_cell = e * n_phi * n_z + cell
    sp[3, i] = r
    binned.cell[i] = batch_cell
    binned.key[i] = cell * 1024.0 + (r if cell < n_phi * n_z else 0.0)


# ---------------------------------------------------------------- device helpers: doublets

@cuda.jit(device=True)
def _middle(pts, m):
    """The middle's phi bin (-1 when no bottom or no top can exist at its radius in its event),
    coordinates, cot(theta) range from the collision region, the z windows of its bottoms and tops
    (the extremes of the corners in delta r and z0, as the CPU) and its event's first grid cell."""
    sp = pts.sp
    c = pts.c
    rm = sp[3, m]
    zm = sp[2, m]
    n_phi = int(c[_N_PHI])
    ipm = min(int((math.atan2(sp[1, m], sp[0, m]) + math.pi) / (2.0 * math.pi / n_phi)), n_phi - 1)
    e = pts.event[m]
    if rm - c[_DR_MIN] < pts.extremes[0, e] or rm + c[_DR_MIN] > -pts.extremes[1, e]:
        ipm = -1
    cot_lo = (zm - c[_COLL_MAX]) / rm
    cot_hi = (zm - c[_COLL_MIN]) / rm
    b0, b1 = zm - c[_DR_MIN] * cot_hi, zm - c[_DR_MIN] * cot_lo
    b2, b3 = zm - c[_DR_MAX] * cot_hi, zm - c[_DR_MAX] * cot_lo
    t0, t1 = zm + c[_DR_MIN] * cot_hi, zm + c[_DR_MIN] * cot_lo
    t2, t3 = zm + c[_DR_MAX] * cot_hi, zm + c[_DR_MAX] * cot_lo
    return (ipm, sp[0, m], sp[1, m], zm, rm, sp[4, m], sp[5, m], cot_lo, cot_hi,
            min(b0, b1, b2, b3), max(b0, b1, b2, b3), min(t0, t1, t2, t3), max(t0, t1, t2, t3), e * n_phi * int(c[_N_Z]))


@cuda.jit(device=True)
def _try_doublet(pts, mid, side_k, out, count):
    """Doublet cuts of the middle with spacepoint k; a compatible one goes to row
    base + step * count of out = (indices, cot(theta), 1x6 lin-circle scratch, base, step,
    capacity, maxima of Er, 1/deltaR, |cot(theta)|, rows available) if count < rows available.
    Returns the count."""
    sp = pts.sp
    c = pts.c
    side, k = side_k
    bottom = side == 0
    if not doublet_compatible(mid[_M_R], mid[_M_Z], sp[3, k], sp[2, k], bottom, c[_DR_MIN], c[_DR_MAX],
                              c[_COT_MAX], c[_COLL_MIN], c[_COLL_MAX], c[_DZ_MAX]):
        return count
    lc = out[2]
    lin_circle(mid[_M_X], mid[_M_Y], mid[_M_Z], mid[_M_R], mid[_M_VAR_R], mid[_M_VAR_Z], sp[0, k], sp[1, k],
               sp[2, k], sp[4, k], sp[5, k], bottom, lc, 0)
    if not doublet_helix_compatible(lc, 0, mid[_M_R], c[_IMPACT_MAX], c[_MIN_HD2]):
        return count
    if count < out[7]:
        row = out[3] + out[4] * count
        out[0][row] = k
        out[1][row] = lc[0, 0]
    maxima = out[6]
    maxima[0] = max(maxima[0], lc[0, 5])
    maxima[1] = max(maxima[1], lc[0, 2])
    maxima[2] = max(maxima[2], abs(lc[0, 0]))
    return count + 1


@cuda.jit(device=True)
def _scan_cell(pts, mid, where, out, count):
    """Candidates of one grid cell, where = (side, cell, iz), in the radial range its z slice
    allows; returns the updated count (at most out's capacity)."""
    c = pts.c
    side, cell, iz = where
    top = side == 1
    d_lo, d_hi = distance_range(mid[_M_Z], c[_Z_LO] + iz * c[_Z_BIN], c[_Z_LO] + (iz + 1) * c[_Z_BIN],
                                mid[_M_COT0_LO], mid[_M_COT0_HI], 1.0 if top else -1.0, c[_DR_MIN], c[_DR_MAX])
    if d_lo > d_hi:
        return count
    r_lo = mid[_M_R] + d_lo if top else mid[_M_R] - d_hi
    r_hi = mid[_M_R] + d_hi if top else mid[_M_R] - d_lo
    r = pts.sp[3]
    e = pts.bin_start[cell + 1]
    for k in range(lower_bound(r, pts.bin_start[cell], e, r_lo), e):
        if r[k] > r_hi or count >= out[5]:
            break
        count = _try_doublet(pts, mid, (side, k), out, count)
    return count


@cuda.jit(device=True)
def _scan_neighbour(pts, mid, side_p, out):
    """Bottom (side 0) or top (side 1) doublets of the middle in phi neighbour p (0, 1, 2 for
    dphi = -1, 0, +1), in the CPU's scan order (z slices, radius); returns their number."""
    c = pts.c
    side, p = side_p
    n_phi = int(c[_N_PHI])
    n_z = int(c[_N_Z])
    if n_phi < 3 and p != 1:
        return 0
    lo_z = mid[_M_ZT_LO] if side == 1 else mid[_M_ZB_LO]
    hi_z = mid[_M_ZT_HI] if side == 1 else mid[_M_ZB_HI]
    iz0 = max(0, int(math.floor((lo_z - c[_Z_LO]) / c[_Z_BIN])))
    iz1 = min(n_z - 1, int(math.floor((hi_z - c[_Z_LO]) / c[_Z_BIN])))
    ipb = (mid[_M_PHI_BIN] + p - 1) % n_phi
    count = 0
    for iz in range(iz0, iz1 + 1):
        count = _scan_cell(pts, mid, (side, mid[_M_CELL0] + ipb * n_z + iz, iz), out, count)
    return count


@cuda.jit(device=True)
def _count_job(pts, cnt, g, buf, scratch):
    """Doublet count of job g = (side * 3 + p) * n + m (middle m, phi neighbour p) into
    cnt[side, m, p], keeping its first doublets in buf (and a top job's maxima); bottoms only for
    middles with tops (as the CPU). scratch = (1x6 lin-circle, 3 maxima)."""
    n = pts.sp.shape[1]
    m = g % n
    side = g // (3 * n)
    p = (g // n) % 3
    if m >= pts.bin_start[pts.bin_start.shape[0] - 1]:
        return
    if side == 0 and cnt[1, m, 0] + cnt[1, m, 1] + cnt[1, m, 2] == 0:
        return
    mid = _middle(pts, m)
    if mid[_M_PHI_BIN] < 0:
        return
    maxima = scratch[1]
    for a in range(3):
        maxima[a] = 0.0
    cnt[side, m, p] = _scan_neighbour(pts, mid, (side, p), (buf.idx, buf.cot, scratch[0], g * _DOUBLET_SLOTS, 1,
                                                            _MAX_DOUBLETS, maxima, _DOUBLET_SLOTS))
    if side == 1:
        for a in range(3):
            buf.maxima[a, g - 3 * n] = maxima[a]


@cuda.jit(device=True)
def _copy_rows(dbl, buf, g, rows):
    """The doublets of job g kept by the count kernel into rows = (lo, hi)."""
    lo, hi = rows
    top = g >= 3 * dbl.mid_max.shape[1]
    for q in range(hi - lo):
        (dbl.top_sp if top else dbl.bot_sp)[lo + q] = buf.idx[g * _DOUBLET_SLOTS + q]
        (dbl.top_cot if top else dbl.bot_cot)[lo + q] = buf.cot[g * _DOUBLET_SLOTS + q]


@cuda.jit(device=True)
def _sort_tops(dbl, lo, hi):
    """Stable insertion sort of top rows [lo, hi) (one job: a handful) by cot(theta)."""
    for q in range(lo + 1, hi):
        sp_q, cot_q = dbl.top_sp[q], dbl.top_cot[q]
        p = q - 1
        while p >= lo and dbl.top_cot[p] > cot_q:
            dbl.top_sp[p + 1], dbl.top_cot[p + 1] = dbl.top_sp[p], dbl.top_cot[p]
            p -= 1
        dbl.top_sp[p + 1], dbl.top_cot[p + 1] = sp_q, cot_q


@cuda.jit(device=True)
def _finish_job(dbl, g, rows, maxima):
    """bot_mid of a bottom job's rows; a top job's rows sorted by cot(theta) (for the triplets'
    window search) and its maxima into the middle's (atomic: three jobs share a middle)."""
    n = dbl.mid_max.shape[1]
    m = g % n
    if g < 3 * n:
        for j in range(rows[0], rows[1]):
            dbl.bot_mid[j] = m
        return
    _sort_tops(dbl, rows[0], rows[1])
    for a in range(3):
        cuda.atomic.max(dbl.mid_max, (a, m), maxima[a])


@cuda.jit(device=True)
def _fill_job(pts, dbl, g, buf, scratch):
    """Doublets of job g = (side * 3 + p) * n + m into their rows [off[s, 3 m + p], off[s, 3 m + p + 1])
    (s = 0 tops, 1 bottoms), for middles with bottoms (the only ones that can make triplets):
    copied from the count kernel's buffer, or found again when they did not fit."""
    n = pts.sp.shape[1]
    m = g % n
    side = g // (3 * n)
    p = (g // n) % 3
    lo = dbl.off[1 - side, 3 * m + p]
    hi = dbl.off[1 - side, 3 * m + p + 1]
    if lo == hi or dbl.off[1, 3 * m] == dbl.off[1, 3 * m + 3]:
        return
    maxima = scratch[1]
    if hi - lo <= _DOUBLET_SLOTS and buf.rescan == 0:
        _copy_rows(dbl, buf, g, (lo, hi))
        for a in range(3):
            maxima[a] = buf.maxima[a, g % (3 * n)]
    else:
        for a in range(3):
            maxima[a] = 0.0
        sink = (dbl.top_sp, dbl.top_cot) if side == 1 else (dbl.bot_sp, dbl.bot_cot)
        _scan_neighbour(pts, _middle(pts, m), (side, p), (sink[0], sink[1], scratch[0], lo, 1, hi - lo, maxima,
                                                          hi - lo))
    _finish_job(dbl, g, (lo, hi), maxima)


# ---------------------------------------------------------------- device helpers: triplets

@cuda.jit(device=True)
def _lin_circle_of(pts, m, k, side, lc):
    """lc[0] = the lin-circle of middle m with spacepoint k (bottom for side 0, top for side 1)."""
    sp = pts.sp
    lin_circle(sp[0, m], sp[1, m], sp[2, m], sp[3, m], sp[4, m], sp[5, m], sp[0, k], sp[1, k], sp[2, k], sp[4, k],
               sp[5, k], side == 0, lc, 0)


@cuda.jit(device=True)
def _top_window(pts, dbl, j, lc):
    """(middle, scattering region^2, cot(theta) window) of bottom doublet j, whose lin-circle is
    lc[0]: the CPU's window around the bottom's cot(theta) outside which no top passes the
    scattering cut."""
    c = pts.c
    m = dbl.bot_mid[j]
    cot_b = lc[0, 0]
    scatter_region2 = c[_SCATTER_ANGLE2] * (1.0 + cot_b * cot_b) * c[_SIGMA_SC] * c[_SIGMA_SC]
    err_max2 = dbl.mid_max[0, m] + lc[0, 5] + 2.0 * (abs(cot_b) * dbl.mid_max[2, m] * pts.sp[4, m] + pts.sp[5, m]) * \
        lc[0, 2] * dbl.mid_max[1, m]
    delta = math.sqrt(max(err_max2, 0.0)) + math.sqrt(scatter_region2) + 1e-9
    return m, scatter_region2, cot_b - delta, cot_b + delta


@cuda.jit(device=True)
def _test_tops(pts, dbl, job, out, n):
    """triplet_compatible for the gathered tops out[6][:count] of job = (middle, scattering
    region^2, count); passing ones go to rows base + step * n (n < capacity) of out = (top,
    curvature, impact, res[2], base, step, gathered tops, bottom lin-circle, top lin-circle
    scratch, capacity). Returns the updated n (all passing ones counted)."""
    c = pts.c
    m, scatter_region2, count = job
    res = out[3]
    lc_t = out[8]
    for q in range(count):
        it = out[6][q]
        _lin_circle_of(pts, m, dbl.top_sp[it], 1, lc_t)
        if triplet_compatible(out[7], 0, lc_t, 0, pts.sp[3, m], pts.sp[4, m], pts.sp[5, m], scatter_region2,
                              c[_MIN_HD2], c[_PT2_PER_R], c[_PT_PER_HR], c[_MAX_PT_SC], c[_HIGHLAND], c[_SIGMA_SC],
                              c[_IMPACT_MAX], res):
            if n < out[9]:
                row = out[4] + out[5] * n
                out[0][row] = it
                out[1][row] = res[0]
                out[2][row] = res[1]
            n += 1
    return n


@cuda.jit(device=True)
def _bottom_triplets(pts, dbl, j, out):
    """Triplets of bottom doublet j with the middle's tops inside its cot(theta) window (see
    :func:`_test_tops` for out). Each phi neighbour's tops are sorted by cot(theta): a binary
    search finds the window's start, as on the CPU. The window's tops are gathered _TOP_CHUNK at
    a time before the tests, so that a warp runs the tests together. Returns the count."""
    _lin_circle_of(pts, dbl.bot_mid[j], dbl.bot_sp[j], 0, out[7])
    m, scatter_region2, lo, hi = _top_window(pts, dbl, j, out[7])
    gathered = out[6]
    n = 0
    k = 0
    for p in range(3):
        end = dbl.off[0, 3 * m + p + 1]
        for it in range(lower_bound(dbl.top_cot, dbl.off[0, 3 * m + p], end, lo), end):
            if dbl.top_cot[it] > hi:
                break
            gathered[k] = it
            k += 1
            if k == _TOP_CHUNK:
                n = _test_tops(pts, dbl, (m, scatter_region2, k), out, n)
                k = 0
    return _test_tops(pts, dbl, (m, scatter_region2, k), out, n)


@cuda.jit(device=True)
def _sort_by_top_cot(dbl, trip, lo, hi):
    """Stable insertion sort of triplet rows [lo, hi) by their top's cot(theta): the order in which
    the CPU meets them (its tops sorted by cot(theta))."""
    for q in range(lo + 1, hi):
        top, curv, imp = trip.top[q], trip.curv[q], trip.imp[q]
        key = dbl.top_cot[top]
        p = q - 1
        while p >= lo and dbl.top_cot[trip.top[p]] > key:
            trip.top[p + 1], trip.curv[p + 1], trip.imp[p + 1] = trip.top[p], trip.curv[p], trip.imp[p]
            p -= 1
        trip.top[p + 1], trip.curv[p + 1], trip.imp[p + 1] = top, curv, imp


@cuda.jit(device=True)
def _fill_bottom(pts, dbl, trip, cand, j):
    """Triplets of bottom doublet j into rows [off[j], off[j + 1]): copied from the count kernel's
    candidates cand = (top, curvature, impact, scratch) when they all fit, else found again; then
    ordered by top cot(theta) and labelled with j."""
    lo = trip.off[j]
    hi = trip.off[j + 1]
    if hi - lo <= _TRIPLET_SLOTS:
        for q in range(hi - lo):
            trip.top[lo + q] = cand[0][j * _TRIPLET_SLOTS + q]
            trip.curv[lo + q] = cand[1][j * _TRIPLET_SLOTS + q]
            trip.imp[lo + q] = cand[2][j * _TRIPLET_SLOTS + q]
    else:
        res, gathered, lc_b, lc_t = cand[3]
        _bottom_triplets(pts, dbl, j, (trip.top, trip.curv, trip.imp, res, lo, 1, gathered, lc_b, lc_t, hi - lo))
    _sort_by_top_cot(dbl, trip, lo, hi)
    for i in range(lo, hi):
        trip.bot[i] = j


@cuda.jit(device=True)
def _new_radius(compat_r, n, rto, dr_min):
    for q in range(n):
        if abs(compat_r[q] - rto) < dr_min:
            return False
    return True


@cuda.jit(device=True)
def _compatible_weight(pts, dbl, trip, i, compat_r):
    """Seed-filter weight of triplet i from the compatible triplets of its bottom doublet."""
    c = pts.c
    r = pts.sp[3]
    j = trip.bot[i]
    rt = r[dbl.top_sp[trip.top[i]]]
    w = -trip.imp[i] * c[_IMPACT_WF]
    ncompat = 0
    for q in range(trip.off[j], trip.off[j + 1]):
        if q == i:
            continue
        rto = r[dbl.top_sp[trip.top[q]]]
        if abs(rt - rto) < c[_FILT_DR_MIN] or abs(trip.curv[q] - trip.curv[i]) > c[_D_INV_HD]:
            continue
        if _new_radius(compat_r, ncompat, rto, c[_FILT_DR_MIN]):
            compat_r[ncompat] = rto
            ncompat += 1
            w += c[_COMPAT_W]
        if ncompat >= int(c[_COMPAT_LIMIT]):
            break
    return w


@cuda.jit(device=True)
def _weigh_triplet(pts, dbl, trip, i, compat_r):
    """Weight with the experiment cuts of triplet i into trip.weight / trip.keep."""
    c = pts.c
    r = pts.sp[3]
    w = _compatible_weight(pts, dbl, trip, i, compat_r)
    rb = r[dbl.bot_sp[trip.bot[i]]]
    bonus = 0.0
    if rb > c[_GOOD_B_R]:
        bonus = c[_GOOD_B_W]
    if r[dbl.top_sp[trip.top[i]]] < c[_GOOD_T_R]:
        bonus = c[_GOOD_T_W]
    w += bonus
    trip.weight[i] = w
    trip.keep[i] = not (rb > c[_GOOD_B_R] and w < c[_GOOD_B_MIN_W])


@cuda.jit(device=True)
def _insert_best(slots, seg, i, w):
    """Insert triplet i of weight w into the middle's list seg = (base, kept, capacity), sorted
    by decreasing weight, ties keeping the earlier triplet."""
    base, n_kept, cap = seg
    pos = n_kept
    while pos > 0 and slots.weight[base + pos - 1] < w:
        pos -= 1
    if pos >= cap:
        return
    for q in range(min(n_kept, cap - 1), pos, -1):
        slots.trip[base + q] = slots.trip[base + q - 1]
        slots.weight[base + q] = slots.weight[base + q - 1]
    slots.trip[base + pos] = i
    slots.weight[base + pos] = w


@cuda.jit(device=True)
def _select_middle(pts, dbl, trip, slots, m):
    """Best triplets of middle m in the CPU's order (bottoms, then tops by cot(theta)), then the
    per-middle selection on all but the best when more than two passed."""
    c = pts.c
    cap = int(c[_MAX_SEEDS])
    base = m * cap
    ntrip = 0
    for i in range(trip.off[dbl.off[1, 3 * m]], trip.off[dbl.off[1, 3 * m + 3]]):
        if trip.keep[i]:
            _insert_best(slots, (base, min(ntrip, cap), cap), i, trip.weight[i])
            ntrip += 1
    if ntrip <= 2:
        return
    for kk in range(1, min(ntrip, cap)):
        b = dbl.bot_sp[trip.bot[slots.trip[base + kk]]]
        if not (slots.weight[base + kk] > c[_SEED_MIN_W] or pts.sp[3, b] > c[_SPB_MIN_R]):
            slots.trip[base + kk] = -1


@cuda.jit(device=True)
def _emit_seed(pts, dbl, trip, job, out):
    """Seed i of the output from kept slot kept[i], job = (slot triplets, kept, order, i, 1x6
    scratch): spacepoint indices through ``order``, weight, and z at the beam line (the bottom
    lin-circle's, as the CPU)."""
    slot_trip, kept, order, i, lc = job
    ti = slot_trip[kept[i]]
    j = trip.bot[ti]
    m = dbl.bot_mid[j]
    b = dbl.bot_sp[j]
    _lin_circle_of(pts, m, b, 0, lc)
    out.bottom[i] = order[b]
    out.middle[i] = order[m]
    out.top[i] = order[dbl.top_sp[trip.top[ti]]]
    out.weight[i] = trip.weight[ti]
    out.z_vertex[i] = lc[0, 1]


# ---------------------------------------------------------------- kernels

@lru_cache(maxsize=None)
def _grid_kernel():
    """bin_points (compiled per dtype on first launch)."""
    backend.cuda()  # the numpy shim, before the first compile

    @cuda.jit
    def bin_points(raw, binned, c):
        i = cuda.grid(1)
        if i < binned.cell.shape[0]:
            _bin_point(raw, binned, c, i)

    return bin_points


@lru_cache(maxsize=None)
def _doublet_kernels(dtype: str) -> tuple:
    """count_doublets (per side) and fill_doublets for one dtype (compiled on first launch)."""
    backend.cuda()  # the numpy shim, before the first compile
    real = _PRECISIONS[dtype]

    @cuda.jit(**backend.kernel_options("doublets"))
    def count_doublets(pts, cnt, buf, side):
        t = cuda.grid(1)
        if t < 3 * pts.sp.shape[1]:
            lc = cuda.local.array((1, 6), real)
            maxima = cuda.local.array(3, real)
            _count_job(pts, cnt, side * 3 * pts.sp.shape[1] + t, buf, (lc, maxima))

    @cuda.jit(**backend.kernel_options("doublets"))
    def fill_doublets(pts, dbl, buf):
        g = cuda.grid(1)
        if g < 6 * pts.sp.shape[1]:
            lc = cuda.local.array((1, 6), real)
            maxima = cuda.local.array(3, real)
            _fill_job(pts, dbl, g, buf, (lc, maxima))

    return count_doublets, fill_doublets


@lru_cache(maxsize=None)
def _triplet_kernels(dtype: str) -> tuple:
    """count_triplets, fill_triplets and triplet_weights for one dtype."""
    backend.cuda()  # the numpy shim, before the first compile
    real = _PRECISIONS[dtype]

    @cuda.jit(**backend.kernel_options("triplets"))
    def count_triplets(pts, dbl, cand, cnt):
        j = cuda.grid(1)
        if j < dbl.bot_mid.shape[0]:
            res = cuda.local.array(2, real)
            gathered = cuda.local.array(_TOP_CHUNK, np.int64)
            lcs = cuda.local.array((2, 1, 6), real)
            cnt[j] = _bottom_triplets(pts, dbl, j, (cand.top, cand.curv, cand.imp, res, j * _TRIPLET_SLOTS, 1,
                                                    gathered, lcs[0], lcs[1], _TRIPLET_SLOTS))

    @cuda.jit(**backend.kernel_options("triplets"))
    def fill_triplets(pts, dbl, trip, cand):
        j = cuda.grid(1)
        if j < dbl.bot_mid.shape[0]:
            res = cuda.local.array(2, real)
            gathered = cuda.local.array(_TOP_CHUNK, np.int64)
            lcs = cuda.local.array((2, 1, 6), real)
            _fill_bottom(pts, dbl, trip, (cand.top, cand.curv, cand.imp, (res, gathered, lcs[0], lcs[1])), j)

    @cuda.jit(**backend.kernel_options("triplets"))
    def triplet_weights(pts, dbl, trip):
        i = cuda.grid(1)
        if i < trip.top.shape[0]:
            compat_r = cuda.local.array(_COMPAT_CAPACITY, real)
            _weigh_triplet(pts, dbl, trip, i, compat_r)

    return count_triplets, fill_triplets, triplet_weights


@lru_cache(maxsize=None)
def _selection_kernel():
    """select_best (its source does not depend on the dtype)."""
    backend.cuda()  # the numpy shim, before the first compile

    @cuda.jit
    def select_best(pts, dbl, trip, slots):
        m = cuda.grid(1)
        if m < pts.sp.shape[1]:
            _select_middle(pts, dbl, trip, slots, m)

    return select_best


@lru_cache(maxsize=None)
def _emit_kernel(dtype: str):
    """emit_seeds for one dtype."""
    backend.cuda()  # the numpy shim, before the first compile
    real = _PRECISIONS[dtype]

    @cuda.jit
    def emit_seeds(pts, dbl, trip, sel, out):
        i = cuda.grid(1)
        if i < out.bottom.shape[0]:
            lc = cuda.local.array((1, 6), real)
            _emit_seed(pts, dbl, trip, (sel[0], sel[1], sel[2], i, lc), out)

    return emit_seeds


# ---------------------------------------------------------------- launches

# ---------------------------------------------------------------- host steps

def _host_ints(a) -> list:
    """Small device array -> list of ints (one host synchronisation)."""
    return [int(v) for v in a.tolist()]


@lru_cache(maxsize=16)
def _device_parameters(config: SeedingConfig, dtype: str):
    """The parameter vector on the device, once per configuration (read-only; complete before
    another stream reads it)."""
    return backend.device_constant(parameter_vector(config).astype(_PRECISIONS[dtype]))


def build_grid(sp: Spacepoints, config: SeedingConfig, dtype: str, events: tuple | None = None) -> tuple[Points, object]:
    """Spacepoints sorted by (event, phi-z cell, radius) with the out-of-region ones last (one
    stable sort of the bin kernel's key, and one by event for a batch), and the order (indices into
    ``sp``). ``events``: see :func:`find_seeds`. No host synchronisation."""
    xp = backend.xp()
    real = _real(dtype)
    n = len(sp.x)
    event, n_events = backend.checked_event_column(n, events, "spacepoint")
    n_phi, n_z = grid_shape(config)
    binned = Binned(xp.empty((6, n), real), xp.full((2, n_events), xp.inf, real), xp.empty(n, xp.int64),
                    xp.empty(n, xp.float64))
    raw = RawPoints(*(xp.asarray(a) for a in (sp.x, sp.y, sp.z, sp.var_r, sp.var_z)), event)
    c = _device_parameters(config, dtype)
    backend.launch(_grid_kernel(), n, raw, binned, c)
    order = xp.argsort(binned.key, kind="stable")
    if n_events > 1:  # then by event, the out-of-region ones (cell >= the sentinel) after all events
        order = order[xp.argsort(xp.minimum(binned.cell[order] // (n_phi * n_z), n_events), kind="stable")]
    bin_start = xp.searchsorted(binned.cell[order], xp.arange(n_events * n_phi * n_z + 1))
    return Points(binned.sp[:, order], bin_start.astype(xp.int64, copy=False), c, event[order],
                  binned.extremes), order


def _cap_counts(cnt):
    """Counts per (side, middle, phi neighbour) with each (side, middle) limited to the CPU's
    first _MAX_DOUBLETS doublets (scan order)."""
    xp = backend.xp()
    before = xp.cumsum(cnt, axis=2) - cnt
    return xp.minimum(cnt, xp.maximum(_MAX_DOUBLETS - before, 0))


def find_doublets(pts: Points, dtype: str) -> tuple[Doublets, int]:
    """Count (tops, then bottoms of middles with tops; each job keeps its first doublets),
    allocate and fill the middle-top and middle-bottom doublets; also returns the number of
    spacepoints in the seeding region."""
    xp = backend.xp()
    count, fill = _doublet_kernels(dtype)
    n = pts.sp.shape[1]
    real = _PRECISIONS[dtype]
    buf = ScanBuffer(xp.empty(6 * n * _DOUBLET_SLOTS, xp.int64), xp.empty(6 * n * _DOUBLET_SLOTS, real),
                     xp.empty((3, 3 * n), real), 0)
    cnt = xp.zeros((2, n, 3), dtype=xp.int64)  # [1]: tops, [0]: bottoms, as the side index
    backend.launch(count, 3 * n, pts, cnt, buf, 1)
    backend.launch(count, 3 * n, pts, cnt, buf, 0)
    off = xp.zeros((2, 3 * n + 1), dtype=xp.int64)  # [0]: tops, [1]: bottoms
    xp.cumsum(cnt[::-1].reshape(2, 3 * n), axis=1, out=off[:, 1:])
    n_top, n_bot, n_region, most = _host_ints(xp.concatenate((off[:, 3 * n], pts.bin_start[-1:],
                                                               cnt.sum(axis=2).max(keepdims=True).ravel())))
    if most > _MAX_DOUBLETS:
        xp.cumsum(_cap_counts(cnt)[::-1].reshape(2, 3 * n), axis=1, out=off[:, 1:])
        n_top, n_bot = _host_ints(off[:, 3 * n])
        buf = buf._replace(rescan=1)
    dbl = Doublets(off, xp.empty(n_top, xp.int64), xp.empty(n_top, real), xp.empty(n_bot, xp.int64),
                   xp.empty(n_bot, real), xp.empty(n_bot, xp.int64), xp.zeros((3, n), real))
    if n_bot:
        backend.launch(fill, 6 * n, pts, dbl, buf)
    return dbl, n_region


def find_triplets(pts: Points, dbl: Doublets, dtype: str) -> Triplets:
    """Count (keeping the first triplets of every middle-bottom doublet), allocate and fill the
    triplets, then their seed-filter weights."""
    xp = backend.xp()
    count, fill, weigh = _triplet_kernels(dtype)
    n_bot = dbl.bot_mid.shape[0]
    real = _PRECISIONS[dtype]
    off = xp.zeros(n_bot + 1, dtype=xp.int64)
    n_trip = 0
    if n_bot:
        cand = Candidates(xp.empty(n_bot * _TRIPLET_SLOTS, xp.int64), xp.empty(n_bot * _TRIPLET_SLOTS, real),
                          xp.empty(n_bot * _TRIPLET_SLOTS, real))
        cnt = xp.empty(n_bot, dtype=xp.int64)
        backend.launch(count, n_bot, pts, dbl, cand, cnt)
        xp.cumsum(cnt, out=off[1:])
        n_trip = _host_ints(off[-1:])[0]
    trip = Triplets(off, xp.empty(n_trip, xp.int64), xp.empty(n_trip, xp.int64), xp.empty(n_trip, real),
                    xp.empty(n_trip, real), xp.empty(n_trip, real), xp.empty(n_trip, xp.bool_))
    if n_trip:
        backend.launch(fill, n_bot, pts, dbl, trip, cand)
        backend.launch(weigh, n_trip, pts, dbl, trip)
    return trip


def select_seeds(pts: Points, dbl: Doublets, trip: Triplets, config: SeedingConfig, dtype: str) -> Slots:
    """The kept triplets of every middle, max_seeds_per_middle slots per middle (-1 if empty)."""
    xp = backend.xp()
    n = pts.sp.shape[1]
    cap = config.max_seeds_per_middle
    slots = Slots(xp.full(n * cap, -1, dtype=xp.int64), xp.zeros(n * cap, _PRECISIONS[dtype]))
    if trip.top.shape[0]:
        backend.launch(_selection_kernel(), n, pts, dbl, trip, slots)
    return slots


def seeds_from_slots(pts: Points, dbl: Doublets, trip: Triplets, slots: Slots, order) -> SeedColumns:
    """The kept slots as seed columns (indices into the input spacepoints through ``order``),
    ordered by middle and weight; one host synchronisation (the seed count)."""
    xp = backend.xp()
    kept = xp.flatnonzero(slots.trip >= 0)
    n = int(kept.shape[0])
    out = SeedColumns(xp.empty(n, xp.int64), xp.empty(n, xp.int64), xp.empty(n, xp.int64),
                      xp.empty(n, slots.weight.dtype), xp.empty(n, slots.weight.dtype))
    if n:
        backend.launch(_emit_kernel(slots.weight.dtype.name), n, pts, dbl, trip, (slots.trip, kept, order), out)
    return out


def find_seeds(sp: Spacepoints, config: SeedingConfig = SeedingConfig(), dtype: str = "float32",
               events: tuple | None = None) -> Seeds:
    """Triplet seeds of ``sp`` (device or host arrays) on the device; returns :class:`Seeds` with
    device arrays, indices into ``sp``, ordered by middle (grid order) and decreasing weight.

    ``events`` = (event of every spacepoint, number of events) seeds a batch of events at once:
    the spacepoints of all events, one after the other, each event with its own grid cells and
    radius extremes, so that every event gets the seeds it gets alone (as indices into the batch),
    the events' seeds one after the other. The stats are the batch's totals."""
    real = _real(dtype)
    _check_config(config)
    if len(sp.x) == 0:
        xp = backend.xp()
        empty = xp.zeros(0, xp.int64)
        return Seeds(empty, empty.copy(), empty.copy(), xp.zeros(0, real), xp.zeros(0, real),
                     {"bottom_doublets": 0, "top_doublets": 0, "triplets": 0, "middles": 0})
    pts, order = build_grid(sp, config, dtype, events)
    dbl, n_region = find_doublets(pts, dtype)
    trip = find_triplets(pts, dbl, dtype)
    slots = select_seeds(pts, dbl, trip, config, dtype)
    stats = {"bottom_doublets": int(dbl.bot_sp.shape[0]), "top_doublets": int(dbl.top_sp.shape[0]),
             "triplets": int(trip.top.shape[0]), "middles": n_region}
    return Seeds(*seeds_from_slots(pts, dbl, trip, slots, order), stats)


def canonical_order(seeds: Seeds):
    """Permutation that sorts seeds by (middle, bottom, top); works on host or device arrays."""
    xp = backend.xp() if not isinstance(seeds.middle, np.ndarray) else np
    return xp.lexsort(xp.stack((seeds.top, seeds.bottom, seeds.middle)))


def canonical(seeds: Seeds) -> Seeds:
    """The seeds sorted by (middle, bottom, top)."""
    p = canonical_order(seeds)
    return Seeds(seeds.bottom[p], seeds.middle[p], seeds.top[p], seeds.weight[p], seeds.z_vertex[p], seeds.stats)



def _host_array(a) -> np.ndarray:
    """A device (CuPy) or host array as a numpy array."""
    return np.asarray(a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a)


def _seed_coordinates(seeds: Seeds, sp: Spacepoints) -> np.ndarray:
    """(n, 9): x, y, z of the bottom, middle and top spacepoints."""
    idx = np.stack([_host_array(a).astype(np.int64) for a in (seeds.bottom, seeds.middle, seeds.top)], 1)
    xyz = np.stack([_host_array(a).astype(np.float64) for a in (sp.x, sp.y, sp.z)], 1)
    return xyz[idx].reshape(len(idx), 9)


def matching_rate(reference: Seeds, other: Seeds, sp: Spacepoints, tolerance: float) -> float:
    """traccc's seed matching rate: the fraction of reference seeds for which ``other`` holds a
    seed whose bottom, middle and top agree in x, y and z (|a - b| <= tolerance * (|a| + |b|) / 2),
    over the larger of the two seed counts."""
    n_max = max(len(reference), len(other))
    if n_max == 0:
        return 1.0
    a, b = _seed_coordinates(reference, sp), _seed_coordinates(other, sp)
    exact = {row.tobytes() for row in b}
    order = np.argsort(b[:, 3], kind="stable")
    bx = b[order, 3]
    matched = 0
    for row in a:
        if row.tobytes() in exact:
            matched += 1
            continue
        half = tolerance * abs(row[3]) / (1.0 - tolerance / 2) + 1e-12  # holds every tolerated middle x
        lo, hi = np.searchsorted(bx, row[3] - half, side="left"), np.searchsorted(bx, row[3] + half, side="right")
        cand = b[order[lo:hi]]
        matched += bool(np.all(np.abs(cand - row) <= tolerance * (np.abs(cand) + np.abs(row)) / 2, axis=1).any())
    return matched / n_max
