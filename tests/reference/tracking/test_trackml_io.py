import numpy as np
import pytest

from reference.tracking.errors import TrackingInputError
from reference.tracking.trackml_io import (list_events, read_detector, read_event, read_submission, write_detector,
                                           write_event, write_submission)


def test_event_round_trip(tmp_path, small_event):
    write_event(tmp_path, "event000000042", small_event)
    assert list_events(tmp_path) == ["event000000042"]
    ev = read_event(tmp_path, "event000000042")
    a, b = small_event, ev
    np.testing.assert_array_equal(a.hits.hit_id, b.hits.hit_id)
    np.testing.assert_allclose(a.hits.x, b.hits.x, atol=1e-5)
    np.testing.assert_array_equal(a.hits.module_id, b.hits.module_id)
    np.testing.assert_array_equal(a.cells.ch0, b.cells.ch0)
    np.testing.assert_allclose(a.cells.value, b.cells.value, rtol=1e-4)
    np.testing.assert_array_equal(a.particles.particle_id, b.particles.particle_id)
    np.testing.assert_allclose(a.particles.px, b.particles.px, rtol=1e-7)
    np.testing.assert_array_equal(a.truth.particle_id, b.truth.particle_id)
    np.testing.assert_allclose(a.truth.weight, b.truth.weight, rtol=1e-6, atol=1e-12)
    assert b.info["hits_dropped_nonfinite"] == 0


def test_large_particle_ids_survive(tmp_path, small_event):
    """TrackML particle ids exceed 2**53; they must not go through float64."""
    ev = small_event
    big = ev.particles.particle_id + (1 << 58)
    from dataclasses import replace
    parts = replace(ev.particles, particle_id=big)
    write_event(tmp_path, "event000000001", replace(ev, particles=parts))
    back = read_event(tmp_path, "event000000001")
    np.testing.assert_array_equal(back.particles.particle_id, big)


def test_detector_round_trip(tmp_path, detector):
    write_detector(tmp_path / "detectors.csv", detector)
    det = read_detector(tmp_path / "detectors.csv")
    assert len(det) == len(detector)
    np.testing.assert_allclose(det.center_mm, detector.center_mm, atol=1e-6)
    np.testing.assert_allclose(det.rotation, detector.rotation, atol=1e-9)
    np.testing.assert_allclose(det.thickness_mm, detector.thickness_mm)
    np.testing.assert_array_equal(det.layers.kind, detector.layers.kind)


def test_submission_round_trip(tmp_path):
    write_submission(tmp_path / "s.csv", np.array([3, 1, 2]), np.array([7, 5, 0]))
    h, t = read_submission(tmp_path / "s.csv")
    np.testing.assert_array_equal(h, [1, 2, 3])
    np.testing.assert_array_equal(t, [5, 0, 7])


def test_bad_inputs(tmp_path):
    with pytest.raises(TrackingInputError, match="not found"):
        read_event(tmp_path, "event000000001")
    (tmp_path / "event000000001-hits.csv").write_text("hit_id,x,y,z,volume_id,layer_id\n1,1,2,3,8,2\n")
    with pytest.raises(TrackingInputError, match="module_id"):
        read_event(tmp_path, "event000000001")
    (tmp_path / "event000000001-hits.csv").write_text(
        "hit_id,x,y,z,volume_id,layer_id,module_id\n1,1,2,3,8,2,1\n2,abc,2,3,8,2,1\n")
    with pytest.raises(TrackingInputError, match="malformed"):
        read_event(tmp_path, "event000000001")
    (tmp_path / "event000000001-hits.csv").write_text(
        "hit_id,x,y,z,volume_id,layer_id,module_id\n1,1,2,3,8,2,1\n2,nan,2,3,8,2,1\n3,1,2,3\n")
    with pytest.raises(TrackingInputError):
        read_event(tmp_path, "event000000001")
    (tmp_path / "event000000001-hits.csv").write_text(
        "hit_id,x,y,z,volume_id,layer_id,module_id\n1,1,2,3,8,2,1\n2,nan,2,3,8,2,1\n")
    ev = read_event(tmp_path, "event000000001")
    assert len(ev.hits) == 1 and ev.info["hits_dropped_nonfinite"] == 1
    (tmp_path / "detectors.csv").write_text("volume_id,layer_id\n")
    with pytest.raises(TrackingInputError, match="lacks"):
        read_detector(tmp_path / "detectors.csv")
