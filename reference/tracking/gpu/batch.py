"""Batches of events for the GPU chain: the products of several events one after the other in one
set of arrays, and back.

A batch puts the measurements of its events one after the other (:func:`stack_measurements`),
with an event column that the batched seeding (``find_seeds(..., events=...)``) and CKF
(``find_tracks(..., events=...)``) use to keep the events apart. Indices into the batch (a
seed's spacepoints, a track's measurements and seed) are turned back into indices into each
event by :func:`split_products` on the host.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from reference.tracking.ckf import Tracks
from reference.tracking.estimation import TrackParameters
from reference.tracking.gpu import backend
from reference.tracking.seeding import Seeds
from reference.tracking.spacepoints import Measurements, Spacepoints


def stack_measurements(parts: Sequence[Measurements]) -> tuple[Measurements, np.ndarray]:
    """The measurements of several events (xp arrays, one layer table) one after the other, and
    the host array of their counts. Each event's ``hit_measurement`` (per hit of the event, -1
    for none) is offset to index the batch. One event's measurements are returned as they are."""
    xp = backend.xp()
    counts = np.array([len(p) for p in parts], np.int64)
    if len(parts) == 1:
        return parts[0], counts
    starts = _starts(counts)
    fields = {}
    for f in dataclasses.fields(Measurements):
        if f.name in ("layers", "hit_measurement"):
            continue
        fields[f.name] = xp.concatenate([xp.asarray(getattr(p, f.name)) for p in parts])
    hit_meas = [xp.asarray(p.hit_measurement) for p in parts]
    fields["hit_measurement"] = xp.concatenate([xp.where(h >= 0, h + int(s), -1) for h, s in zip(hit_meas, starts)])
    return Measurements(**fields, layers=parts[0].layers), counts


def event_column(counts: np.ndarray):
    """The event of every item of a batch, from the host counts of items per event (xp int64)."""
    xp = backend.xp()
    return xp.repeat(xp.arange(len(counts), dtype=xp.int64), xp.asarray(counts))


def _starts(counts) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts)))


def _rows(event: np.ndarray, n_events: int) -> np.ndarray:
    """Row bounds of every event among rows sorted by event."""
    return np.searchsorted(event, np.arange(n_events + 1))


def _track_rows(tracks: Tracks, rows: tuple, first_meas: int, first_seed: int) -> Tracks:
    """Tracks rows[0] .. rows[1] - 1 with measurement and seed indices shifted to their event."""
    a, b = rows
    offsets = tracks.offsets[a:b + 1]
    return Tracks(offsets - offsets[0], tracks.meas[offsets[0]:offsets[-1]] - first_meas, tracks.chi2[a:b],
                  tracks.n_holes[a:b], tracks.params[a:b], tracks.seed[a:b] - first_seed, dict(tracks.stats))


def _first_rows(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """For rows sorted by event, where row i's event is the interval of ``bounds`` that holds
    ``values[i]`` (``values`` need not be sorted within an event): the first row of every event,
    by binary search (the events' rows are contiguous, so ``values[i] >= bound`` flips once)."""
    out = np.empty(len(bounds), np.int64)
    for k, bound in enumerate(bounds):
        lo, hi = 0, len(values)
        while lo < hi:
            mid = (lo + hi) // 2
            if values[mid] < bound:
                lo = mid + 1
            else:
                hi = mid
        out[k] = lo
    return out


@dataclasses.dataclass(frozen=True)
class BatchProducts:
    """Host products of a batch: measurements (with their counts per event), spacepoints, seeds,
    parameters, seed_valid and tracks_all, all indexed into the batch."""

    measurements: Measurements
    counts: np.ndarray
    spacepoints: Spacepoints
    seeds: Seeds
    parameters: TrackParameters
    seed_valid: np.ndarray
    tracks_all: Tracks


def _event_measurements(host: BatchProducts, k: int, meas_start: np.ndarray, hit_rows: tuple) -> Measurements:
    lo, hi = meas_start[k], meas_start[k + 1]
    fields = {f.name: getattr(host.measurements, f.name)[lo:hi] for f in dataclasses.fields(Measurements)
              if f.name not in ("layers", "hit_measurement")}
    hm = host.measurements.hit_measurement[hit_rows[k]:hit_rows[k + 1]] - lo
    np.maximum(hm, -1, out=hm)  # -1 (no measurement) became -1 - lo
    return Measurements(**fields, hit_measurement=hm, layers=host.measurements.layers)


def split_products(host: BatchProducts, hit_counts: Sequence[int]) -> list[dict]:
    """Per event, its products with indices into the event: measurements, spacepoints, seeds,
    parameters, seed_valid and tracks_all (``hit_counts``: hits per event, the length of every
    event's ``hit_measurement``)."""
    n_events = len(host.counts)
    meas_start = _starts(host.counts)
    hit_start = _starts(np.asarray(hit_counts, np.int64))
    sp = host.spacepoints
    if np.all(sp.measurement[1:] >= sp.measurement[:-1]):  # one per measurement, in order (the GPU's)
        sp_rows = np.searchsorted(sp.measurement, meas_start)
    else:
        sp_rows = _rows(np.searchsorted(meas_start, sp.measurement, side="right") - 1, n_events)
    seed_rows = _first_rows(host.seeds.middle, sp_rows)
    valid_rows = _starts([np.count_nonzero(host.seed_valid[a:b]) for a, b in zip(seed_rows[:-1], seed_rows[1:])])
    tracks = host.tracks_all
    track_event = np.searchsorted(valid_rows, tracks.seed, side="right") - 1
    if np.any(np.diff(track_event) < 0):  # the CKF interleaves the events: each event's tracks, in its order
        by_event = np.argsort(track_event, kind="stable")
        tracks, track_event = tracks.subset(by_event), track_event[by_event]
    track_rows = _rows(track_event, n_events)
    out = []
    for k in range(n_events):
        m0, s0 = meas_start[k], sp_rows[k]
        a, b = seed_rows[k], seed_rows[k + 1]
        seeds = Seeds(*(getattr(host.seeds, name)[a:b] - (s0 if name in ("bottom", "middle", "top") else 0)
                        for name in ("bottom", "middle", "top", "weight", "z_vertex")), dict(host.seeds.stats))
        spacepoints = Spacepoints(*(getattr(sp, f.name)[s0:sp_rows[k + 1]] for f in dataclasses.fields(Spacepoints)))
        spacepoints = dataclasses.replace(spacepoints, measurement=spacepoints.measurement - m0)
        v0, v1 = valid_rows[k], valid_rows[k + 1]
        p = host.parameters
        parameters = TrackParameters(p.params[v0:v1], p.cov[v0:v1], p.surface[v0:v1] - m0)
        t = _track_rows(tracks, (track_rows[k], track_rows[k + 1]), m0, v0)
        out.append({"measurements": _event_measurements(host, k, meas_start, hit_start), "spacepoints": spacepoints,
                    "seeds": seeds, "parameters": parameters, "seed_valid": host.seed_valid[a:b], "tracks_all": t})
    return out
