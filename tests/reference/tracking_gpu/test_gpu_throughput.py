"""Throughput mode: several events in flight on their own CUDA streams give the same results as
one event at a time (under the simulator it runs them one by one)."""

import numpy as np
import pytest

from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.gpu.chain import reconstruct_event_gpu
from reference.tracking.gpu.throughput import reconstruct_many
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event


@pytest.fixture(scope="module", name="events")
def small_events():
    detector = build_generic_detector()
    planes = module_planes(detector)
    pileup = 1 if backend.simulated() else 60  # big enough on a GPU for shared scratch buffers to collide
    return detector, [simulate_event(detector, SimulationConfig(pileup=pileup, particles_per_vertex=30.0), seed=s,
                                     planes=planes) for s in (3, 4, 5, 6)]


def _tracks(result):
    return sorted(map(tuple, np.split(result.tracks.meas, result.tracks.offsets[1:-1])))


def _check_same_as_one_by_one(detector, events, streams, batch=1):
    many = reconstruct_many(events, detector, streams=streams, batch=batch)
    assert len(many.results) == len(events) and many.events_per_s > 0
    for event, result in zip(events, many.results):
        alone = reconstruct_event_gpu(event, detector)
        assert len(result.seeds) == len(alone.seeds) and _tracks(result) == _tracks(alone)
        assert result.info["tracks"] == alone.info["tracks"] > 0


@pytest.mark.skipif(not backend.simulated(), reason="the simulator case; the GPU case is the test below")
def test_simulator_runs_events_in_order(events):
    detector, items = events
    _check_same_as_one_by_one(detector, items[:3], streams=4, batch=2)  # a batch of two, then one event
    assert reconstruct_many(items[:1], detector, streams=4).streams == 1


@pytest.mark.skipif(not backend.device_present(), reason="needs a CUDA GPU: streams overlap only on a device")
def test_streams_give_the_results_of_one_event_at_a_time(events):
    detector, items = events
    _check_same_as_one_by_one(detector, items, streams=4)
    _check_same_as_one_by_one(detector, items, streams=2, batch=2)
    _check_same_as_one_by_one(detector, items[:3], streams=1, batch=4)


def test_streams_must_be_positive(events):
    detector, items = events
    with pytest.raises(ValueError, match="at least 1"):
        reconstruct_many(items[:1], detector, streams=0)
    with pytest.raises(ValueError, match="at least 1"):
        reconstruct_many(items[:1], detector, batch=0)


def test_a_batch_out_of_device_memory_runs_event_by_event(events, monkeypatch):
    """A batch that does not fit beside the other streams' runs again one event at a time, with a
    warning; a single event out of memory is an error of that event."""
    from reference.tracking.gpu import throughput  # pylint: disable=import-outside-toplevel

    detector, items = events

    def no_room(batch, *_):
        if len(batch) > 1:
            raise MemoryError("out of device memory")
        return [reconstruct_event_gpu(batch[0], detector)]

    monkeypatch.setattr(throughput, "reconstruct_batch_gpu", no_room)
    with pytest.warns(RuntimeWarning, match="did not fit in the GPU's memory"):
        many = reconstruct_many(items[:2], detector, streams=1, batch=2)
    assert [r.info["tracks"] for r in many.results] == [reconstruct_event_gpu(e, detector).info["tracks"]
                                                        for e in items[:2]]
    monkeypatch.setattr(throughput, "reconstruct_batch_gpu", lambda *_: (_ for _ in ()).throw(MemoryError("full")))
    with pytest.raises(MemoryError, match="full"):
        reconstruct_many(items[:1], detector, streams=1)
