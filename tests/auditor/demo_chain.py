"""A small but real chain used by the tests: radii of 3-D points, their order, a histogram.

It registers through the public API exactly as an external project would; its GPU
implementations use CuPy and run only where a GPU is present.
"""

from __future__ import annotations

import numpy as np

from auditor import Agreement, Chain


def make_events(parameters):
    rng = np.random.default_rng(parameters.get("seed", 1))
    for _ in range(int(parameters["events"])):
        yield {"points": rng.normal(size=(int(parameters["size"]), 3))}


def relative_match(reference: np.ndarray, other: np.ndarray, tolerances=(1e-4, 1e-3, 1e-2)) -> dict[str, float]:
    """Fraction of entries with |a - b| <= u * (|a| + |b|) / 2, per tolerance u."""
    if reference.shape != other.shape:
        return {f"{u:.2%}": 0.0 for u in tolerances}
    scale = (np.abs(reference) + np.abs(other)) / 2
    return {f"{u:.2%}": float(np.mean(np.abs(reference - other) <= u * scale + 1e-300)) for u in tolerances}


def build_demo_chain() -> Chain:
    chain = Chain("demo", inputs=make_events, description="radius, order and histogram of random points",
                  parameters={"events": 3, "size": 20_000, "seed": 1}, quick={"events": 2, "size": 5_000},
                  package="tests")

    @chain.stage("radius", inputs=["points"], outputs=["radius"])
    def radius_cpu(points):
        return np.sqrt(np.einsum("ij,ij->i", points, points))

    @chain.stage("radius", device="gpu", backend="cupy")
    def radius_gpu(points):
        import cupy

        return cupy.sqrt((points * points).sum(axis=1))

    @chain.comparator("radius")
    def compare_radius(reference, other):
        return Agreement.from_rates(relative_match(reference["radius"], other["radius"]), headline="0.01%")

    @chain.stage("order", inputs=["radius"], outputs=["order"])
    def order_cpu(radius):
        return np.argsort(radius, kind="stable")

    @chain.stage("order", device="gpu", backend="cupy")
    def order_gpu(radius):
        import cupy

        return cupy.argsort(radius)

    @chain.stage("histogram", inputs=["radius", "order"], outputs=["counts", "edges"])
    def histogram_cpu(radius, order):
        counts, edges = np.histogram(radius[order], bins=50, range=(0.0, 5.0))
        return counts, edges

    @chain.stage("histogram", device="gpu", backend="cupy")
    def histogram_gpu(radius, order):
        import cupy

        counts, edges = cupy.histogram(radius[order], bins=50, range=(0.0, 5.0))
        return counts, edges

    @chain.comparator("histogram")
    def compare_histogram(reference, other):
        return Agreement.from_rates({"exact": float(np.mean(reference["counts"] == other["counts"]))})

    return chain
