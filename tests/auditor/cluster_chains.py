"""Chains for the scale-out tests: one whose worker dies the first time it runs a unit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from auditor import Chain


def _events(parameters):
    rng = np.random.default_rng(int(parameters.get("seed", 1)))
    for _ in range(int(parameters["events"])):
        yield {"values": rng.normal(size=int(parameters["size"]))}


def build_crashing_chain() -> Chain:
    """``square`` kills its worker process the first time a unit with a given ``marker`` runs on a
    Dask worker (never in the process that started the job: ``client_pid``)."""
    chain = Chain("crashing", inputs=_events, description="a worker dies on the first attempt",
                  parameters={"events": 2, "size": 1000, "marker": "", "client_pid": 0}, package="tests")

    @chain.stage("square", inputs=["values"], outputs=["squares"])
    def square(values):
        return values * values

    @chain.stage("total", inputs=["squares"], outputs=["total"])
    def total(squares):
        return np.array([squares.sum()])

    original = chain.make_inputs

    def inputs(parameters):
        marker = Path(str(parameters["marker"]))
        if parameters["marker"] and os.getpid() != int(parameters["client_pid"]) and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(3)
        return original(parameters)

    chain.make_inputs = inputs
    return chain
