"""The distillation experiment: the quick run writes JSON and plots with >= 6 Pareto points per task,
integer inference reproduces the fake-quant scores, students learn, the front and targets are right."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from reference.distill import experiment as ex
from reference.distill.experiment import (ALL_SETTINGS, ExperimentConfig, LatencyConfig, StudentTrainConfig,
                                          dqm_targets, fit_student, gpu_latency, make_student, pareto_front,
                                          pareto_rows, quick_config, run_experiment, torch_latency)
from reference.distill.quant import QuantMLP
from reference.distill.tasks import DistillError, Split, Target, Task, evaluate_binary


@pytest.fixture(scope="module")
def document(tmp_path_factory):
    out = tmp_path_factory.mktemp("distill")
    return out, run_experiment(quick_config(), out)


def test_quick_experiment_writes_results_and_plots_with_six_points_per_task(document):
    out, doc = document
    saved = json.loads((out / "results.json").read_text())
    assert saved["format"] == "hepaudit.distill.experiment" and set(saved["tasks"]) == {"digits", "seeds", "dqm"}
    for name, result in saved["tasks"].items():
        points = result["points"]
        assert len(points) >= 6, name
        assert {p["setting"] for p in points} == set(ALL_SETTINGS)
        assert result["front"] and all(0 <= i < len(points) for i in result["front"])
        teacher = result["teacher"]
        for point in points:
            assert point["bops_reduction"] == pytest.approx(teacher["bops"] / point["bops"])
            assert point["score_lost"] == pytest.approx(teacher["score"] - point["score"])
            assert point["cpu_latency"]["small"]["median_s"] > 0 and point["cpu_latency"]["large"]["batch"] == 256
            assert "skipped" in point["gpu_latency"] or point["gpu_latency"]["small"]["median_s"] > 0
        assert (out / f"pareto_{name}.png").stat().st_size > 10_000
    assert doc["plots"] == ["pareto_digits.png", "pareto_seeds.png", "pareto_dqm.png"]


def test_integer_inference_reproduces_the_fake_quant_scores(document):
    _, doc = document
    for result in doc["tasks"].values():
        for point in result["points"]:
            if point["setting"] == "float32":
                assert point["cpu_latency"]["path"] == "float torch"
                continue
            assert point["cpu_latency"]["path"].startswith("integer")
            assert point["evaluation_integer"]["score"] == pytest.approx(point["score"], abs=1e-9)
            assert point["integer_agreement"]["max_relative_difference"] < 1e-5


def test_quantized_students_cost_fewer_bops_in_order_of_their_bits(document):
    _, doc = document
    for result in doc["tasks"].values():
        by_setting = {p["setting"]: p for p in result["points"] if p["target"] == "teacher"}
        order = [by_setting[s]["bops"] for s in ("float32", "W8A8", "W6A6", "W4A6", "W4A4", "W2A4")]
        assert order == sorted(order, reverse=True)
        assert by_setting["W4A4"]["bops"] < by_setting["mixed"]["bops"] < by_setting["W8A8"]["bops"]
        assert by_setting["W8A8"]["bops_simplified"] == by_setting["W8A8"]["macs"] * 64
        assert len({p["macs"] for p in by_setting.values()}) == 1  # same shapes, different bits


def test_dqm_reports_both_students_and_the_targets(document):
    _, doc = document
    dqm = doc["tasks"]["dqm"]
    assert {p["target"] for p in dqm["points"]} == {"teacher", "metric"}
    assert set(dqm["targets"]) == {"teacher/W8A8", "teacher/W4A4", "metric/W8A8", "metric/W4A4"}
    for entry in dqm["targets"].values():
        assert entry["met"] == (entry["auc_lost"] <= entry["required"]["auc_lost_at_most"]
                                and entry["bops_reduction"] >= entry["required"]["bops_reduction_at_least"])
    rows = pareto_rows(dqm)
    assert rows[0]["student"] == "teacher (float32)" and len(rows) == 1 + len(dqm["points"])


def test_pareto_front_keeps_only_undominated_points():
    points = [{"bops_reduction": r, "score_lost": lost} for r, lost in
              [(10, 0.01), (100, 0.02), (50, 0.03), (100, 0.05), (1000, 0.2), (5, 0.0)]]
    assert pareto_front(points) == [5, 0, 1, 4]
    assert pareto_front([points[0], dict(points[0])]) == [0, 1]  # equal points do not dominate each other


def test_dqm_targets_need_both_conditions():
    def point(setting, lost, reduction):
        return {"setting": setting, "target": "teacher", "score_lost": lost, "bops_reduction": reduction}

    result = dqm_targets([point("W8A8", 0.004, 1200.0), point("W4A4", 0.01, 2000.0), point("W6A6", 0.0, 1e4)])
    assert result["teacher/W8A8"]["met"] and not result["teacher/W4A4"]["met"]
    assert set(result) == {"teacher/W8A8", "teacher/W4A4"}


def _toy_task(n=600, seed=0):
    """A tiny two-class task whose label is the sign of x0 + x1; teacher logits from that rule."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "val", "test"):
        x = rng.standard_normal((n, 4)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        splits[split] = Split(x, y)
    logits = {s: np.column_stack([-(sp.x[:, 0] + sp.x[:, 1]), sp.x[:, 0] + sp.x[:, 1]]).astype(np.float32)
              for s, sp in splits.items()}
    regression = {s: (sp.x[:, 0] * sp.x[:, 1]).astype(np.float32) for s, sp in splits.items()}
    task = Task(name="toy", metric="roc_auc", splits=splits, teacher=torch.nn.Linear(4, 2),
                teacher_input_shape=(1, 4), teacher_test_scores=logits["test"],
                targets=(Target("teacher", "classes", logits), Target("metric", "regression", regression)),
                n_outputs=2, student_hidden=(16,), evaluator=lambda out: evaluate_binary(splits["test"].y, out))
    return task


def test_students_learn_and_qat_starts_from_the_float_weights():
    task = _toy_task()
    config = StudentTrainConfig(epochs=30, qat_epochs=5, patience=30)
    base = make_student(task, "float32")
    history = fit_student(base, task, task.targets[0], config, quantized=False)
    assert history["val_loss"][history["best_epoch"]] < history["val_loss"][0]
    with torch.no_grad():
        auc = task.evaluate(base(torch.as_tensor(task.splits["test"].x)).numpy())["score"]
    assert auc > 0.97
    quantized = make_student(task, "W4A4", start=base)
    assert isinstance(quantized, QuantMLP)
    assert torch.equal(quantized.layers[0].weight, base.layers[0].weight)
    fit_student(quantized, task, task.targets[0], config, quantized=True)
    with torch.no_grad():
        assert task.evaluate(quantized(torch.as_tensor(task.splits["test"].x)).numpy())["score"] > 0.9
    # the regression target (x0 x1) is learnt too: predictions correlate with it
    regressor = make_student(replace(task, n_outputs=1), "float32")
    fit_student(regressor, task, task.targets[1], config, quantized=False)
    with torch.no_grad():
        prediction = regressor(torch.as_tensor(task.splits["test"].x)).numpy()[:, 0]
    assert np.corrcoef(prediction, task.targets[1].values["test"])[0, 1] > 0.8


def test_latency_helpers_and_the_gpu_note(monkeypatch):
    model = torch.nn.Linear(8, 2)
    timing = torch_latency(model, (1, 8), batch=16, repeats=3)
    assert timing["batch"] == 16 and timing["median_s"] > 0 and timing["device"] == "cpu"
    monkeypatch.setattr(ex.torch.cuda, "is_available", lambda: False)
    assert "not available" in gpu_latency(model, (1, 8), LatencyConfig())["skipped"]
    assert "switched off" in gpu_latency(model, (1, 8), LatencyConfig(gpu=False))["skipped"]


def test_bad_configurations_are_refused():
    with pytest.raises(DistillError, match="unknown or no task"):
        ExperimentConfig(tasks=("digits", "jets"))
    with pytest.raises(DistillError, match="float32"):
        ExperimentConfig(settings=("W8A8",))
    with pytest.raises(DistillError, match="targets must be among"):
        ExperimentConfig(targets=("teacher", "oracle"))
    with pytest.raises(DistillError, match="targets must be among"):
        ExperimentConfig(targets=())
    with pytest.raises(DistillError, match="epochs"):
        StudentTrainConfig(epochs=0)
    with pytest.raises(DistillError, match="alpha"):
        StudentTrainConfig(alpha=1.5)


def test_a_subset_of_targets_and_settings_and_results_written_per_task(tmp_path):
    config = quick_config(tasks=("digits",), targets=("teacher",), settings=("float32", "W4A4"))
    document = run_experiment(config, tmp_path)
    points = document["tasks"]["digits"]["points"]
    assert [(p["target"], p["setting"]) for p in points] == [("teacher", "float32"), ("teacher", "W4A4")]
    assert json.loads((tmp_path / "results.json").read_text())["config"]["targets"] == ["teacher"]
