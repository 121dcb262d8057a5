"""The tracking chain as ``hepaudit run`` sees it, GPU implementations against CPU ones, on one
small event (one vertex of 30 particles) under numba's CUDA simulator: each GPU stage receives
the CPU stage's inputs, as the profiler hands them, and the registered comparator must accept
its outputs."""

import numpy as np
import pytest

from reference.tracking import audit_chain
from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event

pytestmark = pytest.mark.skipif(not backend.simulated(), reason="runs the kernels under numba's CUDA simulator")


@pytest.fixture(scope="module", name="cpu")
def cpu_products():
    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=1, particles_per_vertex=30.0), seed=3,
                           planes=module_planes(detector))
    products = {"event": event, "detector": audit_chain.Geometry(detector)}
    chain = audit_chain.build_chain()
    for name, stage in chain.stages.items():
        products.update(stage.run("cpu", products))
    return chain, products


def test_every_gpu_stage_agrees_with_the_cpu_through_the_chain_comparators(cpu):
    chain, products = cpu
    gpu_stages = [name for name, stage in chain.stages.items() if "gpu" in stage.implementations]
    assert gpu_stages == ["clusterization", "spacepoints", "seeding", "estimation", "ckf"]
    assert len(products["seeds"]) > 10 and len(products["candidates"].seed) >= 3
    for name in gpu_stages:
        stage = chain.stages[name]
        cpu_out = {product: products[product] for product in stage.outputs}
        gpu_out = stage.run("gpu", {product: products[product] for product in stage.inputs})
        agreement = stage.comparator(cpu_out, gpu_out)
        assert agreement.rate >= 0.99, (name, agreement.rates)
