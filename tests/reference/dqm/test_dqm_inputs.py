"""Autoencoder inputs relative to a run's reference: luminosity slope, reference, A-C differences."""

import numpy as np
import pytest

from reference.dqm.data import (
    DatasetConfig, GeneratorConfig, Run, Standardiser, feature_index, generate_dataset, generate_run, inject, make_windows,
)
from reference.dqm.errors import DQMDataError
from reference.dqm.inputs import (
    A_COLUMNS, C_COLUMNS, INPUT_KINDS, GlobalInputs, RunReferenceInputs, check_input_settings, fit_inputs,
    inputs_from_dict, lumi_slope, run_segments,
)

SHORT = GeneratorConfig(min_lb=300, max_lb=400)


@pytest.fixture(scope="module", name="good_runs")
def fixture_good_runs():
    return [generate_run(SHORT, 440000 + i, seed=2) for i in range(8)]


def test_a_and_c_columns_pair_the_same_feature_of_the_two_sides():
    assert A_COLUMNS.tolist() == [0, 1, 2, 3, 8, 9, 10, 11]
    assert C_COLUMNS.tolist() == [4, 5, 6, 7, 12, 13, 14, 15]


def test_the_fitted_luminosity_slope_is_the_generators(good_runs):
    slope = lumi_slope(good_runs)
    np.testing.assert_allclose(slope, good_runs[0].lumi_response, rtol=0.3, atol=1e-9)


def test_good_inputs_are_centred_with_unit_spread_and_persistent_shifts_stand_out(good_runs):
    inputs = RunReferenceInputs.fit_runs(good_runs, reference_lb=16)
    assert inputs.n_channels == 24
    x = np.concatenate([inputs.transform_run(run) for run in good_runs])
    assert np.abs(np.median(x, axis=0)).max() < 0.5
    np.testing.assert_allclose(x.std(axis=0), 1.0, rtol=1e-3)
    # a noisy channel (+1.5 noise sigma of std-Q in EMBA) is a 1.5-sigma shift of the feature
    # but more of its A-C difference, whose common noise and run offset cancel
    col = feature_index("q", "std", 0)
    run = inject(good_runs[0], "noisy_channel", 100, partition=0)
    shift = (inputs.transform_run(run) - inputs.transform_run(good_runs[0]))[150]
    assert shift[16 + col] > 1.5 * shift[col] and shift[col] > 1.0
    # from the first LB on, it is inside the run reference: the channels relative to the
    # reference no longer show it, "global" A-C differences (no run reference) still do
    run = inject(good_runs[0], "noisy_channel", 0, partition=0)
    shift = (inputs.transform_run(run) - inputs.transform_run(good_runs[0]))[150]
    assert abs(shift[col]) < 0.01 and abs(shift[16 + col]) < 0.01
    absolute = RunReferenceInputs.fit_runs(good_runs, reference_lb=16, differences="global")
    shift = (absolute.transform_run(run) - absolute.transform_run(good_runs[0]))[150]
    assert abs(shift[col]) < 0.01 and shift[16 + col] > 1.5


def test_a_run_change_takes_a_new_reference_and_a_luminosity_step_is_corrected(good_runs):
    inputs = RunReferenceInputs.fit_runs(good_runs, reference_lb=16, differences="none")
    run = good_runs[1]
    changed = inject(run, "run_change", 150)
    assert run_segments(changed) == [(0, 150), (150, run.n_lb)]
    tail = Run(run.run_number, run.mode, changed.values[150:], changed.luminosity[150:], changed.labels[150:],
               np.zeros(run.n_lb - 150, np.int16), changed.partition[150:])
    np.testing.assert_allclose(inputs.transform_run(changed)[150:], inputs.transform_run(tail), atol=1e-5)
    stepped = inject(run, "lumi_step", 150)
    np.testing.assert_allclose(inputs.transform_run(stepped), inputs.transform_run(run), atol=0.2)


def test_windows_match_make_windows_and_the_global_inputs():
    runs = generate_dataset(DatasetConfig(n_runs=4, seed=1, generator=SHORT))
    for kind, channels in (("run_reference", 24), ("global", 16)):
        inputs = fit_inputs(runs, kind)
        windows, x = inputs.windows(runs, 16, 5)
        reference = make_windows(runs, 16, 5)
        assert x.shape == (len(reference), 16, channels) and x.dtype == np.float32
        assert np.array_equal(windows.start, reference.start) and np.array_equal(windows.label, reference.label)
        assert inputs.to_dict()["kind"] == kind
    run = runs[0]
    inputs = fit_inputs(runs)
    windows, x = inputs.windows([run], 16, 1)
    first = np.flatnonzero(windows.start == 20)[0]
    np.testing.assert_array_equal(x[first], inputs.transform_run(run)[20:36])
    assert isinstance(fit_inputs(runs, "global"), GlobalInputs)


def test_bad_input_settings_are_refused(good_runs):
    with pytest.raises(DQMDataError, match="input kind"):
        fit_inputs(good_runs, "per_lb")
    with pytest.raises(DQMDataError, match="reference_lb"):
        RunReferenceInputs.fit_runs(good_runs, reference_lb=0)


def test_inputs_round_trip_through_json_and_old_standardiser_files_still_read(good_runs):
    import json

    for kind in INPUT_KINDS:
        inputs = fit_inputs(good_runs, kind)
        restored = inputs_from_dict(json.loads(json.dumps(inputs.to_dict())))
        np.testing.assert_allclose(restored.windows(good_runs[:1], 16, 7)[1], inputs.windows(good_runs[:1], 16, 7)[1])
    old = Standardiser.fit_runs(good_runs).to_dict()  # written before the "kind" key existed
    assert isinstance(inputs_from_dict(old), GlobalInputs)
    with pytest.raises(DQMDataError, match="Input-transform"):
        inputs_from_dict({"kind": "run_reference", "slope": [0.0] * 16})
    with pytest.raises(DQMDataError, match="window length"):
        check_input_settings("run_reference", 33, 32)
