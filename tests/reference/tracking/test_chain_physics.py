import numpy as np

from reference.tracking.chain import submission
from reference.tracking.performance import evaluate, match_tracks


def test_simulation_is_deterministic(detector, planes):
    from reference.tracking.simulation import SimulationConfig, simulate_event
    a = simulate_event(detector, SimulationConfig(pileup=2), seed=11, planes=planes)
    b = simulate_event(detector, SimulationConfig(pileup=2), seed=11, planes=planes)
    c = simulate_event(detector, SimulationConfig(pileup=2), seed=12, planes=planes)
    np.testing.assert_array_equal(a.hits.x, b.hits.x)
    np.testing.assert_array_equal(a.cells.value, b.cells.value)
    assert len(a.hits) != len(c.hits) or not np.array_equal(a.hits.x, c.hits.x)


def test_cluster_size_grows_with_incidence_angle(small_event):
    ev = small_event
    barrel_pixel = ev.hits.volume_id == 8
    size = np.bincount(ev.cells.hit_id, minlength=len(ev.hits) + 1)[ev.hits.hit_id]
    r = np.hypot(ev.truth.tx, ev.truth.ty)
    cot = np.abs(ev.truth.tz / r)  # |cot theta| from the origin ~ incidence along z
    prim = barrel_pixel & (ev.truth.particle_id != 0)
    small = size[prim & (cot < 0.3)].mean()
    large = size[prim & (cot > 2.0)].mean()
    assert large > 2.0 * small


def test_seeding_and_tracking_efficiency_small_event(small_event, small_result):
    perf = evaluate(small_event, small_result)
    assert perf["particles_selected_tracking"] >= 20
    assert perf["seeding_efficiency"] >= 0.9
    after = perf["after_ambiguity"]
    assert after["efficiency"] >= 0.9
    assert after["fake_rate"] <= 0.05
    assert after["duplicate_rate"] <= 0.02
    assert perf["before_ambiguity"]["duplicate_rate"] >= after["duplicate_rate"]
    res = perf["seed_parameter_resolution"]
    assert res["charge_correct_fraction"] > 0.97
    assert res["sigma_pt_rel"] < 0.3
    assert 0.2 < perf["trackml_score"] <= 1.0


def test_tracks_are_truth_pure_and_consistent(small_event, small_result):
    t = small_result.tracks
    assert np.all(t.n_meas >= 7)
    # no measurement on two tracks after ambiguity resolution beyond the allowed sharing
    counts = np.bincount(t.meas, minlength=len(small_result.measurements))
    assert counts.max() <= 2
    hit_id, track_id = submission(small_result, small_event.hits.hit_id)
    assert len(hit_id) == len(small_event.hits)
    assert set(np.unique(track_id)) - {0} == set(range(1, len(t) + 1))


def test_hits_only_reconstruction_without_detector(small_event):
    """Without cells and detector, layers come from the hits and the chain still works."""
    from dataclasses import replace

    from reference.tracking.chain import reconstruct_event
    ev = replace(small_event, cells=None)
    res = reconstruct_event(ev, None)
    assert not res.used_cells
    perf = evaluate(ev, res)
    assert perf["after_ambiguity"]["efficiency"] >= 0.85
    assert perf["after_ambiguity"]["fake_rate"] <= 0.05


def test_match_tracks_majority():
    from reference.tracking.ckf import Tracks
    t = Tracks(np.array([0, 3, 6]), np.array([0, 1, 2, 3, 4, 5]), np.zeros(2), np.zeros(2, int), np.zeros((2, 5)),
               np.zeros(2, int))
    mp = np.array([4, 4, 9, 1, 2, -1])
    np.testing.assert_array_equal(match_tracks(t, mp), [4, -1])


def test_low_pt_iteration_raises_the_trackml_score(small_event, small_result, detector):
    from reference.tracking.chain import ChainConfig, LowPtIteration, reconstruct_event
    res = reconstruct_event(small_event, detector, ChainConfig(low_pt=LowPtIteration()))
    base = evaluate(small_event, small_result)
    low = evaluate(small_event, res)
    assert low["trackml_score"] > base["trackml_score"] + 0.1
    assert low["after_ambiguity"]["fake_rate"] <= 0.05
    assert low["after_ambiguity"]["efficiency"] >= base["after_ambiguity"]["efficiency"] - 0.02
    assert "seeding_low_pt" in res.timings_s


def test_leftover_iteration_adds_tracks_without_taking_measurements(small_event, detector):
    """The last iteration keeps every earlier track as it was, adds tracks only on measurements
    no earlier track holds (and none twice), and raises the TrackML score."""
    from reference.tracking.chain import ChainConfig, LeftoverIteration, LowPtIteration, reconstruct_event
    before = reconstruct_event(small_event, detector, ChainConfig(low_pt=LowPtIteration()))
    after = reconstruct_event(small_event, detector, ChainConfig(low_pt=LowPtIteration(), leftover=LeftoverIteration()))
    n = len(before.tracks)
    assert len(after.tracks) > n and after.info["tracks_leftover"] == len(after.tracks) - n
    np.testing.assert_array_equal(after.tracks.offsets[:n + 1], before.tracks.offsets)
    np.testing.assert_array_equal(after.tracks.meas[:before.tracks.offsets[-1]], before.tracks.meas)
    added = after.tracks.meas[before.tracks.offsets[-1]:]
    assert len(np.unique(added)) == len(added) and not np.intersect1d(added, before.tracks.meas).size
    assert np.all(after.tracks.n_meas[n:] >= LeftoverIteration().ambiguity.min_measurements)
    assert evaluate(small_event, after)["trackml_score"] > evaluate(small_event, before)["trackml_score"]
    assert evaluate(small_event, after)["after_ambiguity"]["fake_rate"] <= 0.05
    assert {"seeding_leftover", "ckf_leftover"} <= set(after.timings_s)


def test_without_measurements_drops_used_hits_and_short_tracks():
    from reference.tracking.chain import without_measurements
    from reference.tracking.ckf import Tracks
    tracks = Tracks(np.array([0, 4, 6, 11]), np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), np.array([1.0, 2.0, 3.0]),
                    np.array([0, 1, 2]), np.arange(15.0).reshape(3, 5), np.array([10, 11, 12]))
    used = np.zeros(12, bool)
    used[[2, 8]] = True
    out = without_measurements(tracks, used, 3)
    assert out.offsets.tolist() == [0, 3, 7] and out.meas.tolist() == [1, 3, 4, 7, 9, 10, 11]
    assert out.seed.tolist() == [10, 12] and out.chi2.tolist() == [1.0, 3.0] and out.n_holes.tolist() == [0, 2]
    np.testing.assert_array_equal(out.params, tracks.params[[0, 2]])
    assert len(without_measurements(tracks, np.ones(12, bool), 1)) == 0


def test_in_seed_span_holds_crossings_between_bottom_and_top():
    from reference.tracking.ckf import in_seed_span, seed_span_variance
    # two measurements on planes through the origin's x axis: local (u, v) -> global (0, u, v) + centre
    planes = np.zeros((2, 12))
    planes[:, 0] = [30.0, 110.0]  # centres at r = 30 and 110 mm on the x axis
    planes[:, 4] = 1.0  # U = y
    planes[:, 8] = 1.0  # V = z
    planes[:, 9] = 1.0  # W = x
    l0, l1 = np.array([0.0, 4.0]), np.array([10.0, 40.0])  # bottom (30, 0, 10), top (110, 4, 40)
    hits = (planes, l0, l1)
    assert in_seed_span(hits, 0, 1, (70.0, 2.0, 25.0))  # half way
    assert in_seed_span(hits, 0, 1, (31.0, 0.0, 10.0))
    assert not in_seed_span(hits, 0, 1, (110.0, 4.0, 40.0))  # on the top: not before it
    assert not in_seed_span(hits, 0, 1, (150.0, 6.0, 55.0))  # beyond the top
    seed = np.array([0, 0, 1])
    assert seed_span_variance(9.0, 1.0, hits, seed, (70.0, 2.0, 25.0)) == 1.0
    assert seed_span_variance(0.5, 1.0, hits, seed, (70.0, 2.0, 25.0)) == 0.5  # never raised
    assert seed_span_variance(9.0, 0.0, hits, seed, (70.0, 2.0, 25.0)) == 9.0  # cap off
    assert seed_span_variance(9.0, 1.0, hits, seed, (150.0, 6.0, 55.0)) == 9.0  # outside the span


def test_seed_span_window_cap_scans_fewer_measurements_for_the_same_tracks(small_result):
    """Capping the window's prediction error between the seed's spacepoints scans and propagates
    fewer candidates; the tracks stay those of the uncapped windows (pile-up 10)."""
    from reference.tracking.ckf import CkfConfig, find_tracks
    res = small_result
    sp, seeds = res.spacepoints, res.seeds
    seed_meas = np.column_stack([sp.measurement[seeds.bottom], sp.measurement[seeds.middle],
                                 sp.measurement[seeds.top]])[res.seed_valid]
    order = np.argsort(-seeds.weight[res.seed_valid], kind="stable")
    capped = find_tracks(res.parameters, seed_meas, res.measurements, CkfConfig(), seed_order=order)
    wide = find_tracks(res.parameters, seed_meas, res.measurements, CkfConfig(seed_span_sigma_mm=0.0),
                       seed_order=order)
    assert capped.stats["window_items"] < 0.9 * wide.stats["window_items"]
    assert capped.stats["propagations"] < wide.stats["propagations"]
    same = {tuple(capped.meas[a:b]) for a, b in zip(capped.offsets[:-1], capped.offsets[1:])}
    other = {tuple(wide.meas[a:b]) for a, b in zip(wide.offsets[:-1], wide.offsets[1:])}
    assert len(same & other) >= 0.95 * max(len(same), len(other))


def test_skip_rule_counts_only_long_tracks_when_asked(small_result):
    """With skip_min_track_measurements, measurements of shorter tracks do not make later seeds
    skip: more seeds run; above every track's length no seed skips."""
    from reference.tracking.ckf import CkfConfig, find_tracks
    res = small_result
    sp, seeds = res.spacepoints, res.seeds
    seed_meas = np.column_stack([sp.measurement[seeds.bottom], sp.measurement[seeds.middle],
                                 sp.measurement[seeds.top]])[res.seed_valid]
    order = np.argsort(-seeds.weight[res.seed_valid], kind="stable")
    plain = find_tracks(res.parameters, seed_meas, res.measurements, CkfConfig(min_measurements=5), seed_order=order)
    long_only = find_tracks(res.parameters, seed_meas, res.measurements,
                            CkfConfig(min_measurements=5, skip_min_track_measurements=9), seed_order=order)
    assert (plain.n_meas < 9).any()
    assert long_only.stats["seeds_run"] > plain.stats["seeds_run"]
    never = find_tracks(res.parameters, seed_meas, res.measurements,
                        CkfConfig(min_measurements=5, skip_min_track_measurements=100), seed_order=order)
    no_skip = find_tracks(res.parameters, seed_meas, res.measurements,
                          CkfConfig(min_measurements=5, skip_used_seeds=False), seed_order=order)
    np.testing.assert_array_equal(never.seed, no_skip.seed)
    np.testing.assert_array_equal(never.meas, no_skip.meas)


def test_grid_without_items_keeps_bins_and_order_of_the_rest(small_result):
    from reference.tracking.chain import without_items
    from reference.tracking.ckf import measurement_grid
    meas = small_result.measurements
    grid = measurement_grid(meas)
    drop = np.zeros(len(meas), bool)
    drop[::3] = True
    sub = without_items(grid, drop)
    assert not drop[sub.items].any()
    assert len(sub.items) == (~drop[grid.items]).sum()
    for b in range(0, len(grid.bin_start) - 1, 7):
        whole = grid.items[grid.bin_start[b]:grid.bin_start[b + 1]]
        np.testing.assert_array_equal(sub.items[sub.bin_start[b]:sub.bin_start[b + 1]], whole[~drop[whole]])


def test_later_iterations_search_only_free_measurements(small_event, detector, monkeypatch):
    """With free_measurements_only (the default) the low-pT CKF never proposes a measurement of a
    first-pass track; without it, it may."""
    import reference.tracking.chain as chain
    found = {}
    original = chain._iteration_tracks

    def spy(config, iteration, event, clock, name):
        out = original(config, iteration, event, clock, name)
        found[name] = (out[2], event[3])
        return out

    monkeypatch.setattr(chain, "_iteration_tracks", spy)
    for free in (True, False):
        low_pt = chain.LowPtIteration(free_measurements_only=free)
        chain.reconstruct_event(small_event, detector, chain.ChainConfig(low_pt=low_pt))
        tracks, used = found["low_pt"]
        assert len(tracks) > 0
        assert used[tracks.meas].any() != free
