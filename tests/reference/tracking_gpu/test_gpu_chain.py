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
from reference.tracking.gpu.chain import reconstruct_event_gpu
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
