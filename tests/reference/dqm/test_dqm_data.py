"""Synthetic LAr DQ data: generator physics, injectors, windows, standardiser, splits and HDF5 I/O."""

import json
import time

import h5py
import numpy as np
import pytest

from reference.dqm import io as dqm_io
from reference.dqm.data import (
    ANOMALY_CODES, ANOMALY_TYPES, BENIGN_CODES, FEATURES, PARTITIONS, AnomalyConfig, DatasetConfig,
    GeneratorConfig, ModeProfile, Run, Standardiser, feature_index, generate_dataset, generate_run, inject,
    make_windows, partition_columns, place_intervals, split_runs,
)
from reference.dqm.errors import DQMDataError

LONG = GeneratorConfig(min_lb=800, max_lb=800)


@pytest.fixture(scope="module", name="good_run")
def fixture_good_run():
    return generate_run(LONG, 431000, seed=3)


@pytest.fixture(scope="module", name="dataset")
def fixture_dataset():
    return generate_dataset(DatasetConfig(n_runs=12, seed=5, generator=GeneratorConfig(min_lb=300, max_lb=500)))


def _residuals(run):
    """Features minus their least-squares linear luminosity dependence."""
    design = np.column_stack([np.ones(run.n_lb), run.luminosity])
    coef, *_ = np.linalg.lstsq(design, run.values.astype(np.float64), rcond=None)
    return run.values - design @ coef


def _lag1(x):
    return np.array([np.corrcoef(x[1:, f], x[:-1, f])[0, 1] for f in range(x.shape[1])])


def _changed(before, after):
    """Boolean (n_lb, 16) mask of the entries an injection changed."""
    return before.values != after.values


def _expected_mask(n_lb, rows, cols):
    mask = np.zeros((n_lb, len(FEATURES)), bool)
    mask[np.ix_(np.asarray(rows), np.asarray(cols))] = True
    return mask


# ---------------------------------------------------------------- generator


def test_feature_order_and_index():
    assert len(FEATURES) == 16
    assert FEATURES[:4] == ("q_mean_EMBA", "q_std_EMBA", "tau_mean_EMBA", "tau_std_EMBA")
    for p, name in enumerate(PARTITIONS):
        for q in ("q", "tau"):
            for s in ("mean", "std"):
                assert FEATURES[feature_index(q, s, name)] == f"{q}_{s}_{name}"
                assert feature_index(q, s, p) == feature_index(q, s, name)
    with pytest.raises(DQMDataError, match="Unknown partition"):
        feature_index("q", "mean", "TILE")
    with pytest.raises(DQMDataError, match="Unknown quantity"):
        feature_index("e", "mean", 0)


def test_generate_run_shapes_dtypes_and_determinism(good_run):
    again = generate_run(LONG, 431000, seed=3)
    assert good_run.values.shape == (800, 16) and good_run.values.dtype == np.float32
    assert good_run.luminosity.dtype == np.float32 and good_run.labels.dtype == np.int8
    assert good_run.benign.dtype == np.int16 and good_run.partition.dtype == np.int8
    assert not good_run.labels.any() and not good_run.benign.any() and (good_run.partition == -1).all()
    assert np.array_equal(again.values, good_run.values) and np.array_equal(again.luminosity, good_run.luminosity)
    assert not np.array_equal(generate_run(LONG, 431000, seed=4).values, good_run.values)
    assert not np.array_equal(generate_run(LONG, 431001, seed=3).values, good_run.values)
    lengths = [generate_run(GeneratorConfig(), n, seed=1).n_lb for n in range(30)]
    assert min(lengths) >= 300 and max(lengths) <= 1000 and len(set(lengths)) > 10


def test_run_validates_shapes():
    n = 5
    ok = dict(run_number=1, mode="pp", values=np.zeros((n, 16)), luminosity=np.ones(n), labels=np.zeros(n, int),
              benign=np.zeros(n, int), partition=-np.ones(n, int))
    Run(**ok)
    for key, bad, message in [("values", np.zeros((n, 15)), "values must have shape"),
                              ("luminosity", np.ones(n + 1), "luminosity must have shape"),
                              ("labels", np.zeros(n - 1, int), "labels must have shape"),
                              ("labels", np.full(n, 9), "unknown code 9"),
                              ("benign", np.full(n, 1), "unknown code 1"),
                              ("partition", np.full(n, 4), "unknown code 4"),
                              ("mode", "cosmics", "unknown mode")]:
        with pytest.raises(DQMDataError, match=message):
            Run(**{**ok, key: bad})


def test_luminosity_decays_and_drives_correlated_drifts(good_run):
    lumi = good_run.luminosity
    assert lumi[:50].mean() > 1.3 * lumi[-50:].mean()
    kernel = np.ones(25) / 25
    for p in PARTITIONS:
        for q, s in (("q", "std"), ("tau", "mean")):
            smooth = np.convolve(good_run.values[:, feature_index(q, s, p)], kernel, mode="valid")
            assert np.corrcoef(smooth, np.convolve(lumi, kernel, mode="valid"))[0, 1] > 0.9, (q, s, p)
    flat = generate_run(GeneratorConfig(min_lb=800, max_lb=800, pp=ModeProfile(lumi_drift_sigma=(0, 0, 0, 0))), 431000, 3)
    smooth = np.convolve(flat.values[:, feature_index("q", "std", 0)], kernel, mode="valid")
    assert abs(np.corrcoef(smooth, np.convolve(flat.luminosity, kernel, mode="valid"))[0, 1]) < 0.6


def test_a_and_c_sides_are_nearly_symmetric(good_run):
    for f in range(16):
        if FEATURES[f].endswith("A"):
            mirror = FEATURES.index(FEATURES[f][:-1] + "C")
            assert np.corrcoef(good_run.values[:, f], good_run.values[:, mirror])[0, 1] > 0.9, FEATURES[f]
    independent = generate_run(GeneratorConfig(min_lb=800, max_lb=800, side_noise_fraction=1.0), 431000, 3)
    assert np.corrcoef(independent.values[:, 0], independent.values[:, 4])[0, 1] < 0.9


def test_ar1_noise_is_autocorrelated(good_run):
    assert (_lag1(_residuals(good_run)) > 0.3).all()
    white = generate_run(GeneratorConfig(min_lb=800, max_lb=800, ar1_coefficient=0.0), 431000, 3)
    assert (np.abs(_lag1(_residuals(white))) < 0.2).all()


def test_run_to_run_offsets():
    def intercept_spread(config):
        runs = [generate_run(config, n, seed=2) for n in range(12)]
        at_zero = np.array([run.values.mean(axis=0) - run.lumi_response * run.luminosity.mean() for run in runs])
        return (at_zero.std(axis=0) / runs[0].noise_sigma).mean()

    base = dict(min_lb=400, max_lb=400)
    assert intercept_spread(GeneratorConfig(**base)) > 1.0
    assert intercept_spread(GeneratorConfig(**base, run_offset_sigma=0.0, ac_asymmetry_sigma=0.0)) < 0.5


def test_heavy_ion_mode_shifts_distributions():
    pp = [generate_run(GeneratorConfig(), n, seed=1) for n in range(4)]
    hi = [generate_run(GeneratorConfig(mode="heavy_ion"), n, seed=1) for n in range(4)]
    assert all(run.mode == "heavy_ion" for run in hi)
    q_mean = feature_index("q", "mean", "EMBA")
    assert min(r.values[:, q_mean].mean() for r in hi) > max(r.values[:, q_mean].mean() for r in pp) + 5
    assert max(r.luminosity.max() for r in hi) < 1e-3 * min(r.luminosity.max() for r in pp)
    assert hi[0].noise_sigma[q_mean] > pp[0].noise_sigma[q_mean]


def test_generator_config_validation():
    for kwargs, message in [({"mode": "cosmics"}, "Unknown mode"), ({"min_lb": 500, "max_lb": 400}, "min_lb"),
                            ({"ar1_coefficient": 1.0}, "ar1_coefficient"), ({"noise_scale": 0.0}, "noise_scale")]:
        with pytest.raises(DQMDataError, match=message):
            GeneratorConfig(**kwargs)
    with pytest.raises(DQMDataError, match="LB ranges"):
        AnomalyConfig(burst_lb=(3, 2))
    with pytest.raises(DQMDataError, match="kinds"):
        DatasetConfig(kinds=("meteor",))


def test_generation_is_fast():
    config = GeneratorConfig(min_lb=1000, max_lb=1000)
    begin = time.perf_counter()
    runs = [generate_run(config, n, seed=0) for n in range(100)]
    assert time.perf_counter() - begin < 5.0
    assert sum(run.n_lb for run in runs) == 100_000


# ---------------------------------------------------------------- injectors


def test_noise_burst_changes_exactly_q_and_tau_width_of_one_partition(good_run):
    out = inject(good_run, "noise_burst", 100, partition=2, length=2)
    cols = [feature_index(q, s, 2) for q, s in (("q", "mean"), ("q", "std"), ("tau", "std"))]
    assert np.array_equal(_changed(good_run, out), _expected_mask(good_run.n_lb, [100, 101], cols))
    assert (out.values[100:102, cols] - good_run.values[100:102, cols] > 0).all()
    assert np.array_equal(np.flatnonzero(out.labels), [100, 101]) and (out.labels[100:102] == 1).all()
    assert (out.partition[100:102] == 2).all() and (out.partition[:100] == -1).all()
    # At severity 1 the mean-Q spike is 0.6..1 x 8 sigma.
    rise = (out.values[100:102, cols[0]] - good_run.values[100:102, cols[0]]) / good_run.noise_sigma[cols[0]]
    assert ((rise > 4.7) & (rise < 8.1)).all()


def test_noise_bursts_are_short_and_mostly_in_the_endcaps(good_run):
    endcap, both, lengths = 0, 0, set()
    for seed in range(60):
        out = inject(good_run, "noise_burst", 300, rng=np.random.default_rng(seed))
        changed_rows = np.flatnonzero(_changed(good_run, out).any(axis=1))
        changed_parts = set(np.flatnonzero(_changed(good_run, out).any(axis=0)) // 4)
        lengths.add(len(changed_rows))
        assert out.partition[300] in changed_parts and len(changed_parts) in (1, 2)
        endcap += out.partition[300] >= 2
        both += len(changed_parts) == 2
        if len(changed_parts) == 2:
            assert changed_parts in ({0, 1}, {2, 3})  # both sides of one detector
    assert lengths == {1, 2}
    assert 36 <= endcap <= 58 and 8 <= both <= 40


def test_hv_trip_steps_then_recovers_in_one_partition(good_run):
    out = inject(good_run, "hv_trip", 50, partition=1, length=15)
    assert np.array_equal(_changed(good_run, out), _expected_mask(good_run.n_lb, range(50, 65), partition_columns(1)))
    delta = (out.values - good_run.values.astype(np.float64))[50:65, partition_columns(1)] / good_run.noise_sigma[4:8]
    assert np.allclose(delta[0], AnomalyConfig().trip_step_sigma, rtol=1e-3)
    assert (np.diff(np.abs(delta), axis=0) < 0).all()  # monotone recovery
    assert np.all(np.abs(delta[-1]) < 0.1 * np.abs(delta[0]))
    # labelled while the largest shift (6 sigma x exp(-t / 5)) is at least 1 sigma: t <= 8
    assert (out.labels[50:59] == ANOMALY_CODES["hv_trip"]).all() and out.labels.sum() == 9 * 2
    assert np.all(np.abs(delta[9:]).max(axis=1) < AnomalyConfig().trip_visible_sigma)
    drawn = inject(good_run, "hv_trip", 400, rng=np.random.default_rng(1))
    assert 6 <= np.count_nonzero(drawn.labels) <= 12  # recoveries of 10 to 20 LBs
    faint = inject(good_run, "hv_trip", 50, 0.1, partition=1, length=15)
    assert np.count_nonzero(faint.labels) == 1  # below the noise from the start: the first LB only


def test_desync_shifts_mean_tau_until_end_of_run(good_run):
    out = inject(good_run, "desync", 200, partition=3, frozen=False)
    cols = [feature_index("tau", "mean", 3), feature_index("tau", "std", 3)]
    assert np.array_equal(_changed(good_run, out), _expected_mask(good_run.n_lb, range(200, 800), cols))
    shift = (out.values[200:, cols[0]] - good_run.values[200:, cols[0]]) / good_run.noise_sigma[cols[0]]
    assert np.allclose(shift, 6.0, rtol=1e-3)
    assert (out.labels[200:] == ANOMALY_CODES["desync"]).all() and not out.labels[:200].any()
    frozen = inject(good_run, "desync", 200, partition=3, frozen=True, length=40)
    block = frozen.values[200:240, partition_columns(3)]
    assert (block == block[0]).all() and np.array_equal(frozen.values[240:], good_run.values[240:])
    assert np.array_equal(np.flatnonzero(frozen.labels), np.arange(200, 240))


def test_noisy_channel_is_a_small_persistent_std_q_increase(good_run):
    out = inject(good_run, "noisy_channel", 120, partition=0)
    col = feature_index("q", "std", 0)
    assert np.array_equal(_changed(good_run, out), _expected_mask(good_run.n_lb, range(120, 800), [col]))
    rise = (out.values[120:, col] - good_run.values[120:, col]) / good_run.noise_sigma[col]
    assert np.allclose(rise, 1.5, rtol=1e-3)
    assert (out.partition[120:] == 0).all()


def test_trigger_shifts_all_features_together(good_run):
    out = inject(good_run, "trigger", 300, length=60, rng=np.random.default_rng(0))
    assert np.array_equal(_changed(good_run, out), _expected_mask(good_run.n_lb, range(300, 360), range(16)))
    shift = (out.values[300:360] - good_run.values[300:360].astype(np.float64)) / good_run.noise_sigma
    assert np.allclose(shift, shift[0], atol=1e-3)
    assert ((np.abs(shift[0]) > 1.7) & (np.abs(shift[0]) < 3.1)).all()
    pattern = shift[0].reshape(4, 4)
    assert np.allclose(pattern, pattern[0], atol=1e-3)  # same shift in every partition
    assert (out.labels[300:360] == ANOMALY_CODES["trigger"]).all() and (out.partition == -1).all()


@pytest.mark.parametrize("kind", ANOMALY_TYPES)
def test_severity_scales_the_effect_monotonically(good_run, kind):
    sizes = []
    for severity in (0.5, 1.0, 2.0):
        out = inject(good_run, kind, 400, severity, partition=None, rng=np.random.default_rng(7), length=20, frozen=False)
        sizes.append(np.abs((out.values - good_run.values.astype(np.float64)) / good_run.noise_sigma).max())
    assert sizes[0] < sizes[1] < sizes[2]
    assert sizes[2] == pytest.approx(4 * sizes[0], rel=1e-3)  # sizes are proportional to severity


def test_inject_never_mutates_and_is_deterministic(good_run):
    before = good_run.values.copy()
    first = inject(good_run, "hv_trip", 10)
    assert np.array_equal(good_run.values, before) and not good_run.labels.any()
    assert np.array_equal(first.values, inject(good_run, "hv_trip", 10).values)


def test_lumi_step_follows_the_normal_luminosity_dependence(good_run):
    out = inject(good_run, "lumi_step", 250, length=100, rng=np.random.default_rng(3))
    ratio = out.luminosity[250:350] / good_run.luminosity[250:350]
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and abs(ratio[0] - 1) > 0.1
    assert np.array_equal(out.luminosity[350:], good_run.luminosity[350:])
    corrected_before = good_run.values - np.outer(good_run.luminosity, good_run.lumi_response)
    corrected_after = out.values - np.outer(out.luminosity, good_run.lumi_response)
    assert np.allclose(corrected_after, corrected_before, atol=1e-3 * good_run.noise_sigma)
    assert not out.labels.any() and (out.partition == -1).all()
    assert np.array_equal(np.flatnonzero(out.benign), [250, 350]) and out.benign[250] == BENIGN_CODES["lumi_step"]


def test_run_change_offsets_the_rest_of_the_run(good_run):
    out = inject(good_run, "run_change", 500)
    delta = out.values.astype(np.float64) - good_run.values
    assert np.array_equal(delta[:500], np.zeros((500, 16)))
    assert np.allclose(delta[500:], delta[500], atol=1e-3 * good_run.noise_sigma)
    assert (delta[500] != 0).all()
    assert not out.labels.any() and np.array_equal(np.flatnonzero(out.benign), [500])
    assert out.benign[500] == BENIGN_CODES["run_change"]


def test_inject_rejects_bad_requests(good_run):
    trip = inject(good_run, "hv_trip", 50, partition=1, length=15)
    for args, kwargs, message in [(("meteor", 5), {}, "Unknown kind"),
                                  (("hv_trip", 800), {}, "outside run"),
                                  (("hv_trip", 5, -1.0), {}, "Severity must be positive"),
                                  (("trigger", 5), {"partition": 1}, "not local"),
                                  (("desync", 5), {"partition": 4}, "not an index"),
                                  (("desync", 5), {"length": 0}, "at least 1 LB")]:
        with pytest.raises(DQMDataError, match=message):
            inject(good_run, *args, **kwargs)
    with pytest.raises(DQMDataError, match="already carries anomaly 'hv_trip'"):
        inject(trip, "noise_burst", 55)
    with pytest.raises(TypeError, match="unknown option"):
        inject(good_run, "hv_trip", 5, partitions=1)
    bare = Run(1, "pp", good_run.values, good_run.luminosity, good_run.labels, good_run.benign, good_run.partition)
    with pytest.raises(DQMDataError, match="no noise_sigma"):
        inject(bare, "hv_trip", 5)


# ---------------------------------------------------------------- data sets


def _segments(mask):
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def test_dataset_is_deterministic_with_separated_events(dataset):
    again = generate_dataset(DatasetConfig(n_runs=12, seed=5, generator=GeneratorConfig(min_lb=300, max_lb=500)))
    assert all(np.array_equal(a.values, b.values) and np.array_equal(a.labels, b.labels) for a, b in zip(dataset, again))
    assert [run.run_number for run in dataset] == list(range(430000, 430012))
    seen = set()
    for run in dataset:
        events = (run.labels != 0) | (run.benign != 0)
        starts, stops = _segments(events)
        assert (starts[1:] - stops[:-1] >= 32).all()
        assert len(starts) <= 3 + 1  # at most three anomalies and one control
        assert np.count_nonzero(run.benign) == 1
        for a, b in zip(starts, stops):
            assert len(set(run.labels[a:b])) == 1  # one event per segment
        seen |= set(run.labels[run.labels > 0].tolist()) | set(run.benign[run.benign > 0].tolist())
    assert seen == set(ANOMALY_CODES.values()) | set(BENIGN_CODES.values())


def test_place_intervals_never_overlap():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(1, 40, rng.integers(1, 6))
        starts = place_intervals(lengths, 300, 10, rng)
        assert starts[0] >= 0 and starts[-1] + lengths[-1] <= 300
        assert (starts[1:] >= starts[:-1] + lengths[:-1] + 10).all()
    with pytest.raises(DQMDataError, match="do not fit"):
        place_intervals([200, 200], 300, 0, rng)


def test_split_runs_by_run_without_overlap(dataset):
    train, val, test = split_runs(dataset, (0.6, 0.2, 0.2), seed=1)
    numbers = [[r.run_number for r in part] for part in (train, val, test)]
    assert [len(n) for n in numbers] == [7, 2, 3]
    assert sorted(sum(numbers, [])) == sorted(r.run_number for r in dataset)
    assert [[r.run_number for r in part] for part in split_runs(dataset, seed=1)] == numbers
    assert [[r.run_number for r in part] for part in split_runs(dataset, seed=2)] != numbers
    with pytest.raises(DQMDataError, match="summing to 1"):
        split_runs(dataset, (0.5, 0.2, 0.2))
    with pytest.raises(DQMDataError, match="unique"):
        split_runs([dataset[0], dataset[0]])


# ---------------------------------------------------------------- windows and standardiser


def _hand_run():
    n = 10
    values = np.arange(n * 16, dtype=np.float32).reshape(n, 16)
    labels = np.zeros(n, np.int8)
    partition = np.full(n, -1, np.int8)
    labels[2], partition[2] = 1, 2
    labels[5:8], partition[5:8] = 2, 1
    benign = np.zeros(n, np.int16)
    benign[9] = 101
    return Run(7, "pp", values, np.ones(n, np.float32), labels, benign, partition)


def test_windows_labels_on_a_hand_built_run():
    run = _hand_run()
    w = make_windows([run], length=4, stride=1)
    assert w.x.shape == (7, 4, 16) and w.x.dtype == np.float32
    assert np.array_equal(w.x[3], run.values[3:7])
    assert w.label.tolist() == [1, 1, 1, 2, 2, 2, 2]  # start 2: one LB of each code, tie to the lower code
    assert w.partition.tolist() == [2, 2, 2, 1, 1, 1, 1]
    assert w.benign.tolist() == [0, 0, 0, 0, 0, 0, 101]
    assert w.start.tolist() == list(range(7)) and (w.run_number == 7).all()
    assert (w.label.dtype, w.benign.dtype, w.partition.dtype, w.run_number.dtype, w.start.dtype) == (
        np.int8, np.int16, np.int8, np.int32, np.int32)
    strided = make_windows([run], length=4, stride=3)
    assert strided.start.tolist() == [0, 3, 6] and strided.label.tolist() == [1, 2, 2]
    assert len(make_windows([run], length=11)) == 0
    with pytest.raises(DQMDataError, match="at least 1"):
        make_windows([run], length=0)


def test_windows_pick_the_most_frequent_code():
    run = _hand_run()
    run.labels[0], run.labels[1], run.labels[3] = 5, 3, 3
    w = make_windows([run], length=4)
    assert w.label[0] == 3 and w.partition[0] == -1


def test_windows_match_a_direct_count(dataset):
    w = make_windows(dataset[:3], length=16, stride=5)
    by_run = {run.run_number: run for run in dataset}
    for i in range(0, len(w), 7):
        run, s = by_run[int(w.run_number[i])], int(w.start[i])
        labels = run.labels[s:s + 16]
        codes, counts = np.unique(labels[labels > 0], return_counts=True)
        expected = int(codes[counts.argmax()]) if codes.size else 0
        assert w.label[i] == expected and np.array_equal(w.x[i], run.values[s:s + 16])
        if expected:
            parts = run.partition[s:s + 16][labels == expected]
            assert w.partition[i] == np.bincount(parts + 1).argmax() - 1


def test_standardiser_round_trip(dataset):
    windows = make_windows(dataset, length=8, stride=4)
    scaler = Standardiser.fit_windows(windows)
    good = windows.select(windows.label == 0).x
    z = scaler.transform(good)
    assert z.dtype == np.float32
    assert np.allclose(z.reshape(-1, 16).mean(axis=0), 0, atol=1e-3)
    assert np.allclose(z.reshape(-1, 16).std(axis=0), 1, atol=1e-3)
    assert np.allclose(scaler.inverse_transform(z), good, rtol=1e-5, atol=1e-5)
    restored = Standardiser.from_dict(json.loads(json.dumps(scaler.to_dict())))
    assert np.array_equal(restored.mean, scaler.mean) and np.array_equal(restored.std, scaler.std)
    by_lb = Standardiser.fit_runs(dataset)
    assert (np.abs(by_lb.mean - scaler.mean) < 0.1 * scaler.std).all()
    with pytest.raises(DQMDataError, match="constant"):
        Standardiser.fit(np.ones((10, 16)))
    with pytest.raises(DQMDataError, match="other features"):
        Standardiser.from_dict({**scaler.to_dict(), "features": list(reversed(FEATURES))})


# ---------------------------------------------------------------- HDF5


def test_hdf5_round_trip_is_exact(tmp_path, dataset):
    path = tmp_path / "runs.h5"
    config = DatasetConfig(n_runs=12, seed=5)
    dqm_io.write_runs(path, dataset, config)
    back = dqm_io.read_runs(path)
    assert [r.run_number for r in back] == [r.run_number for r in dataset]
    for a, b in zip(dataset, back):
        assert a.mode == b.mode
        for name in ("values", "luminosity", "labels", "benign", "partition", "noise_sigma", "lumi_response"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
    kind, stored = dqm_io.read_config(path)
    assert kind == "DatasetConfig" and stored["seed"] == 5 and stored["generator"]["mode"] == "pp"
    with h5py.File(path) as f:
        group = f["runs"][sorted(f["runs"])[0]]
        assert set(group) == set(dqm_io.COLUMNS) and group["q_mean_EMBA"].dtype == np.float32


def _damage(path, action):
    with h5py.File(path, "a") as f:
        action(f, f["runs"][sorted(f["runs"])[0]])


@pytest.mark.parametrize("action, message", [
    (lambda f, g: g.__delitem__("tau_std_EMECC"), "lacks the dataset.s. tau_std_EMECC"),
    (lambda f, g: (g.__delitem__("labels"), g.create_dataset("labels", data=np.zeros(3, np.int8))), "has shape .3,."),
    (lambda f, g: (g.__delitem__("q_std_EMBC"), g.create_dataset("q_std_EMBC", data=np.zeros((300, 2), np.float32))),
     "q_std_EMBC .* has shape"),
    (lambda f, g: f.attrs.__setitem__("format_version", 99), "format version 99"),
    (lambda f, g: f.attrs.__setitem__("format", "something.else"), "not a hepaudit.dqm.runs file"),
    (lambda f, g: g["luminosity"].__setitem__(4, np.nan), "luminosity .* NaN or infinite value at LB 4"),
    (lambda f, g: g["tau_mean_EMBA"].__setitem__(0, np.inf), "tau_mean_EMBA .* NaN or infinite"),
    (lambda f, g: g["labels"].__setitem__(1, 9), "unknown code 9"),
    (lambda f, g: g.attrs.__delitem__("mode"), "lacks the run_number or mode"),
    (lambda f, g: f.__delitem__("runs"), "no 'runs' group"),
])
def test_bad_hdf5_files_raise_one_clear_error(tmp_path, dataset, action, message):
    path = tmp_path / "runs.h5"
    dqm_io.write_runs(path, dataset[:2])
    _damage(path, action)
    with pytest.raises(DQMDataError, match=message) as info:
        dqm_io.read_runs(path)
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")


def test_non_hdf5_and_missing_files(tmp_path):
    text = tmp_path / "runs.h5"
    text.write_text("run,lb\n1,2\n")
    with pytest.raises(DQMDataError, match="not an HDF5 file"):
        dqm_io.read_runs(text)
    with pytest.raises(DQMDataError, match="File not found"):
        dqm_io.read_runs(tmp_path / "absent.h5")
    with pytest.raises(DQMDataError, match="unique"):
        dqm_io.write_runs(tmp_path / "dup.h5", [_hand_run(), _hand_run()])


def test_windows_do_not_span_a_run_change_and_the_new_run_windows_are_benign():
    run = generate_run(GeneratorConfig(min_lb=400, max_lb=400), 7, 1)
    changed = inject(run, "run_change", 100)
    w = make_windows([changed], length=32)
    assert not np.any((w.start > 68) & (w.start < 100))  # no window holds LBs of both sides
    after = (w.start >= 100) & (w.start < 132)
    assert np.all(w.benign[after] == BENIGN_CODES["run_change"])
    assert np.all(w.benign[~after] == 0) and np.all(w.label == 0)
    assert len(make_windows([run], length=32)) - len(w) == 31
