"""Inward track extension: perigee path, hand-built tracks that lost their inner measurements,
ownership rules, and the effect in the chain."""

import math

import numpy as np
import pytest

from reference.tracking.chain import CPU_CHAIN, ChainConfig, reconstruct_event
from reference.tracking.ckf import Tracks, measurement_grid
from reference.tracking.extension import ExtensionConfig, extend_tracks_inward, perigee_path
from reference.tracking.helix import C_LIGHT, helix_advance
from reference.tracking.performance import evaluate


def test_perigee_path_of_a_straight_line_and_of_a_helix():
    assert perigee_path(10.0, 0.0, 1.0, 0.0, 0.0) == pytest.approx(-10.0)
    assert perigee_path(3.0, 4.0, -0.6, -0.8, 0.0) == 0.0  # moving inwards: the perigee lies ahead
    # a helix leaving the origin: after 150 mm the perigee is 150 mm back
    kappa = C_LIGHT * 2.0 * 1.0 / 0.3  # 300 MeV
    st = math.sin(1.2)
    x, y, _, tx, ty, _ = helix_advance(0.0, 0.0, 0.0, 0.6 * st, 0.8 * st, math.cos(1.2), kappa, 150.0)
    assert perigee_path(x, y, tx, ty, kappa) == pytest.approx(-150.0, abs=1e-6)


def _truth_index(event, result):
    """Particle id of every measurement (its representative hit)."""
    sorter = np.argsort(event.truth.hit_id)
    row = sorter[np.searchsorted(event.truth.hit_id[sorter], result.measurements.hit_id)]
    return event.truth.particle_id[row]


@pytest.fixture(scope="module")
def stripped(small_event, small_result):
    """Single-pass tracks (no extension), which of them start on their seed's bottom
    measurement, and the particle id of every measurement."""
    res = small_result
    meas = res.measurements
    first = res.tracks.meas[res.tracks.offsets[:-1]]
    starts_on_seed = first == res.parameters.surface[res.tracks.seed]
    return res, starts_on_seed, _truth_index(small_event, res), meas


def test_extension_recovers_the_inner_measurements_of_their_own_particle(stripped):
    res, starts_on_seed, particle, meas = stripped
    t = res.tracks
    ext = extend_tracks_inward(t, res.parameters, meas, measurement_grid(meas))
    assert len(ext) == len(t)
    gained = ext.n_meas - t.n_meas
    assert gained.sum() > 0 and np.all(gained[~starts_on_seed] == 0)
    for i in np.nonzero(gained)[0]:
        new = ext.meas[ext.offsets[i]:ext.offsets[i] + gained[i]]
        old = ext.meas[ext.offsets[i] + gained[i]:ext.offsets[i + 1]]
        np.testing.assert_array_equal(old, t.meas[t.offsets[i]:t.offsets[i + 1]])  # old ones follow, unchanged
        assert not set(new.tolist()) & set(t.meas.tolist())  # only measurements on no track
    # measurements go to one track only, and to the right particle
    assert np.bincount(ext.meas).max() <= np.bincount(t.meas).max()
    right = 0
    for i in np.nonzero(gained)[0]:
        ids, counts = np.unique(particle[t.meas[t.offsets[i]:t.offsets[i + 1]]], return_counts=True)
        new = ext.meas[ext.offsets[i]:ext.offsets[i] + gained[i]]
        right += int(np.sum(particle[new] == ids[counts.argmax()]))
    assert right >= 0.9 * gained.sum()


def test_extension_never_takes_a_measurement_of_another_track(stripped):
    res, _, _, meas = stripped
    t = res.tracks
    grid = measurement_grid(meas)
    ext = extend_tracks_inward(t, res.parameters, meas, grid)
    i = int(np.argmax(ext.n_meas - t.n_meas))
    taken = ext.meas[ext.offsets[i]]
    assert taken not in set(t.meas.tolist())
    # the same tracks plus one more track (seed of track 0) that already owns that measurement
    blocker = Tracks(np.append(t.offsets, t.offsets[-1] + 1), np.append(t.meas, taken), np.append(t.chi2, 0.0),
                     np.append(t.n_holes, 0), np.vstack([t.params, t.params[:1]]), np.append(t.seed, t.seed[0]))
    again = extend_tracks_inward(blocker, res.parameters, meas, grid)
    assert taken not in set(again.meas[again.offsets[i]:again.offsets[i + 1]].tolist())
    assert np.all(np.bincount(again.meas) <= np.maximum(np.bincount(blocker.meas, minlength=len(meas)), 1)
                  [:len(np.bincount(again.meas))])
    # tracks extended before no longer start on their seed and are left as they are
    twice = extend_tracks_inward(ext, res.parameters, meas, grid)
    np.testing.assert_array_equal(twice.meas, ext.meas)
    # a zero chi2 cut takes nothing
    none = extend_tracks_inward(t, res.parameters, meas, grid, ExtensionConfig(chi2_max=0.0))
    np.testing.assert_array_equal(none.meas, t.meas)


def test_cpu_chain_raises_the_score_and_keeps_the_targets(small_event, small_result, detector):
    ext = reconstruct_event(small_event, detector, ChainConfig(extension=ExtensionConfig()))
    base = evaluate(small_event, small_result)
    perf_ext = evaluate(small_event, ext)
    assert perf_ext["trackml_score"] > base["trackml_score"]
    assert "extension" in ext.timings_s
    full = reconstruct_event(small_event, detector, CPU_CHAIN)
    perf = evaluate(small_event, full)
    assert perf["trackml_score"] > base["trackml_score"] + 0.15
    after = perf["after_ambiguity"]
    assert after["fake_rate"] <= 0.05 and after["duplicate_rate"] <= 0.02
    assert after["efficiency"] >= base["after_ambiguity"]["efficiency"] - 0.02
    assert {"extension", "extension_low_pt", "seeding_low_pt"} <= set(full.timings_s)
