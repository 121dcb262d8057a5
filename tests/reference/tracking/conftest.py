"""Shared fixtures: the generic detector and one small simulated, reconstructed event."""

import pytest

from reference.tracking.chain import reconstruct_event
from reference.tracking.geometry import build_generic_detector
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event


@pytest.fixture(scope="session")
def detector():
    return build_generic_detector()


@pytest.fixture(scope="session")
def planes(detector):
    return module_planes(detector)


@pytest.fixture(scope="session")
def small_event(detector, planes):
    """Pile-up 10 event (about 600 particles)."""
    return simulate_event(detector, SimulationConfig(pileup=10), seed=7, planes=planes)


@pytest.fixture(scope="session")
def small_result(small_event, detector):
    return reconstruct_event(small_event, detector)
