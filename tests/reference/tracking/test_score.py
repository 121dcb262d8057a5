import numpy as np
import pytest

from reference.tracking.errors import TrackingInputError
from reference.tracking.event import trackml_weights
from reference.tracking.performance import trackml_score

# 10 hits: particle 1 has hits 1-4, particle 2 hits 5-8, noise hits 9-10
HIT = np.arange(1, 11)
PID = np.array([1, 1, 1, 1, 2, 2, 2, 2, 0, 0])
W = np.array([0.1, 0.1, 0.1, 0.1, 0.15, 0.15, 0.15, 0.15, 0.0, 0.0])


def test_perfect_submission_scores_one():
    assert trackml_score(HIT, PID, W, HIT, np.array([1, 1, 1, 1, 2, 2, 2, 2, 3, 4])) == pytest.approx(1.0)


def test_everything_in_one_track_scores_zero():
    assert trackml_score(HIT, PID, W, HIT, np.ones(10)) == 0.0


def test_majority_rules():
    # track 1 = three hits of particle 1 + one of particle 2 -> counts 0.3 for particle 1;
    # track 2 = remaining three hits of particle 2 + hit 4 -> counts 0.45 for particle 2
    track = np.array([1, 1, 1, 2, 1, 2, 2, 2, 0, 0])
    assert trackml_score(HIT, PID, W, HIT, track) == pytest.approx(0.3 + 0.45)


def test_half_is_not_enough():
    # particle 1 split 2+2: neither track holds more than half of its hits
    track = np.array([1, 1, 2, 2, 3, 3, 3, 3, 0, 0])
    assert trackml_score(HIT, PID, W, HIT, track) == pytest.approx(0.6)


def test_track_diluted_by_noise():
    # particle 2 track with three noise-like extra hits: 4 of 6 hits still > 50%
    pid = np.array([1, 1, 1, 1, 2, 2, 2, 2, 0, 0])
    track = np.array([5, 5, 5, 5, 1, 1, 1, 1, 1, 1])
    assert trackml_score(HIT, pid, W, HIT, track) == pytest.approx(1.0)


def test_submission_must_cover_truth():
    with pytest.raises(TrackingInputError):
        trackml_score(HIT, PID, W, HIT[:-1], np.ones(9))


def test_weights_follow_trackml_rules():
    pid = np.array([1, 1, 1, 1, 1, 2, 2, 2, 0])
    tz = np.array([10.0, 20, 30, 40, 50, 1, 2, 3, 5])
    w = trackml_weights(pid, tz, np.array([1, 2]), np.array([0.0, 0.0]), np.array([3.0, 0.2]), np.array([5, 3]))
    assert w.sum() == pytest.approx(1.0)
    assert np.all(w[5:] == 0)  # 3-hit particle and noise get no weight
    assert w[0] > w[2] and w[4] > w[2]  # first and last hits weigh more


def test_non_finite_weights_are_rejected():
    w = W.copy()
    w[0] = np.nan
    with pytest.raises(TrackingInputError):
        trackml_score(HIT, PID, w, HIT, np.ones(10))
