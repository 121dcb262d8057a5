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
The doublet and triplet cuts are plain scalar functions shared with a future CUDA port.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

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
def doublet_compatible(r_m, z_m, r_o, z_o, is_bottom, delta_r_min, delta_r_max, cot_theta_max,
                       coll_min, coll_max, delta_z_max):
    """Doublet cuts between a middle and an other (bottom or top) spacepoint."""
    if is_bottom:
        dr = r_m - r_o
        dz = z_m - z_o
    else:
        dr = r_o - r_m
        dz = z_o - z_m
    if dr < delta_r_min or dr > delta_r_max:
        return False
    if abs(dz) > delta_z_max:
        return False
    cot = dz / dr
    if abs(cot) > cot_theta_max:
        return False
    z0 = z_m - r_m * cot
    return z0 >= coll_min and z0 <= coll_max


@njit(cache=True, inline="always")
def lin_circle(x_m, y_m, z_m, r_m, var_r_m, var_z_m, x_o, y_o, z_o, var_r_o, var_z_o, is_bottom, out, row):
    """Conformal (U, V) coordinates of the other spacepoint in the middle's frame.

    out[row, 0:6] = cotTheta, Zo, iDeltaR, U, V, Er.
    """
    cphi = x_m / r_m
    sphi = y_m / r_m
    dx = x_o - x_m
    dy = y_o - y_m
    dz = z_o - z_m
    x = dx * cphi + dy * sphi
    y = dy * cphi - dx * sphi
    idr2 = 1.0 / (dx * dx + dy * dy)
    idr = math.sqrt(idr2)
    f = -1.0 if is_bottom else 1.0
    cot = dz * idr * f
    out[row, 0] = cot
    out[row, 1] = z_m - r_m * cot
    out[row, 2] = idr
    out[row, 3] = x * idr2
    out[row, 4] = y * idr2
    out[row, 5] = ((var_z_m + var_z_o) + cot * cot * (var_r_m + var_r_o)) * idr2


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
def doublet_helix_compatible(lc, row, r_m, impact_max, min_helix_diam2):
    """Geometric doublet cut (ACTS interaction-point cut, traccc PR #1036 idea): some circle
    through the beam line (within +-impact_max), the middle and the other spacepoint must have
    a diameter >= the minimum helix diameter. lc[row] is the lin-circle of the doublet."""
    u_ip = -1.0 / r_m
    v_abs = impact_max / (r_m * r_m)
    du = lc[row, 3] - u_ip
    if du == 0.0:
        return True
    b_prev = 0.0
    for k in range(3):
        v_ip = (k - 1) * v_abs
        a = (lc[row, 4] - v_ip) / du
        b = v_ip - a * u_ip
        if b * b * min_helix_diam2 <= 1.0 + a * a:
            return True
        if k > 0 and b * b_prev <= 0.0:
            return True  # a straight line (infinite radius) is possible in between
        b_prev = b
    return False


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


@njit(cache=True)
def _find_seeds(x, y, z, r, var_r, var_z, bin_start, n_phi, n_z, z_lo, z_bin, c):
    # c: float parameter vector (see find_seeds)
    (delta_r_min, delta_r_max, cot_max, coll_min, coll_max, dz_max, impact_max, sigma_sc, max_pt_sc,
     highland, pt_per_hr, min_hd2, pt2_per_r, scatter_angle2, d_inv_hd, impact_wf, compat_w,
     filt_dr_min, compat_limit, good_b_r, good_b_w, good_t_r, good_t_w, good_b_min_w, seed_min_w,
     spb_min_r, max_seeds) = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11],
                              c[12], c[13], c[14], c[15], c[16], c[17], int(c[18]), c[19], c[20], c[21],
                              c[22], c[23], c[24], c[25], int(c[26]))
    n = x.shape[0]
    MAXD = 2048
    max_seeds_total = n * max_seeds
    out_b = np.empty(max_seeds_total, np.int64)
    out_m = np.empty(max_seeds_total, np.int64)
    out_t = np.empty(max_seeds_total, np.int64)
    out_w = np.empty(max_seeds_total)
    out_z = np.empty(max_seeds_total)
    ns = 0
    stats = np.zeros(4, np.int64)  # doublet candidates scanned, bottoms, tops, triplet tests
    bot_idx = np.empty(MAXD, np.int64)
    top_idx = np.empty(MAXD, np.int64)
    bot_lc = np.empty((MAXD, 6))
    top_lc = np.empty((MAXD, 6))
    top_cot = np.empty(MAXD)
    top_order = np.empty(MAXD, np.int64)
    cand_t = np.empty(MAXD, np.int64)
    cand_curv = np.empty(MAXD)
    cand_imp = np.empty(MAXD)
    # best max_seeds triplets of the current middle (kept sorted by weight, streaming)
    trip_b = np.empty(max_seeds + 1, np.int64)
    trip_t = np.empty(max_seeds + 1, np.int64)
    trip_w = np.empty(max_seeds + 1)
    trip_z = np.empty(max_seeds + 1)
    res = np.empty(2)
    compat_r = np.empty(16)
    tw = 2.0 * math.pi / n_phi
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
        ipm = int((math.atan2(ym, xm) + math.pi) / tw)
        if ipm >= n_phi:
            ipm = n_phi - 1
        nb = 0
        nt = 0
        # z windows of compatible bottoms / tops from the collision region (bilinear in
        # delta r and z0: extremes at the corners)
        zb_lo = 1e30
        zb_hi = -1e30
        zt_lo = 1e30
        zt_hi = -1e30
        cot0_lo = (zm - coll_max) / rm
        cot0_hi = (zm - coll_min) / rm
        for dr in (delta_r_min, delta_r_max):
            for z0 in (coll_min, coll_max):
                cot0 = (zm - z0) / rm
                zb = zm - dr * cot0
                zt = zm + dr * cot0
                zb_lo = min(zb_lo, zb)
                zb_hi = max(zb_hi, zb)
                zt_lo = min(zt_lo, zt)
                zt_hi = max(zt_hi, zt)
        # tops first: middles on the outermost seeding layers have bottoms but no tops
        for side in (1, 0):
            if side == 0 and nt == 0:
                break
            for dphi in range(-1, 2):
                if n_phi < 3 and dphi != 0:
                    continue
                ipb = (ipm + dphi) % n_phi
                if side == 0:
                    lo_z = zb_lo
                    hi_z = zb_hi
                    r_lo = rm - delta_r_max
                    r_hi = rm - delta_r_min
                else:
                    lo_z = zt_lo
                    hi_z = zt_hi
                    r_lo = rm + delta_r_min
                    r_hi = rm + delta_r_max
                iz0 = int(math.floor((lo_z - z_lo) / z_bin))
                iz1 = int(math.floor((hi_z - z_lo) / z_bin))
                if iz0 < 0:
                    iz0 = 0
                if iz1 >= n_z:
                    iz1 = n_z - 1
                for iz in range(iz0, iz1 + 1):
                    cell = ipb * n_z + iz
                    a = bin_start[cell]
                    e = bin_start[cell + 1]
                    if a == e:
                        continue
                    # radial distances compatible with this z slice and the collision region
                    d_lo, d_hi = distance_range(zm, z_lo + iz * z_bin, z_lo + (iz + 1) * z_bin, cot0_lo, cot0_hi,
                                                -1.0 if side == 0 else 1.0, delta_r_min, delta_r_max)
                    if d_lo > d_hi:
                        continue
                    if side == 0:
                        r_lo = rm - d_hi
                        r_hi = rm - d_lo
                    else:
                        r_lo = rm + d_lo
                        r_hi = rm + d_hi
                    k0 = lower_bound(r, a, e, r_lo)
                    for k in range(k0, e):
                        if r[k] > r_hi:
                            break
                        stats[0] += 1
                        if side == 0:
                            if nb < MAXD and doublet_compatible(rm, zm, r[k], z[k], True, delta_r_min, delta_r_max,
                                                                cot_max, coll_min, coll_max, dz_max):
                                bot_idx[nb] = k
                                lin_circle(xm, ym, zm, rm, var_r[im], var_z[im], x[k], y[k], z[k], var_r[k],
                                           var_z[k], True, bot_lc, nb)
                                if doublet_helix_compatible(bot_lc, nb, rm, impact_max, min_hd2):
                                    nb += 1
                        else:
                            if nt < MAXD and doublet_compatible(rm, zm, r[k], z[k], False, delta_r_min, delta_r_max,
                                                                cot_max, coll_min, coll_max, dz_max):
                                top_idx[nt] = k
                                lin_circle(xm, ym, zm, rm, var_r[im], var_z[im], x[k], y[k], z[k], var_r[k],
                                           var_z[k], False, top_lc, nt)
                                if doublet_helix_compatible(top_lc, nt, rm, impact_max, min_hd2):
                                    nt += 1
        stats[1] += nb
        stats[2] += nt
        if nb == 0 or nt == 0:
            continue
        ntrip = 0
        # tops ordered by cot(theta) (insertion sort, no allocation): only a narrow cot window
        # around each bottom's cot(theta) can pass the scattering cut
        er_t_max = 0.0
        idr_t_max = 0.0
        cot_t_max = 0.0
        if nt > 24:
            perm = np.argsort(top_lc[:nt, 0])
            for q in range(nt):
                top_order[q] = perm[q]
                top_cot[q] = top_lc[perm[q], 0]
        else:
            for q in range(nt):
                cq = top_lc[q, 0]
                j = q - 1
                while j >= 0 and top_cot[j] > cq:
                    top_cot[j + 1] = top_cot[j]
                    top_order[j + 1] = top_order[j]
                    j -= 1
                top_cot[j + 1] = cq
                top_order[j + 1] = q
        for q in range(nt):
            er_t_max = max(er_t_max, top_lc[q, 5])
            idr_t_max = max(idr_t_max, top_lc[q, 2])
            cot_t_max = max(cot_t_max, abs(top_lc[q, 0]))
        for ib in range(nb):
            cot_b = bot_lc[ib, 0]
            scatter_region2 = scatter_angle2 * (1.0 + cot_b * cot_b) * sigma_sc * sigma_sc
            err_max2 = er_t_max + bot_lc[ib, 5] + 2.0 * (abs(cot_b) * cot_t_max * var_r[im] + var_z[im]) * \
                bot_lc[ib, 2] * idr_t_max
            delta = math.sqrt(max(err_max2, 0.0)) + math.sqrt(scatter_region2) + 1e-9
            q0 = lower_bound(top_cot, 0, nt, cot_b - delta)
            nc = 0
            for qq in range(q0, nt):
                if top_cot[qq] > cot_b + delta:
                    break
                it = top_order[qq]
                stats[3] += 1
                if triplet_compatible(bot_lc, ib, top_lc, it, rm, var_r[im], var_z[im], scatter_region2, min_hd2,
                                      pt2_per_r, pt_per_hr, max_pt_sc, highland, sigma_sc, impact_max, res):
                    if nc < MAXD:
                        cand_t[nc] = it
                        cand_curv[nc] = res[0]
                        cand_imp[nc] = res[1]
                        nc += 1
            # seed filter (2 spacepoints fixed): compatible seeds with other top radii
            rb = r[bot_idx[ib]]
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
                trip_b[pos] = bot_idx[ib]
                trip_t[pos] = top_idx[cand_t[i]]
                trip_w[pos] = w
                trip_z[pos] = bot_lc[ib, 1]
        if ntrip == 0:
            continue
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


def find_seeds(sp: Spacepoints, config: SeedingConfig = SeedingConfig()) -> Seeds:
    """Find triplet seeds among the spacepoints; returns indices into ``sp``."""
    r_all = np.hypot(sp.x, sp.y)
    sel = np.nonzero((r_all <= config.r_max_mm) & (sp.z >= config.z_min_mm) & (sp.z <= config.z_max_mm)
                     & np.isfinite(r_all))[0]
    n_phi = config.phi_bin_count()
    z_bin = 50.0
    z_lo = config.z_min_mm
    n_z = max(1, int(math.ceil((config.z_max_mm - config.z_min_mm) / z_bin)))
    phi = np.arctan2(sp.y[sel], sp.x[sel])
    ip = np.clip(((phi + np.pi) / (2 * np.pi / n_phi)).astype(np.int64), 0, n_phi - 1)
    iz = np.clip(((sp.z[sel] - z_lo) / z_bin).astype(np.int64), 0, n_z - 1)
    cell = ip * n_z + iz
    order = np.lexsort((r_all[sel], cell))
    idx = sel[order]
    bin_start = np.searchsorted(cell[order], np.arange(n_phi * n_z + 1)).astype(np.int64)
    cfg = config
    pt_per_hr = C_LIGHT * cfg.bz_tesla
    params = np.array([
        cfg.delta_r_min_mm, cfg.delta_r_max_mm, cfg.cot_theta_max, cfg.collision_min_mm, cfg.collision_max_mm,
        cfg.delta_z_max_mm, cfg.impact_max_mm, cfg.sigma_scattering, cfg.max_pt_scattering_gev,
        cfg.highland_gev, pt_per_hr, (2 * cfg.min_helix_radius_mm) ** 2, (cfg.highland_gev / pt_per_hr) ** 2,
        (cfg.highland_gev / cfg.min_pt_gev) ** 2, cfg.delta_inv_helix_diameter_per_mm, cfg.impact_weight_factor,
        cfg.compat_seed_weight, cfg.filter_delta_r_min_mm, cfg.compat_seed_limit, cfg.good_spb_min_radius_mm,
        cfg.good_spb_weight, cfg.good_spt_max_radius_mm, cfg.good_spt_weight, cfg.good_spb_min_weight,
        cfg.seed_min_weight, cfg.spb_min_radius_mm, cfg.max_seeds_per_middle], dtype=np.float64)
    b, m, t, w, zv, stats = _find_seeds(np.ascontiguousarray(sp.x[idx], np.float64), np.ascontiguousarray(sp.y[idx], np.float64),
                                 np.ascontiguousarray(sp.z[idx], np.float64), np.ascontiguousarray(r_all[idx]),
                                 np.ascontiguousarray(sp.var_r[idx], np.float64),
                                 np.ascontiguousarray(sp.var_z[idx], np.float64), bin_start, n_phi, n_z, z_lo,
                                 z_bin, params)
    counters = {"doublet_candidates": int(stats[0]), "bottom_doublets": int(stats[1]), "top_doublets": int(stats[2]),
                "triplet_tests": int(stats[3]), "middles": len(idx)}
    return Seeds(idx[b], idx[m], idx[t], w, zv, counters)
