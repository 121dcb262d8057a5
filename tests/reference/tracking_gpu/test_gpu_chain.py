"""The whole chain on the GPU (``reconstruct --device gpu``) against the CPU chain, on one small
event under numba's CUDA simulator."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from reference.tracking.chain import ChainConfig, LowPtIteration, reconstruct_event
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
