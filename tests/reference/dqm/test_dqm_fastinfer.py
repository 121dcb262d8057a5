"""The "stats" student: its window statistics against numpy, and its compiled CPU kernel
against the torch forward."""

import numpy as np
import pytest
import torch

from reference.dqm.fastinfer import compile_student, kernel_latency
from reference.dqm.models import STATS_FLOOR, WindowStatistics, build_model
from reference.dqm.xlstm import DQMModelError

F, T = 6, 16


def _student(seed=0, scale=0.4):
    torch.manual_seed(seed)
    student = build_model("student", F, T, hidden=8, arch="stats").eval()
    with torch.no_grad():
        for parameter in student.parameters():
            parameter.normal_(0.0, scale)
    return student


def _windows(n=20, seed=1):
    x = 2.0 * np.random.default_rng(seed).standard_normal((n, T, F)).astype(np.float32)
    x[0, :, 2] = 1.25  # a frozen feature: variance and peak 0, floored
    x[1, :, 0] += 40.0  # a large persistent shift
    x[2, 5, 4] = -30.0  # a one-lumiblock spike
    return x


def test_window_statistics_match_numpy():
    x = _windows()
    got = WindowStatistics()(torch.tensor(x)).numpy()
    mean = x.astype(np.float64).mean(axis=1)
    centred = x - mean[:, None, :]
    expected = np.concatenate([np.log(np.maximum((centred ** 2).mean(axis=1), STATS_FLOOR)),
                               np.log(np.maximum((np.abs(centred).max(axis=1)) ** 2, STATS_FLOOR)),
                               np.log(np.maximum((x.astype(np.float64) ** 2).mean(axis=1), STATS_FLOOR)),
                               mean], axis=1)
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)
    assert got[0, 2] == pytest.approx(np.log(STATS_FLOOR))  # the frozen feature's variance
    assert got[2, F + 4] > got[3, F + 4] + 3.0  # the spike's peak stands out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_the_torch_forward(seed):
    student, x = _student(seed), _windows(seed=seed + 10)
    with torch.no_grad():
        expected = student(torch.tensor(x)).numpy()
    got = compile_student(student)(x)
    assert got.dtype == np.float32 and got.shape == (len(x),)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_kernel_follows_every_weight():
    """Changing any one parameter tensor changes the kernel's output as it changes torch's."""
    student, x = _student(3), _windows(seed=4)
    base = compile_student(student)(x)
    for name, parameter in student.named_parameters():
        with torch.no_grad():
            parameter.add_(0.5)
            expected = student(torch.tensor(x)).numpy()
            got = compile_student(student)(x)
            parameter.sub_(0.5)
        assert not np.allclose(got, base), name
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_kernel_refuses_other_students_and_bad_windows():
    with pytest.raises(DQMModelError, match="arch='stats'"):
        compile_student(build_model("student", F, T, arch="mlp"))
    with pytest.raises(DQMModelError, match="arch='stats'"):
        compile_student(build_model("lstm", F, T))
    kernel = compile_student(_student())
    for bad in (np.zeros((2, T + 1, F), np.float32), np.zeros((T, F), np.float32), [[0.0]]):
        with pytest.raises(DQMModelError, match="expects windows of shape"):
            kernel(bad)


def test_kernel_latency_summary():
    summary = kernel_latency(compile_student(_student()), batch=2, repeats=5)
    assert summary["batch"] == 2 and summary["repeats"] == 5 and summary["window"] == T
    assert 0.0 < summary["min_s"] <= summary["median_s"] <= summary["max_s"]
