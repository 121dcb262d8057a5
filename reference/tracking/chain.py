"""The whole CPU chain for one event: cells or hits -> measurements -> seeds -> tracks.

``reconstruct_event`` runs clusterization (when cells and a detector are available, otherwise
hits are used as spacepoints), spacepoint formation, seeding, parameter estimation, the CKF and
the ambiguity resolution, and times each stage with ``time.perf_counter``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from reference.tracking.ambiguity import AmbiguityConfig, resolve_ambiguities
from reference.tracking.ckf import CkfConfig, Tracks, find_tracks, measurement_grid
from reference.tracking.clusterization import clusterize
from reference.tracking.errors import TrackingInputError
from reference.tracking.estimation import EstimationConfig, TrackParameters, estimate_track_parameters
from reference.tracking.event import Event
from reference.tracking.extension import ExtensionConfig, extend_tracks_inward
from reference.tracking.geometry import Detector, LayerGrid
from reference.tracking.overlaps import OverlapConfig, add_overlap_measurements
from reference.tracking.seeding import Seeds, SeedingConfig, find_seeds
from reference.tracking.spacepoints import (Measurements, Spacepoints, form_spacepoints, measurements_from_clusters,
                                            measurements_from_hits)


@dataclass(frozen=True)
class LowPtIteration:
    """Second iteration for low-pT particles on the measurements left unused by the first one:
    seeding with a lower minimum pT (150 MeV), a shorter minimum radial distance between the
    seed's spacepoints (5 mm: consecutive pixel disks of steep tracks, which the first pass's
    20 mm cut leaves unseeded) and up to 6 seeds per middle spacepoint; a CKF that searches only
    the measurements no earlier track holds (``free_measurements_only``, the hit masking of
    iterative tracking) and keeps shorter tracks; then ambiguity resolution over the final
    tracks of the first iteration and the new ones (longer tracks rank first).

    The skip rule of this CKF skips a seed with one measurement on a track of at least 8
    measurements found before it, and ignores shorter tracks: seeds go by seed weight, not by
    track quality, so short fakes found first made the seeds of real particles skip. On
    pile-up 200 the 5 mm cut raised the TrackML score by 0.07, 3 seeds per middle (instead of
    2) by 0.01 and 6 (instead of 3) by 0.002-0.003; the skip rule on long tracks only (with the
    leftover iteration's) by 0.03. A lower minimum pT (100, 120 or 70 MeV) or seeds without a
    compatible seed (``seed_min_weight``) lowered it (RESULTS.md)."""

    seeding: SeedingConfig = SeedingConfig(min_pt_gev=0.15, max_seeds_per_middle=6, delta_r_min_mm=5.0)
    ckf: CkfConfig = CkfConfig(min_measurements=5, min_p_gev=0.05, chi2_max=15.0, skip_seed_min_used=1,
                               skip_min_track_measurements=8)
    ambiguity: AmbiguityConfig = AmbiguityConfig(min_measurements=5)
    free_measurements_only: bool = True


@dataclass(frozen=True)
class LeftoverIteration:
    """Last iteration, on the spacepoints that no track holds after the earlier ones: seeds down
    to 70 MeV (short tracks that stay inside the pixel detector), up to 5 per middle spacepoint,
    also those without a compatible seed (``seed_min_weight`` 150: a particle crossing only
    three pixel layers, as in the barrel-endcap transition at |eta| 1.5-2, has no fourth
    spacepoint to confirm its seed); a CKF on the free measurements only, with the low-pT
    iteration's skip rule, keeping tracks of at least 5 measurements under a chi2 cut of 10.
    Its tracks never take a measurement from an earlier track: they are resolved among
    themselves and kept when at least ``ambiguity.min_measurements`` remain. Tracks of 4
    measurements gave 8 % fakes (RESULTS.md)."""

    seeding: SeedingConfig = SeedingConfig(min_pt_gev=0.07, max_seeds_per_middle=5, delta_r_min_mm=5.0,
                                           seed_min_weight=150.0)
    ckf: CkfConfig = CkfConfig(min_measurements=5, min_p_gev=0.03, chi2_max=10.0, skip_seed_min_used=1,
                               skip_min_track_measurements=8)
    ambiguity: AmbiguityConfig = AmbiguityConfig(min_measurements=5)
    free_measurements_only: bool = True


@dataclass(frozen=True)
class ChainConfig:
    """Configuration of the whole chain.

    ``low_pt`` adds a second, low-pT iteration, ``extension`` extends the tracks inwards
    (:mod:`reference.tracking.extension`), ``leftover`` adds a last iteration on the spacepoints
    left unused and ``overlaps`` adds, as the last step, second measurements on overlapping
    modules of the same layer (:mod:`reference.tracking.overlaps`). All four are off in this
    single-pass configuration, which the GPU chain reproduces stage
    by stage; :data:`CPU_CHAIN` (the CPU default of ``hepaudit reconstruct``) turns them on.
    """

    seeding: SeedingConfig = SeedingConfig()
    estimation: EstimationConfig = EstimationConfig()
    ckf: CkfConfig = CkfConfig()
    ambiguity: AmbiguityConfig = AmbiguityConfig()
    low_pt: LowPtIteration | None = None
    extension: ExtensionConfig | None = None
    overlaps: OverlapConfig | None = None
    leftover: LeftoverIteration | None = None


CPU_CHAIN = ChainConfig(ckf=CkfConfig(skip_seed_min_used=1, skip_min_track_measurements=10), low_pt=LowPtIteration(),
                        extension=ExtensionConfig(), overlaps=OverlapConfig(), leftover=LeftoverIteration())
"""Default CPU chain: the three iterations, the inward extension and the overlap pick-up. Its first
pass skips a seed with one measurement on a track of at least 10 measurements found before it
(the single pass: two, on any track). TrackML score 0.86 instead of 0.41 at pile-up 200, about
1.75 s instead of 0.58 s per event on one core (RESULTS.md)."""


class _Clock:
    """Wall (perf_counter) and CPU (process_time) time of consecutive stages."""

    def __init__(self, wall: dict, cpu: dict):
        self.wall = wall
        self.cpu = cpu
        self.reset()

    def reset(self) -> None:
        self.t_wall = time.perf_counter()
        self.t_cpu = time.process_time()

    def stop(self, name: str) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + time.perf_counter() - self.t_wall
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - self.t_cpu
        self.reset()


@dataclass
class ChainResult:
    measurements: Measurements
    spacepoints: Spacepoints
    seeds: Seeds
    parameters: TrackParameters
    seed_valid: np.ndarray
    tracks_all: Tracks
    tracks: Tracks
    timings_s: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    used_cells: bool = False
    cpu_timings_s: dict = field(default_factory=dict)


def _measurements_from_event(event: Event, detector: Detector | None, info: dict, clock: _Clock) -> tuple:
    """Clusterize cells (if cells and detector) or take hits as measurements."""
    hits = event.hits
    if len(hits) == 0:
        raise TrackingInputError("The event has no hits.")
    clock.reset()
    if event.cells is not None and detector is not None and len(event.cells):
        cells = event.cells
        n_hits = len(hits)
        if hits.hit_id[0] == 1 and hits.hit_id[-1] == n_hits and np.all(np.diff(hits.hit_id) == 1):
            row = np.clip(cells.hit_id - 1, 0, n_hits - 1)  # TrackML's usual 1..N hit ids
        else:
            hit_sorter = np.argsort(hits.hit_id)
            row = hit_sorter[np.clip(np.searchsorted(hits.hit_id[hit_sorter], cells.hit_id), 0, n_hits - 1)]
        known_hit = hits.hit_id[row] == cells.hit_id
        hit_module = detector.module_index(hits.volume_id, hits.layer_id, hits.module_id)
        cell_module = np.where(known_hit, hit_module[row], -1)
        ok = cell_module >= 0
        # channel range check (cells outside their module), channel counts per module
        nv_mod = np.ceil(2 * detector.hv_mm / detector.pitch_v_mm - 1e-6).astype(np.int64)
        nu_mod = np.ceil(2 * np.maximum(detector.maxhu_mm, detector.minhu_mm) / detector.pitch_u_mm - 1e-6).astype(np.int64)
        m = np.where(ok, cell_module, 0)
        inside = (cells.ch0 >= 0) & (cells.ch1 >= 0) & (cells.ch0 < nu_mod[m]) & (cells.ch1 < nv_mod[m])
        info["cells_skipped_unknown_module"] = int((~ok).sum())
        info["cells_skipped_out_of_module"] = int((ok & ~inside).sum())
        ok &= inside
        if not ok.any():
            raise TrackingInputError("No cell of the event lies on a module of the detector description.")
        if ok.all():
            clusters = clusterize(cell_module, cells.ch0, cells.ch1, cells.value, detector)
            meas = measurements_from_clusters(clusters, detector, row, len(hits), hits.hit_id)
        else:
            sel = np.nonzero(ok)[0]
            clusters = clusterize(cell_module[sel], cells.ch0[sel], cells.ch1[sel], cells.value[sel], detector)
            meas = measurements_from_clusters(clusters, detector, row[sel], len(hits), hits.hit_id)
        clock.stop("clusterization")
        return meas, True
    meas, skipped = measurements_from_hits(hits, detector)
    info["hits_skipped_unknown_module"] = skipped
    clock.stop("clusterization")
    if len(meas) == 0:
        raise TrackingInputError("No hit of the event lies on a module of the detector description.")
    return meas, False


def reconstruct_event(event: Event, detector: Detector | None = None, config: ChainConfig = ChainConfig()) -> ChainResult:
    """Run the full chain on one event and return every intermediate product and timings.

    ``timings_s`` holds the wall time (perf_counter) of each stage, ``cpu_timings_s`` the CPU
    time of this process (process_time), which is less sensitive to other load on the machine.
    The clusterization time includes mapping cells to modules and attaching the module planes
    to the measurements (or, without cells, building the measurements from hits).
    """
    timings: dict = {}
    cpu: dict = {}
    clock = _Clock(timings, cpu)
    info: dict = dict(event.info)
    meas, used_cells = _measurements_from_event(event, detector, info, clock)
    clock.reset()
    sp = form_spacepoints(meas)
    clock.stop("spacepoints")
    seeds = find_seeds(sp, config.seeding)
    clock.stop("seeding")
    params, valid = estimate_track_parameters(seeds, sp, meas, config.estimation)
    clock.stop("estimation")
    grid = measurement_grid(meas)
    seed_meas = np.column_stack([sp.measurement[seeds.bottom], sp.measurement[seeds.middle],
                                 sp.measurement[seeds.top]])[valid]
    order = np.argsort(-seeds.weight[valid], kind="stable")
    tracks_all = find_tracks(params, seed_meas, meas, config.ckf, seed_order=order, grid=grid)
    clock.stop("ckf")
    tracks = resolve_ambiguities(tracks_all, len(meas), config.ambiguity)
    clock.stop("ambiguity")
    if config.extension is not None:
        tracks = extend_tracks_inward(tracks, params, meas, grid, config.extension)
        clock.stop("extension")
    info.update({"measurements": len(meas), "spacepoints": len(sp), "seeds": len(seeds),
                 "ckf_window_overflow": tracks_all.stats.get("window_overflow", 0)})
    rows = len(params)
    if config.low_pt is not None:
        tracks_all, tracks, rows = _low_pt_iteration(config, meas, sp, grid, params, tracks_all, tracks, clock, info)
    if config.leftover is not None:
        tracks_all, tracks = _leftover_iteration(config, (meas, sp, grid), (tracks_all, tracks, rows), clock, info)
    if config.overlaps is not None:
        clock.reset()
        tracks = add_overlap_measurements(tracks, meas, config.overlaps)
        clock.stop("overlaps")
    timings["total"] = sum(timings.values())
    cpu["total"] = sum(cpu.values())
    info.update({"tracks_before_ambiguity": len(tracks_all), "tracks": len(tracks)})
    return ChainResult(meas, sp, seeds, params, valid, tracks_all, tracks, timings, info, used_cells, cpu)


def _concat_tracks(a: Tracks, b: Tracks, seed_offset: int) -> Tracks:
    offsets = np.concatenate([a.offsets, a.offsets[-1] + b.offsets[1:]])
    return Tracks(offsets, np.concatenate([a.meas, b.meas]), np.concatenate([a.chi2, b.chi2]),
                  np.concatenate([a.n_holes, b.n_holes]), np.concatenate([a.params, b.params]),
                  np.concatenate([a.seed, b.seed + seed_offset]))


def _used(meas: Measurements, tracks: Tracks) -> np.ndarray:
    used = np.zeros(len(meas), bool)
    used[tracks.meas] = True
    return used


def _iteration_tracks(config, iteration, event: tuple, clock, name: str) -> tuple:
    """A later iteration's seeds on the spacepoints whose measurement is not used, their
    parameters and CKF candidates: (seeds, parameters, candidates). event = (meas, sp, grid,
    used flags of the measurements); with ``iteration.free_measurements_only`` the CKF searches
    only the unused measurements. The clock records ``seeding_<name>`` and ``ckf_<name>``."""
    meas, sp, grid, used = event
    if iteration.free_measurements_only:
        grid = without_items(grid, used)
    keep = np.nonzero(~used[sp.measurement])[0]
    sp = Spacepoints(sp.x[keep], sp.y[keep], sp.z[keep], sp.measurement[keep], sp.var_r[keep], sp.var_z[keep])
    seeds = find_seeds(sp, iteration.seeding)
    clock.stop(f"seeding_{name}")
    est = EstimationConfig(**{**config.estimation.__dict__, "bz_tesla": iteration.seeding.bz_tesla})
    params, valid = estimate_track_parameters(seeds, sp, meas, est)
    seed_meas = np.column_stack([sp.measurement[seeds.bottom], sp.measurement[seeds.middle],
                                 sp.measurement[seeds.top]])[valid]
    order = np.argsort(-seeds.weight[valid], kind="stable")
    tracks = find_tracks(params, seed_meas, meas, iteration.ckf, seed_order=order, grid=grid)
    clock.stop(f"ckf_{name}")
    return seeds, params, tracks


def _low_pt_iteration(config, meas, sp, grid, params, tracks_all, tracks, clock, info):
    lp = config.low_pt
    clock.reset()
    seeds2, params2, tracks2 = _iteration_tracks(config, lp, (meas, sp, grid, _used(meas, tracks)), clock, "low_pt")
    final = resolve_ambiguities(_concat_tracks(tracks, tracks2, len(params)), len(meas), lp.ambiguity)
    clock.stop("ambiguity_low_pt")
    if config.extension is not None:
        both = TrackParameters(np.concatenate([params.params, params2.params]),
                               np.concatenate([params.cov, params2.cov]),
                               np.concatenate([params.surface, params2.surface]))
        final = extend_tracks_inward(final, both, meas, grid, config.extension)
        clock.stop("extension_low_pt")
    info.update({"seeds_low_pt": len(seeds2), "tracks_low_pt_before_ambiguity": len(tracks2)})
    return _concat_tracks(tracks_all, tracks2, len(params)), final, len(params) + len(params2)


def without_measurements(tracks: Tracks, used: np.ndarray, min_measurements: int) -> Tracks:
    """The tracks with the measurements flagged in ``used`` removed, those with at least
    ``min_measurements`` left (order kept)."""
    track_of = np.repeat(np.arange(len(tracks)), tracks.n_meas)
    free = ~used[tracks.meas]
    left = np.bincount(track_of[free], minlength=len(tracks))
    rows = np.nonzero(left >= min_measurements)[0]
    keep = free & np.isin(track_of, rows)
    offsets = np.concatenate([[0], np.cumsum(left[rows])]).astype(np.int64)
    return Tracks(offsets, tracks.meas[keep], tracks.chi2[rows], tracks.n_holes[rows], tracks.params[rows],
                  tracks.seed[rows])


def without_items(grid: LayerGrid, drop: np.ndarray) -> LayerGrid:
    """The measurement grid without the measurements flagged in ``drop`` (bins and order kept)."""
    keep = ~drop[grid.items]
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    return LayerGrid(grid.n_phi, grid.n2, grid.lo2, grid.hi2, grid.bin_offset, kept_before[grid.bin_start],
                     grid.items[keep])


def _leftover_iteration(config, event: tuple, found: tuple, clock, info):
    """The last iteration (:class:`LeftoverIteration`) on the spacepoints no track holds; its
    tracks only add measurements no earlier track holds. event = (meas, sp, grid); found =
    (all candidates, final tracks, parameter rows so far)."""
    lo = config.leftover
    tracks_all, tracks, rows = found
    clock.reset()
    used = _used(event[0], tracks)
    seeds3, _, tracks3 = _iteration_tracks(config, lo, (*event, used), clock, "leftover")
    added = without_measurements(resolve_ambiguities(tracks3, len(used), lo.ambiguity), used,
                                 lo.ambiguity.min_measurements)
    clock.stop("ambiguity_leftover")
    info.update({"seeds_leftover": len(seeds3), "tracks_leftover": len(added)})
    return _concat_tracks(tracks_all, tracks3, rows), _concat_tracks(tracks, added, rows)


def submission(result: ChainResult, hit_id) -> tuple:
    """TrackML submission columns (hit_id, track_id): track ids start at 1; hits on no track
    get track_id 0."""
    meas_track = np.zeros(len(result.measurements), np.int64)
    t = result.tracks
    meas_track[t.meas] = np.repeat(np.arange(1, len(t) + 1), t.n_meas)
    hm = result.measurements.hit_measurement
    track_id = np.where(hm >= 0, meas_track[np.maximum(hm, 0)], 0)
    return np.asarray(hit_id), track_id
