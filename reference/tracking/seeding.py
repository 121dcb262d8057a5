"""Triplet seeding (ACTS / traccc algorithm) on a phi-binned spacepoint grid.

Spacepoints inside the seeding region are binned in phi (bin width from the minimum-pT helix
deflection, as in traccc) and in z (50 mm), and sorted by radius inside each bin; the z range
searched for bottoms and tops follows from the collision region. For every middle spacepoint,
bottom and top doublets are searched in the neighbouring phi bins within the radial window
[deltaRMin, deltaRMax] and cut on cot(theta), z at the beam line and delta z; they are turned
into conformal "linear circle" coordinates and must allow a helix of at least the minimum
radius from the beam line (within impactMax) through both points. Triplets pass the scattering-compatible
cot(theta) cut, the minimum helix diameter (pT) cut and the impact-parameter cut. The seed
filter then weights each triplet with its compatible seeds (same curvature, other top radii)
and the ATLAS-style experiment cuts, and keeps at most ``max_seeds_per_middle`` per middle.

The doublet and triplet cuts are plain scalar functions shared with the CUDA port
(:mod:`reference.tracking.gpu.seeding`); the doublet cuts, the lin-circle and the helix
reachability have branch-free cores (``doublet_cut``, ``conformal``, ``helix_reachable``) that
the CPU applies to all candidates of a middle at once, a loop that LLVM vectorizes. The CPU
orders each middle's tops by cot(theta) with a bucket index, so that the cot(theta) window of a
bottom is found in constant time; only bottoms with a non-empty window are tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from reference.tracking.buckets import bucket_order
from reference.tracking.helix import C_LIGHT
from reference.tracking.spacepoints import Spacepoints


@dataclass(frozen=True)
class SeedingConfig:
    """Seed finder and filter settings; defaults are traccc's ``seedfinder_config`` and
    ``seedfilter_config``."""

    z_min_mm: float = -2000.0
    z_max_mm: float = 2000.0
    r_min_mm: float = 33.0  # used for the phi binning only
    r_max_mm: float = 200.0
    collision_min_mm: float = -250.0
    collision_max_mm: float = 250.0
    min_pt_gev: float = 0.5
    cot_theta_max: float = 27.2845
    delta_r_min_mm: float = 20.0
    delta_r_max_mm: float = 80.0
    delta_z_max_mm: float = 450.0
    impact_max_mm: float = 10.0
    sigma_scattering: float = 3.0
    max_pt_scattering_gev: float = 10.0
    max_seeds_per_middle: int = 5
    bz_tesla: float = 1.99724
    rad_length_per_seed: float = 0.05
    # seed filter
    delta_inv_helix_diameter_per_mm: float = 3e-5
    impact_weight_factor: float = 1.0
    compat_seed_weight: float = 200.0
    filter_delta_r_min_mm: float = 5.0
    compat_seed_limit: int = 2
    good_spb_min_radius_mm: float = 150.0
    good_spb_weight: float = 400.0
    good_spt_max_radius_mm: float = 150.0
    good_spt_weight: float = 200.0
    good_spb_min_weight: float = 380.0
    seed_min_weight: float = 200.0
    spb_min_radius_mm: float = 43.0

    @property
    def highland_gev(self) -> float:
        x = self.rad_length_per_seed
        return 0.0136 * math.sqrt(x) * (1.0 + 0.038 * math.log(x))

    @property
    def min_helix_radius_mm(self) -> float:
        return self.min_pt_gev / (C_LIGHT * self.bz_tesla)

    def phi_bin_count(self) -> int:
        """Number of phi bins (traccc's deflection-coverage formula)."""
        R = self.min_helix_radius_mm
        outer = math.asin(min(1.0, self.r_max_mm / (2 * R)))
        r_in = max(self.r_max_mm - self.delta_r_max_mm, self.impact_max_mm + 1e-3)
        inner = math.asin(min(1.0, r_in / (2 * R)))
        d_impact = math.asin(min(1.0, self.impact_max_mm / r_in)) - math.asin(min(1.0, self.impact_max_mm / self.r_max_mm))
        width = outer - inner + d_impact
        return max(1, int(2 * math.pi / width)) if width > 0 else 1


@dataclass(frozen=True)
class Seeds:
    """Triplet seeds: spacepoint indices (bottom, middle, top), weight and z at the beam line."""

    bottom: np.ndarray
    middle: np.ndarray
    top: np.ndarray
    weight: np.ndarray
    z_vertex: np.ndarray
    stats: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.bottom)


@njit(cache=True, inline="always")
def doublet_cut(mid, other, bottom, cuts):
    """Doublet cuts between a middle and an other spacepoint, without branches (a loop over
    candidates vectorizes): mid, other = (r, z); bottom: the other spacepoint is inside the
    middle; cuts = (delta_r_min, delta_r_max, cot_theta_max, coll_min, coll_max, delta_z_max)
    on the radial distance, cot(theta), z at the beam line and |delta z|. True if compatible."""
    r_m, z_m = mid
    r_o, z_o = other
    delta_r_min, delta_r_max, cot_theta_max, coll_min, coll_max, delta_z_max = cuts
    dr = r_m - r_o if bottom else r_o - r_m
    dz = z_m - z_o if bottom else z_o - z_m
    cot = dz / (dr if dr != 0.0 else r_m)  # dr = 0 fails the radial cut (delta_r_min > 0)
    z0 = z_m - r_m * cot
    return ((not dr < delta_r_min) & (not dr > delta_r_max) & (not abs(dz) > delta_z_max)
            & (not abs(cot) > cot_theta_max) & (z0 >= coll_min) & (z0 <= coll_max))


@njit(cache=True, inline="always")
def doublet_compatible(r_m, z_m, r_o, z_o, is_bottom, delta_r_min, delta_r_max, cot_theta_max,
                       coll_min, coll_max, delta_z_max):
    """Doublet cuts between a middle and an other (bottom or top) spacepoint (doublet_cut)."""
    return doublet_cut((r_m, z_m), (r_o, z_o), is_bottom,
                       (delta_r_min, delta_r_max, cot_theta_max, coll_min, coll_max, delta_z_max))


@njit(cache=True, inline="always")
def conformal(mid, other, sign):
    """Conformal ("linear circle") coordinates of the other spacepoint in the middle's frame:
    (cotTheta, Zo, iDeltaR, U, V, Er). mid = (x, y, z, r, var_r, var_z) of the middle, other =
    (x, y, z, var_r, var_z); sign = -1.0 for a bottom, +1.0 for a top."""
    x_m, y_m, z_m, r_m, var_r_m, var_z_m = mid
    x_o, y_o, z_o, var_r_o, var_z_o = other
    cphi = x_m / r_m
    sphi = y_m / r_m
    dx = x_o - x_m
    dy = y_o - y_m
    dz = z_o - z_m
    x = dx * cphi + dy * sphi
    y = dy * cphi - dx * sphi
    idr2 = 1.0 / (dx * dx + dy * dy)
    idr = math.sqrt(idr2)
    cot = dz * idr * sign
    return (cot, z_m - r_m * cot, idr, x * idr2, y * idr2,
            ((var_z_m + var_z_o) + cot * cot * (var_r_m + var_r_o)) * idr2)


@njit(cache=True, inline="always")
def lin_circle(x_m, y_m, z_m, r_m, var_r_m, var_z_m, x_o, y_o, z_o, var_r_o, var_z_o, is_bottom, out, row):
    """Conformal (U, V) coordinates of the other spacepoint in the middle's frame.

    out[row, 0:6] = cotTheta, Zo, iDeltaR, U, V, Er (see conformal).
    """
    lc = conformal((x_m, y_m, z_m, r_m, var_r_m, var_z_m), (x_o, y_o, z_o, var_r_o, var_z_o),
                   -1.0 if is_bottom else 1.0)
    out[row, 0] = lc[0]
    out[row, 1] = lc[1]
    out[row, 2] = lc[2]
    out[row, 3] = lc[3]
    out[row, 4] = lc[4]
    out[row, 5] = lc[5]


@njit(cache=True, inline="always")
def lower_bound(a, lo, hi, value):
    """First index in [lo, hi) with a[index] >= value (a sorted ascending); hi if none."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def distance_range(zm, zc_lo, zc_hi, cot_lo, cot_hi, sgn, d_lo, d_hi):
    """Radial distances D in [d_lo, d_hi] for which a spacepoint at radius rm + sgn * D can lie
    in the z slice [zc_lo, zc_hi] on a line from the middle (rm, zm) with cot(theta) in
    [cot_lo, cot_hi]. Returns (D_min, D_max); empty when D_min > D_max."""
    c1 = sgn * cot_lo
    c2 = sgn * cot_hi
    a = min(c1, c2)
    b = max(c1, c2)
    A = zc_hi - zm
    B = zc_lo - zm
    if a > 0.0:
        d_hi = min(d_hi, A / a)
    elif a < 0.0:
        d_lo = max(d_lo, A / a)
    elif A < 0.0:
        return 1.0, 0.0
    if b > 0.0:
        d_lo = max(d_lo, B / b)
    elif b < 0.0:
        d_hi = min(d_hi, B / b)
    elif B > 0.0:
        return 1.0, 0.0
    return d_lo, d_hi


@njit(cache=True, inline="always")
def helix_reachable(u, v, r_m, cuts):
    """Geometric doublet cut (ACTS interaction-point cut, traccc PR #1036 idea), without
    branches: some circle through the beam line (within +-impact_max), the middle at radius r_m
    and the other spacepoint at conformal (u, v) must have a diameter >= the minimum helix
    diameter; cuts = (impact_max, min_helix_diam2). The lines through the other point and the
    beam-line points -impact_max, 0, +impact_max are tested, and a straight line (infinite
    radius) between two of them (their intercepts change sign)."""
    impact_max, min_helix_diam2 = cuts
    u_ip = -1.0 / r_m
    v_abs = impact_max / (r_m * r_m)
    du = u - u_ip
    du_safe = du if du != 0.0 else 1.0  # du = 0: a line through the beam line, compatible
    v_ip0 = -1.0 * v_abs
    a0 = (v - v_ip0) / du_safe
    b0 = v_ip0 - a0 * u_ip
    v_ip1 = 0.0 * v_abs
    a1 = (v - v_ip1) / du_safe
    b1 = v_ip1 - a1 * u_ip
    a2 = (v - v_abs) / du_safe
    b2 = v_abs - a2 * u_ip
    return ((du == 0.0) | (b0 * b0 * min_helix_diam2 <= 1.0 + a0 * a0)
            | (b1 * b1 * min_helix_diam2 <= 1.0 + a1 * a1) | (b1 * b0 <= 0.0)
            | (b2 * b2 * min_helix_diam2 <= 1.0 + a2 * a2) | (b2 * b1 <= 0.0))


@njit(cache=True, inline="always")
def doublet_helix_compatible(lc, row, r_m, impact_max, min_helix_diam2):
    """Geometric doublet cut for the doublet whose lin-circle is lc[row] (see helix_reachable)."""
    return helix_reachable(lc[row, 3], lc[row, 4], r_m, (impact_max, min_helix_diam2))


@njit(cache=True, inline="always")
def triplet_compatible(lbs, ib, lts, it, r_m, var_r_m, var_z_m, scatter_region2, min_helix_diam2, pt2_per_radius,
                       pt_per_helix_radius, max_pt_scattering, highland, sigma_scattering, impact_max, out):
    """Triplet cuts for bottom lin-circle lbs[ib] and top lin-circle lts[it]; out[0:2] =
    curvature (inverse helix diameter, signed) and impact parameter. Returns True if
    compatible. The minimum-pT (curvature) cut comes first: it rejects about 70 % of the
    triplets tested in a mu = 200 event and needs no square root."""
    du = lts[it, 3] - lbs[ib, 3]
    if du == 0.0:
        return False
    A = (lts[it, 4] - lbs[ib, 4]) / du
    S2 = 1.0 + A * A
    B = lbs[ib, 4] - A * lbs[ib, 3]
    B2 = B * B
    if S2 < B2 * min_helix_diam2:
        return False
    cot_b = lbs[ib, 0]
    i_sin2 = 1.0 + cot_b * cot_b
    error2 = lts[it, 5] + lbs[ib, 5] + 2.0 * (cot_b * lts[it, 0] * var_r_m + var_z_m) * lbs[ib, 2] * lts[it, 2]
    dcot = cot_b - lts[it, 0]
    dcot2 = dcot * dcot
    error = math.sqrt(max(error2, 0.0))
    dcot_minus_err2 = dcot2 + error2 - 2.0 * abs(dcot) * error
    if dcot2 - error2 > 0.0 and dcot_minus_err2 > scatter_region2:
        return False
    i_helix_diam2 = B2 / S2
    if B2 > 0.0:
        pt = pt_per_helix_radius * math.sqrt(S2 / B2) / 2.0
    else:
        pt = 1e30
    if pt > max_pt_scattering:
        s = highland / max_pt_scattering * sigma_scattering
        p2scatter = s * s * i_sin2
    else:
        p2scatter = 4.0 * i_helix_diam2 * pt2_per_radius * i_sin2 * sigma_scattering * sigma_scattering
    if dcot2 - error2 > 0.0 and dcot_minus_err2 > p2scatter:
        return False
    im = abs((A - B * r_m) * r_m)
    if im > impact_max:
        return False
    out[0] = B / math.sqrt(S2)
    out[1] = im
    return True


# ----------------------------------------------------------------------------------------------
# CPU seed finder. Hot loops stay inside _find_seeds or in helpers called once per middle and
# side: numba passes arrays to a helper with reference counting, which costs more than a
# candidate's cuts when a helper with loops is called per candidate.

_MAXD = 2048  # doublets kept per middle and side, triplet candidates per bottom doublet
_Z_BIN_MM = 50.0  # z bin of the grid
_N_BUCKETS = 4  # cot(theta) buckets per top of the bucket index


@njit(cache=True, inline="always")
def _z_window(zm, rm, side, dr, coll):
    """z range of the compatible bottoms (side 0) or tops (side 1) of a middle at (rm, zm): lines
    through the collision region coll = (min, max) at radial distances dr = (min, max); the
    extremes lie at the corners."""
    lo = 1e30
    hi = -1e30
    for d in dr:
        for z0 in coll:
            cot0 = (zm - z0) / rm
            zo = zm - d * cot0 if side == 0 else zm + d * cot0
            lo = min(lo, zo)
            hi = max(hi, zo)
    return lo, hi


@njit(cache=True, inline="always")
def _radial_window(rm, side, d_lo, d_hi):
    """Radii at radial distances [d_lo, d_hi] inside (side 0) or outside (side 1) the middle."""
    if side == 0:
        return rm - d_hi, rm - d_lo
    return rm + d_lo, rm + d_hi


@njit(cache=True, error_model="numpy")
def _doublet_pass(buf, n, mid, cuts):
    """Doublet cuts, lin-circle and helix reachability of the n gathered candidates of a middle,
    buf[6:12, :n] = x, y, z, r, var_r, var_z, without branches (LLVM vectorizes the loop; the
    numpy error model drops the zero-division checks): buf[0:6] = lin-circle (buf.T is a
    lin-circle array as triplet_compatible takes it), buf[12] = 1.0 for a compatible doublet.
    mid = (x, y, z, r, var_r, var_z, side); cuts = (doublet cuts, (impact_max, min_helix_diam2))."""
    x_m, y_m, z_m, r_m, var_r_m, var_z_m, side = mid
    dcuts, hcuts = cuts
    bottom = side == 0
    sign = -1.0 if bottom else 1.0
    for i in range(n):
        ok = doublet_cut((r_m, z_m), (buf[9, i], buf[8, i]), bottom, dcuts)
        cot, zo, idr, u, v, er = conformal((x_m, y_m, z_m, r_m, var_r_m, var_z_m),
                                           (buf[6, i], buf[7, i], buf[8, i], buf[10, i], buf[11, i]), sign)
        buf[0, i] = cot
        buf[1, i] = zo
        buf[2, i] = idr
        buf[3, i] = u
        buf[4, i] = v
        buf[5, i] = er
        buf[12, i] = 1.0 if ok & helix_reachable(u, v, r_m, hcuts) else 0.0


@njit(cache=True, error_model="numpy")
def _window_bounds(buf, n, mid, scatter):
    """cot(theta) window of the triplets of the n bottom lin-circles buf[0:6, :n] (vectorized):
    buf[13] = scattering region squared, buf[14], buf[15] = cot(theta) -+ delta, delta from the
    scattering cut with the largest error of any top. mid = (var_r, var_z of the middle, maxima
    of the tops' Er, |cot(theta)|, 1/deltaR); scatter = (scattering angle squared at the minimum
    pT, sigma_scattering)."""
    var_rm, var_zm, er_t_max, cot_t_max, idr_t_max = mid
    scatter_angle2, sigma_sc = scatter
    for i in range(n):
        cot_b = buf[0, i]
        scatter_region2 = scatter_angle2 * (1.0 + cot_b * cot_b) * sigma_sc * sigma_sc
        err_max2 = er_t_max + buf[5, i] + 2.0 * (abs(cot_b) * cot_t_max * var_rm + var_zm) * buf[2, i] * idr_t_max
        delta = math.sqrt(max(err_max2, 0.0)) + math.sqrt(scatter_region2) + 1e-9
        buf[13, i] = scatter_region2
        buf[14, i] = cot_b - delta
        buf[15, i] = cot_b + delta


@njit(cache=True)
def _top_extremes(lc, nt):
    """Smallest and largest cot(theta) of the tops lc[:nt], and the maxima of their Er,
    1/deltaR and |cot(theta)| (for the triplet window)."""
    lo = np.inf
    hi = -np.inf
    er_max = 0.0
    idr_max = 0.0
    cot_max = 0.0
    for q in range(nt):
        lo = min(lo, lc[q, 0])
        hi = max(hi, lc[q, 0])
        er_max = max(er_max, lc[q, 5])
        idr_max = max(idr_max, lc[q, 2])
        cot_max = max(cot_max, abs(lc[q, 0]))
    return lo, hi, er_max, idr_max, cot_max


@njit(cache=True)
def _sort_tops(lc, nt, cot, order, bucket):
    """Order the tops lc[:nt] by cot(theta), stably: cot[1:nt + 1] = sorted values between the
    sentinels cot[0] = -inf and cot[nt + 1] = +inf, order[:nt] = their rows. Bucket sort over
    _N_BUCKETS * nt equal buckets from the smallest to the largest value, then insertion sort
    (values move only inside their bucket). bucket[0, j] = first position p whose bucket
    int((cot[p] - cot[1]) * inverse width) is >= j: the same (monotonic) bucket function of a
    value v gives a position at or before the first one with cot >= v (or > v). Returns the
    inverse bucket width and the maxima of the triplet window (_top_extremes)."""
    lo, hi, er_max, idr_max, cot_max = _top_extremes(lc, nt)
    nbk = _N_BUCKETS * nt
    inv_width = nbk / (hi - lo) if hi > lo else 0.0
    bucket[0, :nbk + 2] = 0
    for q in range(nt):
        bucket[0, int(min(max((lc[q, 0] - lo) * inv_width, 0.0), 1.0 * nbk)) + 1] += 1
    bucket[0, 0] = 1
    for j in range(1, nbk + 1):
        bucket[0, j] += bucket[0, j - 1]
    bucket[1, :nbk + 1] = bucket[0, :nbk + 1]
    for q in range(nt):
        j = int(min(max((lc[q, 0] - lo) * inv_width, 0.0), 1.0 * nbk))
        p = bucket[1, j]
        bucket[1, j] = p + 1
        cot[p] = lc[q, 0]
        order[p - 1] = q
    cot[0] = -np.inf
    cot[nt + 1] = np.inf
    for p in range(2, nt + 1):
        cq = cot[p]
        oq = order[p - 1]
        j = p - 1
        while cot[j] > cq:
            cot[j + 1] = cot[j]
            order[j] = order[j - 1]
            j -= 1
        cot[j + 1] = cq
        order[j] = oq
    return inv_width, er_max, idr_max, cot_max


@njit(cache=True, inline="always")
def _cot_position(cot, bucket, value, index, above):
    """First position p of the sorted values cot[1:nt + 1] (sentinels -inf and +inf around
    them) with cot[p] >= value (above: cot[p] > value): the bucket index of _sort_tops, one
    step without a branch (most buckets hold at most one value), then a scan. index = (inverse
    bucket width, nt)."""
    inv_width, nt = index
    p = bucket[0, int(min(max((value - cot[1]) * inv_width, 0.0), 1.0 * _N_BUCKETS * nt))]
    if above:
        p += cot[p] <= value
        while cot[p] <= value:
            p += 1
    else:
        p += cot[p] < value
        while cot[p] < value:
            p += 1
    return p


@njit(cache=True)
def _has_ties(cot, nt):
    """Whether the sorted values cot[1:nt + 1] hold equal neighbours."""
    for p in range(1, nt):
        if cot[p] == cot[p + 1]:
            return True
    return False


@njit(cache=True)
def _grid_order(cell, r, n_cells):
    """Permutation ordering points by (cell, radius), stable as numpy's lexsort((r, cell)):
    counting sort by cell, then by radius inside each cell; and the first point of every cell
    (n_cells + 1 entries)."""
    order, start = bucket_order(cell, n_cells)
    for j in range(n_cells):
        a = start[j]
        e = start[j + 1]
        if e - a > 64:
            order[a:e] = order[a:e][np.argsort(r[order[a:e]], kind="mergesort")]
        else:
            _insertion_sort_by(order, a, e, r)
    return order, start


@njit(cache=True, inline="always")
def _insertion_sort_by(order, a, e, key):
    """Stable insertion sort of order[a:e] by key[order]."""
    for p in range(a + 1, e):
        i = order[p]
        q = p - 1
        while q >= a and key[order[q]] > key[i]:
            order[q + 1] = order[q]
            q -= 1
        order[q + 1] = i


@njit(cache=True)
def _find_seeds(x, y, z, r, var_r, var_z, bin_start, c):
    # spacepoints in grid order (phi-z cell, then radius; bin_start: first one of every cell);
    # c: float parameter vector (see cut_vector)
    (delta_r_min, delta_r_max, cot_max, coll_min, coll_max, dz_max, impact_max, sigma_sc, max_pt_sc,
     highland, pt_per_hr, min_hd2, pt2_per_r, scatter_angle2, d_inv_hd, impact_wf, compat_w,
     filt_dr_min, compat_limit, good_b_r, good_b_w, good_t_r, good_t_w, good_b_min_w, seed_min_w,
     spb_min_r, max_seeds) = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11],
                              c[12], c[13], c[14], c[15], c[16], c[17], int(c[18]), c[19], c[20], c[21],
                              c[22], c[23], c[24], c[25], int(c[26]))
    n_phi, n_z, z_lo, z_bin = int(c[27]), int(c[28]), c[29], c[30]
    n = x.shape[0]
    MAXD = _MAXD
    max_seeds_total = n * max_seeds
    out_b = np.empty(max_seeds_total, np.int64)
    out_m = np.empty(max_seeds_total, np.int64)
    out_t = np.empty(max_seeds_total, np.int64)
    out_w = np.empty(max_seeds_total)
    out_z = np.empty(max_seeds_total)
    ns = 0
    stats = np.zeros(4, np.int64)  # doublet candidates scanned, bottoms, tops, triplet tests
    # candidates of a middle and side: grid index; lin-circle (rows 0-5), coordinates (6-11),
    # compatible flag (12), scattering region squared and cot(theta) window of a bottom (13-15)
    cand_k = np.empty(n + 1, np.int64)
    gbuf = np.empty((16, n + 1))
    bot_lc = gbuf.T  # the candidates' lin-circles as rows (triplet_compatible's layout)
    bot_cand = np.empty(MAXD + 1, np.int64)  # compatible bottom doublets: candidate index
    top_idx = np.empty(MAXD, np.int64)
    top_lc = np.empty((MAXD, 6))
    top_cot = np.empty(MAXD + 2)  # tops' cot(theta) in order, between -inf and +inf
    top_order = np.empty(MAXD, np.int64)
    bucket = np.empty((2, _N_BUCKETS * MAXD + 2), np.int64)
    win = np.empty((MAXD, 3), np.int64)  # bottoms with tops in their window: candidate, first, end
    cand_t = np.empty(MAXD, np.int64)
    cand_curv = np.empty(MAXD)
    cand_imp = np.empty(MAXD)
    # best max_seeds triplets of the current middle (kept sorted by weight, streaming)
    trip_b = np.empty(max_seeds + 1, np.int64)
    trip_t = np.empty(max_seeds + 1, np.int64)
    trip_w = np.empty(max_seeds + 1)
    trip_z = np.empty(max_seeds + 1)
    res = np.empty(2)
    compat_r = np.empty(max(16, compat_limit))
    tw = 2.0 * math.pi / n_phi
    cuts = ((delta_r_min, delta_r_max, cot_max, coll_min, coll_max, dz_max), (impact_max, min_hd2))
    r_sp_min = 1e30
    r_sp_max = -1e30
    for k in range(n):
        r_sp_min = min(r_sp_min, r[k])
        r_sp_max = max(r_sp_max, r[k])
    for im in range(n):
        rm = r[im]
        # no bottom or no top can exist for this middle radius
        if rm - delta_r_min < r_sp_min or rm + delta_r_min > r_sp_max:
            continue
        xm = x[im]
        ym = y[im]
        zm = z[im]
        ipm = min(int((math.atan2(ym, xm) + math.pi) / tw), n_phi - 1)
        nb = 0
        nt = 0
        inv_width = er_t_max = idr_t_max = cot_t_max = 0.0
        cot0_lo = (zm - coll_max) / rm
        cot0_hi = (zm - coll_min) / rm
        # tops first: middles on the outermost seeding layers have bottoms but no tops
        for side in (1, 0):
            lo_z, hi_z = _z_window(zm, rm, side, (delta_r_min, delta_r_max), (coll_min, coll_max))
            r_lo_all, r_hi_all = _radial_window(rm, side, delta_r_min, delta_r_max)
            iz0 = max(int(math.floor((lo_z - z_lo) / z_bin)), 0)
            iz1 = min(int(math.floor((hi_z - z_lo) / z_bin)), n_z - 1)
            # gather the candidates: neighbour phi bins, z slices, radial range of each slice
            n_cand = 0
            for dphi in range(-1, 2):
                if n_phi < 3 and dphi != 0:
                    continue
                ipb = (ipm + dphi) % n_phi
                for iz in range(iz0, iz1 + 1):
                    a = bin_start[ipb * n_z + iz]
                    e = bin_start[ipb * n_z + iz + 1]
                    # empty, or all radii outside the radial window (ordered by radius)
                    if a == e or r[e - 1] < r_lo_all or r[a] > r_hi_all:
                        continue
                    # radial distances compatible with this z slice and the collision region
                    d_lo, d_hi = distance_range(zm, z_lo + iz * z_bin, z_lo + (iz + 1) * z_bin, cot0_lo, cot0_hi,
                                                -1.0 if side == 0 else 1.0, delta_r_min, delta_r_max)
                    if d_lo > d_hi:
                        continue
                    r_lo, r_hi = _radial_window(rm, side, d_lo, d_hi)
                    for k in range(lower_bound(r, a, e, r_lo), e):
                        if r[k] > r_hi:
                            break
                        gbuf[6, n_cand] = x[k]
                        gbuf[7, n_cand] = y[k]
                        gbuf[8, n_cand] = z[k]
                        gbuf[9, n_cand] = r[k]
                        gbuf[10, n_cand] = var_r[k]
                        gbuf[11, n_cand] = var_z[k]
                        cand_k[n_cand] = k
                        n_cand += 1
            stats[0] += n_cand
            # doublet cuts, lin-circles, helix reachability: all candidates at once
            _doublet_pass(gbuf, n_cand, (xm, ym, zm, rm, var_r[im], var_z[im], side), cuts)
            if side == 1:
                for jc in range(n_cand):  # keep the compatible ones, the first MAXD
                    if nt < MAXD:
                        top_idx[nt] = cand_k[jc]
                        for col in range(6):
                            top_lc[nt, col] = gbuf[col, jc]
                        nt += gbuf[12, jc] > 0.0
                if nt == 0:
                    break
                # tops ordered by cot(theta) with a bucket index: only a narrow cot window
                # around each bottom's cot(theta) can pass the scattering cut
                inv_width, er_t_max, idr_t_max, cot_t_max = _sort_tops(top_lc, nt, top_cot, top_order, bucket)
                if nt > 24 and _has_ties(top_cot, nt):
                    perm = np.argsort(top_lc[:nt, 0])  # the order of equal values of the former quicksort
                    for q in range(nt):
                        top_order[q] = perm[q]
                continue
            _window_bounds(gbuf, n_cand, (var_r[im], var_z[im], er_t_max, cot_t_max, idr_t_max),
                           (scatter_angle2, sigma_sc))
            for jc in range(n_cand):  # the compatible bottoms, the first MAXD
                bot_cand[nb] = jc
                nb += (gbuf[12, jc] > 0.0) & (nb < MAXD)
        stats[1] += nb
        stats[2] += nt
        if nb == 0:
            continue
        # the tops in every bottom's cot(theta) window: sorted positions [first, end) (p = index
        # + 1 in top_cot); only the bottoms with a non-empty window are listed
        n_win = 0
        for ib in range(nb):
            jc = bot_cand[ib]
            p0 = _cot_position(top_cot, bucket, gbuf[14, jc], (inv_width, nt), False)
            p1 = _cot_position(top_cot, bucket, gbuf[15, jc], (inv_width, nt), True)
            win[n_win, 0] = jc
            win[n_win, 1] = p0
            win[n_win, 2] = p1
            n_win += p1 > p0
            stats[3] += p1 - p0
        ntrip = 0
        for iw in range(n_win):
            ib = win[iw, 0]
            nc = 0
            for p in range(win[iw, 1], win[iw, 2]):
                it = top_order[p - 1]
                if triplet_compatible(bot_lc, ib, top_lc, it, rm, var_r[im], var_z[im], gbuf[13, ib], min_hd2,
                                      pt2_per_r, pt_per_hr, max_pt_sc, highland, sigma_sc, impact_max, res):
                    if nc < MAXD:
                        cand_t[nc] = it
                        cand_curv[nc] = res[0]
                        cand_imp[nc] = res[1]
                        nc += 1
            # seed filter (2 spacepoints fixed): compatible seeds with other top radii
            rb = r[cand_k[ib]]
            for i in range(nc):
                rt = r[top_idx[cand_t[i]]]
                w = -cand_imp[i] * impact_wf
                ncompat = 0
                for j in range(nc):
                    if i == j:
                        continue
                    rto = r[top_idx[cand_t[j]]]
                    if abs(rt - rto) < filt_dr_min:
                        continue
                    if abs(cand_curv[j] - cand_curv[i]) > d_inv_hd:
                        continue
                    new = True
                    for q in range(ncompat):
                        if abs(compat_r[q] - rto) < filt_dr_min:
                            new = False
                            break
                    if new:
                        compat_r[ncompat] = rto
                        ncompat += 1
                        w += compat_w
                    if ncompat >= compat_limit:
                        break
                # experiment cuts (ATLAS style, as in traccc)
                bonus = 0.0
                if rb > good_b_r:
                    bonus = good_b_w
                if rt < good_t_r:
                    bonus = good_t_w
                w += bonus
                if rb > good_b_r and w < good_b_min_w:
                    continue
                # insert into the best-max_seeds list (ties keep the earlier triplet)
                n_kept = min(ntrip, max_seeds)
                pos = n_kept
                while pos > 0 and trip_w[pos - 1] < w:
                    pos -= 1
                ntrip += 1
                if pos >= max_seeds:
                    continue
                last = min(n_kept, max_seeds - 1)
                for q in range(last, pos, -1):
                    trip_b[q] = trip_b[q - 1]
                    trip_t[q] = trip_t[q - 1]
                    trip_w[q] = trip_w[q - 1]
                    trip_z[q] = trip_z[q - 1]
                trip_b[pos] = cand_k[ib]
                trip_t[pos] = top_idx[cand_t[i]]
                trip_w[pos] = w
                trip_z[pos] = gbuf[1, ib]
        # per-middle selection (ATLAS-style cut on all but the best seed when > 2 triplets)
        for kk in range(min(ntrip, max_seeds)):
            if ntrip > 2 and kk > 0:
                if not (trip_w[kk] > seed_min_w or r[trip_b[kk]] > spb_min_r):
                    continue
            out_b[ns] = trip_b[kk]
            out_m[ns] = im
            out_t[ns] = trip_t[kk]
            out_w[ns] = trip_w[kk]
            out_z[ns] = trip_z[kk]
            ns += 1
    return out_b[:ns], out_m[:ns], out_t[:ns], out_w[:ns], out_z[:ns], stats


def cut_vector(config: SeedingConfig, n_phi: int, n_z: int) -> np.ndarray:
    """Cuts and derived constants of _find_seeds, then the grid's n_phi, n_z, z_min, z bin."""
    cfg = config
    pt_per_hr = C_LIGHT * cfg.bz_tesla
    return np.array([
        cfg.delta_r_min_mm, cfg.delta_r_max_mm, cfg.cot_theta_max, cfg.collision_min_mm, cfg.collision_max_mm,
        cfg.delta_z_max_mm, cfg.impact_max_mm, cfg.sigma_scattering, cfg.max_pt_scattering_gev,
        cfg.highland_gev, pt_per_hr, (2 * cfg.min_helix_radius_mm) ** 2, (cfg.highland_gev / pt_per_hr) ** 2,
        (cfg.highland_gev / cfg.min_pt_gev) ** 2, cfg.delta_inv_helix_diameter_per_mm, cfg.impact_weight_factor,
        cfg.compat_seed_weight, cfg.filter_delta_r_min_mm, cfg.compat_seed_limit, cfg.good_spb_min_radius_mm,
        cfg.good_spb_weight, cfg.good_spt_max_radius_mm, cfg.good_spt_weight, cfg.good_spb_min_weight,
        cfg.seed_min_weight, cfg.spb_min_radius_mm, cfg.max_seeds_per_middle, n_phi, n_z, cfg.z_min_mm,
        _Z_BIN_MM], dtype=np.float64)


def grid_shape(config: SeedingConfig) -> tuple[int, int]:
    """(n_phi, n_z): phi bins and z bins of _Z_BIN_MM over the collision region's z range."""
    return config.phi_bin_count(), max(1, int(math.ceil((config.z_max_mm - config.z_min_mm) / _Z_BIN_MM)))


def _grid(sp: Spacepoints, config: SeedingConfig) -> tuple:
    """Spacepoints of the seeding region in grid order (phi-z cell, then radius, as
    np.lexsort((r, cell))): their indices into ``sp``, the columns x, y, z, r, var_r, var_z
    (float64), the first spacepoint of every cell and the grid shape (n_phi, n_z)."""
    r_all = np.hypot(sp.x, sp.y)
    sel = np.nonzero((r_all <= config.r_max_mm) & (sp.z >= config.z_min_mm) & (sp.z <= config.z_max_mm)
                     & np.isfinite(r_all))[0]
    n_phi, n_z = grid_shape(config)
    phi = np.arctan2(sp.y[sel], sp.x[sel])
    ip = np.clip(((phi + np.pi) / (2 * np.pi / n_phi)).astype(np.int64), 0, n_phi - 1)
    iz = np.clip(((sp.z[sel] - config.z_min_mm) / _Z_BIN_MM).astype(np.int64), 0, n_z - 1)
    order, bin_start = _grid_order(ip * n_z + iz, r_all[sel], n_phi * n_z)
    idx = sel[order]
    columns = tuple(np.ascontiguousarray(np.asarray(a)[idx], np.float64)
                    for a in (sp.x, sp.y, sp.z, r_all, sp.var_r, sp.var_z))
    return idx, columns, bin_start, (n_phi, n_z)


def find_seeds(sp: Spacepoints, config: SeedingConfig = SeedingConfig()) -> Seeds:
    """Find triplet seeds among the spacepoints; returns indices into ``sp``."""
    idx, columns, bin_start, (n_phi, n_z) = _grid(sp, config)
    b, m, t, w, zv, stats = _find_seeds(*columns, bin_start, cut_vector(config, n_phi, n_z))
    counters = {"doublet_candidates": int(stats[0]), "bottom_doublets": int(stats[1]), "top_doublets": int(stats[2]),
                "triplet_tests": int(stats[3]), "middles": len(idx)}
    return Seeds(idx[b], idx[m], idx[t], w, zv, counters)
