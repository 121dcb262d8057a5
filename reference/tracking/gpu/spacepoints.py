"""GPU spacepoint formation: local -> global on the device, the math of
:func:`reference.tracking.spacepoints.form_spacepoints` (one kernel launch, no host sync)."""

# numba.cuda's intrinsics (cuda.grid) are typing stubs whose signatures pylint misreads:
# pylint: disable=no-value-for-parameter
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import cuda

from reference.tracking.geometry import KIND_CYLINDER
from reference.tracking.gpu import backend
from reference.tracking.gpu.clusterization import Identity, consecutive_block, local_to_global
from reference.tracking.spacepoints import Measurements, Spacepoints


@lru_cache(maxsize=None)
def _spacepoint_kernel():
    """Kernel: per measurement its global position and (r, z) variances."""
    backend.cuda()

    @cuda.jit
    def form(block, layer_index, layer_kind, out_f, out_i):
        i = cuda.grid(1)
        n = out_i.shape[0]
        if i >= n:
            return
        l0 = np.float64(block[i])
        l1 = np.float64(block[n + i])
        p = 4 * n + 12 * i
        for a in range(3):
            out_f[a * n + i] = local_to_global(np.float64(block[p + a]), np.float64(block[p + 3 + a]),
                                               np.float64(block[p + 6 + a]), l0, l1)
        var1 = block[3 * n + i]
        cylinder = layer_kind[layer_index[i]] == KIND_CYLINDER
        out_f[3 * n + i] = 0.0 if cylinder else var1
        out_f[4 * n + i] = var1 if cylinder else 0.0
        out_i[i] = i

    return form


@lru_cache(maxsize=8)
def _kind_view(layers: Identity):
    """Kernel view of a layer table's kinds, kept per table: the GPU clusterization hands out
    one cached device table per detector, so this is built once."""
    return backend.kernel_arg(backend.xp().asarray(layers.obj.kind))


def _measurement_block(meas: Measurements, dtype):
    """local0, local1, var0, var1 and the planes as one 1-D xp array (a view when possible)."""
    arrays = [meas.local0, meas.local1, meas.var0, meas.var1, meas.planes]
    block = consecutive_block(arrays)
    if block is None:
        xp = backend.xp()
        block = xp.concatenate([xp.asarray(a, dtype).ravel() for a in arrays])
    return block


def form_spacepoints_gpu(measurements: Measurements) -> Spacepoints:
    """GPU twin of ``form_spacepoints``: measurements (xp arrays) -> :class:`Spacepoints`.

    Positions are computed in float64 and stored, with var_r and var_z, in the dtype of
    ``measurements.local0`` (float32 from the default GPU clusterization); measurement is int64.
    Barrel layers get var_z = var1 and var_r = 0, disks var_r = var1 and var_z = 0, as on the CPU.
    """
    xp = backend.xp()
    n = len(measurements)
    dtype = np.dtype(measurements.local0.dtype)
    out_f = xp.empty(5 * n, dtype)
    out_i = xp.empty(n, np.int64)
    if n:
        block = _measurement_block(measurements, dtype)
        kind = _kind_view(Identity(measurements.layers))
        _spacepoint_kernel()[backend.blocks(n)](backend.kernel_arg(block), backend.kernel_arg(xp.asarray(measurements.layer_index)),
                                                kind, backend.kernel_arg(out_f), backend.kernel_arg(out_i))
    x, y, z, var_r, var_z = (out_f[k * n:(k + 1) * n] for k in range(5))
    return Spacepoints(x, y, z, out_i, var_r, var_z)
