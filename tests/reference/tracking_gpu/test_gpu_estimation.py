"""GPU track-parameter estimation against the CPU stage.

The kernel runs under numba's CUDA simulator (conftest.py) on the seeds of a tiny simulated event
(one vertex, a few tens of particles; spacepoints and seeds from the CPU chain's stages); the last
test runs the real kernel on a pile-up 200 event and is skipped without a GPU.
"""

import dataclasses
import math

import numpy as np
import pytest

from reference.tracking.errors import TrackingInputError
from reference.tracking.estimation import EstimationConfig
from reference.tracking.estimation import estimate_track_parameters as cpu_estimate
from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.gpu.estimation import estimate_track_parameters
from reference.tracking.seeding import Seeds, find_seeds
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
from reference.tracking.spacepoints import Measurements, Spacepoints, form_spacepoints, measurements_from_hits


def _host(a) -> np.ndarray:
    return np.asarray(a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a)


def _event(pileup: int, particles_per_vertex: float, seed: int) -> tuple:
    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=pileup, particles_per_vertex=particles_per_vertex),
                           seed=seed, planes=module_planes(detector))
    meas, _ = measurements_from_hits(event.hits, detector)
    sp = form_spacepoints(meas)
    return find_seeds(sp), sp, meas


@pytest.fixture(scope="module", name="tiny")
def fixture_tiny():
    """Seeds, spacepoints and measurements of one vertex with about 30 particles (about 40 seeds)."""
    return _event(1, 30.0, 3)


def _same_fraction(gpu, cpu, tolerance: float) -> float:
    """traccc's comparison of bound parameters: same plane; loc0, loc1, theta and q/p within
    ``tolerance`` relative to the mean magnitude; phi as an angle."""
    g, c = _host(gpu.params).astype(np.float64), cpu.params
    near = np.abs(g - c) <= tolerance * (np.abs(g) + np.abs(c)) / 2
    dphi = np.abs((g[:, 2] - c[:, 2] + math.pi) % (2 * math.pi) - math.pi)
    phi_mean = np.abs(np.angle(np.exp(1j * g[:, 2]) + np.exp(1j * c[:, 2])))
    near[:, 2] = dphi <= tolerance * phi_mean
    same = near.all(axis=1) & (_host(gpu.surface) == cpu.surface)
    return float(same.mean())


def test_float64_parameters_equal_the_cpu_ones(tiny):
    seeds, sp, meas = tiny
    assert len(seeds) >= 20
    cpu, ok_cpu = cpu_estimate(seeds, sp, meas)
    gpu, ok = estimate_track_parameters(seeds, sp, meas, dtype="float64")
    np.testing.assert_array_equal(_host(ok), ok_cpu)
    np.testing.assert_array_equal(_host(gpu.surface), cpu.surface)
    np.testing.assert_allclose(_host(gpu.params), cpu.params, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(_host(gpu.cov), cpu.cov, rtol=1e-6, atol=1e-15)
    assert _host(gpu.params).dtype == np.float64


def test_float32_parameters_match_at_the_traccc_tolerance(tiny):
    seeds, sp, meas = tiny
    cpu, _ = cpu_estimate(seeds, sp, meas)
    gpu, ok = estimate_track_parameters(seeds, sp, meas)
    assert _host(gpu.params).dtype == np.float32 and _host(gpu.cov).dtype == np.float32
    assert _host(ok).all()
    assert _same_fraction(gpu, cpu, 0.01) == 1.0
    assert _same_fraction(gpu, cpu, 0.001) >= 0.99
    np.testing.assert_allclose(_host(gpu.cov), cpu.cov, rtol=1e-5, atol=1e-12)


def test_configuration_reaches_the_covariance_and_the_field(tiny):
    seeds, sp, meas = tiny
    config = EstimationConfig(bz_tesla=-1.5, sigma_loc_mm=0.3, sigma_pt_rel=0.2)
    cpu, _ = cpu_estimate(seeds, sp, meas, config)
    gpu, _ = estimate_track_parameters(seeds, sp, meas, config, dtype="float64")
    np.testing.assert_allclose(_host(gpu.params), cpu.params, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(_host(gpu.cov), cpu.cov, rtol=1e-6, atol=1e-15)
    assert _host(gpu.cov)[0, 0] == pytest.approx(0.09)


def test_degenerate_seeds_are_invalid_as_on_the_cpu(tiny):
    """A seed whose middle is its bottom has no direction: invalid on both devices, and the
    parameters of the others are compacted the same way."""
    seeds, sp, meas = tiny
    bad = Seeds(np.concatenate([seeds.bottom[:3], seeds.bottom[:1]]), np.concatenate([seeds.middle[:3], seeds.bottom[:1]]),
                np.concatenate([seeds.top[:3], seeds.top[:1]]), np.zeros(4), np.zeros(4))
    cpu, ok_cpu = cpu_estimate(bad, sp, meas)
    gpu, ok = estimate_track_parameters(bad, sp, meas, dtype="float64")
    assert _host(ok).tolist() == ok_cpu.tolist() == [True, True, True, False]
    assert len(gpu) == len(cpu) == 3
    np.testing.assert_allclose(_host(gpu.params), cpu.params, rtol=1e-6, atol=1e-12)


def test_no_seeds_give_empty_parameters(tiny):
    _, sp, meas = tiny
    empty = Seeds(*(np.zeros(0, np.int64) for _ in range(3)), np.zeros(0), np.zeros(0))
    params, ok = estimate_track_parameters(empty, sp, meas)
    assert len(params) == 0 and _host(params.params).shape == (0, 5) and _host(params.cov).shape == (0, 25)
    assert len(_host(ok)) == 0


def test_bad_dtype_gives_one_clear_error(tiny):
    with pytest.raises(TrackingInputError, match="dtype"):
        estimate_track_parameters(*tiny, dtype="half")


@pytest.mark.skipif(not backend.device_present(),
                    reason="needs a CUDA GPU with CuPy and NUMBA_ENABLE_CUDASIM=0 (the simulator is too slow for mu=200)")
def test_pileup_200_event_on_the_gpu_matches_cpu():
    seeds, sp, meas = _event(200, 60.0, 11)
    xp = backend.xp()
    sp_dev = Spacepoints(*(xp.asarray(getattr(sp, f.name)) for f in dataclasses.fields(Spacepoints)))
    meas_dev = dataclasses.replace(meas, local0=xp.asarray(meas.local0), local1=xp.asarray(meas.local1))
    seeds_dev = Seeds(*(xp.asarray(getattr(seeds, f)) for f in ("bottom", "middle", "top", "weight", "z_vertex")))
    cpu, ok_cpu = cpu_estimate(seeds, sp, meas)
    gpu64, ok64 = estimate_track_parameters(seeds_dev, sp_dev, meas_dev, dtype="float64")
    np.testing.assert_array_equal(_host(ok64), ok_cpu)
    np.testing.assert_allclose(_host(gpu64.params), cpu.params, rtol=1e-6, atol=1e-9)
    gpu32, _ = estimate_track_parameters(seeds_dev, sp_dev, meas_dev)
    assert _same_fraction(gpu32, cpu, 0.01) >= 0.995
    assert isinstance(meas_dev, Measurements)
