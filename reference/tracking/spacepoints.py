"""Measurements (local, on a plane) and spacepoint formation (local -> global).

Every measurement carries its own plane (centre, U, V, W; 12 floats) so that the CKF works
the same way on modules from a detector description and on planes derived from hits alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.tracking.clusterization import Clusters
from reference.tracking.errors import TrackingInputError
from reference.tracking.event import Hits
from reference.tracking.geometry import (KIND_CYLINDER, LONG_STRIP_VOLUMES, PIXEL_VOLUMES, SHORT_STRIP_VOLUMES,
                                         Detector, Layers, layers_from_points)


@dataclass(frozen=True)
class Measurements:
    """2D measurements on planes.

    planes: (n, 12) centre, U, V, W; local0/1 and var0/1 in mm and mm^2; layer_index into
    ``layers``; hit_id: representative TrackML hit; hit_measurement: for every hit of the event
    (event order) its measurement, or -1.
    """

    planes: np.ndarray
    local0: np.ndarray
    local1: np.ndarray
    var0: np.ndarray
    var1: np.ndarray
    layer_index: np.ndarray
    hit_id: np.ndarray
    hit_measurement: np.ndarray
    layers: Layers

    def __len__(self) -> int:
        return len(self.local0)


@dataclass(frozen=True)
class Spacepoints:
    """Global positions (mm) of measurements; measurement index per spacepoint."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    measurement: np.ndarray
    var_r: np.ndarray
    var_z: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@njit(cache=True)
def _local_to_global(planes, l0, l1):
    n = l0.shape[0]
    out = np.empty((n, 3))
    for i in range(n):
        for a in range(3):
            out[i, a] = planes[i, a] + l0[i] * planes[i, 3 + a] + l1[i] * planes[i, 6 + a]
    return out


def form_spacepoints(meas: Measurements) -> Spacepoints:
    """Local -> global transformation of every measurement (the spacepoint formation stage).

    The r and z variances (used by seeding) are those of the local measurement projected on
    the layer: for barrel layers var_z = var1 and var_r ~ 0; for disks var_r = var1, var_z ~ 0.
    """
    g = _local_to_global(meas.planes, meas.local0, meas.local1)
    is_cyl = meas.layers.kind[meas.layer_index] == KIND_CYLINDER
    var_z = np.where(is_cyl, meas.var1, 0.0)
    var_r = np.where(is_cyl, 0.0, meas.var1)
    return Spacepoints(g[:, 0], g[:, 1], g[:, 2], np.arange(len(g), dtype=np.int64), var_r, var_z)


def _module_planes(detector: Detector, idx):
    rot = detector.rotation[idx]
    return np.concatenate([detector.center_mm[idx], rot[:, :, 0], rot[:, :, 1], rot[:, :, 2]], axis=1)


def measurements_from_clusters(clusters: Clusters, detector: Detector, cell_hit_index,
                               n_hits: int, hit_ids) -> Measurements:
    """Measurements from clusters; ``cell_hit_index`` is each cell's row in the hits table."""
    planes = _module_planes(detector, clusters.module_index)
    # every hit -> the cluster of (one of) its cells; a hit split over two clusters keeps one
    hit_meas = np.full(n_hits, -1, np.int64)
    hit_meas[cell_hit_index] = clusters.cell_label
    rep_hit = np.asarray(hit_ids)[cell_hit_index[clusters.rep_cell]]
    return Measurements(planes, clusters.local0, clusters.local1, clusters.var0, clusters.var1,
                        detector.layer_index[clusters.module_index].astype(np.int64), rep_hit, hit_meas,
                        detector.layers)


def default_variances(volume_id):
    """Local variances (mm^2) for hits read without cells: pitch^2/12 of the TrackML segmentation."""
    v = np.asarray(volume_id)
    pu = np.where(np.isin(v, PIXEL_VOLUMES), 0.05, np.where(np.isin(v, SHORT_STRIP_VOLUMES), 0.08, 0.12))
    pv = np.where(np.isin(v, PIXEL_VOLUMES), 0.05, np.where(np.isin(v, SHORT_STRIP_VOLUMES), 1.2, 10.4))
    pv = np.where(np.isin(v, (*PIXEL_VOLUMES, *SHORT_STRIP_VOLUMES, *LONG_STRIP_VOLUMES)), pv, 0.05)
    return pu ** 2 / 12.0, pv ** 2 / 12.0


def measurements_from_hits(hits: Hits, detector: Detector | None) -> tuple:
    """Measurements from hits used directly as spacepoints (no cells).

    With a detector, each hit is projected on its module plane and gets the module pitch
    variances; hits on unknown modules are skipped. Without a detector, the plane is the layer
    tangent plane through the hit (radial normal in barrels, z normal in disks), with layers
    derived from the hits themselves. Returns (Measurements, number of skipped hits).
    """
    n = len(hits)
    if n == 0:
        raise TrackingInputError("The event has no hits.")
    xyz = np.column_stack([hits.x, hits.y, hits.z]).astype(np.float64)
    if detector is not None:
        mod = detector.module_index(hits.volume_id, hits.layer_id, hits.module_id)
        ok = mod >= 0
        idx = np.nonzero(ok)[0]
        planes = _module_planes(detector, mod[ok])
        d = xyz[ok] - planes[:, 0:3]
        l0 = np.einsum("ij,ij->i", d, planes[:, 3:6])
        l1 = np.einsum("ij,ij->i", d, planes[:, 6:9])
        pu = detector.pitch_u_mm[mod[ok]]
        pv = detector.pitch_v_mm[mod[ok]]
        hit_meas = np.full(n, -1, np.int64)
        hit_meas[idx] = np.arange(len(idx))
        meas = Measurements(planes, l0, l1, pu ** 2 / 12.0, pv ** 2 / 12.0,
                            detector.layer_index[mod[ok]].astype(np.int64), hits.hit_id[ok], hit_meas,
                            detector.layers)
        return meas, int((~ok).sum())
    layers, layer_index = layers_from_points(hits.volume_id, hits.layer_id, xyz[:, None, :])
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    r = np.where(r > 0, r, 1e-9)
    cphi = xyz[:, 0] / r
    sphi = xyz[:, 1] / r
    cyl = layers.kind[layer_index] == KIND_CYLINDER
    zero = np.zeros(n)
    one = np.ones(n)
    U = np.column_stack([-sphi, cphi, zero])
    V = np.where(cyl[:, None], np.column_stack([zero, zero, one]), np.column_stack([-cphi, -sphi, zero]))
    W = np.where(cyl[:, None], np.column_stack([cphi, sphi, zero]), np.column_stack([zero, zero, one]))
    planes = np.concatenate([xyz, U, V, W], axis=1)
    v0, v1 = default_variances(hits.volume_id)
    meas = Measurements(planes, zero.copy(), zero.copy(), v0.astype(float), v1.astype(float),
                        layer_index.astype(np.int64), hits.hit_id.copy(), np.arange(n, dtype=np.int64), layers)
    return meas, 0
