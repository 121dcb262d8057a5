"""The three distillation tasks: they build at tiny sizes, their teachers beat chance, their targets
and features mean what they say, and bad input is refused."""

from types import SimpleNamespace

import numpy as np
import pytest

from reference.distill.tasks import (DistillError, SEED_FEATURES, WindowMetric, _impact, _seed_truth, _split_indices,
                                     build_task, evaluate_binary, evaluate_classes, quick_task_config, seed_features)


@pytest.fixture(scope="module")
def tasks():
    config = quick_task_config()
    return {name: build_task(name, config) for name in ("digits", "seeds", "dqm")}


def test_every_task_builds_with_disjoint_finite_splits(tasks):
    for name, task in tasks.items():
        assert set(task.splits) == {"train", "val", "test"}, name
        widths = {split.x.shape[1] for split in task.splits.values()}
        assert widths == {task.n_features}, name
        for split in task.splits.values():
            assert split.x.dtype == np.float32 and np.isfinite(split.x).all() and len(split.x) == len(split.y)
        assert task.teacher.training is False
        assert tuple(task.teacher_input(task.splits["test"].x[:3]).shape) == (3,) + tuple(task.teacher_input_shape[1:])
    assert tasks["digits"].n_features == 64 and tasks["digits"].n_outputs == 10
    assert tasks["seeds"].n_features == len(SEED_FEATURES) and tasks["seeds"].n_outputs == 2
    assert tasks["dqm"].teacher_input_shape[1:] == (16, 24)  # quick DQM: 16 lumiblocks x (16 features + 8 A-C differences)


def test_teachers_beat_chance_and_targets_are_complete(tasks):
    digits, seeds, dqm = tasks["digits"], tasks["seeds"], tasks["dqm"]
    assert digits.evaluate(digits.teacher_test_scores)["accuracy"] > 0.6  # chance: 0.1
    assert seeds.evaluate(seeds.teacher_test_scores)["roc_auc"] > 0.6
    assert 0.0 < seeds.info["real_fraction"] < 1.0
    assert dqm.evaluate(dqm.teacher_test_scores)["score"] > 0.55
    assert [t.name for t in dqm.targets] == ["teacher", "metric"]
    for target in dqm.targets:
        assert target.kind == "regression"
        for split, values in target.values.items():
            assert values.shape == (len(dqm.splits[split].x),) and np.isfinite(values).all()
    # the cheap metric alone separates anomalies from good windows
    assert dqm.evaluate(dqm.targets[1].values["test"])["score"] > 0.6
    # the distillation target ranks windows as the teacher's score does (it is its log)
    teacher_target = dqm.targets[0].values["test"]
    assert np.array_equal(np.argsort(teacher_target, kind="stable"),
                          np.argsort(np.log(np.maximum(dqm.teacher_test_scores, 1e-8)), kind="stable"))
    with pytest.raises(DistillError, match="outputs for"):
        dqm.evaluate(np.zeros(3))


def test_window_metric_flags_a_spike_and_a_shift_and_sets_its_unit_on_good_windows():
    rng = np.random.default_rng(0)
    cov = np.eye(4) + 0.5  # correlated features
    good = rng.multivariate_normal(np.zeros(4), cov, size=(3000, 8)).astype(np.float32)
    metric = WindowMetric.fit(good)
    values = metric(good)
    # each channel's unit is its 99th percentile: 1-2 % of good windows exceed it in one of the two
    assert 0.009 <= np.mean(values > 0) <= 0.021
    probe = rng.multivariate_normal(np.zeros(4), cov, size=(2, 8)).astype(np.float32)
    probe[0, 3] += np.array([4.0, -4.0, 0.0, 0.0], np.float32)  # one lumiblock against the correlation
    probe[1] += np.array([0.0, 0.0, 1.5, -1.5], np.float32)  # a persistent anti-correlated shift
    assert np.all(metric(probe) > np.quantile(values, 0.99))
    with pytest.raises(DistillError, match="two good windows"):
        WindowMetric.fit(good[:1])


def test_impact_parameter_of_a_circle_through_three_points():
    centre, radius = np.array([30.0, 40.0]), 45.0  # the circle passes 50 - 45 = 5 mm from the origin
    angles = np.array([3.9, 4.1, 4.3])
    x = (centre[0] + radius * np.cos(angles)).reshape(3, 1)
    y = (centre[1] + radius * np.sin(angles)).reshape(3, 1)
    assert _impact(x, y)[0] == pytest.approx(5.0, rel=1e-9)


def test_seed_features_and_truth_on_hand_made_seeds():
    sp = SimpleNamespace(x=np.array([30.0, 70.0, 110.0, 70.0]), y=np.zeros(4), z=np.array([10.0, 30.0, 50.0, 90.0]),
                         measurement=np.array([0, 1, 2, 3]))
    seeds = SimpleNamespace(bottom=np.array([0, 0]), middle=np.array([1, 3]), top=np.array([2, 2]),
                            weight=np.array([1.0, 2.0]), z_vertex=np.array([-5.0, 0.0]))
    theta = np.pi / 2
    params = np.array([[0, 0, 0, theta, 1.0], [0, 0, 0, theta, -0.5]])  # q/p = 1 and -0.5 per GeV
    features = seed_features(seeds, sp, params)
    column = {name: features[:, i] for i, name in enumerate(SEED_FEATURES)}
    assert features.shape == (2, len(SEED_FEATURES))
    assert column["rz_residual"][0] == pytest.approx(0.0, abs=1e-5)  # the middle point lies on the r-z line
    assert column["rz_residual"][1] == pytest.approx(60.0)
    assert np.exp(column["log_pt"]) == pytest.approx([1.0, 2.0], rel=1e-5)
    assert column["eta"] == pytest.approx([0.0, 0.0], abs=1e-5)
    truth = SimpleNamespace(hit_id=np.array([11, 12, 13, 14]), particle_id=np.array([7, 7, 7, 8]))
    measurements = SimpleNamespace(hit_id=np.array([11, 12, 13, 14]))
    labels = _seed_truth(SimpleNamespace(truth=truth), measurements, sp, seeds)
    assert labels.tolist() == [1, 0]  # the second seed takes its middle point from another particle


def test_evaluations_of_perfect_and_reversed_outputs():
    labels = np.array([0, 1, 2, 1])
    logits = np.eye(3)[labels] * 5.0
    assert evaluate_classes(labels, logits)["accuracy"] == 1.0
    binary = np.array([0, 1, 1, 0])
    assert evaluate_binary(binary, np.array([-2.0, 1.0, 3.0, -1.0]))["roc_auc"] == 1.0
    assert evaluate_binary(binary, np.column_stack([binary * 1.0, 1.0 - binary]))["roc_auc"] == 0.0


def test_bad_task_names_and_too_few_groups_are_refused():
    with pytest.raises(DistillError, match="unknown task 'jets'"):
        build_task("jets")
    with pytest.raises(DistillError, match="at least 3 groups"):
        _split_indices(np.array([0, 0, 1, 1]), seed=0)
    masks = _split_indices(np.repeat(np.arange(5), 3), seed=0)
    assert sum(int(m.sum()) for m in masks.values()) == 15
    assert not (masks["train"] & masks["test"]).any()
