"""Combinatorial Kalman filter (track finding) from seed parameters.

For every seed (highest weight first) the filter starts on the seed's bottom layer and moves
outwards layer by layer: the helix is intersected with every layer surface to find the next
one (outgoing crossings, at most half a loop); measurements of that layer inside a window around
the intersection are candidates (on the layers of the seed's own spacepoints only the seed
measurement is tried, "stay on seed"). Each candidate's predicted chi2 is computed on its own
plane (helix propagation; covariance transported once per layer with a finite-difference
Jacobian); candidates with chi2 < ``chi2_max`` are kept (at most ``max_branches_per_surface``,
best chi2 first), each one updating its own branch (Kalman update with the exact Jacobian, then
multiple-scattering noise of the layer). As surface-by-surface navigation would, a second
measurement of the same layer on an overlapping module is then picked up when compatible. A
layer without a compatible measurement is a hole; branches stop after too many holes (in total
or consecutive), when they leave the tracker or turn by more than half a loop, or at
``max_steps``. At most ``max_branches_per_seed`` branches are alive; the best finished branch
(most measurements, then lowest chi2) becomes the track. Seeds with at least
``skip_seed_min_used`` of their three measurements on tracks found before are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from reference.tracking.estimation import TrackParameters
from reference.tracking.geometry import KIND_CYLINDER, Layers, LayerGrid, build_layer_grid
from reference.tracking.helix import (C_LIGHT, bound_jacobian, helix_advance, next_layer, propagate_bound,
                                      propagate_bound_jacobian)
from reference.tracking.kalman import add_scattering_noise, kalman_chi2_2d, kalman_update_2d, transport_covariance
from reference.tracking.spacepoints import Measurements

MAX_TRACK_MEAS = 64
MAX_WINDOW_ITEMS = 256  # window measurements kept per layer crossing (more are dropped)
MAX_SURFACE_CANDIDATES = 64  # largest max_branches_per_surface the filter can hold


@dataclass(frozen=True)
class CkfConfig:
    """Track-finding settings (traccc ``finding_config``-like where applicable).

    chi2_max: measurement compatibility cut; max_branches_per_surface / _per_seed: branching
    bounds; max_holes / max_consecutive_holes: hole limits; min_measurements: shortest track
    kept; window_n_sigma and window_margin_mm: candidate search window; skip_used_seeds:
    skip seeds with at least ``skip_seed_min_used`` (of 3) measurements on already found
    tracks; max_step_mm: longest step between two layers; overlap_chi2_max: chi2 cut for
    picking up a second measurement of the same layer on an overlapping module (0 disables);
    seed_span_sigma_mm: largest prediction error of the candidate window on layers crossed
    between the seed's bottom and top spacepoints (0 disables; see :func:`seed_span_variance`);
    skip_min_track_measurements: the skip rule counts only measurements on tracks of at least
    this many measurements (0: on every track kept). Seeds are processed by seed weight, not by
    track quality, so in a late iteration short fake tracks found first would otherwise make the
    seeds of real particles skip.
    Defaults follow traccc where it has the setting (chi2 30, 10 branches per seed, 3 holes,
    1 consecutive hole), except 2 branches per surface (traccc: 1) to allow real branching.
    """

    bz_tesla: float = 1.99724
    chi2_max: float = 30.0
    max_branches_per_surface: int = 2
    max_branches_per_seed: int = 10
    max_holes: int = 3
    max_consecutive_holes: int = 1
    max_steps: int = 40
    min_measurements: int = 7
    min_p_gev: float = 0.1
    window_n_sigma: float = 5.0
    window_margin_mm: float = 0.5
    skip_used_seeds: bool = True
    skip_seed_min_used: int = 2
    max_step_mm: float = 1500.0
    overlap_chi2_max: float = 15.0
    seed_span_sigma_mm: float = 1.0
    skip_min_track_measurements: int = 0


@dataclass(frozen=True)
class Tracks:
    """Track candidates: measurements of track i are ``meas[offsets[i]:offsets[i+1]]``
    (ordered along the track); params/cov: last filtered state; seed: seed row."""

    offsets: np.ndarray
    meas: np.ndarray
    chi2: np.ndarray
    n_holes: np.ndarray
    params: np.ndarray
    seed: np.ndarray
    stats: dict = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.chi2)

    @property
    def n_meas(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, keep) -> "Tracks":
        keep = np.asarray(keep)
        if keep.dtype == bool:
            keep = np.nonzero(keep)[0]
        n = np.diff(self.offsets)[keep]
        offsets = np.zeros(len(keep) + 1, np.int64)
        offsets[1:] = np.cumsum(n)
        idx = np.repeat(self.offsets[keep] - offsets[:-1], n) + np.arange(offsets[-1])
        return Tracks(offsets, self.meas[idx], self.chi2[keep], self.n_holes[keep], self.params[keep], self.seed[keep],
                      self.stats)


def grid_bins(layers: Layers) -> tuple[np.ndarray, np.ndarray]:
    """Bins per layer of the measurement grid, from the nominal layer extents: (phi bins of about
    4 mm, bins of 20 mm in z on cylinders or r on disks), shared by the CPU and the GPU."""
    radius = np.where(layers.kind == KIND_CYLINDER, layers.position_mm, 0.5 * (layers.lo_mm + layers.hi_mm))
    n_phi = np.clip((2 * np.pi * radius / 4.0).astype(np.int64), 8, 1024)
    n2 = np.clip(((layers.hi_mm - layers.lo_mm) / 20.0).astype(np.int64), 1, 256)
    return n_phi, n2


def measurement_grid(meas: Measurements) -> LayerGrid:
    """Per-layer phi x (z or r) binning of measurements for the candidate search."""
    layers = meas.layers
    g = meas.planes
    # global measurement position
    pos = g[:, 0:3] + meas.local0[:, None] * g[:, 3:6] + meas.local1[:, None] * g[:, 6:9]
    phi = np.arctan2(pos[:, 1], pos[:, 0])
    r = np.hypot(pos[:, 0], pos[:, 1])
    L = meas.layer_index
    c2 = np.where(layers.kind[L] == KIND_CYLINDER, pos[:, 2], r)
    n_phi, n2 = grid_bins(layers)
    # widen layer ranges to contain every measurement
    lo = layers.lo_mm.copy()
    hi = layers.hi_mm.copy()
    if len(L):
        np.minimum.at(lo, L, c2 - 1.0)
        np.maximum.at(hi, L, c2 + 1.0)
    widened = Layers(layers.volume_id, layers.layer_id, layers.kind, layers.position_mm, lo, hi,
                     layers.delta_mm, layers.x_over_x0)
    return build_layer_grid(widened, L, phi, phi, c2, c2, n_phi, n2)


@njit(cache=True)
def _layer_plane(x, y, z, kind, out):
    if kind == 0:
        r = math.sqrt(x * x + y * y)
        c = x / r
        s = y / r
        out[3], out[4], out[5] = -s, c, 0.0
        out[6], out[7], out[8] = 0.0, 0.0, 1.0
        out[9], out[10], out[11] = c, s, 0.0
    else:
        r = math.sqrt(x * x + y * y)
        c = x / r if r > 0 else 1.0
        s = y / r if r > 0 else 0.0
        out[3], out[4], out[5] = -s, c, 0.0
        out[6], out[7], out[8] = -c, -s, 0.0
        out[9], out[10], out[11] = 0.0, 0.0, 1.0
    out[0], out[1], out[2] = x, y, z


@njit(cache=True, inline="always")
def phi_difference(a, b):
    """a - b wrapped into [-pi, pi]."""
    d = a - b
    if d > math.pi:
        d -= 2.0 * math.pi
    elif d < -math.pi:
        d += 2.0 * math.pi
    return d


@njit(cache=True)
def line_residuals(g, pw, m0, m1):
    """Straight line from g[0:3] along the unit direction g[3:6] to the plane pw (12 floats):
    (ok, path length, loc0 - m0, loc1 - m1) at the crossing; ok is False when the line runs
    (nearly) parallel to the plane. Shared with the GPU CKF."""
    t_w = g[3] * pw[9] + g[4] * pw[10] + g[5] * pw[11]
    if abs(t_w) < 1e-6:
        return False, 0.0, 0.0, 0.0
    sl = -((g[0] - pw[0]) * pw[9] + (g[1] - pw[1]) * pw[10] + (g[2] - pw[2]) * pw[11]) / t_w
    ex = g[0] + sl * g[3] - pw[0]
    ey = g[1] + sl * g[4] - pw[1]
    ez = g[2] + sl * g[5] - pw[2]
    return True, sl, ex * pw[3] + ey * pw[4] + ez * pw[5] - m0, ex * pw[6] + ey * pw[7] + ez * pw[8] - m1


@njit(cache=True)
def in_seed_span(hits, mb, mt, point):
    """True when point (x, y, z) lies closer to the seed's bottom measurement mb than its top
    measurement mt does (by more than 1 mm^2 in squared distance): an outgoing crossing between
    the two. hits = (planes, local0, local1) of the measurements. Shared with the GPU CKF."""
    planes, l0, l1 = hits
    x, y, z = point
    pb = planes[mb]
    pt = planes[mt]
    bx = pb[0] + l0[mb] * pb[3] + l1[mb] * pb[6]
    by = pb[1] + l0[mb] * pb[4] + l1[mb] * pb[7]
    bz = pb[2] + l0[mb] * pb[5] + l1[mb] * pb[8]
    dx = pt[0] + l0[mt] * pt[3] + l1[mt] * pt[6] - bx
    dy = pt[1] + l0[mt] * pt[4] + l1[mt] * pt[7] - by
    dz = pt[2] + l0[mt] * pt[5] + l1[mt] * pt[8] - bz
    return (x - bx) ** 2 + (y - by) ** 2 + (z - bz) ** 2 < dx * dx + dy * dy + dz * dz - 1.0


@njit(cache=True)
def seed_span_variance(sig2, cap, hits, seed, point):
    """The window's prediction variance sig2, capped at ``cap`` (``seed_span_sigma_mm`` squared;
    0 leaves it) where the crossing ``point`` lies inside the span of the seed (its three
    measurements ``seed``, see :func:`in_seed_span`). There the seed helix, which passes through
    the three spacepoints, predicts the track better than the filter's covariance, which still
    holds the seed's wide initial errors. Without the cap, layers that a seed skips (close
    forward disks, the first disk after a barrel bottom) were searched in windows of tens of mm
    with a hundred candidates each, for the same tracks (RESULTS.md). Shared with the GPU CKF."""
    if sig2 > cap > 0.0 and in_seed_span(hits, seed[0], seed[2], point):
        return cap
    return sig2


@njit(cache=True)
def _ckf(seed_params, seed_cov, seed_surface, seed_meas3, planes, l0, l1, v0, v1, meas_layer, mphi, mc2,
         l_kind, l_pos, l_lo, l_hi, l_delta, l_x0, l_tol,
         g_nphi, g_n2, g_lo2, g_hi2, g_off, g_start, g_items, cfg, skip_used):
    bz = cfg[0]
    chi2_max = cfg[1]
    max_b_surf = int(cfg[2])
    max_b_seed = int(cfg[3])
    max_holes = int(cfg[4])
    max_consec = int(cfg[5])
    max_steps = int(cfg[6])
    min_meas = int(cfg[7])
    min_p = cfg[8]
    n_sigma = cfg[9]
    margin = cfg[10]
    max_step = cfg[11]
    pickup_chi2 = cfg[12]
    skip_min_used = int(cfg[13])
    span_sig2 = cfg[14]
    skip_min_length = int(cfg[15])
    n_seeds = seed_params.shape[0]
    n_meas_total = l0.shape[0]
    used = np.zeros(n_meas_total, np.bool_)
    stats = np.zeros(5, np.int64)  # branch steps, window items scanned, propagations, seeds run, window overflow

    MAXB = max_b_seed
    # branch state (two buffers: current and next)
    bp = np.empty((2, MAXB, 5))
    bc = np.empty((2, MAXB, 25))
    bpl = np.empty((2, MAXB, 12))
    blay = np.empty((2, MAXB), np.int64)
    bm = np.empty((2, MAXB, MAX_TRACK_MEAS), np.int64)
    bnm = np.empty((2, MAXB), np.int64)
    bh = np.empty((2, MAXB), np.int64)
    bch = np.empty((2, MAXB), np.int64)
    bchi = np.empty((2, MAXB))
    bturn = np.empty((2, MAXB))
    # output
    cap = n_seeds + 1
    t_meas = np.empty((cap, MAX_TRACK_MEAS), np.int64)
    t_n = np.zeros(cap, np.int64)
    t_chi2 = np.zeros(cap)
    t_holes = np.zeros(cap, np.int64)
    t_params = np.zeros((cap, 5))
    t_seed = np.zeros(cap, np.int64)
    n_tracks = 0
    # work arrays
    pnew = np.empty(5)
    jac = np.empty(25)
    cnew = np.empty(25)
    tmp = np.empty(25)
    kw = np.empty(20)
    glob = np.empty(6)
    gu = np.empty(6)
    vplane = np.empty(12)
    MAXC = MAX_SURFACE_CANDIDATES
    MAXW = MAX_WINDOW_ITEMS
    win_m = np.empty(MAXW, np.int64)
    cand_m = np.empty(MAXC, np.int64)
    cand_chi = np.empty(MAXC)
    cand_s = np.empty(MAXC)
    cand_p = np.empty((MAXC, 5))
    cref = np.empty(25)
    best_m = np.empty(MAX_TRACK_MEAS, np.int64)
    best_p = np.empty(5)

    for si in range(n_seeds):
        if skip_used:
            n_used = int(used[seed_meas3[si, 0]]) + int(used[seed_meas3[si, 1]]) + int(used[seed_meas3[si, 2]])
            if n_used >= skip_min_used:
                continue
        stats[3] += 1
        cur = 0
        nb = 1
        for k in range(5):
            bp[cur, 0, k] = seed_params[si, k]
        for k in range(25):
            bc[cur, 0, k] = seed_cov[si, k]
        s0 = seed_surface[si]
        for k in range(12):
            bpl[cur, 0, k] = planes[s0, k]
        blay[cur, 0] = meas_layer[s0]
        bnm[cur, 0] = 0
        bh[cur, 0] = 0
        bch[cur, 0] = 0
        bchi[cur, 0] = 0.0
        bturn[cur, 0] = 0.0
        best_n = -1
        best_chi2 = 0.0
        best_holes = 0
        for step in range(max_steps):
            nxt = 1 - cur
            nn = 0
            for b in range(nb):
                stats[0] += 1
                p = bp[cur, b]
                C = bc[cur, b]
                pl = bpl[cur, b]
                # global state
                st = math.sin(p[3])
                gx = pl[0] + p[0] * pl[3] + p[1] * pl[6]
                gy = pl[1] + p[0] * pl[4] + p[1] * pl[7]
                gz = pl[2] + p[0] * pl[5] + p[1] * pl[8]
                tx = math.cos(p[2]) * st
                ty = math.sin(p[2]) * st
                tz = math.cos(p[3])
                kappa = C_LIGHT * bz * p[4]
                finished = False
                if abs(p[4]) > 1.0 / min_p:
                    finished = True
                    li = -1
                    s = 0.0
                elif step == 0:
                    li = blay[cur, b]
                    s = 0.0
                else:
                    li, s = next_layer(gx, gy, gz, tx, ty, tz, kappa, l_kind, l_pos, l_lo, l_hi, blay[cur, b],
                                       1e-6)
                    if li < 0:
                        finished = True
                    elif s > max_step or bturn[cur, b] + abs(kappa * s) > math.pi:
                        finished = True
                if not finished:
                    turn_new = bturn[cur, b] + abs(kappa * s)
                    g0, g1, g2, g3, g4, g5 = helix_advance(gx, gy, gz, tx, ty, tz, kappa, s)
                    glob[0], glob[1], glob[2], glob[3], glob[4], glob[5] = g0, g1, g2, g3, g4, g5
                    xi, yi, zi = glob[0], glob[1], glob[2]
                    ri = math.sqrt(xi * xi + yi * yi)
                    phi_i = math.atan2(yi, xi)
                    if l_kind[li] == 0:
                        c2 = zi
                        tn = abs((xi * glob[3] + yi * glob[4]) / ri)
                        t2 = abs(glob[5])
                    else:
                        c2 = ri
                        tn = abs(glob[5])
                        t2 = abs((xi * glob[3] + yi * glob[4]) / ri)
                    tphi = abs((-yi * glob[3] + xi * glob[4]) / ri)
                    tn = max(tn, 0.05)
                    sig2 = C[0] + C[6] + s * s * (C[12] + C[18]) + (0.5 * s * s * C_LIGHT * bz) ** 2 * C[24]
                    # capped inside the seed's span, from the first step on
                    sig2 = seed_span_variance(sig2, span_sig2 * (step > 0), (planes, l0, l1), seed_meas3[si],
                                              (xi, yi, zi))
                    base = n_sigma * math.sqrt(sig2) + margin + l_tol[li]
                    w_phi = base + l_delta[li] * tphi / tn
                    w_2 = base + l_delta[li] * t2 / tn
                    # candidate search on the layer grid
                    nphi = g_nphi[li]
                    n2 = g_n2[li]
                    dphi = w_phi / max(ri, 1.0)
                    if dphi > math.pi:
                        dphi = math.pi
                    bw = 2.0 * math.pi / nphi
                    ip0 = int(math.floor((phi_i - dphi + math.pi) / bw))
                    ip1 = int(math.floor((phi_i + dphi + math.pi) / bw))
                    if ip1 - ip0 >= nphi:
                        ip1 = ip0 + nphi - 1
                    w2b = (g_hi2[li] - g_lo2[li]) / n2
                    i20 = int(math.floor((c2 - w_2 - g_lo2[li]) / w2b))
                    i21 = int(math.floor((c2 + w_2 - g_lo2[li]) / w2b))
                    if i20 < 0:
                        i20 = 0
                    if i21 >= n2:
                        i21 = n2 - 1
                    nc = 0
                    ref_m = -1
                    # stay on seed: on a layer holding a seed measurement only that one is tried
                    seed_slot = -1
                    for q in range(3):
                        if meas_layer[seed_meas3[si, q]] == li:
                            seed_slot = q
                    nw = 0
                    for ipr in range(ip0, ip1 + 1):
                        ip = ipr % nphi
                        for i2 in range(i20, i21 + 1):
                            bin_ = g_off[li] + ip * n2 + i2
                            for kk in range(g_start[bin_], g_start[bin_ + 1]):
                                m = g_items[kk]
                                stats[1] += 1
                                dph = phi_difference(mphi[m], phi_i)
                                if abs(dph) > dphi or abs(mc2[m] - c2) > w_2:
                                    continue
                                # cheap pre-selection: straight line from the layer crossing to
                                # the candidate plane, chi2 with an inflated isotropic prediction
                                ok, sl, r0, r1 = line_residuals(glob, planes[m], l0[m], l1[m])
                                if not ok:
                                    continue
                                sig2c = sig2 + sl * sl * (C[12] + C[18])
                                if r0 * r0 / (sig2c + v0[m]) + r1 * r1 / (sig2c + v1[m]) > chi2_max:
                                    continue
                                stats[4] += nw >= MAXW  # dropped: the window buffer is full
                                if nw < MAXW:
                                    win_m[nw] = m
                                    nw += 1
                    n_eval = 1 if seed_slot >= 0 else nw
                    for e_i in range(n_eval):
                        if seed_slot >= 0:
                            m = seed_meas3[si, seed_slot]
                        else:
                            m = win_m[e_i]
                        stats[2] += 1
                        sm = propagate_bound(p, bz, pl, planes[m], pnew)
                        if math.isnan(sm) or abs(sm - s) > 200.0:
                            continue
                        if ref_m < 0:
                            # covariance transported once per layer, to the first
                            # candidate's plane; reused for the other candidates' chi2
                            bound_jacobian(p, (bz, sm), pl, planes[m], jac)
                            transport_covariance(C, jac, cref, tmp)
                            ref_m = m
                        chi = kalman_chi2_2d(pnew, cref, l0[m], l1[m], v0[m], v1[m], 0.0)
                        if chi > chi2_max:
                            continue
                        # insert sorted by chi2 (keep best max_b_surf)
                        pos = nc
                        while pos > 0 and cand_chi[pos - 1] > chi:
                            pos -= 1
                        if pos >= max_b_surf:
                            continue
                        last = min(nc, max_b_surf - 1)
                        for q in range(last, pos, -1):
                            cand_chi[q] = cand_chi[q - 1]
                            cand_m[q] = cand_m[q - 1]
                            cand_s[q] = cand_s[q - 1]
                            for k in range(5):
                                cand_p[q, k] = cand_p[q - 1, k]
                        cand_chi[pos] = chi
                        cand_m[pos] = m
                        cand_s[pos] = sm
                        for k in range(5):
                            cand_p[pos, k] = pnew[k]
                        if nc < max_b_surf:
                            nc += 1
                    if nc > 0:
                        for q in range(nc):
                            if nn >= MAXB:
                                break
                            m = cand_m[q]
                            if m == ref_m:
                                for k in range(25):
                                    bc[nxt, nn, k] = cref[k]
                                for k in range(5):
                                    bp[nxt, nn, k] = cand_p[q, k]
                            else:
                                # the candidate's propagation, with its path length's Jacobian
                                bound_jacobian(p, (bz, cand_s[q]), pl, planes[m], jac)
                                transport_covariance(C, jac, bc[nxt, nn], tmp)
                                for k in range(5):
                                    bp[nxt, nn, k] = cand_p[q, k]
                            chi_pred = kalman_chi2_2d(bp[nxt, nn], bc[nxt, nn], l0[m], l1[m], v0[m], v1[m], 0.0)
                            if chi_pred > chi2_max:
                                continue
                            chi = kalman_update_2d(bp[nxt, nn], bc[nxt, nn], l0[m], l1[m], v0[m], v1[m], 0.0, kw)
                            pw = planes[m]
                            nmb = bnm[cur, b]
                            for k in range(nmb):
                                bm[nxt, nn, k] = bm[cur, b, k]
                            if nmb < MAX_TRACK_MEAS:
                                bm[nxt, nn, nmb] = m
                                nmb += 1
                            # overlap pick-up: a second measurement of this layer on another module
                            if pickup_chi2 > 0.0 and nw > 1:
                                best_o = -1
                                best_oc = pickup_chi2
                                pu = bp[nxt, nn]
                                cu = bc[nxt, nn]
                                stu = math.sin(pu[3])
                                gu[0] = pw[0] + pu[0] * pw[3] + pu[1] * pw[6]
                                gu[1] = pw[1] + pu[0] * pw[4] + pu[1] * pw[7]
                                gu[2] = pw[2] + pu[0] * pw[5] + pu[1] * pw[8]
                                gu[3] = math.cos(pu[2]) * stu
                                gu[4] = math.sin(pu[2]) * stu
                                gu[5] = math.cos(pu[3])
                                for w_i in range(nw):
                                    m2 = win_m[w_i]
                                    p2 = planes[m2]
                                    if m2 == m or (p2[0] == pw[0] and p2[1] == pw[1] and p2[2] == pw[2]):
                                        continue
                                    # straight-line pre-selection from the updated state
                                    ok, sl, r0, r1 = line_residuals(gu, p2, l0[m2], l1[m2])
                                    if not ok:
                                        continue
                                    sig2u = 2.0 * (cu[0] + cu[6] + sl * sl * (cu[12] + cu[18])) + 0.01
                                    if r0 * r0 / (sig2u + v0[m2]) + r1 * r1 / (sig2u + v1[m2]) > pickup_chi2:
                                        continue
                                    stats[2] += 1
                                    s2 = propagate_bound(bp[nxt, nn], bz, pw, p2, pnew)
                                    if math.isnan(s2) or abs(s2) > 50.0:
                                        continue
                                    c2o = kalman_chi2_2d(pnew, bc[nxt, nn], l0[m2], l1[m2], v0[m2], v1[m2], 0.0)
                                    if c2o < best_oc:
                                        best_oc = c2o
                                        best_o = m2
                                if best_o >= 0 and nmb < MAX_TRACK_MEAS:
                                    p2 = planes[best_o]
                                    s2 = propagate_bound_jacobian(bp[nxt, nn], bz, pw, p2, pnew, jac)
                                    if not math.isnan(s2):
                                        transport_covariance(bc[nxt, nn], jac, cnew, tmp)
                                        c2o = kalman_chi2_2d(pnew, cnew, l0[best_o], l1[best_o], v0[best_o],
                                                             v1[best_o], 0.0)
                                        if c2o < pickup_chi2:
                                            for k in range(5):
                                                bp[nxt, nn, k] = pnew[k]
                                            for k in range(25):
                                                bc[nxt, nn, k] = cnew[k]
                                            chi += kalman_update_2d(bp[nxt, nn], bc[nxt, nn], l0[best_o], l1[best_o],
                                                                    v0[best_o], v1[best_o], 0.0, kw)
                                            bm[nxt, nn, nmb] = best_o
                                            nmb += 1
                                            pw = p2
                            cosi = (math.cos(bp[nxt, nn, 2]) * math.sin(bp[nxt, nn, 3]) * pw[9]
                                    + math.sin(bp[nxt, nn, 2]) * math.sin(bp[nxt, nn, 3]) * pw[10]
                                    + math.cos(bp[nxt, nn, 3]) * pw[11])
                            add_scattering_noise(bp[nxt, nn], bc[nxt, nn], l_x0[li], cosi)
                            for k in range(12):
                                bpl[nxt, nn, k] = pw[k]
                            blay[nxt, nn] = li
                            bnm[nxt, nn] = nmb
                            bh[nxt, nn] = bh[cur, b]
                            bch[nxt, nn] = 0
                            bchi[nxt, nn] = bchi[cur, b] + chi
                            bturn[nxt, nn] = turn_new
                            nn += 1
                        continue
                    # hole: move the state to the layer's tangent plane at the intersection
                    holes = bh[cur, b] + (1 if step > 0 else 0)
                    consec = bch[cur, b] + (1 if step > 0 else 0)
                    if holes <= max_holes and consec <= max_consec and nn < MAXB:
                        _layer_plane(xi, yi, zi, l_kind[li], vplane)
                        sm = propagate_bound_jacobian(p, bz, pl, vplane, pnew, jac)
                        if not math.isnan(sm):
                            for k in range(5):
                                bp[nxt, nn, k] = pnew[k]
                            transport_covariance(C, jac, bc[nxt, nn], tmp)
                            add_scattering_noise(bp[nxt, nn], bc[nxt, nn], l_x0[li], tn)
                            for k in range(12):
                                bpl[nxt, nn, k] = vplane[k]
                            blay[nxt, nn] = li
                            nmb = bnm[cur, b]
                            for k in range(nmb):
                                bm[nxt, nn, k] = bm[cur, b, k]
                            bnm[nxt, nn] = nmb
                            bh[nxt, nn] = holes
                            bch[nxt, nn] = consec
                            bchi[nxt, nn] = bchi[cur, b]
                            bturn[nxt, nn] = turn_new
                            nn += 1
                            continue
                # branch ends here: compare with the best finished branch
                nmb = bnm[cur, b]
                if nmb > best_n or (nmb == best_n and bchi[cur, b] < best_chi2):
                    best_n = nmb
                    best_chi2 = bchi[cur, b]
                    best_holes = bh[cur, b]
                    for k in range(nmb):
                        best_m[k] = bm[cur, b, k]
                    for k in range(5):
                        best_p[k] = p[k]
            nb = nn
            cur = 1 - cur
            if nb == 0:
                break
        # branches still alive after max_steps
        for b in range(nb):
            nmb = bnm[cur, b]
            if nmb > best_n or (nmb == best_n and bchi[cur, b] < best_chi2):
                best_n = nmb
                best_chi2 = bchi[cur, b]
                best_holes = bh[cur, b]
                for k in range(nmb):
                    best_m[k] = bm[cur, b, k]
                for k in range(5):
                    best_p[k] = bp[cur, b, k]
        if best_n >= min_meas:
            for k in range(best_n):
                t_meas[n_tracks, k] = best_m[k]
                used[best_m[k]] = best_n >= skip_min_length or used[best_m[k]]
            t_n[n_tracks] = best_n
            t_chi2[n_tracks] = best_chi2
            t_holes[n_tracks] = best_holes
            for k in range(5):
                t_params[n_tracks, k] = best_p[k]
            t_seed[n_tracks] = si
            n_tracks += 1
    offsets = np.zeros(n_tracks + 1, np.int64)
    for i in range(n_tracks):
        offsets[i + 1] = offsets[i] + t_n[i]
    flat = np.empty(offsets[n_tracks], np.int64)
    for i in range(n_tracks):
        for k in range(t_n[i]):
            flat[offsets[i] + k] = t_meas[i, k]
    return offsets, flat, t_chi2[:n_tracks], t_holes[:n_tracks], t_params[:n_tracks], t_seed[:n_tracks], stats


def parameter_vector(config: CkfConfig) -> np.ndarray:
    """The filter's configuration vector (the order ``_ckf`` and the GPU kernels read it in)."""
    return np.array([config.bz_tesla, config.chi2_max, config.max_branches_per_surface,
                     config.max_branches_per_seed, config.max_holes, config.max_consecutive_holes,
                     config.max_steps, config.min_measurements, config.min_p_gev, config.window_n_sigma,
                     config.window_margin_mm, config.max_step_mm, config.overlap_chi2_max,
                     config.skip_seed_min_used, config.seed_span_sigma_mm ** 2,
                     config.skip_min_track_measurements], dtype=np.float64)


def find_tracks(params: TrackParameters, seed_measurements, meas: Measurements, config: CkfConfig = CkfConfig(),
                seed_order=None, grid: LayerGrid | None = None) -> Tracks:
    """Run the CKF for every seed.

    params: estimated seed parameters (on the bottom measurement planes); seed_measurements:
    (n_seeds, 3) measurement indices of each seed; seed_order: processing order (default: as
    given). Returns :class:`Tracks` with ``seed`` indexing the rows of ``params``.
    """
    if grid is None:
        grid = measurement_grid(meas)
    layers = meas.layers
    # per-layer tolerance for the measurement extent (half pitch of coarse strips, cluster size)
    tol = np.zeros(len(layers))
    if len(meas):
        np.maximum.at(tol, meas.layer_index, np.sqrt(3.0 * np.maximum(meas.var0, meas.var1)))
    tol = np.minimum(tol, 10.0)
    order = np.arange(len(params)) if seed_order is None else np.asarray(seed_order, np.int64)
    gpos = meas.planes[:, 0:3] + meas.local0[:, None] * meas.planes[:, 3:6] + meas.local1[:, None] * meas.planes[:, 6:9]
    mphi = np.arctan2(gpos[:, 1], gpos[:, 0])
    mc2 = np.where(layers.kind[meas.layer_index] == KIND_CYLINDER, gpos[:, 2], np.hypot(gpos[:, 0], gpos[:, 1]))
    cfg = parameter_vector(config)
    sm3 = np.ascontiguousarray(np.asarray(seed_measurements, np.int64)[order]).reshape(-1, 3)
    offsets, flat, chi2, holes, tparams, tseed, stats = _ckf(
        np.ascontiguousarray(params.params[order]), np.ascontiguousarray(params.cov[order]),
        np.ascontiguousarray(params.surface[order]), sm3, meas.planes, meas.local0, meas.local1, meas.var0,
        meas.var1, meas.layer_index, mphi, mc2, layers.kind, layers.position_mm, layers.lo_mm, layers.hi_mm,
        layers.delta_mm, layers.x_over_x0, tol, grid.n_phi, grid.n2, grid.lo2, grid.hi2, grid.bin_offset,
        grid.bin_start, grid.items, cfg, config.skip_used_seeds)
    counters = {"branch_steps": int(stats[0]), "window_items": int(stats[1]), "propagations": int(stats[2]),
                "seeds_run": int(stats[3]), "window_overflow": int(stats[4])}
    return Tracks(offsets, flat, chi2, holes, tparams, order[tseed], counters)
