"""Splitting a batch's products back into events (host side, no GPU needed)."""

import numpy as np

from reference.tracking.ckf import Tracks
from reference.tracking.estimation import TrackParameters
from reference.tracking.gpu.batch import BatchProducts, localize, split_products
from reference.tracking.seeding import Seeds
from reference.tracking.spacepoints import Measurements, Spacepoints


def _batch(spacepoint_order: np.ndarray) -> BatchProducts:
    """Three events of 4, 3 and 5 measurements; the middle one has no seed and no track. Seeds
    of event 0 use spacepoints 0-3, of event 2 spacepoints 7-11; the tracks come interleaved
    (as the CKF emits a batch)."""
    counts = np.array([4, 3, 5])
    n = counts.sum()
    meas = Measurements(np.arange(n * 12, dtype=float).reshape(n, 12), *(np.arange(n, dtype=float) for _ in range(4)),
                        np.zeros(n, np.int64), np.arange(n) + 100,
                        np.array([0, -1, 1, 2, 3, 4, -1, 5, 6, 7, 8, 9, 10, 11]), None)
    sp = Spacepoints(*(np.arange(n, dtype=float)[spacepoint_order] for _ in range(3)), spacepoint_order,
                     np.zeros(n), np.zeros(n))
    rows = np.argsort(spacepoint_order)  # spacepoint row of every measurement
    seeds = Seeds(rows[[0, 1, 8, 7]], rows[[1, 2, 9, 9]], rows[[3, 3, 11, 10]], np.array([3.0, 2.0, 5.0, 4.0]),
                  np.zeros(4), {"triplets": 4})
    valid = np.array([True, False, True, True])
    params = TrackParameters(np.arange(15.0).reshape(3, 5), np.zeros((3, 25)), np.array([0, 8, 7]))
    tracks = Tracks(np.array([0, 3, 6, 8]), np.array([7, 8, 9, 0, 1, 2, 10, 11]), np.array([1.0, 2.0, 3.0]),
                    np.zeros(3, np.int64), np.zeros((3, 5)), np.array([1, 0, 2]))
    return BatchProducts(meas, counts, sp, seeds, params, valid, tracks)


def _check(parts: list) -> None:
    first, middle, last = parts
    assert [len(p["measurements"]) for p in parts] == [4, 3, 5]
    assert first["measurements"].hit_measurement.tolist() == [0, -1, 1, 2, 3]
    assert middle["measurements"].hit_measurement.tolist() == [0, -1, 1, 2]
    assert last["measurements"].hit_measurement.tolist() == [0, 1, 2, 3, 4]
    def seed_measurements(part, name):
        return part["spacepoints"].measurement[getattr(part["seeds"], name)].tolist()

    assert seed_measurements(first, "middle") == [1, 2] and len(middle["seeds"]) == 0
    assert seed_measurements(last, "bottom") == [1, 0] and seed_measurements(last, "top") == [4, 3]
    assert last["seeds"].weight.tolist() == [5.0, 4.0]
    assert first["seed_valid"].tolist() == [True, False] and len(first["parameters"]) == 1
    assert last["parameters"].surface.tolist() == [1, 0]
    assert first["tracks_all"].meas.tolist() == [0, 1, 2] and first["tracks_all"].seed.tolist() == [0]
    assert len(middle["tracks_all"]) == 0 and middle["tracks_all"].offsets.tolist() == [0]
    assert last["tracks_all"].meas.tolist() == [0, 1, 2, 3, 4] and last["tracks_all"].seed.tolist() == [0, 1]
    for part in parts:
        sp = part["spacepoints"]
        assert sorted(sp.measurement.tolist()) == list(range(len(part["measurements"])))


def test_split_gives_every_event_its_products_with_event_indices():
    _check(split_products(localize(_batch(np.arange(12))), [5, 4, 5]))


def test_split_with_spacepoints_out_of_measurement_order():
    """Spacepoints grouped by event but not in measurement order within an event."""
    order = np.array([2, 0, 3, 1, 6, 4, 5, 11, 7, 10, 8, 9])
    _check(split_products(localize(_batch(order)), [5, 4, 5]))
