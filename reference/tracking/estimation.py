"""Track-parameter estimation from seeds (ACTS ``estimateTrackParamsFromSeed`` method).

In a frame at the bottom spacepoint (z along the field, x towards the middle spacepoint in
the transverse plane) the middle and top points are conformally mapped, u = x/(x^2+y^2),
v = y/(x^2+y^2); the circle through the three points becomes the line v = A u + B. The
transverse direction at the bottom is (1, A)/sqrt(1+A^2), the radius sqrt(1+A^2)/(2|B|) and
the charge follows the turning sense. cot(theta) is the least-squares slope of z against the
transverse arc length. Parameters are expressed on the bottom measurement's plane with the
traccc initial covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.tracking.helix import C_LIGHT
from reference.tracking.seeding import Seeds
from reference.tracking.spacepoints import Measurements, Spacepoints


@dataclass(frozen=True)
class EstimationConfig:
    """Initial covariance (traccc ``track_params_estimation_config``-like): sigma of loc0/1 (mm),
    phi and theta (rad), q/pT (1/GeV) and relative pT."""

    bz_tesla: float = 1.99724
    sigma_loc_mm: float = 1.0
    sigma_phi_rad: float = math.radians(1.0)
    sigma_theta_rad: float = math.radians(1.0)
    sigma_q_over_pt_per_gev: float = 0.1
    sigma_pt_rel: float = 0.1


@dataclass(frozen=True)
class TrackParameters:
    """Bound parameters (loc0, loc1, phi, theta, q/p) on a measurement plane, with covariance.

    params: (n, 5); cov: (n, 25) row-major; surface: measurement index of the plane.
    """

    params: np.ndarray
    cov: np.ndarray
    surface: np.ndarray

    def __len__(self) -> int:
        return len(self.surface)


@njit(cache=True, inline="always")
def estimate_from_three_points(xb, yb, zb, xm, ym, zm, xt, yt, zt, bz, out):
    """Seed fit; out[0:5] = (phi, theta, q/p, pT, charge) at the bottom point. Returns False
    if degenerate."""
    dx = xm - xb
    dy = ym - yb
    d = math.sqrt(dx * dx + dy * dy)
    if d < 1e-9:
        return False
    ex = dx / d
    ey = dy / d
    # bottom frame: x' along (ex, ey), y' = z x x'
    um_x = d
    um_y = 0.0
    tx = (xt - xb) * ex + (yt - yb) * ey
    ty = -(xt - xb) * ey + (yt - yb) * ex
    rm2 = um_x * um_x + um_y * um_y
    rt2 = tx * tx + ty * ty
    if rt2 < 1e-12:
        return False
    u1 = um_x / rm2
    v1 = um_y / rm2
    u2 = tx / rt2
    v2 = ty / rt2
    if abs(u2 - u1) < 1e-15:
        return False
    A = (v2 - v1) / (u2 - u1)
    B = v1 - A * u1
    if abs(B) < 1e-15:
        B = 1e-15
    radius = math.sqrt(1.0 + A * A) / (2.0 * abs(B))
    # transverse direction at the bottom in the global frame
    nrm = math.sqrt(1.0 + A * A)
    dlx = 1.0 / nrm
    dly = A / nrm
    gx = dlx * ex - dly * ey
    gy = dlx * ey + dly * ex
    phi = math.atan2(gy, gx)
    # counter-clockwise turning (B > 0) means negative charge for Bz > 0
    charge = -1.0 if B > 0 else 1.0
    if bz < 0:
        charge = -charge
    # arc lengths from the bottom
    dm = d
    dt = math.sqrt(rt2)
    sm = 2.0 * radius * math.asin(min(1.0, dm / (2.0 * radius)))
    st = 2.0 * radius * math.asin(min(1.0, dt / (2.0 * radius)))
    cot = (sm * (zm - zb) + st * (zt - zb)) / (sm * sm + st * st)
    theta = math.atan2(1.0, cot)
    pt = C_LIGHT * abs(bz) * radius
    p = pt / math.sin(theta)
    out[0] = phi
    out[1] = theta
    out[2] = charge / p
    out[3] = pt
    out[4] = charge
    return True


@njit(cache=True, inline="always")
def seed_covariance(fit, sigmas, cov, i):
    """cov[i, 0:25]: initial covariance of a seed fit ``fit`` = (phi, theta, q/p, ...) with
    sigmas = (loc mm, phi rad, theta rad, q/pT 1/GeV, relative pT); shared with the GPU stage."""
    s_loc, s_phi, s_theta, s_qopt, s_ptrel = sigmas
    for k in range(25):
        cov[i, k] = 0.0
    st_ = math.sin(fit[1])
    cov[i, 0] = s_loc * s_loc
    cov[i, 6] = s_loc * s_loc
    cov[i, 12] = s_phi * s_phi
    cov[i, 18] = s_theta * s_theta
    sq = s_qopt * st_
    cov[i, 24] = sq * sq + (s_ptrel * fit[2]) ** 2


@njit(cache=True)
def _estimate(sb, sm_, st, x, y, z, meas_of_sp, local0, local1, bz, s_loc, s_phi, s_theta, s_qopt, s_ptrel):
    n = sb.shape[0]
    params = np.empty((n, 5))
    cov = np.empty((n, 25))
    surface = np.empty(n, np.int64)
    ok = np.zeros(n, np.bool_)
    out = np.empty(5)
    sigmas = (s_loc, s_phi, s_theta, s_qopt, s_ptrel)
    for i in range(n):
        b = sb[i]
        m = sm_[i]
        t = st[i]
        if not estimate_from_three_points(x[b], y[b], z[b], x[m], y[m], z[m], x[t], y[t], z[t], bz, out):
            for k in range(25):
                cov[i, k] = 0.0
            for k in range(5):
                params[i, k] = 0.0
            surface[i] = -1
            continue
        mb = meas_of_sp[b]
        surface[i] = mb
        params[i, 0] = local0[mb]
        params[i, 1] = local1[mb]
        params[i, 2] = out[0]
        params[i, 3] = out[1]
        params[i, 4] = out[2]
        seed_covariance(out, sigmas, cov, i)
        ok[i] = True
    return params, cov, surface, ok


def estimate_track_parameters(seeds: Seeds, sp: Spacepoints, meas: Measurements,
                              config: EstimationConfig = EstimationConfig()) -> tuple:
    """Bound parameters for every seed on its bottom measurement's plane.

    Returns (TrackParameters, valid mask over seeds).
    """
    params, cov, surface, ok = _estimate(seeds.bottom, seeds.middle, seeds.top, sp.x, sp.y, sp.z,
                                         sp.measurement, meas.local0, meas.local1, config.bz_tesla,
                                         config.sigma_loc_mm, config.sigma_phi_rad, config.sigma_theta_rad,
                                         config.sigma_q_over_pt_per_gev, config.sigma_pt_rel)
    if ok.all():
        return TrackParameters(params, cov, surface), ok
    return TrackParameters(params[ok], cov[ok], surface[ok]), ok
