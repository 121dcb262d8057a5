"""The seeding helpers against plain-Python references of the cuts and of the orderings.

The CPU seed finder applies branch-free cores of the doublet cuts to all candidates of a middle
at once, orders the tops with a bucket sort and finds cot(theta) windows through a bucket index;
these must give exactly what the early-return cuts, a stable sort and a binary search give.
"""
# pylint: disable=protected-access

import math

import numpy as np
import pytest

from reference.tracking import seeding
from reference.tracking.seeding import (SeedingConfig, doublet_compatible, doublet_helix_compatible, find_seeds,
                                        lin_circle)

CFG = SeedingConfig()
CUTS = (CFG.delta_r_min_mm, CFG.delta_r_max_mm, CFG.cot_theta_max, CFG.collision_min_mm, CFG.collision_max_mm,
        CFG.delta_z_max_mm)
MIN_HD2 = (2 * CFG.min_helix_radius_mm) ** 2


def _doublet_reference(r_m, z_m, r_o, z_o, is_bottom):
    dr, dz = (r_m - r_o, z_m - z_o) if is_bottom else (r_o - r_m, z_o - z_m)
    if dr < CUTS[0] or dr > CUTS[1] or abs(dz) > CUTS[5]:
        return False
    cot = dz / dr
    if abs(cot) > CUTS[2]:
        return False
    z0 = z_m - r_m * cot
    return CUTS[3] <= z0 <= CUTS[4]


def _lin_circle_reference(mid, other, is_bottom):
    x_m, y_m, z_m, r_m, var_r_m, var_z_m = mid
    x_o, y_o, z_o, var_r_o, var_z_o = other
    cphi, sphi = x_m / r_m, y_m / r_m
    dx, dy, dz = x_o - x_m, y_o - y_m, z_o - z_m
    x = dx * cphi + dy * sphi
    y = dy * cphi - dx * sphi
    idr2 = 1.0 / (dx * dx + dy * dy)
    idr = math.sqrt(idr2)
    cot = dz * idr * (-1.0 if is_bottom else 1.0)
    er = ((var_z_m + var_z_o) + cot * cot * (var_r_m + var_r_o)) * idr2
    return [cot, z_m - r_m * cot, idr, x * idr2, y * idr2, er]


def _helix_reference(u, v, r_m, impact_max):
    u_ip = -1.0 / r_m
    v_abs = impact_max / (r_m * r_m)
    du = u - u_ip
    if du == 0.0:
        return True
    b_prev = 0.0
    for k in range(3):
        v_ip = (k - 1) * v_abs
        a = (v - v_ip) / du
        b = v_ip - a * u_ip
        if b * b * MIN_HD2 <= 1.0 + a * a or (k > 0 and b * b_prev <= 0.0):
            return True
        b_prev = b
    return False


def _pairs(seed, n=4000):
    """Middles at 40-190 mm and other points up to 100 mm away in radius, 0.3 rad in phi and
    300 mm in z: both sides of most cuts."""
    rng = np.random.default_rng(seed)
    r_m = rng.uniform(40.0, 190.0, n)
    phi_m = rng.uniform(-math.pi, math.pi, n)
    z_m = rng.uniform(-300.0, 300.0, n)
    r_o = np.maximum(r_m + rng.uniform(-100.0, 100.0, n), 1.0)
    r_o[:50] = r_m[:50] - CFG.delta_r_min_mm  # exactly on the radial cut
    r_o[50:60] = r_m[50:60]  # no radial distance
    phi_o = phi_m + rng.uniform(-0.3, 0.3, n)
    z_o = z_m + rng.uniform(-300.0, 300.0, n)
    var = rng.uniform(1e-4, 1e-2, (4, n))
    return [(m_r * math.cos(m_p), m_r * math.sin(m_p), m_z, m_r, va, vb, o_r * math.cos(o_p), o_r * math.sin(o_p), o_z,
             o_r, vc, vd) for m_r, m_p, m_z, o_r, o_p, o_z, va, vb, vc, vd
            in zip(r_m, phi_m, z_m, r_o, phi_o, z_o, *var)]


@pytest.mark.parametrize("is_bottom", [True, False])
def test_shared_doublet_cuts_equal_the_early_return_cuts(is_bottom):
    out = np.empty((1, 6))
    for p in _pairs(1 if is_bottom else 2):
        x_m, y_m, z_m, r_m, vr_m, vz_m, x_o, y_o, z_o, r_o, vr_o, vz_o = p
        assert doublet_compatible(r_m, z_m, r_o, z_o, is_bottom, *CUTS) == \
            _doublet_reference(r_m, z_m, r_o, z_o, is_bottom)
        if r_o == r_m:
            continue
        lin_circle(x_m, y_m, z_m, r_m, vr_m, vz_m, x_o, y_o, z_o, vr_o, vz_o, is_bottom, out, 0)
        assert out[0].tolist() == _lin_circle_reference((x_m, y_m, z_m, r_m, vr_m, vz_m), (x_o, y_o, z_o, vr_o, vz_o),
                                                        is_bottom)
        for impact in (CFG.impact_max_mm, 3.0, 0.0):
            assert doublet_helix_compatible(out, 0, r_m, impact, MIN_HD2) == \
                _helix_reference(out[0, 3], out[0, 4], r_m, impact)


@pytest.mark.parametrize("side", [0, 1])
def test_vectorized_doublet_pass_equals_the_scalar_cuts(side):
    pairs = [p for p in _pairs(3 + side, 600) if p[9] != p[3]]
    mid = pairs[0][:6]
    # all candidates of one middle: move the other points next to the first middle
    buf = np.zeros((16, len(pairs)))
    for i, p in enumerate(pairs):
        buf[6:12, i] = (p[6] - p[0] + mid[0], p[7] - p[1] + mid[1], p[8] - p[2] + mid[2], 0.0, p[10], p[11])
        buf[9, i] = math.hypot(buf[6, i], buf[7, i])
    seeding._doublet_pass(buf, len(pairs), (*mid, side), (CUTS, (CFG.impact_max_mm, MIN_HD2)))
    for i in range(len(pairs)):
        other = (buf[6, i], buf[7, i], buf[8, i], buf[10, i], buf[11, i])
        lc = _lin_circle_reference(mid, other, side == 0)
        assert buf[0:6, i].tolist() == lc
        ok = _doublet_reference(mid[3], mid[2], buf[9, i], buf[8, i], side == 0) and \
            _helix_reference(lc[3], lc[4], mid[3], CFG.impact_max_mm)
        assert buf[12, i] == (1.0 if ok else 0.0)


def test_grid_order_equals_lexsort():
    rng = np.random.default_rng(5)
    cell = rng.integers(0, 40, 3000)
    cell[:200] = 7  # one cell above the insertion-sort size
    r = rng.choice(rng.uniform(30.0, 200.0, 500), 3000)  # repeated radii: ties keep the input order
    order, start = seeding._grid_order(cell, r, 41)
    np.testing.assert_array_equal(order, np.lexsort((r, cell)))
    np.testing.assert_array_equal(start, np.searchsorted(np.sort(cell), np.arange(42)))


@pytest.mark.parametrize("nt", [1, 2, 9, 24, 25, 300])
def test_sorted_tops_and_cot_windows_equal_a_stable_sort_and_a_binary_search(nt):
    rng = np.random.default_rng(nt)
    lc = np.zeros((nt, 6))
    lc[:, 0] = np.round(rng.normal(0.0, 2.0, nt), 1 if nt > 24 else 3)  # clusters and ties
    lc[:, 2] = rng.uniform(0.0, 0.05, nt)
    lc[:, 5] = rng.uniform(0.0, 1e-6, nt)
    cot = np.empty(nt + 2)
    order = np.empty(nt, np.int64)
    bucket = np.empty((2, seeding._N_BUCKETS * nt + 2), np.int64)
    inv_width, er_max, idr_max, cot_max = seeding._sort_tops(lc, nt, cot, order, bucket)
    stable = np.argsort(lc[:, 0], kind="stable")
    np.testing.assert_array_equal(order, stable)
    np.testing.assert_array_equal(cot[1:nt + 1], lc[stable, 0])
    assert (cot[0], cot[nt + 1]) == (-np.inf, np.inf)
    assert (er_max, idr_max, cot_max) == (lc[:, 5].max(), lc[:, 2].max(), np.abs(lc[:, 0]).max())
    values = np.concatenate([lc[:, 0], lc[:, 0] + 1e-12, rng.uniform(-12.0, 12.0, 200), [-1e9, 1e9]])
    for v in values:
        for above, side in ((False, "left"), (True, "right")):
            p = seeding._cot_position(cot, bucket, v, (inv_width, nt), above)
            assert p == np.searchsorted(cot[1:nt + 1], v, side) + 1


def test_seeds_of_a_small_event(small_result):
    """The seed finder's counters are consistent and every seed's doublets pass the shared cuts."""
    seeds = small_result.seeds
    sp = small_result.spacepoints
    assert len(seeds) > 100
    assert seeds.stats["triplet_tests"] >= len(seeds)
    r = np.hypot(sp.x, sp.y)
    for b, m, t in zip(seeds.bottom[:200], seeds.middle[:200], seeds.top[:200]):
        assert doublet_compatible(r[m], sp.z[m], r[b], sp.z[b], True, *CUTS)
        assert doublet_compatible(r[m], sp.z[m], r[t], sp.z[t], False, *CUTS)
    assert len(find_seeds(sp)) == len(seeds)
