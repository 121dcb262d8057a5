"""Training, evaluation, the end-to-end experiment, the command line and the audit chain of the
DQM reference (tiny sizes: seconds, not minutes)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from reference.dqm import evaluate
from reference.dqm.audit_chain import (build_chain, generation, relative_agreement, student_inference, student_kernel,
                                       teacher_inference, training_step)
from reference.dqm.data import ANOMALY_CODES, BENIGN_CODES, Windows
from reference.dqm.experiment import quick_config, run_experiment
from reference.dqm.models import build_model, load_model
from reference.dqm.train import TrainConfig, log_loss, predict, train_autoencoder, train_student


def _windows(label, benign=None, partition=None, run=None, start=None):
    n = len(label)
    return Windows(np.zeros((n, 4, 16), np.float32), np.asarray(label, np.int8),
                   np.zeros(n, np.int16) if benign is None else np.asarray(benign, np.int16),
                   np.full(n, -1, np.int8) if partition is None else np.asarray(partition, np.int8),
                   np.zeros(n, np.int32) if run is None else np.asarray(run, np.int32),
                   np.arange(n, dtype=np.int32) if start is None else np.asarray(start, np.int32))


# --- evaluation -------------------------------------------------------------------------------

def test_auc_per_type_perfect_random_and_missing():
    rng = np.random.default_rng(0)
    label = np.r_[np.zeros(400), np.full(100, ANOMALY_CODES["hv_trip"]), np.full(100, ANOMALY_CODES["desync"])]
    scores = rng.normal(size=600)
    scores[400:500] += 100.0  # hv trips perfectly separated; desyncs drawn like good windows
    auc = evaluate.auc_per_type(scores, _windows(label))
    assert auc["hv_trip"] == 1.0
    assert 0.35 < auc["desync"] < 0.65
    assert auc["noise_burst"] is None  # no such windows: not silently 0 or 1
    assert auc["macro"] == pytest.approx((auc["hv_trip"] + auc["desync"]) / 2)


def test_benign_windows_are_not_counted_as_good_or_anomalous():
    label = [0, 0, 0, 0]
    benign = [0, 0, BENIGN_CODES["lumi_step"], BENIGN_CODES["run_change"]]
    w = _windows(label, benign)
    assert evaluate.good_mask(w).tolist() == [True, True, False, False]
    rates = evaluate.evaluate_scores(np.array([0.0, 0.0, 5.0, 0.0]), w, threshold=1.0, persistence=1)
    assert rates["at_threshold"]["benign_lumi_step"] == {"rate": 1.0, "n": 1}
    assert rates["at_threshold"]["benign_run_change"] == {"rate": 0.0, "n": 1}
    assert rates["at_threshold"]["false_alarm"] == {"rate": 0.0, "n": 2}


def test_threshold_sets_the_false_alarm_rate():
    good = np.arange(1000, dtype=float)
    threshold = evaluate.threshold_at(good, 0.01)
    assert np.mean(good > threshold) == pytest.approx(0.01, abs=1e-3)
    with pytest.raises(ValueError, match="no"):
        evaluate.threshold_at(np.array([]))


def test_persistence_needs_consecutive_windows_of_one_run():
    run = [1, 1, 1, 1, 1, 2, 2, 2]
    start = [0, 1, 2, 4, 5, 0, 1, 2]
    alarm = np.array([1, 1, 1, 1, 1, 1, 1, 0], bool)
    out = evaluate.persistent(alarm, _windows([0] * 8, run=run, start=start), 3)
    # run 1: starts 0,1,2 consecutive -> third fires; 4,5 follow a gap -> streak 1,2; run 2: 2 alarms only
    assert out.tolist() == [False, False, True, False, False, False, False, False]
    shuffled = np.random.default_rng(1).permutation(8)
    w = _windows([0] * 8, run=np.asarray(run)[shuffled], start=np.asarray(start)[shuffled])
    assert evaluate.persistent(alarm[shuffled], w, 3).tolist() == out[shuffled].tolist()


def test_attribution_compares_the_worst_partition_with_the_injected_one():
    error = np.zeros((3, 16))
    error[0, 4:8] = 1.0   # partition 1 largest
    error[1, 12:16] = 1.0  # partition 3 largest
    error[2, 0:4] = 1.0   # partition 0, but not detected
    w = _windows([ANOMALY_CODES["hv_trip"]] * 3, partition=[1, 2, 0])
    out = evaluate.attribution(error, w, np.array([True, True, False]))
    assert out["hv_trip"] == {"rate": 0.5, "n": 2}
    assert out["all_local"]["n"] == 2
    # the 8 A-C difference channels after the 16 features belong to two partitions: left out
    with_differences = np.concatenate([error, np.full((3, 8), 5.0)], axis=1)
    assert evaluate.attribution(with_differences, w, np.array([True, True, False])) == out
    with pytest.raises(ValueError, match="16 partition features"):
        evaluate.attribution(error[:, :12], w, np.array([True, True, False]))


def test_student_agreement_of_a_monotonic_copy():
    rng = np.random.default_rng(2)
    teacher = rng.normal(size=300)
    label = np.r_[np.zeros(200), np.full(100, ANOMALY_CODES["trigger"])]
    teacher[200:] += 3
    out = evaluate.student_agreement(teacher * 0.5 + 1, teacher, _windows(label), evaluate.auc_per_type(teacher, _windows(label)))
    assert out["pearson"] == pytest.approx(1.0)
    assert out["spearman"] == pytest.approx(1.0)
    assert out["delta_auc"]["trigger"] == pytest.approx(0.0)


def test_scores_must_match_windows():
    with pytest.raises(ValueError, match="one score per window"):
        evaluate.evaluate_scores(np.zeros(3), _windows([0, 0]), 1.0)


# --- training ---------------------------------------------------------------------------------

MIX = np.random.default_rng(99).normal(size=(2, 16))


def _smooth_windows(n, rng):
    """Two hidden oscillations mixed into 16 features: easy to compress, hard to copy by chance."""
    t = np.linspace(0, 1, 8)[None, :]
    phase = rng.uniform(0, 6, (n, 2, 1))
    hidden = np.stack([np.sin(4 * t + phase[:, 0]), np.cos(4 * t + phase[:, 1])], axis=2)
    return (hidden @ MIX + 0.05 * rng.normal(size=(n, 8, 16))).astype(np.float32)


def test_autoencoder_training_lowers_the_validation_loss_and_keeps_the_best_epoch():
    rng = np.random.default_rng(3)
    model = build_model("lstm", 16, 8, hidden=16, latent=8)
    train, val = _smooth_windows(256, rng), _smooth_windows(64, rng)
    before = float(predict(model, val).mean())
    history = train_autoencoder(model, train, val, TrainConfig(epochs=15, batch_size=32, learning_rate=1e-2))
    after = float(predict(model, val).mean())
    assert after < 0.5 * before
    assert after == pytest.approx(min(history.val_loss), rel=1e-4)
    assert history.best_epoch == int(np.argmin(history.val_loss))


@pytest.mark.parametrize("arch", ["mlp", "stats"])
def test_student_learns_a_loss_like_target(arch):
    """Windows that are a pattern times a scale plus noise; the target is the log of their mean
    square, as for a teacher's loss. The student must rank held-out windows like the target."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(4)
    scale = rng.uniform(0.2, 3, (1200, 1, 1))
    x = (scale * MIX[0][None, None, :] + 0.1 * rng.normal(size=(1200, 8, 16))).astype(np.float32)
    target = log_loss((x ** 2).mean(axis=(1, 2)))
    student = build_model("student", 16, 8, hidden=16, arch=arch)
    train_student(student, (x[:1000], target[:1000]), (x[1000:], target[1000:]),
                  TrainConfig(epochs=30, batch_size=50, learning_rate=5e-3))
    assert spearmanr(predict(student, x[1000:]), target[1000:])[0] > 0.95


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 8, 16), np.float32), "n > 0"),
    (np.full((4, 8, 16), np.nan, np.float32), "NaN"),
    (np.zeros((4, 16), np.float32), "shape"),
])
def test_training_refuses_bad_windows(bad, message):
    model = build_model("lstm", 16, 8, hidden=8, latent=4)
    with pytest.raises(ValueError, match=message):
        train_autoencoder(model, bad, np.zeros((2, 8, 16), np.float32), TrainConfig(epochs=1))


def test_train_config_is_checked():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="student_loss"):
        TrainConfig(student_loss="mse")


# --- the experiment end to end -----------------------------------------------------------------

def test_quick_experiment_writes_results_plots_and_weights(tmp_path):
    document = run_experiment(quick_config(), tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["format"] == "hepaudit.dqm.experiment"
    results = saved["results"]
    assert set(results) == {"lstm", "xlstm", "student"}
    for name in ("lstm", "xlstm"):
        assert 0.0 <= results[name]["evaluation"]["auc"]["macro"] <= 1.0
        assert results[name]["cost"]["parameters"] > 0
        assert "pp_auc_lost" in results[name]["continual"]
    student = results["student"]
    assert student["cost"]["macs_per_window"]["total_macs"] < results["lstm"]["cost"]["macs_per_window"]["total_macs"]
    assert -1.0 <= student["agreement"]["spearman"] <= 1.0
    for name in document["plots"]:
        assert (tmp_path / name).stat().st_size > 10_000
    reloaded = load_model(tmp_path / "student.pt")
    assert reloaded.name == "student" and reloaded.config.arch == "stats"
    kernel = student["cost"]["cpu_latency_batch1_kernel"]
    assert kernel["batch"] == 1 and 0 < kernel["median_s"] < student["cost"]["cpu_latency_batch1_1thread"]["median_s"]


# --- command line -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli():
    import typer

    from reference.dqm.cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(map(str, args)))


def test_cli_generate_train_evaluate(cli, tmp_path):
    data = tmp_path / "runs.h5"
    result = cli("dqm", "generate", "--runs", 6, "--seed", 3, "--out", data)
    assert result.exit_code == 0, result.output
    assert "wrote 6 pp run(s)" in result.output
    teacher = tmp_path / "lstm.pt"
    assert cli("dqm", "train", "--data", data, "--model", "lstm", "--epochs", 1, "--out", teacher).exit_code == 0
    student = tmp_path / "student.pt"
    result = cli("dqm", "train", "--data", data, "--model", "student", "--teacher", teacher, "--epochs", 1, "--out", student)
    assert result.exit_code == 0, result.output
    out_json = tmp_path / "eval.json"
    result = cli("dqm", "evaluate", "--data", data, "--model", student, "--json", out_json)
    assert result.exit_code == 0, result.output
    assert "ROC-AUC" in result.output and "Spearman" in result.output
    assert "agreement" in json.loads(out_json.read_text())


def test_cli_bad_inputs_give_one_sentence(cli, tmp_path):
    missing = cli("dqm", "train", "--data", tmp_path / "none.h5", "--model", "lstm", "--out", tmp_path / "m.pt")
    assert missing.exit_code == 1 and "error" in missing.output and "Traceback" not in missing.output
    not_hdf5 = tmp_path / "bad.h5"
    not_hdf5.write_text("hello")
    result = cli("dqm", "evaluate", "--data", not_hdf5, "--model", tmp_path / "m.pt")
    assert result.exit_code == 1 and "Traceback" not in result.output
    no_teacher = cli("dqm", "train", "--data", not_hdf5, "--model", "student", "--out", tmp_path / "s.pt")
    assert no_teacher.exit_code == 1 and "--teacher" in no_teacher.output
    bad_mode = cli("dqm", "generate", "--mode", "lead", "--out", tmp_path / "x.h5")
    assert bad_mode.exit_code == 1 and "mode" in bad_mode.output


# --- the audit chain --------------------------------------------------------------------------

def test_audit_chain_stages_run_on_the_cpu_and_agree_with_themselves():
    chain = build_chain()
    chain.validate()
    assert set(chain.stages) == {"generation", "training_step", "teacher_inference", "xlstm_inference",
                                 "student_inference", "student_kernel"}
    windows = generation(np.array([1, 3, 64]))
    assert windows.shape == (64, 64, 24) and windows.dtype == np.float32
    loss = teacher_inference(windows)
    assert loss.shape == (64,) and torch.all(loss > 0)
    score = student_inference(windows)
    assert score.shape == (64,)
    np.testing.assert_allclose(student_kernel(windows), score.numpy(), rtol=1e-5, atol=1e-4)
    step = training_step(windows)
    assert torch.equal(step, training_step(windows))  # the same starting weights every call
    assert relative_agreement(loss, loss.clone()).rate == 1.0
    shifted = relative_agreement(loss, loss * 1.003)
    assert shifted.rates["0.1%"] == 0.0 and shifted.rates["1%"] == 1.0


def test_worst_feature_score_sees_anomalies_that_a_window_mse_dilutes():
    rng = np.random.default_rng(5)
    good = rng.chisquare(3, size=(2000, 2, 16)) / 3
    scale = evaluate.feature_scale(good)
    assert np.mean((good / scale).reshape(2000, -1) > 1, axis=0) == pytest.approx(np.full(32, 0.01), abs=0.006)
    probe = rng.chisquare(3, size=(2, 2, 16)) / 3
    probe[0, 0, 5] += 10.0  # a persistent deviation in one feature
    probe[1, 1, 9] += 40.0  # a one-lumiblock spike in another
    score = evaluate.worst_feature(probe, scale)
    reference = np.quantile(evaluate.worst_feature(good, scale), 0.99)
    assert np.all(score > reference)
    mse = probe[:, 0].mean(axis=1)
    assert np.mean(good[:, 0].mean(axis=1) > mse.min()) > 0.01  # the diluted MSE would hide one of them
    assert evaluate.per_feature(probe, scale).argmax(axis=1).tolist() == [5, 9]
    with pytest.raises(ValueError, match="good windows"):
        evaluate.feature_scale(np.zeros((0, 2, 16)))
