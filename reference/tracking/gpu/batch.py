"""Batches of events for the GPU chain: the products of several events one after the other in one
set of arrays, and back.

A batch's hits and cells go to the device in one block (:func:`batch_to_device`), which the
batched clusterization reads; its measurements come one event after the other (or are stacked
from each event's, :func:`stack_measurements`), with an event column that the batched seeding
(``find_seeds(..., events=...)``) and CKF (``find_tracks(..., events=...)``) use to keep the
events apart. Indices into the batch (a seed's spacepoints, a track's measurements and seed)
are turned into indices into each event on the device (:func:`localize`), and after the copy
back :func:`split_products` hands every event views of its rows.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from reference.tracking.ckf import Tracks
from reference.tracking.errors import TrackingInputError
from reference.tracking.estimation import TrackParameters
from reference.tracking.event import Event
from reference.tracking.gpu import backend
from reference.tracking.seeding import Seeds
from reference.tracking.spacepoints import Measurements, Spacepoints


HIT_COLUMNS = ("hit_id", "volume_id", "layer_id", "module_id")  #: integer hit columns of the batched clusterization
CELL_COLUMNS = ("hit_id", "ch0", "ch1")  #: integer cell columns


@dataclasses.dataclass(frozen=True)
class DeviceBatch:
    """The hit and cell columns of a batch of events on the device, as the batched clusterization
    (:func:`~reference.tracking.gpu.clusterization.clusterization_batch_gpu`) reads them.

    block (xp int64): every :data:`HIT_COLUMNS` column of all events' hits (one event after the
    other), then every :data:`CELL_COLUMNS` column of their cells, then ``hit_starts`` and
    ``cell_starts``; values: the cells' charges; hit_starts / cell_starts (host): the first hit
    and the first cell of every event, and the totals; sources: the host arrays that
    asynchronous copies read (kept alive with the batch)."""

    block: object
    values: object
    hit_starts: np.ndarray
    cell_starts: np.ndarray
    sources: tuple


def _event_columns(event: Event, k: int) -> tuple[list, list]:
    """The hit columns and cell columns (with the charges) of event k of a batch, checked."""
    if event.cells is None or len(event.hits) == 0 or len(event.cells) == 0:
        raise TrackingInputError(f"Event {k} of the batch has no hits or no cells; run it on its own.")
    hits = [getattr(event.hits, name) for name in HIT_COLUMNS]
    cells = [getattr(event.cells, name) for name in CELL_COLUMNS] + [event.cells.value]
    for name, columns in (("hit", hits), ("cell", cells)):
        shape = (len(columns[0]),)
        if any(getattr(c, "shape", None) != shape or getattr(c, "dtype", np.dtype(object)).kind not in "iuf"
               for c in columns):
            raise TrackingInputError(f"The {name} columns of event {k} of the batch must be 1-D numeric arrays of "
                                     "one length.")
    return hits, cells


def batch_to_device(events: Sequence[Event]) -> DeviceBatch:
    """The hit and cell columns of ``events`` in one device block (:class:`DeviceBatch`): one
    asynchronous copy per column and event, straight from host memory (page-locked memory, as
    the throughput benchmark loads events, is copied by DMA), integer columns of another dtype
    cast on the device once per column."""
    xp = backend.xp()
    columns = [_event_columns(event, k) for k, event in enumerate(events)]
    hit_starts = _starts([len(hits[0]) for hits, _ in columns])
    cell_starts = _starts([len(cells[0]) for _, cells in columns])
    nh, nc = int(hit_starts[-1]), int(cell_starts[-1])
    bounds = np.concatenate([hit_starts, cell_starts]).astype(np.int64)
    block = xp.empty(4 * nh + 3 * nc + len(bounds), np.int64)
    for k in range(len(HIT_COLUMNS)):
        backend.gather(block[k * nh:(k + 1) * nh], [hits[k] for hits, _ in columns])
    for k in range(len(CELL_COLUMNS)):
        backend.gather(block[4 * nh + k * nc:4 * nh + (k + 1) * nc], [cells[k] for _, cells in columns])
    backend.gather(block[4 * nh + 3 * nc:], [bounds])
    values = [cells[-1] for _, cells in columns]
    charges = xp.empty(nc, np.result_type(*values))
    backend.gather(charges, values)
    return DeviceBatch(block, charges, hit_starts, cell_starts, (columns, bounds))


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


def _rows(event, n_events: int):
    """Row bounds of every event among rows sorted by event (numpy or xp)."""
    xp = _array_module(event)
    return xp.searchsorted(event, xp.arange(n_events + 1))


def _array_module(array):
    return np if isinstance(array, np.ndarray) else backend.xp()


def _local(index, starts) -> tuple:
    """(event, index within the event) of batch indices ``index`` into items whose events start
    at ``starts`` (numpy or xp; -1 stays below 0)."""
    xp = _array_module(index)
    event = xp.searchsorted(starts, index, side="right") - 1
    return event, index - starts[event]


@dataclasses.dataclass(frozen=True)
class BatchProducts:
    """Products of a batch: measurements (with their counts per event, host), spacepoints, seeds,
    parameters, seed_valid and tracks_all. Made by the chain with indices into the batch;
    :func:`localize` turns them into indices into each event and fills ``rows`` (first spacepoint,
    seed and parameter row of every event, and the totals: 3 x (events + 1)) and
    ``track_event`` (the event of every track), which :func:`split_products` reads."""

    measurements: Measurements
    counts: np.ndarray
    spacepoints: Spacepoints
    seeds: Seeds
    parameters: TrackParameters
    seed_valid: np.ndarray
    tracks_all: Tracks
    rows: object = None
    track_event: object = None


def localize(batch: BatchProducts) -> BatchProducts:
    """The batch's products with every index into the batch turned into an index into its event,
    where they are (on the device: a few array operations for the whole batch instead of copies of
    every event's arrays on the host). Spacepoints, seeds and parameters come grouped by event
    (spacepoints in any order within an event); tracks in any order."""
    xp = _array_module(batch.seed_valid)
    n_events = len(batch.counts)
    meas_start = xp.asarray(_starts(batch.counts))
    sp, seeds, tracks = batch.spacepoints, batch.seeds, batch.tracks_all
    sp_event, sp_measurement = _local(sp.measurement, meas_start)
    sp_start = _rows(sp_event, n_events)
    seed_event = sp_event[seeds.middle]
    seeds = dataclasses.replace(seeds, **{name: getattr(seeds, name) - sp_start[seed_event]
                                          for name in ("bottom", "middle", "top")})
    param_event, surface = _local(batch.parameters.surface, meas_start)
    param_start = _rows(param_event, n_events)
    track_event = param_event[tracks.seed]
    tracks = Tracks(tracks.offsets, _local(tracks.meas, meas_start)[1], tracks.chi2, tracks.n_holes, tracks.params,
                    tracks.seed - param_start[track_event], tracks.stats)
    meas = batch.measurements
    hit_measurement = xp.maximum(_local(meas.hit_measurement, meas_start)[1], -1)  # -1: no measurement
    return BatchProducts(dataclasses.replace(meas, hit_measurement=hit_measurement), batch.counts,
                         dataclasses.replace(sp, measurement=sp_measurement), seeds,
                         dataclasses.replace(batch.parameters, surface=surface), batch.seed_valid, tracks,
                         xp.stack([sp_start, _rows(seed_event, n_events), param_start]), track_event)


def _starts(counts) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)


def _track_rows(tracks: Tracks, rows: tuple) -> Tracks:
    """Tracks rows[0] .. rows[1] - 1 (views, offsets from 0)."""
    a, b = rows
    offsets = tracks.offsets[a:b + 1]
    return Tracks(offsets - offsets[0], tracks.meas[offsets[0]:offsets[-1]], tracks.chi2[a:b], tracks.n_holes[a:b],
                  tracks.params[a:b], tracks.seed[a:b], dict(tracks.stats))


def _event_measurements(meas: Measurements, k: int, meas_start: np.ndarray, hit_start: np.ndarray) -> Measurements:
    lo, hi = meas_start[k], meas_start[k + 1]
    fields = {f.name: getattr(meas, f.name)[lo:hi] for f in dataclasses.fields(Measurements)
              if f.name not in ("layers", "hit_measurement")}
    return Measurements(**fields, hit_measurement=meas.hit_measurement[hit_start[k]:hit_start[k + 1]],
                        layers=meas.layers)


def split_products(host: BatchProducts, hit_counts: Sequence[int]) -> list[dict]:
    """Per event, its products from the :func:`localize`-d host products of a batch (views of
    them): measurements, spacepoints, seeds, parameters, seed_valid and tracks_all
    (``hit_counts``: hits per event, the length of every event's ``hit_measurement``)."""
    n_events = len(host.counts)
    meas_start = _starts(host.counts)
    hit_start = _starts(np.asarray(hit_counts, np.int64))
    sp_rows, seed_rows, param_rows = np.asarray(host.rows)
    tracks, track_event = host.tracks_all, np.asarray(host.track_event)
    if np.any(track_event[1:] < track_event[:-1]):  # each event's tracks together, in their order
        by_event = np.argsort(track_event, kind="stable")
        tracks, track_event = tracks.subset(by_event), track_event[by_event]
    track_rows = _rows(track_event, n_events)
    sp, p = host.spacepoints, host.parameters
    out = []
    for k in range(n_events):
        a, b = seed_rows[k], seed_rows[k + 1]
        v0, v1 = param_rows[k], param_rows[k + 1]
        out.append({
            "measurements": _event_measurements(host.measurements, k, meas_start, hit_start),
            "spacepoints": Spacepoints(*(getattr(sp, f.name)[sp_rows[k]:sp_rows[k + 1]]
                                         for f in dataclasses.fields(Spacepoints))),
            "seeds": Seeds(*(getattr(host.seeds, name)[a:b] for name in ("bottom", "middle", "top", "weight",
                                                                          "z_vertex")), dict(host.seeds.stats)),
            "parameters": TrackParameters(p.params[v0:v1], p.cov[v0:v1], p.surface[v0:v1]),
            "seed_valid": host.seed_valid[a:b], "tracks_all": _track_rows(tracks, (track_rows[k], track_rows[k + 1]))})
    return out
