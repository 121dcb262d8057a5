"""Helix propagation in a uniform solenoid field along z (shared host/device math).

Every function here takes scalars and small pre-allocated work arrays and allocates nothing,
so the same Python source can be compiled by ``numba.njit`` (CPU) and later by
``numba.cuda.jit(device=True)`` (GPU).

State: global position (x, y, z) in mm, unit direction (tx, ty, tz), and the signed transverse
curvature rate ``kappa = C_LIGHT * Bz * q/p`` in 1/mm, such that along the path length s the
direction rotates clockwise (seen from +z) by the angle ``kappa * s``.

Bound parameters on a plane (centre c, orthonormal axes U, V, normal W), as in ACTS/traccc:
``(loc0, loc1, phi, theta, q/p)``.
"""

from __future__ import annotations

import math

from numba import njit

C_LIGHT = 0.299792458e-3  # GeV / (T mm): pT[GeV] = C_LIGHT * B[T] * R[mm]
INF = 1e30


@njit(cache=True, inline="always")
def helix_advance(x, y, z, tx, ty, tz, kappa, s, out):
    """Move along the helix by path length s; writes (x, y, z, tx, ty, tz) into out[0:6]."""
    a = kappa * s
    if abs(a) < 1e-5:
        # series expansions of sin(a)/kappa and (1 - cos(a))/kappa
        sk = s * (1.0 - a * a / 6.0)
        ck = s * a * 0.5 * (1.0 - a * a / 12.0)
        ca = 1.0 - a * a * 0.5
        sa = a - a * a * a / 6.0
    else:
        sa = math.sin(a)
        ca = math.cos(a)
        sk = sa / kappa
        ck = (1.0 - ca) / kappa
    out[0] = x + tx * sk + ty * ck
    out[1] = y + ty * sk - tx * ck
    out[2] = z + tz * s
    out[3] = tx * ca + ty * sa
    out[4] = -tx * sa + ty * ca
    out[5] = tz


@njit(cache=True)
def helix_plane_path(x, y, z, tx, ty, tz, kappa, cx, cy, cz, nx, ny, nz, work):
    """Path length from the state to the plane (point c, normal n) by Newton iteration.

    Starts from the straight-line solution, so it returns the intersection nearest to the
    state (which may be at negative s). Returns NaN when there is none or no convergence.
    """
    tn = tx * nx + ty * ny + tz * nz
    if abs(tn) < 1e-9:
        return math.nan
    s = -((x - cx) * nx + (y - cy) * ny + (z - cz) * nz) / tn
    for _ in range(12):
        helix_advance(x, y, z, tx, ty, tz, kappa, s, work)
        f = (work[0] - cx) * nx + (work[1] - cy) * ny + (work[2] - cz) * nz
        fp = work[3] * nx + work[4] * ny + work[5] * nz
        if abs(fp) < 1e-9:
            return math.nan
        ds = -f / fp
        s += ds
        if abs(ds) < 1e-7:
            return s
    return math.nan


@njit(cache=True)
def helix_cylinder_path(x, y, z, tx, ty, tz, kappa, radius, s_min):
    """Smallest path length > s_min at which the helix crosses the cylinder r = radius.

    Only crossings where the track moves outwards (radial velocity >= 0) are accepted, which
    keeps every track on its outgoing half loop. Returns INF when there is none.
    """
    st2 = tx * tx + ty * ty
    if st2 < 1e-14:
        return INF
    best = INF
    if abs(kappa) < 1e-10:
        a = st2
        b = 2.0 * (x * tx + y * ty)
        c = x * x + y * y - radius * radius
        disc = b * b - 4.0 * a * c
        if disc < 0.0:
            return INF
        sq = math.sqrt(disc)
        for sgn in (-1.0, 1.0):
            s = (-b + sgn * sq) / (2.0 * a)
            if s > s_min and s < best:
                if (x + tx * s) * tx + (y + ty * s) * ty >= 0.0:
                    best = s
        return best
    xc = x + ty / kappa
    yc = y - tx / kappa
    rho = math.sqrt(st2) / abs(kappa)
    d = math.sqrt(xc * xc + yc * yc)
    if d < 1e-12 or d > radius + rho or d < abs(radius - rho):
        return INF
    a = (radius * radius - rho * rho + d * d) / (2.0 * d)
    h = math.sqrt(max(radius * radius - a * a, 0.0))
    ux = xc / d
    uy = yc / d
    v0x = x - xc
    v0y = y - yc
    two_pi_k = 2.0 * math.pi / abs(kappa)
    for sgn in (-1.0, 1.0):
        px = a * ux - sgn * h * uy
        py = a * uy + sgn * h * ux
        vpx = px - xc
        vpy = py - yc
        beta = math.atan2(v0x * vpy - v0y * vpx, v0x * vpx + v0y * vpy)
        s = -beta / kappa
        while s <= s_min:
            s += two_pi_k
        if s < best:
            # direction at the crossing: rotate (tx, ty) by -kappa*s
            ang = kappa * s
            dx = tx * math.cos(ang) + ty * math.sin(ang)
            dy = -tx * math.sin(ang) + ty * math.cos(ang)
            if px * dx + py * dy >= 0.0:
                best = s
    return best


@njit(cache=True)
def helix_zplane_path(x, y, z, tx, ty, tz, kappa, zpos, s_min, work):
    """Path length > s_min to the plane z = zpos, outgoing crossings only; INF if none."""
    if abs(tz) < 1e-12:
        return INF
    s = (zpos - z) / tz
    if s <= s_min:
        return INF
    helix_advance(x, y, z, tx, ty, tz, kappa, s, work)
    if work[0] * work[3] + work[1] * work[4] < 0.0:
        return INF
    return s


@njit(cache=True)
def next_layer(x, y, z, tx, ty, tz, kappa, kind, position, lo, hi, exclude, s_min, work):
    """Index of the next layer crossed (within its extent) and the path to it; (-1, INF) if none."""
    best_s = INF
    best_l = -1
    for li in range(kind.shape[0]):
        if li == exclude:
            continue
        if kind[li] == 0:
            s = helix_cylinder_path(x, y, z, tx, ty, tz, kappa, position[li], s_min)
            if s < best_s:
                zz = z + tz * s
                if zz >= lo[li] and zz <= hi[li]:
                    best_s = s
                    best_l = li
        else:
            s = helix_zplane_path(x, y, z, tx, ty, tz, kappa, position[li], s_min, work)
            if s < best_s:
                rr = math.sqrt(work[0] * work[0] + work[1] * work[1])
                if rr >= lo[li] and rr <= hi[li]:
                    best_s = s
                    best_l = li
    return best_l, best_s


@njit(cache=True, inline="always")
def bound_to_global(p, cx, cy, cz, ux, uy, uz, vx, vy, vz, out):
    """Bound parameters p[0:5] on a plane -> (x, y, z, tx, ty, tz) in out[0:6]."""
    out[0] = cx + p[0] * ux + p[1] * vx
    out[1] = cy + p[0] * uy + p[1] * vy
    out[2] = cz + p[0] * uz + p[1] * vz
    st = math.sin(p[3])
    out[3] = math.cos(p[2]) * st
    out[4] = math.sin(p[2]) * st
    out[5] = math.cos(p[3])


@njit(cache=True)
def propagate_bound(p, bz, src, dst, out, work):
    """Propagate bound parameters p from plane src to plane dst (no covariance).

    Planes are float arrays of 12: centre (3), U (3), V (3), W (3). Writes the new bound
    parameters into out[0:5] and returns the signed path length (NaN on failure). work must
    hold at least 12 floats.
    """
    bound_to_global(p, src[0], src[1], src[2], src[3], src[4], src[5], src[6], src[7], src[8], work)
    kappa = C_LIGHT * bz * p[4]
    s = helix_plane_path(work[0], work[1], work[2], work[3], work[4], work[5], kappa,
                         dst[0], dst[1], dst[2], dst[9], dst[10], dst[11], work[6:12])
    if math.isnan(s):
        return s
    helix_advance(work[0], work[1], work[2], work[3], work[4], work[5], kappa, s, work[6:12])
    dx = work[6] - dst[0]
    dy = work[7] - dst[1]
    dz = work[8] - dst[2]
    out[0] = dx * dst[3] + dy * dst[4] + dz * dst[5]
    out[1] = dx * dst[6] + dy * dst[7] + dz * dst[8]
    out[2] = math.atan2(work[10], work[9])
    out[3] = math.acos(max(-1.0, min(1.0, work[11])))
    out[4] = p[4]
    return s


@njit(cache=True)
def propagate_bound_jacobian(p, bz, src, dst, out, jac, work):
    """Like :func:`propagate_bound` and also the 5x5 transport Jacobian d out / d p (row-major
    in jac[0:25]) by forward finite differences. work must hold at least 24 floats."""
    s = propagate_bound(p, bz, src, dst, out, work)
    if math.isnan(s):
        return s
    pp = work[12:17]
    tmp = work[17:22]
    for j in range(5):
        for k in range(5):
            pp[k] = p[k]
        if j < 2:
            eps = 1e-4
        elif j < 4:
            eps = 1e-7
        else:
            eps = 1e-7 * abs(p[4]) + 1e-10
        pp[j] += eps
        s2 = propagate_bound(pp, bz, src, dst, tmp, work)
        if math.isnan(s2):
            return s2
        for i in range(5):
            d = tmp[i] - out[i]
            if i == 2:
                if d > math.pi:
                    d -= 2.0 * math.pi
                elif d < -math.pi:
                    d += 2.0 * math.pi
            jac[i * 5 + j] = d / eps
    return s
