"""TrackML-like silicon tracker: planar modules grouped in barrel cylinders and endcap disks.

The default layout follows the TrackML / ACTS *Generic* detector (pixel barrel at r = 32, 72,
116, 172 mm; pixel disks at |z| = 600 ... 1500 mm; short- and long-strip barrels and disks) with
TrackML segmentations (pixels 50 x 50 um, 0.15 mm thick). A detector can also be read from a
TrackML ``detectors.csv`` (see :mod:`reference.tracking.trackml_io`).

Module frame (TrackML convention): global = R @ (u, v, w) + c, where the columns of R are the
local axes u, v, w expressed in global coordinates; cell centres are
``v = (ch1 + 0.5) * pitch_v - hv`` and ``u = (ch0 + 0.5) * pitch_u - hu(v)`` with the trapezoid
half width ``hu(v) = (minhu * (hv + v) + maxhu * (hv - v)) / (2 hv)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.tracking.errors import TrackingInputError

KIND_CYLINDER = 0
KIND_DISK = 1

PIXEL_VOLUMES = (7, 8, 9)
SHORT_STRIP_VOLUMES = (12, 13, 14)
LONG_STRIP_VOLUMES = (16, 17, 18)


def material_x_over_x0(volume_id: int) -> float:
    """Radiation length fraction per layer crossing at normal incidence (sensor + support)."""
    if volume_id in PIXEL_VOLUMES:
        return 0.012
    if volume_id in SHORT_STRIP_VOLUMES:
        return 0.020
    return 0.025


@dataclass(frozen=True)
class Layers:
    """Layer surfaces, one row per (volume_id, layer_id).

    kind: 0 cylinder (barrel), 1 disk (endcap); position_mm: cylinder radius or disk z;
    lo_mm/hi_mm: z range (cylinder) or r range (disk); delta_mm: half spread of the module
    planes along the layer normal around the nominal surface; x_over_x0: material per crossing.
    """

    volume_id: np.ndarray
    layer_id: np.ndarray
    kind: np.ndarray
    position_mm: np.ndarray
    lo_mm: np.ndarray
    hi_mm: np.ndarray
    delta_mm: np.ndarray
    x_over_x0: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)


@dataclass(frozen=True)
class LayerGrid:
    """Per-layer (phi x coordinate-2) binning of items (modules or measurements), CSR layout.

    coordinate 2 is z for cylinders and r for disks. Bin b of layer L is
    ``bin_offset[L] + iphi * n2[L] + i2``; its items are ``items[bin_start[b]:bin_start[b+1]]``.
    """

    n_phi: np.ndarray
    n2: np.ndarray
    lo2: np.ndarray
    hi2: np.ndarray
    bin_offset: np.ndarray
    bin_start: np.ndarray
    items: np.ndarray


@dataclass(frozen=True)
class Detector:
    """Structure of arrays of planar modules, their layers and a module lookup grid."""

    volume_id: np.ndarray
    layer_id: np.ndarray
    module_id: np.ndarray
    center_mm: np.ndarray  # (n, 3)
    rotation: np.ndarray  # (n, 3, 3), columns u, v, w
    thickness_mm: np.ndarray
    minhu_mm: np.ndarray
    maxhu_mm: np.ndarray
    hv_mm: np.ndarray
    pitch_u_mm: np.ndarray
    pitch_v_mm: np.ndarray
    layer_index: np.ndarray
    layers: Layers
    grid: LayerGrid
    sorted_keys: np.ndarray
    sorted_order: np.ndarray

    def __len__(self) -> int:
        return len(self.volume_id)

    def module_index(self, volume_id, layer_id, module_id) -> np.ndarray:
        """Module row for each (volume, layer, module) triple; -1 where unknown."""
        key = geometry_key(volume_id, layer_id, module_id)
        pos = np.searchsorted(self.sorted_keys, key)
        pos = np.clip(pos, 0, len(self.sorted_keys) - 1)
        found = self.sorted_keys[pos] == key
        return np.where(found, self.sorted_order[pos], -1).astype(np.int64)


def geometry_key(volume_id, layer_id, module_id) -> np.ndarray:
    """Pack (volume, layer, module) into one int64."""
    v = np.asarray(volume_id, dtype=np.int64)
    l_ = np.asarray(layer_id, dtype=np.int64)
    m = np.asarray(module_id, dtype=np.int64)
    return (v << 40) | (l_ << 24) | m


@dataclass(frozen=True)
class BarrelSpec:
    """One barrel volume: layer radii, half length, module size (u across, v along z), thickness,
    pitches and the radial stagger that makes neighbouring modules overlap (all in mm)."""

    volume_id: int
    radii_mm: tuple
    half_length_mm: float
    module_u_mm: float
    module_v_mm: float
    thickness_mm: float
    pitch_u_mm: float
    pitch_v_mm: float
    stagger_mm: float


@dataclass(frozen=True)
class EndcapSpec:
    """Two endcap volumes (-z, +z): disk |z| positions, rings (r_in, r_out) of trapezoid modules,
    nominal module width, thickness, pitches and the z stagger of neighbouring modules (mm)."""

    volume_ids: tuple  # (negative z, positive z)
    z_mm: tuple
    rings_mm: tuple  # ((r_in, r_out), ...)
    module_width_mm: float  # nominal tangential width at the outer edge
    thickness_mm: float
    pitch_u_mm: float
    pitch_v_mm: float
    stagger_mm: float


@dataclass(frozen=True)
class GenericDetectorConfig:
    """Layout of the TrackML-like generic detector (all lengths in mm)."""

    overlap_fraction: float = 0.02
    pixel_barrel: BarrelSpec = BarrelSpec(8, (32.0, 72.0, 116.0, 172.0), 491.0, 16.8, 72.0, 0.15,
                                          0.05, 0.05, 1.0)
    pixel_endcap: EndcapSpec = EndcapSpec((7, 9), (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0),
                                          ((30.0, 102.0), (98.0, 175.0)), 16.8, 0.15, 0.05, 0.05, 2.0)
    short_strip_barrel: BarrelSpec = BarrelSpec(13, (260.0, 360.0, 500.0, 660.0), 1080.0, 48.0, 108.0,
                                                0.25, 0.08, 1.2, 2.0)
    short_strip_endcap: EndcapSpec = EndcapSpec((12, 14), (1300.0, 1550.0, 1850.0, 2200.0, 2550.0, 2950.0),
                                                ((230.0, 340.0), (330.0, 450.0), (440.0, 560.0),
                                                 (550.0, 700.0)), 48.0, 0.25, 0.08, 1.2, 3.0)
    long_strip_barrel: BarrelSpec = BarrelSpec(17, (820.0, 1020.0), 1080.0, 96.0, 108.0, 0.35, 0.12,
                                               10.4, 3.0)
    long_strip_endcap: EndcapSpec = EndcapSpec((16, 18), (1300.0, 1600.0, 1900.0, 2250.0, 2600.0, 3000.0),
                                               ((720.0, 870.0), (860.0, 1020.0)), 96.0, 0.35, 0.12,
                                               10.4, 3.0)


def _barrel_modules(spec: BarrelSpec, overlap: float, rows: list) -> None:
    for il, radius in enumerate(spec.radii_mm):
        layer_id = 2 * (il + 1)
        n_phi = int(np.ceil(2 * np.pi * radius / (spec.module_u_mm * (1 - overlap))))
        n_phi += n_phi % 2
        n_z = int(np.ceil(2 * spec.half_length_mm / (spec.module_v_mm * (1 - overlap))))
        z_first = -spec.half_length_mm + spec.module_v_mm / 2
        z_step = (2 * spec.half_length_mm - spec.module_v_mm) / max(n_z - 1, 1)
        mid = 1
        for iz in range(n_z):
            zc = z_first + iz * z_step
            for ip in range(n_phi):
                phi = 2 * np.pi * ip / n_phi
                r = radius + (spec.stagger_mm if (ip + iz) % 2 else -spec.stagger_mm)
                u = np.array([-np.sin(phi), np.cos(phi), 0.0])
                v = np.array([0.0, 0.0, 1.0])
                w = np.cross(u, v)
                rows.append((spec.volume_id, layer_id, mid, r * np.cos(phi), r * np.sin(phi), zc,
                             np.column_stack([u, v, w]), spec.thickness_mm, spec.module_u_mm / 2,
                             spec.module_u_mm / 2, spec.module_v_mm / 2, spec.pitch_u_mm,
                             spec.pitch_v_mm))
                mid += 1


def _endcap_modules(spec: EndcapSpec, overlap: float, rows: list) -> None:
    for side, volume_id in ((-1, spec.volume_ids[0]), (1, spec.volume_ids[1])):
        zs = spec.z_mm if side > 0 else tuple(reversed(spec.z_mm))
        for il, zabs in enumerate(zs):
            layer_id = 2 * (il + 1)
            mid = 1
            for ir, (r_in, r_out) in enumerate(spec.rings_mm):
                n_phi = int(np.ceil(2 * np.pi * r_out / (spec.module_width_mm * (1 - overlap))))
                n_phi += n_phi % 2
                maxhu = np.pi * r_out / n_phi / (1 - overlap)
                minhu = np.pi * r_in / n_phi / (1 - overlap)
                hv = (r_out - r_in) / 2
                rc = (r_out + r_in) / 2
                for ip in range(n_phi):
                    phi = 2 * np.pi * (ip + 0.5 * (ir % 2)) / n_phi
                    dz = spec.stagger_mm * (1 if ip % 2 else -1) + 2 * spec.stagger_mm * (ir % 2)
                    u = np.array([-np.sin(phi), np.cos(phi), 0.0])
                    v = np.array([-np.cos(phi), -np.sin(phi), 0.0])  # points inward: narrow end at +hv
                    w = np.cross(u, v)
                    # outer edge (v = -hv) is the wide one (maxhu), inner edge narrow (minhu)
                    rows.append((volume_id, layer_id, mid, rc * np.cos(phi), rc * np.sin(phi),
                                 side * (zabs + dz), np.column_stack([u, v, w]), spec.thickness_mm,
                                 minhu, maxhu, hv, spec.pitch_u_mm, spec.pitch_v_mm))
                    mid += 1


def build_generic_detector(config: GenericDetectorConfig = GenericDetectorConfig()) -> Detector:
    """Build the TrackML-like generic detector (about 2e4 planar modules)."""
    rows: list = []
    ov = config.overlap_fraction
    _endcap_modules(config.pixel_endcap, ov, rows)
    _barrel_modules(config.pixel_barrel, ov, rows)
    _endcap_modules(config.short_strip_endcap, ov, rows)
    _barrel_modules(config.short_strip_barrel, ov, rows)
    _endcap_modules(config.long_strip_endcap, ov, rows)
    _barrel_modules(config.long_strip_barrel, ov, rows)
    cols = list(zip(*rows))
    return detector_from_arrays(
        volume_id=np.array(cols[0], dtype=np.int32), layer_id=np.array(cols[1], dtype=np.int32),
        module_id=np.array(cols[2], dtype=np.int32),
        center_mm=np.column_stack([cols[3], cols[4], cols[5]]).astype(np.float64),
        rotation=np.array(cols[6], dtype=np.float64), thickness_mm=np.array(cols[7]),
        minhu_mm=np.array(cols[8]), maxhu_mm=np.array(cols[9]), hv_mm=np.array(cols[10]),
        pitch_u_mm=np.array(cols[11]), pitch_v_mm=np.array(cols[12]))


def module_corners(center, rotation, minhu, maxhu, hv) -> np.ndarray:
    """Global positions of the four corners of every module, shape (n, 4, 3)."""
    u = rotation[:, :, 0]
    v = rotation[:, :, 1]
    corners = []
    for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        hu = np.where(sv < 0, maxhu, minhu)
        corners.append(center + (su * hu)[:, None] * u + (sv * hv)[:, None] * v)
    return np.stack(corners, axis=1)


def _group_layers(volume_id, layer_id):
    keys = geometry_key(volume_id, layer_id, 0)
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, inverse.astype(np.int32)


def layers_from_points(volume_id, layer_id, points_mm, normal_spread_extra_mm=None):
    """Derive layer surfaces from points grouped by (volume, layer).

    ``points_mm`` is (n, k, 3): k points per item (module corners, or a hit and itself).
    Returns (Layers, layer index per item). A group whose radial spread is smaller than its z
    spread is a cylinder, otherwise a disk.
    """
    uniq, inv = _group_layers(volume_id, layer_id)
    n_l = len(uniq)
    kind = np.zeros(n_l, np.int32)
    pos = np.zeros(n_l)
    lo = np.zeros(n_l)
    hi = np.zeros(n_l)
    delta = np.zeros(n_l)
    vol = np.zeros(n_l, np.int32)
    lay = np.zeros(n_l, np.int32)
    x0 = np.zeros(n_l)
    r = np.hypot(points_mm[..., 0], points_mm[..., 1])
    z = points_mm[..., 2]
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(n_l + 1))
    for li in range(n_l):
        sel = order[bounds[li]:bounds[li + 1]]
        rr = r[sel].ravel()
        zz = z[sel].ravel()
        vol[li] = volume_id[sel[0]]
        lay[li] = layer_id[sel[0]]
        x0[li] = material_x_over_x0(int(vol[li]))
        extra = 0.0 if normal_spread_extra_mm is None else float(np.max(normal_spread_extra_mm[sel]))
        if np.ptp(rr) < np.ptp(zz):
            kind[li] = KIND_CYLINDER
            pos[li] = 0.5 * (rr.min() + rr.max())
            lo[li], hi[li] = zz.min(), zz.max()
            delta[li] = 0.5 * np.ptp(rr) + extra
        else:
            kind[li] = KIND_DISK
            pos[li] = 0.5 * (zz.min() + zz.max())
            lo[li], hi[li] = rr.min(), rr.max()
            delta[li] = 0.5 * np.ptp(zz) + extra
    layers = Layers(vol, lay, kind, pos, lo, hi, delta, x0)
    return layers, inv


def build_layer_grid(layers: Layers, item_layer, phi_lo, phi_hi, c2_lo, c2_hi, n_phi, n2) -> LayerGrid:
    """Register items (with bounding boxes in phi and coordinate 2) in per-layer bins.

    ``n_phi`` and ``n2`` are per-layer bin counts. Items whose phi range wraps (phi_lo > phi_hi)
    are registered on both sides of +-pi.
    """
    n_l = len(layers)
    n_phi = np.asarray(n_phi, np.int64)
    n2 = np.asarray(n2, np.int64)
    lo2 = layers.lo_mm.copy() - 1e-6
    hi2 = layers.hi_mm.copy() + 1e-6
    bin_offset = np.zeros(n_l + 1, np.int64)
    bin_offset[1:] = np.cumsum(n_phi * n2)
    L = np.asarray(item_layer, np.int64)
    tw = 2 * np.pi / n_phi[L]
    ip0 = np.floor((phi_lo + np.pi) / tw).astype(np.int64)
    ip1 = np.floor((phi_hi + np.pi) / tw).astype(np.int64)
    ip1 = np.where(ip1 < ip0, ip1 + n_phi[L], ip1)  # wrapped range
    w2 = (hi2[L] - lo2[L]) / n2[L]
    i20 = np.clip(np.floor((c2_lo - lo2[L]) / w2).astype(np.int64), 0, n2[L] - 1)
    i21 = np.clip(np.floor((c2_hi - lo2[L]) / w2).astype(np.int64), 0, n2[L] - 1)
    cnt_phi = ip1 - ip0 + 1
    cnt2 = i21 - i20 + 1
    total = cnt_phi * cnt2
    item_rep = np.repeat(np.arange(len(L)), total)
    k = np.arange(total.sum()) - np.repeat(np.cumsum(total) - total, total)
    ip = ip0[item_rep] + k // cnt2[item_rep]
    i2 = i20[item_rep] + k % cnt2[item_rep]
    Lr = L[item_rep]
    ip = np.mod(ip, n_phi[Lr])
    b = bin_offset[Lr] + ip * n2[Lr] + i2
    order = np.lexsort((item_rep, b))
    b = b[order]
    items = item_rep[order].astype(np.int32)
    bin_start = np.searchsorted(b, np.arange(bin_offset[-1] + 1)).astype(np.int64)
    return LayerGrid(n_phi, n2, lo2, hi2, bin_offset, bin_start, items)


def detector_from_arrays(volume_id, layer_id, module_id, center_mm, rotation, thickness_mm, minhu_mm,
                         maxhu_mm, hv_mm, pitch_u_mm, pitch_v_mm) -> Detector:
    """Assemble a :class:`Detector` (layers and module grid derived from the modules)."""
    n = len(volume_id)
    if n == 0:
        raise TrackingInputError("The detector description contains no modules.")
    arrays = [center_mm, rotation, thickness_mm, minhu_mm, maxhu_mm, hv_mm, pitch_u_mm, pitch_v_mm]
    if any(not np.all(np.isfinite(a)) for a in arrays):
        raise TrackingInputError("The detector description contains non-finite numbers.")
    if np.any(hv_mm <= 0) or np.any(maxhu_mm <= 0) or np.any(pitch_u_mm <= 0) or np.any(pitch_v_mm <= 0):
        raise TrackingInputError("The detector description has modules with non-positive size or pitch.")
    keys = geometry_key(volume_id, layer_id, module_id)
    order = np.argsort(keys, kind="stable")
    if np.any(np.diff(keys[order]) == 0):
        raise TrackingInputError("The detector description lists the same (volume, layer, module) twice.")
    corners = module_corners(center_mm, rotation, minhu_mm, maxhu_mm, hv_mm)
    pts = np.concatenate([corners, center_mm[:, None, :]], axis=1)
    layers, layer_index = layers_from_points(volume_id, layer_id, pts, 0.5 * thickness_mm)
    # module grid: bounding box in phi (from corners) and coordinate 2
    phis = np.arctan2(pts[..., 1], pts[..., 0])
    phi_c = np.arctan2(center_mm[:, 1], center_mm[:, 0])
    dphi = np.angle(np.exp(1j * (phis - phi_c[:, None])))
    margin = 1e-3
    phi_lo = np.angle(np.exp(1j * (phi_c + dphi.min(axis=1) - margin)))
    phi_hi = np.angle(np.exp(1j * (phi_c + dphi.max(axis=1) + margin)))
    r = np.hypot(pts[..., 0], pts[..., 1])
    is_cyl = layers.kind[layer_index] == KIND_CYLINDER
    c2 = np.where(is_cyl[:, None], pts[..., 2], r)
    c2_lo = c2.min(axis=1) - 1.0
    c2_hi = c2.max(axis=1) + 1.0
    counts = np.bincount(layer_index, minlength=len(layers))
    n_phi = np.clip((np.sqrt(counts) * 2).astype(np.int64), 4, 256)
    n2 = np.clip((np.sqrt(counts) / 2).astype(np.int64), 1, 64)
    grid = build_layer_grid(layers, layer_index, phi_lo, phi_hi, c2_lo, c2_hi, n_phi, n2)
    return Detector(np.asarray(volume_id, np.int32), np.asarray(layer_id, np.int32),
                    np.asarray(module_id, np.int32), np.ascontiguousarray(center_mm, np.float64),
                    np.ascontiguousarray(rotation, np.float64), np.asarray(thickness_mm, np.float64),
                    np.asarray(minhu_mm, np.float64), np.asarray(maxhu_mm, np.float64),
                    np.asarray(hv_mm, np.float64), np.asarray(pitch_u_mm, np.float64),
                    np.asarray(pitch_v_mm, np.float64), layer_index, layers, grid, keys[order],
                    order.astype(np.int64))


def cell_local_position(ch0, ch1, minhu, maxhu, hv, pitch_u, pitch_v):
    """Local (u, v) of cell centres (vectorised; TrackML convention)."""
    v = (ch1 + 0.5) * pitch_v - hv
    hu = (minhu * (hv + v) + maxhu * (hv - v)) / (2 * hv)
    u = (ch0 + 0.5) * pitch_u - hu
    return u, v
