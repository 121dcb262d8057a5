"""Overlap pick-up: local helix, hand-built tracks with a second measurement on an overlapping
module, ownership and module rules, and the step in the CPU chain."""

import math

import numpy as np
import pytest

from reference.tracking.chain import CPU_CHAIN, reconstruct_event
from reference.tracking.ckf import Tracks
from reference.tracking.geometry import KIND_CYLINDER, Layers
from reference.tracking.helix import C_LIGHT, helix_advance, helix_plane_path
from reference.tracking.overlaps import OverlapConfig, add_overlap_measurements, insert_after, local_helix
from reference.tracking.performance import evaluate
from reference.tracking.spacepoints import Measurements

BZ = 2.0
PT_GEV = 0.5
THETA = 1.2
START = (0.0, 0.0, 0.0, math.cos(0.3) * math.sin(THETA), math.sin(0.3) * math.sin(THETA), math.cos(THETA))
KAPPA = C_LIGHT * BZ / (PT_GEV / math.sin(THETA))  # positive charge


def _barrel_plane(radius, phi, tilt=0.0):
    """Module plane at (radius, phi), normal rotated by ``tilt`` around z from the radial
    direction: centre, U, V, W."""
    a = phi + tilt
    return np.array([radius * math.cos(phi), radius * math.sin(phi), 0.0, -math.sin(a), math.cos(a), 0.0,
                     0.0, 0.0, 1.0, math.cos(a), math.sin(a), 0.0])


def _crossing(plane):
    """Local coordinates where the helix from START crosses the plane."""
    s = helix_plane_path(*START, KAPPA, plane[0], plane[1], plane[2], plane[9], plane[10], plane[11])
    p = np.array(helix_advance(*START, KAPPA, s)[:3]) - plane[0:3]
    return p @ plane[3:6], p @ plane[6:9]


def _phi_at_radius(radius):
    """phi of the helix position at the given transverse radius."""
    for s in np.arange(1.0, 400.0, 0.05):
        x, y, _, _, _, _ = helix_advance(*START, KAPPA, s)
        if math.hypot(x, y) >= radius:
            return math.atan2(y, x)
    raise AssertionError


def _event(extra):
    """Measurements of the helix on four barrel layers (volume 8; rows 0-3), followed by
    ``extra`` (list of (plane, du_mm, layer)): a measurement on that plane du mm beside the
    helix crossing."""
    radii = (32.0, 72.0, 116.0, 172.0)
    rows = [(_barrel_plane(r, _phi_at_radius(r)), 0.0, i) for i, r in enumerate(radii)] + list(extra)
    planes = np.array([p for p, _, _ in rows])
    local = np.array([_crossing(p) for p, _, _ in rows])
    local[:, 0] += [du for _, du, _ in rows]
    n = len(rows)
    layers = Layers(np.full(4, 8), np.arange(2, 10, 2), np.full(4, KIND_CYLINDER), np.array(radii),
                    np.full(4, -500.0), np.full(4, 500.0), np.full(4, 2.0), np.full(4, 0.01))
    return Measurements(planes, local[:, 0].copy(), local[:, 1].copy(), np.full(n, 2e-4), np.full(n, 2e-4),
                        np.array([layer for _, _, layer in rows]), np.arange(1, n + 1), np.arange(n), layers)


def _tracks(*tracks):
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in tracks])])
    k = len(tracks)
    return Tracks(offsets, np.concatenate(tracks).astype(np.int64), np.zeros(k), np.zeros(k, np.int64),
                  np.zeros((k, 5)), np.arange(k))


# second layer (r = 72 mm): an overlapping module 3 mm further out, turned by 0.1 rad, 4 mm
# along phi from the track's module
OVERLAP = _barrel_plane(75.0, _phi_at_radius(75.0) + 4.0 / 75.0, tilt=0.1)


def test_local_helix_follows_a_helix():
    points = [np.array(helix_advance(*START, KAPPA, s)[:3]) for s in (0.0, 40.0, 90.0)]
    for k, s in enumerate((0.0, 40.0, 90.0)):
        state = local_helix(points[0], points[1], points[2], k)
        expected = helix_advance(*START, KAPPA, s)
        np.testing.assert_allclose(state[:6], expected, atol=1e-6)
        assert state[6] == pytest.approx(KAPPA, rel=1e-6)
    straight = local_helix(np.zeros(3), np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0]), 2)
    np.testing.assert_allclose(straight, (2.0, 2.0, 2.0, 1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3), 0.0),
                               atol=1e-12)


def test_insert_after_keeps_the_order():
    t = _tracks(np.array([0, 1, 2]), np.array([3, 4]))
    out = insert_after(t, np.array([-1, 7, 8, 9, -1]))
    np.testing.assert_array_equal(out.offsets, [0, 5, 8])
    np.testing.assert_array_equal(out.meas, [0, 1, 7, 2, 8, 3, 9, 4])


def test_the_overlap_measurement_is_inserted_after_its_partner():
    # row 4: the overlap; row 5: 1 mm beside the helix on another module (chi2 far too large)
    meas = _event([(OVERLAP, 0.0, 1), (_barrel_plane(75.0, _phi_at_radius(75.0) - 4.0 / 75.0, 0.1), 1.0, 1)])
    out = add_overlap_measurements(_tracks(np.arange(4)), meas)
    np.testing.assert_array_equal(out.meas, [0, 1, 4, 2, 3])
    np.testing.assert_array_equal(out.offsets, [0, 5])


def test_taken_same_module_and_cut_measurements_stay_off():
    meas = _event([(OVERLAP, 0.0, 1)])
    track = np.arange(4)
    # owned by another track
    out = add_overlap_measurements(_tracks(track, np.array([4, 3, 2])), meas)
    np.testing.assert_array_equal(out.meas, [0, 1, 2, 3, 4, 3, 2])
    # on the module of the track's own measurement
    same = _event([(meas.planes[1], 0.01, 1)])
    np.testing.assert_array_equal(add_overlap_measurements(_tracks(track), same).meas, track)
    # a zero chi2 cut, a search outside the pixel barrel, a window too small to reach it
    for cfg in (OverlapConfig(chi2_max=0.0), OverlapConfig(volumes=(7, 9)), OverlapConfig(window_mm=1.0)):
        np.testing.assert_array_equal(add_overlap_measurements(_tracks(track), meas, cfg).meas, track)
    # a second measurement of the layer on the track already: nothing more on that layer
    out = add_overlap_measurements(_tracks(np.array([0, 1, 4, 2, 3])), meas)
    np.testing.assert_array_equal(out.meas, [0, 1, 4, 2, 3])


def test_cpu_chain_overlaps_raise_the_score(small_event, detector):
    import dataclasses

    full = reconstruct_event(small_event, detector, CPU_CHAIN)
    without = reconstruct_event(small_event, detector, dataclasses.replace(CPU_CHAIN, overlaps=None))
    assert "overlaps" in full.timings_s and "overlaps" not in without.timings_s
    gained = full.tracks.n_meas - without.tracks.n_meas
    assert gained.sum() > 0 and gained.min() >= 0
    added = np.setdiff1d(full.tracks.meas, without.tracks.meas)
    assert len(added) == gained.sum()  # only measurements on no track, each to one track
    assert evaluate(small_event, full)["trackml_score"] > evaluate(small_event, without)["trackml_score"]
