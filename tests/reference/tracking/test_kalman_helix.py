import math

import numpy as np
import pytest

from reference.tracking.helix import (C_LIGHT, helix_advance, helix_cylinder_path, helix_plane_path,
                                      propagate_bound, propagate_bound_jacobian)
from reference.tracking.kalman import kalman_chi2_2d, kalman_update_2d, transport_covariance


def _rk4(state, qop, bz, s, n=4000):
    """Reference: RK4 integration of dX/ds = T, dT/ds = (q/p) c T x B."""
    def f(y):
        t = y[3:]
        b = np.array([0.0, 0.0, bz])
        return np.concatenate([t, qop * C_LIGHT * np.cross(t, b)])
    y = np.array(state, float)
    h = s / n
    for _ in range(n):
        k1 = f(y)
        k2 = f(y + h / 2 * k1)
        k3 = f(y + h / 2 * k2)
        k4 = f(y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y


@pytest.mark.parametrize("qop", [1.0, -2.0, 0.2, 1e-9])
def test_helix_matches_lorentz_force_integration(qop):
    t = np.array([0.6, 0.3, 0.5])
    t /= np.linalg.norm(t)
    x0 = [1.0, -2.0, 3.0, *t]
    bz = 2.0
    out = np.array(helix_advance(*x0, C_LIGHT * bz * qop, 350.0))
    ref = _rk4(x0, qop, bz, 350.0)
    np.testing.assert_allclose(out, ref, atol=1e-6)


def test_cylinder_and_plane_intersections():
    t = np.array([0.8, 0.1, 0.3])
    t /= np.linalg.norm(t)
    kappa = C_LIGHT * 2.0 * 1.5
    s = helix_cylinder_path(0.0, 0.0, 0.0, *t, kappa, 116.0, 1e-6)
    out = helix_advance(0.0, 0.0, 0.0, *t, kappa, s)
    assert math.hypot(out[0], out[1]) == pytest.approx(116.0, abs=1e-8)
    # plane through that point with a tilted normal
    n = np.array([out[0], out[1], 5.0])
    n /= np.linalg.norm(n)
    s2 = helix_plane_path(0.0, 0.0, 0.0, *t, kappa, out[0], out[1], out[2], *n)
    assert s2 == pytest.approx(s, abs=1e-7)
    # a particle that cannot reach the radius gives no crossing
    assert helix_cylinder_path(0.0, 0.0, 0.0, *t, C_LIGHT * 2.0 / 0.05, 1000.0, 1e-6) > 1e20


def _plane(c, w):
    w = np.asarray(w, float) / np.linalg.norm(w)
    u = np.cross([0, 0, 1.0], w)
    if np.linalg.norm(u) < 1e-9:
        u = np.array([1.0, 0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(w, u)
    return np.concatenate([c, u, v, w])


def _central_differences(p, src, dst, bz=2.0):
    ref = np.empty((5, 5))
    for j in range(5):
        h = 1e-6 if j < 4 else 1e-6 * max(abs(p[4]), 1.0)
        a, b = np.empty(5), np.empty(5)
        pp, pm = p.copy(), p.copy()
        pp[j] += h
        pm[j] -= h
        propagate_bound(pp, bz, src, dst, a)
        propagate_bound(pm, bz, src, dst, b)
        d = a - b
        d[2] = (d[2] + math.pi) % (2 * math.pi) - math.pi
        ref[:, j] = d / (2 * h)
    return ref


@pytest.mark.parametrize("case", [
    # barrel-like planes, curling tracks of both charges, a straight track, a disk plane, phi near pi
    ([30.0, 5.0, 10.0], [1.0, 0.1, 0.0], [150.0, 40.0, 60.0], [1.0, 0.3, 0.05], [0.2, -0.4, 0.25, 1.2, -0.8]),
    ([30.0, 5.0, 10.0], [1.0, 0.1, 0.0], [150.0, 40.0, 60.0], [1.0, 0.3, 0.05], [0.2, -0.4, 0.25, 1.2, 0.8]),
    ([30.0, 5.0, 10.0], [1.0, 0.1, 0.0], [150.0, 40.0, 60.0], [1.0, 0.3, 0.05], [0.2, -0.4, 0.25, 1.2, 1e-7]),
    ([30.0, 5.0, 10.0], [1.0, 0.1, 0.0], [150.0, 40.0, 60.0], [1.0, 0.3, 0.05], [0.2, -0.4, 0.25, 1.2, 6.0]),
    ([30.0, 0.0, 100.0], [1.0, 0.0, 0.0], [60.0, 10.0, 600.0], [0.0, 0.0, 1.0], [0.1, 0.3, 0.1, 0.2, -2.0]),
    ([-30.0, 0.5, 10.0], [-1.0, 0.0, 0.0], [-90.0, -3.0, 40.0], [-1.0, -0.1, 0.2], [0.0, 0.0, 3.1, 1.4, 1.5]),
])
def test_bound_propagation_jacobian_matches_central_differences(case):
    c_src, w_src, c_dst, w_dst, params = case
    src, dst = _plane(c_src, w_src), _plane(c_dst, w_dst)
    p = np.array(params, float)
    out = np.empty(5)
    jac = np.empty(25)
    s = propagate_bound_jacobian(p, 2.0, src, dst, out, jac)
    assert s > 0
    nominal = np.empty(5)
    assert propagate_bound(p, 2.0, src, dst, nominal) == s
    np.testing.assert_array_equal(out, nominal)
    np.testing.assert_allclose(jac.reshape(5, 5), _central_differences(p, src, dst), rtol=1e-5, atol=1e-6)


def test_bound_propagation_jacobian_fails_like_the_propagation():
    src = _plane([30.0, 5.0, 10.0], [1.0, 0.1, 0.0])
    dst = _plane([150.0, 40.0, 60.0], [0.0, 0.0, 1.0])
    p = np.array([0.0, 0.0, 0.25, 0.5 * math.pi, 0.5])  # moves parallel to the destination plane
    jac = np.full(25, 7.0)
    assert math.isnan(propagate_bound_jacobian(p, 2.0, src, dst, np.empty(5), jac))


def test_kalman_update_matches_dense_reference():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.normal(size=(5, 5))
        cov = a @ a.T + 0.1 * np.eye(5)
        p = rng.normal(size=5)
        m = rng.normal(size=2)
        v = np.array([[0.3, 0.05], [0.05, 0.2]])
        H = np.zeros((2, 5))
        H[0, 0] = H[1, 1] = 1.0
        S = H @ cov @ H.T + v
        K = cov @ H.T @ np.linalg.inv(S)
        r = m - H @ p
        p_ref = p + K @ r
        cov_ref = (np.eye(5) - K @ H) @ cov
        chi2_ref = r @ np.linalg.solve(S, r)
        pk = p.copy()
        ck = cov.ravel().copy()
        assert kalman_chi2_2d(pk, ck, m[0], m[1], 0.3, 0.2, 0.05) == pytest.approx(chi2_ref)
        chi2 = kalman_update_2d(pk, ck, m[0], m[1], 0.3, 0.2, 0.05, np.empty(20))
        assert chi2 == pytest.approx(chi2_ref)
        np.testing.assert_allclose(pk, p_ref, atol=1e-10)
        np.testing.assert_allclose(ck.reshape(5, 5), cov_ref, atol=1e-10)


def test_transport_covariance():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T
    jac = rng.normal(size=(5, 5))
    out = np.empty(25)
    transport_covariance(cov.ravel(), jac.ravel(), out, np.empty(25))
    np.testing.assert_allclose(out.reshape(5, 5), jac @ cov @ jac.T, atol=1e-10)
