"""Helix propagation in a uniform solenoid field along z (shared host/device math).

Every function here takes scalars (and small caller-owned arrays for bound parameters, planes
and Jacobians), returns scalars or tuples of scalars and allocates nothing, so the same Python
source can be compiled by ``numba.njit`` (CPU) and later by ``numba.cuda.jit(device=True)``
(GPU).

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
def helix_advance(x, y, z, tx, ty, tz, kappa, s):
    """Move along the helix by path length s; returns (x, y, z, tx, ty, tz)."""
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
    return (x + tx * sk + ty * ck, y + ty * sk - tx * ck, z + tz * s,
            tx * ca + ty * sa, -tx * sa + ty * ca, tz)


@njit(cache=True)
def helix_plane_path_from(x, y, z, tx, ty, tz, kappa, cx, cy, cz, nx, ny, nz, s):
    """Newton iteration for the path length to the plane (point c, normal n) from guess s.

    Returns NaN when the helix runs parallel to the plane or does not converge.
    """
    for _ in range(12):
        px, py, pz, dx, dy, dz = helix_advance(x, y, z, tx, ty, tz, kappa, s)
        f = (px - cx) * nx + (py - cy) * ny + (pz - cz) * nz
        fp = dx * nx + dy * ny + dz * nz
        if abs(fp) < 1e-9:
            return math.nan
        ds = -f / fp
        s += ds
        if abs(ds) < 1e-7:
            return s
    return math.nan


@njit(cache=True)
def helix_plane_path(x, y, z, tx, ty, tz, kappa, cx, cy, cz, nx, ny, nz):
    """Path length from the state to the plane (point c, normal n) by Newton iteration.

    Starts from the straight-line solution, so it returns the intersection nearest to the
    state (which may be at negative s). Returns NaN when there is none or no convergence.
    """
    tn = tx * nx + ty * ny + tz * nz
    if abs(tn) < 1e-9:
        return math.nan
    s = -((x - cx) * nx + (y - cy) * ny + (z - cz) * nz) / tn
    return helix_plane_path_from(x, y, z, tx, ty, tz, kappa, cx, cy, cz, nx, ny, nz, s)


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
def helix_zplane_path(x, y, z, tx, ty, tz, kappa, zpos, s_min):
    """Path length > s_min to the plane z = zpos, outgoing crossings only; INF if none.

    Returns (s, r at the crossing)."""
    if abs(tz) < 1e-12:
        return INF, 0.0
    s = (zpos - z) / tz
    if s <= s_min:
        return INF, 0.0
    px, py, _, dx, dy, _ = helix_advance(x, y, z, tx, ty, tz, kappa, s)
    if px * dx + py * dy < 0.0:
        return INF, 0.0
    return s, math.sqrt(px * px + py * py)


@njit(cache=True)
def next_layer(x, y, z, tx, ty, tz, kappa, kind, position, lo, hi, exclude, s_min):
    """Index of the next layer crossed (within its extent) and the path to it; (-1, INF) if none.

    Only outgoing crossings count, so cylinders inside the current radius are skipped, and
    layers whose path length is bounded below by more than the best one so far are skipped.
    """
    best_s = INF
    best_l = -1
    r_cur = math.sqrt(x * x + y * y)
    st = math.sqrt(tx * tx + ty * ty)
    for li in range(kind.shape[0]):
        if li == exclude:
            continue
        if kind[li] == 0:
            radius = position[li]
            if radius <= r_cur:
                continue
            # the radius grows at most by st per unit path length
            if st * best_s < radius - r_cur:
                continue
            s = helix_cylinder_path(x, y, z, tx, ty, tz, kappa, radius, s_min)
            if s < best_s:
                zz = z + tz * s
                if zz >= lo[li] and zz <= hi[li]:
                    best_s = s
                    best_l = li
        else:
            dz = position[li] - z
            if dz * tz <= 0.0:
                continue
            if dz / tz >= best_s:
                continue
            s, rr = helix_zplane_path(x, y, z, tx, ty, tz, kappa, position[li], s_min)
            if s < best_s:
                if rr >= lo[li] and rr <= hi[li]:
                    best_s = s
                    best_l = li
    return best_l, best_s


@njit(cache=True, inline="always")
def bound_to_global(p, pl):
    """Bound parameters p[0:5] on plane pl (12 floats) -> (x, y, z, tx, ty, tz)."""
    st = math.sin(p[3])
    return (pl[0] + p[0] * pl[3] + p[1] * pl[6], pl[1] + p[0] * pl[4] + p[1] * pl[7],
            pl[2] + p[0] * pl[5] + p[1] * pl[8], math.cos(p[2]) * st, math.sin(p[2]) * st, math.cos(p[3]))


@njit(cache=True)
def propagate_bound_guess(p, bz, src, dst, out, s_guess):
    """Propagate bound parameters p from plane src to plane dst (no covariance).

    Planes are float arrays of 12: centre (3), U (3), V (3), W (3). Writes the new bound
    parameters into out[0:5] and returns the signed path length (NaN on failure). s_guess
    starts the Newton iteration (NaN: straight-line estimate).
    """
    x, y, z, tx, ty, tz = bound_to_global(p, src)
    kappa = C_LIGHT * bz * p[4]
    if math.isnan(s_guess):
        s = helix_plane_path(x, y, z, tx, ty, tz, kappa, dst[0], dst[1], dst[2], dst[9], dst[10], dst[11])
    else:
        s = helix_plane_path_from(x, y, z, tx, ty, tz, kappa, dst[0], dst[1], dst[2], dst[9], dst[10], dst[11],
                                  s_guess)
    if math.isnan(s):
        return s
    px, py, pz, dx, dy, dz = helix_advance(x, y, z, tx, ty, tz, kappa, s)
    ex = px - dst[0]
    ey = py - dst[1]
    ez = pz - dst[2]
    out[0] = ex * dst[3] + ey * dst[4] + ez * dst[5]
    out[1] = ex * dst[6] + ey * dst[7] + ez * dst[8]
    out[2] = math.atan2(dy, dx)
    out[3] = math.acos(max(-1.0, min(1.0, dz)))
    out[4] = p[4]
    return s


@njit(cache=True)
def propagate_bound(p, bz, src, dst, out):
    """:func:`propagate_bound_guess` starting from the straight-line estimate."""
    return propagate_bound_guess(p, bz, src, dst, out, math.nan)


@njit(cache=True, inline="always")
def _helix_kappa_terms(kappa, s):
    """(sin(a)/kappa, (1 - cos a)/kappa, their derivatives in kappa, sin a, cos a) at
    a = kappa * s, by series for small a."""
    a = kappa * s
    if abs(a) < 1e-2:
        a2 = a * a
        sk = s * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0))
        ck = s * a * (0.5 - a2 / 24.0 * (1.0 - a2 / 30.0))
        dsk = s * s * a * (-1.0 / 3.0 + a2 / 30.0)
        dck = s * s * (0.5 - a2 / 8.0 * (1.0 - a2 / 18.0))
        return sk, ck, dsk, dck, a * (1.0 - a2 / 6.0 * (1.0 - a2 / 20.0)), 1.0 - a2 / 2.0 * (1.0 - a2 / 12.0)
    sa = math.sin(a)
    ca = math.cos(a)
    sk = sa / kappa
    ck = (1.0 - ca) / kappa
    return sk, ck, (s * ca - sk) / kappa, (s * sa - ck) / kappa, sa, ca


@njit(cache=True)
def propagate_bound_jacobian(p, bz, src, dst, out, jac):
    """Like :func:`propagate_bound` and also the 5x5 transport Jacobian d out / d p (row-major in
    jac[0:25]); see :func:`bound_jacobian`."""
    s = propagate_bound(p, bz, src, dst, out)
    if not math.isnan(s):
        bound_jacobian(p, (bz, s), src, dst, jac)
    return s


@njit(cache=True)
def bound_jacobian(p, step, src, dst, jac):
    """The transport Jacobian (row-major in jac[0:25]) of the propagation of bound parameters p
    from plane src to plane dst; step = (bz, s): the field and the path length (as
    :func:`propagate_bound` returned it),
    analytic: bound -> free on src, the helix's derivatives at fixed path length, the path
    length's change that keeps the end point on dst, free -> bound on dst."""
    bz, s = step
    sphi, cphi = math.sin(p[2]), math.cos(p[2])
    sth, cth = math.sin(p[3]), math.cos(p[3])
    tx, ty = cphi * sth, sphi * sth
    kappa = C_LIGHT * bz * p[4]
    sk, ck, dsk, dck, sa, ca = _helix_kappa_terms(kappa, s)
    dx, dy, dz = tx * ca + ty * sa, -tx * sa + ty * ca, cth
    nx, ny, nz = dst[9], dst[10], dst[11]
    nd = nx * dx + ny * dy + nz * dz
    dphi_norm = 1.0 / max(dx * dx + dy * dy, 1e-300)
    for j in range(5):
        # d(start position), d(start direction), d(kappa) for bound parameter j
        px = py = pz = 0.0
        ex = ey = ez = 0.0
        dk = 0.0
        if j < 2:
            px, py, pz = src[3 + 3 * j], src[4 + 3 * j], src[5 + 3 * j]
        elif j == 2:
            ex, ey = -ty, tx
        elif j == 3:
            ex, ey, ez = cphi * cth, sphi * cth, -sth
        else:
            dk = C_LIGHT * bz
        # end position and direction at fixed path length
        qx = px + ex * sk + ey * ck + dk * (tx * dsk + ty * dck)
        qy = py + ey * sk - ex * ck + dk * (ty * dsk - tx * dck)
        qz = pz + ez * s
        rx = ex * ca + ey * sa + dk * s * dy
        ry = -ex * sa + ey * ca - dk * s * dx
        # path length change that keeps the end point on the destination plane
        ds = -(nx * qx + ny * qy + nz * qz) / nd
        qx += dx * ds
        qy += dy * ds
        qz += dz * ds
        rx += kappa * dy * ds
        ry -= kappa * dx * ds
        jac[j] = qx * dst[3] + qy * dst[4] + qz * dst[5]
        jac[5 + j] = qx * dst[6] + qy * dst[7] + qz * dst[8]
        jac[10 + j] = (dx * ry - dy * rx) * dphi_norm
        # theta = acos(tz) and q/p do not change along the helix
        jac[15 + j] = 1.0 if j == 3 else 0.0
        jac[20 + j] = 1.0 if j == 4 else 0.0
