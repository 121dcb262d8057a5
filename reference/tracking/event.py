"""Event data model: TrackML tables as structures of numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np


def _n(obj) -> int:
    return len(getattr(obj, fields(obj)[0].name))


@dataclass(frozen=True)
class Hits:
    """TrackML hits: one row per measured hit; x, y, z in mm."""

    hit_id: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    volume_id: np.ndarray
    layer_id: np.ndarray
    module_id: np.ndarray

    def __len__(self) -> int:
        return _n(self)


@dataclass(frozen=True)
class Cells:
    """TrackML cells: pixel/strip channels (ch0, ch1) with deposited charge, per hit."""

    hit_id: np.ndarray
    ch0: np.ndarray
    ch1: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return _n(self)


@dataclass(frozen=True)
class Particles:
    """TrackML particles: production vertex (mm), momentum (GeV), charge, number of hits."""

    particle_id: np.ndarray
    particle_type: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    q: np.ndarray
    nhits: np.ndarray

    def __len__(self) -> int:
        return _n(self)


@dataclass(frozen=True)
class Truth:
    """TrackML truth: per hit the particle (0 = noise), true position, momentum and weight."""

    hit_id: np.ndarray
    particle_id: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    tz: np.ndarray
    tpx: np.ndarray
    tpy: np.ndarray
    tpz: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return _n(self)


@dataclass(frozen=True)
class Event:
    """One event; cells, particles and truth are optional (None when absent)."""

    hits: Hits
    cells: Cells | None = None
    particles: Particles | None = None
    truth: Truth | None = None
    info: dict = field(default_factory=dict)


def trackml_weights(truth_particle_id, truth_tz, particle_id, particle_vz, particle_pt, particle_nhits):
    """TrackML phase-1 hit weights (order along the track x pT weight, normalised to 1).

    Follows the published TrackML metric: pT weight 0.2 below 0.5 GeV rising linearly to 1 at
    3 GeV; order weights from the proposal (10, 8, 6, 5, 3, 3, 3, 5, 6) stretched to the number
    of hits; particles with fewer than 4 hits and noise hits get weight 0.
    """
    proposal = np.array([10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0])
    max_hits = 20
    order_matrix = np.zeros((max_hits + 1, max_hits))
    for nh in range(4, max_hits + 1):
        supports = np.arange(len(proposal)) * (nh - 1) / (len(proposal) - 1)
        w = np.interp(np.arange(nh), supports, proposal)
        order_matrix[nh, :nh] = w / w.sum()
    n = len(truth_particle_id)
    weight = np.zeros(n)
    if n == 0:
        return weight
    sorter = np.argsort(particle_id)
    pos = np.clip(np.searchsorted(particle_id[sorter], truth_particle_id), 0, max(len(particle_id) - 1, 0))
    if len(particle_id) == 0:
        return weight
    pidx = sorter[pos]
    valid = (truth_particle_id != 0) & (particle_id[pidx] == truth_particle_id)
    pt = particle_pt[pidx]
    w_pt = np.interp(pt, [0.05, 0.5, 3.0], [0.2, 0.2, 1.0], left=0.0, right=1.0)
    nh = np.minimum(particle_nhits[pidx], max_hits)
    dvz = np.abs(truth_tz - particle_vz[pidx])
    order = np.lexsort((dvz, truth_particle_id))
    sorted_pid = truth_particle_id[order]
    first = np.searchsorted(sorted_pid, sorted_pid, side="left")
    ihit = np.empty(n, np.int64)
    ihit[order] = np.arange(n) - first
    ok = valid & (particle_nhits[pidx] >= 4) & (ihit < max_hits)
    w_order = np.zeros(n)
    w_order[ok] = order_matrix[nh[ok], np.minimum(ihit[ok], nh[ok] - 1)]
    weight = np.where(ok, w_order * w_pt, 0.0)
    total = weight.sum()
    return weight / total if total > 0 else weight
