"""The whole chain on the GPU (``reconstruct --device gpu``) against the CPU chain, on one small
event under numba's CUDA simulator."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from reference.tracking.chain import ChainConfig, LeftoverIteration, LowPtIteration, reconstruct_event
from reference.tracking.cli import register
from reference.tracking.errors import TrackingInputError
from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.gpu.chain import reconstruct_batch_gpu, reconstruct_event_gpu
from reference.tracking.performance import evaluate
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
from reference.tracking.trackml_io import write_detector, write_event

pytestmark = pytest.mark.skipif(not backend.simulated(), reason="runs the kernels under numba's CUDA simulator")


@pytest.fixture(scope="module", name="small")
def small_event():
    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=1, particles_per_vertex=30.0), seed=3,
                           planes=module_planes(detector))
    return detector, event


def test_gpu_chain_gives_the_cpu_tracks_and_efficiency(small):
    detector, event = small
    cpu = reconstruct_event(event, detector)
    gpu = reconstruct_event_gpu(event, detector)
    assert isinstance(gpu.tracks.chi2, np.ndarray) and gpu.info["device"] == "gpu"
    assert len(gpu.measurements) == len(cpu.measurements) and len(gpu.seeds) == len(cpu.seeds)
    assert len(gpu.tracks) == len(cpu.tracks) > 0
    assert sorted(map(tuple, np.split(gpu.tracks.meas, gpu.tracks.offsets[1:-1]))) == \
        sorted(map(tuple, np.split(cpu.tracks.meas, cpu.tracks.offsets[1:-1])))
    cpu_perf, gpu_perf = evaluate(event, cpu), evaluate(event, gpu)
    assert gpu_perf["after_ambiguity"]["efficiency"] == cpu_perf["after_ambiguity"]["efficiency"]
    assert set(gpu.timings_s) >= {"to_device", "clusterization", "seeding", "ckf", "to_host", "ambiguity", "total"}


def _same_products(a, b) -> None:
    """Every product of two chain results, field by field."""
    import dataclasses  # pylint: disable=import-outside-toplevel

    for name in ("measurements", "spacepoints", "seeds", "parameters", "tracks_all", "tracks"):
        x, y = getattr(a, name), getattr(b, name)
        for f in dataclasses.fields(x):
            if f.name not in ("layers", "stats"):
                np.testing.assert_array_equal(getattr(x, f.name), getattr(y, f.name), err_msg=f"{name}.{f.name}")
    np.testing.assert_array_equal(a.seed_valid, b.seed_valid)


def test_a_batch_gives_every_event_its_own_products(small):
    """Three events as one batch (the middle one twice: overlapping events) give each event
    exactly what it gets alone: measurements, spacepoints, seeds, parameters and tracks, with
    indices into the event."""
    detector, event = small
    other = simulate_event(detector, SimulationConfig(pileup=2, particles_per_vertex=15.0), seed=8,
                           planes=module_planes(detector))
    events = [other, event, event]
    batch = reconstruct_batch_gpu(events, detector)
    assert len(batch) == 3
    for result, single in zip(batch, (reconstruct_event_gpu(e, detector) for e in events)):
        _same_products(result, single)
        assert result.info["batch_events"] == 3 and result.info["tracks"] == single.info["tracks"] > 0
        assert set(result.timings_s) == set(single.timings_s)
    assert reconstruct_batch_gpu([], detector) == []
    with pytest.raises(TrackingInputError, match="CPU only"):
        reconstruct_batch_gpu(events, detector, ChainConfig(low_pt=LowPtIteration()))
    with pytest.raises(TrackingInputError, match="cells and a detector"):
        reconstruct_batch_gpu(events, None)


def test_gpu_chain_refuses_the_low_pt_iteration(small):
    detector, event = small
    with pytest.raises(TrackingInputError, match="CPU only"):
        reconstruct_event_gpu(event, detector, ChainConfig(low_pt=LowPtIteration()))
    with pytest.raises(TrackingInputError, match="CPU only"):
        reconstruct_event_gpu(event, detector, ChainConfig(leftover=LeftoverIteration()))


def test_reconstruct_command_on_the_gpu(small, tmp_path):
    detector, event = small
    write_detector(tmp_path / "detectors.csv", detector)
    write_event(tmp_path, "event000000001", event)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["reconstruct", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "gpu"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "event000000001-performance.json").read_text())
    assert record["info"]["device"] == "gpu" and record["info"]["tracks"] > 0
    bad = runner.invoke(app, ["reconstruct", str(tmp_path), "--out", str(tmp_path / "o2"), "--device", "tpu"])
    assert bad.exit_code == 1 and "Unknown device" in bad.output
    cpu_batch = runner.invoke(app, ["reconstruct", str(tmp_path), "--out", str(tmp_path / "o3"), "--batch", "2"])
    assert cpu_batch.exit_code == 1 and "--device gpu" in cpu_batch.output


def test_reconstruct_command_in_batches_skips_only_the_bad_event(small, tmp_path):
    """--batch 2 over four events, the second with hits on no module: the good events get the
    tracks they get one at a time (the last two as a batch; the bad one's batch runs again event
    by event), the bad one is skipped with its sentence."""
    import dataclasses  # pylint: disable=import-outside-toplevel

    detector, event = small
    write_detector(tmp_path / "detectors.csv", detector)
    bad_hits = dataclasses.replace(event.hits, volume_id=event.hits.volume_id + 1000)
    for name, ev in (("event000000001", event), ("event000000002", dataclasses.replace(event, hits=bad_hits)),
                     ("event000000003", event), ("event000000004", event)):
        write_event(tmp_path, name, ev)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "gpu",
                                      "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "reconstructed 3 of 4" in result.output and "event000000002" in result.output
    alone = reconstruct_event_gpu(event, detector)
    for name, batch in (("event000000001", None), ("event000000003", 2), ("event000000004", 2)):
        record = json.loads((tmp_path / "out" / f"{name}-performance.json").read_text())
        assert record["info"]["tracks"] == alone.info["tracks"] > 0
        assert record["info"].get("batch_events") == batch
    assert not (tmp_path / "out" / "event000000002-performance.json").exists()


def test_a_batch_too_big_for_the_device_runs_event_by_event(small, tmp_path, monkeypatch):
    """A batch that runs out of device memory is run again one event at a time, with a note."""
    import reference.tracking.gpu.chain as gpu_chain  # pylint: disable=import-outside-toplevel

    detector, event = small
    write_detector(tmp_path / "detectors.csv", detector)
    for name in ("event000000001", "event000000002"):
        write_event(tmp_path, name, event)

    def out_of_memory(*_):
        raise MemoryError("out of memory allocating 7,400,000,000 bytes")

    monkeypatch.setattr(gpu_chain, "reconstruct_batch_gpu", out_of_memory)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["reconstruct", str(tmp_path), "--out", str(tmp_path / "out"), "--device", "gpu",
                                      "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert "reconstructed 2 of 2" in result.output and "did not fit" in result.output


def test_pinned_copies_back_equal_plain_copies():
    """to_host_pinned gives the arrays to_host gives (page-locked, after one synchronisation),
    for nested products with non-contiguous and empty arrays; a GPU test."""
    if backend.simulated() or not backend.device_present():
        pytest.skip("needs a CUDA GPU with CuPy (and NUMBA_ENABLE_CUDASIM unset)")
    import cupy  # pylint: disable=import-outside-toplevel,import-error
    from auditor.products import to_host, to_host_pinned  # pylint: disable=import-outside-toplevel

    with cupy.cuda.Stream(non_blocking=True):
        product = {"a": cupy.arange(12.0).reshape(3, 4)[:, ::2], "b": (cupy.zeros(0, cupy.int64), 3),
                   "c": [cupy.full((2, 2), 7, cupy.int32)], "d": np.ones(2)}
        pinned, plain = to_host_pinned(product), to_host(product)
    np.testing.assert_array_equal(pinned["a"], plain["a"])
    assert pinned["b"][0].shape == (0,) and pinned["b"][1] == 3
    np.testing.assert_array_equal(pinned["c"][0], plain["c"][0])
    assert pinned["c"][0].dtype == np.int32 and isinstance(pinned["a"], np.ndarray)
    np.testing.assert_array_equal(pinned["d"], product["d"])
