"""Track-parameter estimation on the device: one thread per seed runs the CPU's
``estimate_from_three_points`` and ``seed_covariance`` (:mod:`reference.tracking.estimation`).

``dtype``: ``"float32"`` (default) reads the spacepoints and measurements in float32 and returns
float32 parameters and covariances (the shared helpers mix in float64 constants); ``"float64"``
reproduces the CPU parameters. One host synchronisation (whether every seed gave parameters).
"""

# numba.cuda's intrinsics (cuda.grid) are typing stubs whose signatures pylint misreads:
# pylint: disable=no-value-for-parameter

from __future__ import annotations

from collections import namedtuple
from functools import lru_cache

import numpy as np
from numba import cuda  # kernels must name numba.cuda as a module global (the simulator swaps it)

from reference.tracking.errors import TrackingInputError
from reference.tracking.estimation import EstimationConfig, TrackParameters, estimate_from_three_points, seed_covariance
from reference.tracking.gpu import backend
from reference.tracking.seeding import Seeds
from reference.tracking.spacepoints import Measurements, Spacepoints

_PRECISIONS = {"float32": np.float32, "float64": np.float64}

SeedInputs = namedtuple("SeedInputs", "bottom middle top x y z meas_of_sp local0 local1")
SeedInputs.__doc__ = """Seeds (spacepoint indices), spacepoint coordinates and measurements, and the
measurements' local coordinates, as given (any float dtype; cast to the working dtype on use)."""
SeedOutputs = namedtuple("SeedOutputs", "params cov surface ok sigmas")
SeedOutputs.__doc__ = """Parameters (n, 5), covariances (n, 25), plane (measurement) index and validity, and the
covariance sigmas (loc, phi, theta, q/pT, relative pT) with the field bz last (floats)."""


@cuda.jit(device=True)
def _estimate_seed(inp, out, i, fit):
    """Parameters of seed i on its bottom measurement's plane, as the CPU's ``_estimate``."""
    b = inp.bottom[i]
    m = inp.middle[i]
    t = inp.top[i]
    real = fit.dtype.type
    s = out.sigmas
    if not estimate_from_three_points(real(inp.x[b]), real(inp.y[b]), real(inp.z[b]), real(inp.x[m]),
                                      real(inp.y[m]), real(inp.z[m]), real(inp.x[t]), real(inp.y[t]),
                                      real(inp.z[t]), real(s[5]), fit):
        for k in range(25):
            out.cov[i, k] = 0.0
        for k in range(5):
            out.params[i, k] = 0.0
        out.surface[i] = -1
        out.ok[i] = False
        return
    mb = inp.meas_of_sp[b]
    out.surface[i] = mb
    out.params[i, 0] = inp.local0[mb]
    out.params[i, 1] = inp.local1[mb]
    for k in range(3):
        out.params[i, 2 + k] = fit[k]
    seed_covariance(fit, (s[0], s[1], s[2], s[3], s[4]), out.cov, i)
    out.ok[i] = True


@lru_cache(maxsize=None)
def _kernel(dtype: str):
    """The estimation kernel for one dtype (compiled on first launch)."""
    backend.cuda()  # the numpy shim, before the first compile
    real = _PRECISIONS[dtype]

    @cuda.jit
    def estimate(inp, out):
        i = cuda.grid(1)
        if i < inp.bottom.shape[0]:
            fit = cuda.local.array(5, real)
            _estimate_seed(inp, out, i, fit)

    return estimate


def _inputs(seeds: Seeds, sp: Spacepoints, meas: Measurements) -> SeedInputs:
    xp = backend.xp()
    return SeedInputs(*(xp.asarray(a) for a in (seeds.bottom, seeds.middle, seeds.top, sp.x, sp.y, sp.z,
                                                 sp.measurement, meas.local0, meas.local1)))


def estimate_track_parameters(seeds: Seeds, sp: Spacepoints, meas: Measurements,
                              config: EstimationConfig = EstimationConfig(), dtype: str = "float32") -> tuple:
    """Bound parameters for every seed on its bottom measurement's plane, on the device.

    Same signature and result as the CPU stage (plus ``dtype``): (TrackParameters with
    device arrays, valid mask over seeds).
    """
    if dtype not in _PRECISIONS:
        raise TrackingInputError(f"The GPU dtype must be 'float32' or 'float64', not {dtype!r}.")
    xp = backend.xp()
    real = _PRECISIONS[dtype]
    n = len(seeds)
    sigmas = (float(config.sigma_loc_mm), float(config.sigma_phi_rad), float(config.sigma_theta_rad),
              float(config.sigma_q_over_pt_per_gev), float(config.sigma_pt_rel), float(config.bz_tesla))
    out = SeedOutputs(xp.empty((n, 5), real), xp.empty((n, 25), real), xp.empty(n, xp.int64),
                      xp.empty(n, xp.bool_), sigmas)
    if n:
        backend.launch(_kernel(dtype), n, _inputs(seeds, sp, meas), out)
    if n == 0 or bool(out.ok.all()):
        return TrackParameters(out.params, out.cov, out.surface), out.ok
    return TrackParameters(out.params[out.ok], out.cov[out.ok], out.surface[out.ok]), out.ok
