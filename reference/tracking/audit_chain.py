"""The tracking chain as ``hepaudit run`` sees it: six stages registered through the public
``auditor`` API, exactly as an external project registers its own.

Events are simulated (TrackML-like detector, pile-up ``pileup``); each stage is the function the
``reconstruct`` command runs, split at the products traccc's chain hands from one algorithm to
the next: measurements, spacepoints, seeds, track parameters, track candidates, resolved tracks.
GPU implementations (``reference.tracking.gpu``) are registered for the stages ported so far.
"""

from __future__ import annotations

import numpy as np

from auditor import Chain
from reference.tracking.agreement import stage_comparators
from reference.tracking.ambiguity import resolve_ambiguities
from reference.tracking.chain import ChainConfig, _Clock, _measurements_from_event
from reference.tracking.ckf import find_tracks, measurement_grid
from reference.tracking.estimation import estimate_track_parameters
from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.gpu import ckf as gpu_ckf
from reference.tracking.gpu import clusterization as gpu_clusterization
from reference.tracking.gpu import estimation as gpu_estimation
from reference.tracking.gpu import seeding as gpu_seeding
from reference.tracking.gpu import spacepoints as gpu_spacepoints
from reference.tracking.seeding import find_seeds
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
from reference.tracking.spacepoints import form_spacepoints

CONFIG = ChainConfig()


class Geometry:
    """The detector description, handed to the clusterization as it is: static geometry that
    each device keeps (the GPU caches its own copy), not a per-event product to transfer."""

    def __init__(self, detector):
        self.detector = detector


def _detector(geometry):
    """The Detector inside a Geometry (a plain Detector is accepted as well)."""
    return getattr(geometry, "detector", geometry)


def make_events(parameters):
    """Simulated events with the detector as a shared product."""
    detector = build_generic_detector()
    planes = module_planes(detector)
    simulation = SimulationConfig(pileup=int(parameters["pileup"]))
    geometry = Geometry(detector)
    for index in range(int(parameters["events"])):
        event = simulate_event(detector, simulation, seed=int(parameters["seed"]) + index, planes=planes)
        yield {"event": event, "detector": geometry}


def clusterization(event, detector):
    """Cells -> clusters -> measurements (from hits when the event has no cells)."""
    measurements, _ = _measurements_from_event(event, _detector(detector), {}, _Clock({}, {}))
    return measurements


def clusterization_gpu(event, detector):
    """The same on the device (numba.cuda connected-component labelling)."""
    return gpu_clusterization.clusterization_gpu(event, _detector(detector))


def spacepoints_gpu(measurements):
    return gpu_spacepoints.form_spacepoints_gpu(measurements)


def seeding_gpu(spacepoints):
    return gpu_seeding.find_seeds(spacepoints, CONFIG.seeding)


def estimation_gpu(seeds, spacepoints, measurements):
    return gpu_estimation.estimate_track_parameters(seeds, spacepoints, measurements, CONFIG.estimation)


def spacepoints(measurements):
    return form_spacepoints(measurements)


def seeding(spacepoints):
    return find_seeds(spacepoints, CONFIG.seeding)


def estimation(seeds, spacepoints, measurements):
    parameters, valid = estimate_track_parameters(seeds, spacepoints, measurements, CONFIG.estimation)
    return parameters, valid


def ckf_gpu(parameters, seed_valid, seeds, spacepoints, measurements):
    """The CKF on the device: one thread per seed, the CPU's propagation and Kalman update."""
    return gpu_ckf.tracks_from_seeds(seeds, spacepoints, measurements, (parameters, seed_valid), CONFIG.ckf)


def ckf(parameters, seed_valid, seeds, spacepoints, measurements):
    seed_measurements = np.column_stack([spacepoints.measurement[seeds.bottom], spacepoints.measurement[seeds.middle],
                                         spacepoints.measurement[seeds.top]])[seed_valid]
    order = np.argsort(-seeds.weight[seed_valid], kind="stable")
    return find_tracks(parameters, seed_measurements, measurements, CONFIG.ckf, seed_order=order,
                       grid=measurement_grid(measurements))


def ambiguity(candidates, measurements):
    return resolve_ambiguities(candidates, len(measurements), CONFIG.ambiguity)


def build_chain() -> Chain:
    """The tracking chain for ``hepaudit run`` (entry point ``hepaudit.chains: tracking``)."""
    chain = Chain("tracking", inputs=make_events, package="reference",
                  description="charged-particle tracking: clusterization, spacepoints, seeding, "
                              "parameter estimation, combinatorial Kalman filter, ambiguity resolution",
                  parameters={"pileup": 200, "events": 3, "seed": 1}, quick={"pileup": 40, "events": 2})
    chain.add_stage("clusterization", clusterization, inputs=["event", "detector"], outputs=["measurements"])
    chain.add_stage("clusterization", clusterization_gpu, device="gpu", backend="cupy")
    chain.add_stage("spacepoints", spacepoints, inputs=["measurements"], outputs=["spacepoints"])
    chain.add_stage("spacepoints", spacepoints_gpu, device="gpu", backend="cupy")
    chain.add_stage("seeding", seeding, inputs=["spacepoints"], outputs=["seeds"])
    chain.add_stage("seeding", seeding_gpu, device="gpu", backend="cupy")
    chain.add_stage("estimation", estimation, inputs=["seeds", "spacepoints", "measurements"],
                    outputs=["parameters", "seed_valid"])
    chain.add_stage("estimation", estimation_gpu, device="gpu", backend="cupy")
    chain.add_stage("ckf", ckf, inputs=["parameters", "seed_valid", "seeds", "spacepoints", "measurements"],
                    outputs=["candidates"])
    chain.add_stage("ckf", ckf_gpu, device="gpu", backend="cupy")
    chain.add_stage("ambiguity", ambiguity, inputs=["candidates", "measurements"], outputs=["tracks"])
    for stage, compare in stage_comparators().items():  # traccc's CPU-GPU matching rates per product
        chain.comparator(stage)(compare)
    return chain
