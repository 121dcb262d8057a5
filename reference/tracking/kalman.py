"""Kalman-filter math on bound parameters (loc0, loc1, phi, theta, q/p) (shared host/device).

Scalar-argument functions over small pre-allocated arrays (p: 5, cov: 25 row-major), no
allocation inside, so numba can compile them for the CPU and as CUDA device functions.
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True, inline="always")
def highland_theta0(p_gev, x_over_x0):
    """RMS plane scattering angle (Highland formula, beta = 1) in rad."""
    if x_over_x0 <= 0.0:
        return 0.0
    return 0.0136 / p_gev * math.sqrt(x_over_x0) * (1.0 + 0.038 * math.log(x_over_x0))


@njit(cache=True)
def transport_covariance(cov, jac, out, tmp):
    """out = J cov J^T for 5x5 row-major arrays; tmp holds 25 floats."""
    for i in range(5):
        for j in range(5):
            acc = 0.0
            for k in range(5):
                acc += jac[i * 5 + k] * cov[k * 5 + j]
            tmp[i * 5 + j] = acc
    for i in range(5):
        for j in range(5):
            acc = 0.0
            for k in range(5):
                acc += tmp[i * 5 + k] * jac[j * 5 + k]
            out[i * 5 + j] = acc
    # enforce exact symmetry
    for i in range(5):
        for j in range(i + 1, 5):
            m = 0.5 * (out[i * 5 + j] + out[j * 5 + i])
            out[i * 5 + j] = m
            out[j * 5 + i] = m


@njit(cache=True)
def add_scattering_noise(p, cov, x_over_x0, cos_incidence):
    """Add multiple-scattering variance for a crossing of x_over_x0 (normal incidence)."""
    c = max(abs(cos_incidence), 0.05)
    qop = abs(p[4])
    if qop < 1e-12:
        return
    th0 = highland_theta0(1.0 / qop, x_over_x0 / c)
    st = max(math.sin(p[3]), 1e-3)
    cov[2 * 5 + 2] += th0 * th0 / (st * st)
    cov[3 * 5 + 3] += th0 * th0


@njit(cache=True)
def kalman_chi2_2d(p, cov, m0, m1, v0, v1, v01):
    """Predicted chi2 of a 2D measurement (loc0, loc1) with covariance [[v0, v01], [v01, v1]]."""
    r0 = m0 - p[0]
    r1 = m1 - p[1]
    s00 = cov[0] + v0
    s01 = cov[1] + v01
    s11 = cov[6] + v1
    det = s00 * s11 - s01 * s01
    if det <= 0.0:
        return math.inf
    return (r0 * r0 * s11 - 2.0 * r0 * r1 * s01 + r1 * r1 * s00) / det


@njit(cache=True)
def kalman_update_2d(p, cov, m0, m1, v0, v1, v01, work):
    """Kalman update with a measurement of (loc0, loc1); updates p and cov in place.

    work holds 20 floats (5x2 gain and the first two covariance rows). Returns the chi2 of
    the predicted residual (inf, and no update, if the residual covariance is singular).
    """
    r0 = m0 - p[0]
    r1 = m1 - p[1]
    s00 = cov[0] + v0
    s01 = cov[1] + v01
    s11 = cov[6] + v1
    det = s00 * s11 - s01 * s01
    if det <= 0.0:
        return math.inf
    i00 = s11 / det
    i01 = -s01 / det
    i11 = s00 / det
    chi2 = r0 * r0 * i00 + 2.0 * r0 * r1 * i01 + r1 * r1 * i11
    for j in range(5):
        work[10 + j] = cov[j]
        work[15 + j] = cov[5 + j]
    for i in range(5):
        c0 = cov[i * 5 + 0]
        c1 = cov[i * 5 + 1]
        work[i * 2 + 0] = c0 * i00 + c1 * i01
        work[i * 2 + 1] = c0 * i01 + c1 * i11
    for i in range(5):
        p[i] += work[i * 2] * r0 + work[i * 2 + 1] * r1
    for i in range(5):
        for j in range(i, 5):
            v = cov[i * 5 + j] - work[i * 2] * work[10 + j] - work[i * 2 + 1] * work[15 + j]
            cov[i * 5 + j] = v
            cov[j * 5 + i] = v
    for i in range(5):
        if cov[i * 5 + i] < 1e-30:
            cov[i * 5 + i] = 1e-30
    return chi2
