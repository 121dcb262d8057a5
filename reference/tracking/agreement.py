"""CPU-GPU agreement of the tracking products, measured the way traccc's comparators do.

For every tolerance u (0.01 %, 0.1 %, 1 %, 5 %) a reference (CPU) object counts as matched when
some device (GPU) object agrees with it field by field: integer identity fields are equal and
every value satisfies |a - b| <= u (|a| + |b|) / 2; angles are wrapped to (-pi, pi] and so is
their difference. The rate is matched / max(N_cpu, N_gpu), so missing or extra objects count
against it. Objects that refer to others are compared through what they refer to: seeds by the
positions of their three spacepoints, tracks by their set of measurements.

The search is not a linear scan: device objects are sorted by their identity and one value
field (the one that gives the fewest candidates), and each reference object is compared with
the device objects inside its tolerance window only, with numpy, in bounded chunks.

:func:`stage_comparators` gives the comparator of every stage of ``hepaudit run``'s tracking
chain; :func:`compare_efficiency` checks the physics, each device's track efficiency on the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from auditor import Agreement
from auditor.products import to_host
from reference.tracking.ckf import Tracks
from reference.tracking.errors import TrackingInputError
from reference.tracking.estimation import TrackParameters
from reference.tracking.event import Event
from reference.tracking.performance import Selection, match_tracks
from reference.tracking.seeding import Seeds
from reference.tracking.spacepoints import Measurements, Spacepoints

#: traccc's default uncertainties: (label, relative tolerance).
TOLERANCES: tuple[tuple[str, float], ...] = (("0.01%", 1e-4), ("0.1%", 1e-3), ("1%", 1e-2), ("5%", 5e-2))

#: Headline tolerance per product (the rate the placement gate uses).
HEADLINES = {"measurements": "0.01%", "spacepoints": "0.01%", "seeds": "1%", "parameters": "1%", "tracks": "1%"}

#: Candidate pairs compared at once (bounds the memory of one numpy pass).
_CHUNK_PAIRS = 1 << 18

#: Objects sampled from each collection to choose the sort column.
_SAMPLE = 2048

#: Relative widening of a tolerance window, far above rounding error and far below any tolerance.
_WINDOW_SLACK = 1e-9


class AgreementInputError(TrackingInputError):
    """Collections that cannot be compared (wrong type, shape or tolerance)."""


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """``angle`` (rad) wrapped to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(angle, np.float64), 2.0 * np.pi)


@dataclass(frozen=True)
class Objects:
    """A collection prepared for comparison, one row per object.

    ids: (n, k) integers that must be equal; values: (n, f) floats compared with the relative
    tolerance; angles: the value columns that are angles in rad (stored wrapped to (-pi, pi]).
    Build with :meth:`of`, which checks and normalises the arrays.
    """

    ids: np.ndarray
    values: np.ndarray
    angles: tuple[int, ...] = ()

    @classmethod
    def of(cls, ids: Any = None, values: Any = None, angles: Sequence[int] = ()) -> "Objects":
        ids_array = _matrix(ids, np.int64, "ids")
        values_array = _matrix(values, np.float64, "values")
        if ids is None:
            ids_array = np.zeros((len(values_array), 0), np.int64)
        if values is None:
            values_array = np.zeros((len(ids_array), 0), np.float64)
        if len(ids_array) != len(values_array):
            raise AgreementInputError(f"ids ({len(ids_array)} rows) and values ({len(values_array)} rows) "
                                      "must describe the same objects.")
        angles = tuple(int(a) for a in angles)
        if any(not 0 <= a < values_array.shape[1] for a in angles):
            raise AgreementInputError(f"angle columns {angles} are not all value columns of {values_array.shape[1]}.")
        values_array = values_array + 0.0  # a copy without negative zeros
        if angles:
            values_array[:, angles] = wrap_angle(values_array[:, angles])
        return cls(ids_array, values_array, angles)

    def __len__(self) -> int:
        return len(self.values)


def _matrix(array: Any, dtype: type, what: str) -> np.ndarray:
    if array is None:
        return np.zeros((0, 0), dtype)
    result = np.asarray(array)
    if result.ndim == 1:
        result = result[:, None]
    if result.ndim != 2:
        raise AgreementInputError(f"{what} must be a table with one row per object, not shape {result.shape}.")
    if dtype is np.int64 and result.size and not np.issubdtype(result.dtype, np.integer):
        raise AgreementInputError(f"{what} must hold integers, not {result.dtype}.")
    return result.astype(dtype)


def _check_pair(reference: Objects, device: Objects) -> None:
    if reference.ids.shape[1] != device.ids.shape[1] or reference.values.shape[1] != device.values.shape[1]:
        raise AgreementInputError(
            f"the collections have different fields: {reference.ids.shape[1]} ids and {reference.values.shape[1]} "
            f"values against {device.ids.shape[1]} ids and {device.values.shape[1]} values.")
    if reference.angles != device.angles:
        raise AgreementInputError(
            f"the collections mark different angle columns: {reference.angles} and {device.angles}.")


def _group_codes(reference: Objects, device: Objects) -> tuple[np.ndarray, np.ndarray, int]:
    """One integer per object standing for all its ids (equal ids, equal code)."""
    n = len(reference)
    if reference.ids.shape[1] == 0:
        return np.zeros(n, np.uint64), np.zeros(len(device), np.uint64), 1
    stacked = np.concatenate([reference.ids, device.ids])
    if stacked.shape[1] == 1:
        unique, inverse = np.unique(stacked[:, 0], return_inverse=True)
    else:
        unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.uint64)
    return inverse[:n], inverse[n:], len(unique)


def _ordered_bits(values: np.ndarray) -> np.ndarray:
    """uint64 codes in the order of the (finite, non-negative-zero) float64 ``values``."""
    bits = np.ascontiguousarray(values, np.float64).view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


class _Windows:
    """Device objects sorted by (identity, one value column), and the tolerance window of a
    reference object in that order.

    The key of an object is its identity code in the high bits and the top bits of its value's
    ordered code below; dropping low bits of the value only widens windows (never narrows them),
    and every candidate is checked exactly afterwards. ``column`` None sorts by identity alone.
    """

    def __init__(self, groups: tuple[np.ndarray, np.ndarray, int], device_values: np.ndarray, column: int | None):
        """``groups``: identity codes of the reference and device objects, and how many codes exist."""
        self.reference_groups, device_groups, n_groups = groups
        self.column = column
        self.group_bits = (n_groups - 1).bit_length()
        keys = self.keys_of(device_groups, None if column is None else device_values[:, column])
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]

    def keys_of(self, groups: np.ndarray, values: np.ndarray | None, fill: bool = False) -> np.ndarray:
        """Sort keys of objects in ``groups`` with ``values`` in the sort column (None: identity only;
        ``fill``: the last key of each group)."""
        value_bits = 64 - self.group_bits
        high = groups << np.uint64(value_bits) if value_bits < 64 else np.zeros_like(groups)
        if values is None:
            return high | np.uint64((1 << value_bits) - 1 if fill else 0)
        return high | (_ordered_bits(values + 0.0) >> np.uint64(self.group_bits))

    def bounds(self, groups: np.ndarray, values: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
        """[start, end) in the sorted device order of the candidates of reference objects with
        identity codes ``groups`` and value rows ``values``."""
        if self.column is None:
            return (np.searchsorted(self.keys, self.keys_of(groups, None), "left"),
                    np.searchsorted(self.keys, self.keys_of(groups, None, fill=True), "right"))
        value = values[:, self.column]
        width = tolerance * np.abs(value) / (1.0 - tolerance / 2.0) * (1.0 + _WINDOW_SLACK)
        finite = np.isfinite(value)
        start = np.searchsorted(self.keys, self.keys_of(groups, np.where(finite, value - width, 0.0)), "left")
        end = np.searchsorted(self.keys, self.keys_of(groups, np.where(finite, value + width, 0.0)), "right")
        return np.where(finite, start, 0), np.where(finite, end, 0)


def _sample(n: int, size: int) -> np.ndarray:
    """Up to ``size`` distinct rows of ``n``, the same ones on every call."""
    return np.arange(n) if n <= size else np.sort(np.random.default_rng(0).choice(n, size, replace=False))


def _best_column(reference: Objects, device: Objects, groups: tuple[np.ndarray, np.ndarray, int],
                 tolerance: float) -> int | None:
    """The sort column (None: identity alone) with the fewest candidate pairs at ``tolerance``,
    estimated on samples of both collections."""
    reference_groups, device_groups, n_groups = groups
    queries = _sample(len(reference), _SAMPLE)
    targets = _sample(len(device), _SAMPLE)
    columns: list[int | None] = [None] + [c for c in range(reference.values.shape[1]) if c not in reference.angles]
    costs = []
    for column in columns:
        windows = _Windows((reference_groups, device_groups[targets], n_groups), device.values[targets], column)
        start, end = windows.bounds(reference_groups[queries], reference.values[queries], tolerance)
        costs.append(int((end - start).sum()))
    return columns[int(np.argmin(costs))]


def _close(a: np.ndarray, b: np.ndarray, tolerance: float, angles: tuple[int, ...]) -> np.ndarray:
    """Per row: every value of ``a`` within the relative ``tolerance`` of ``b``."""
    difference = a - b
    if angles:
        difference[:, angles] = wrap_angle(difference[:, angles])
    return np.all(np.abs(difference) <= tolerance * (np.abs(a) + np.abs(b)) / 2.0, axis=1)


def _chunks(counts: np.ndarray):
    """Consecutive [a, b) ranges of rows whose candidate counts add up to about _CHUNK_PAIRS."""
    total = np.cumsum(counts)
    a = 0
    while a < len(counts):
        before = total[a - 1] if a else 0
        b = max(int(np.searchsorted(total, before + _CHUNK_PAIRS, "right")), a + 1)
        yield a, b
        a = b


def _match_rows(reference: Objects, device: Objects, windows: _Windows, rows: np.ndarray,
                tolerance: float) -> np.ndarray:
    """Which reference ``rows`` have a device object within ``tolerance``."""
    start, end = windows.bounds(windows.reference_groups[rows], reference.values[rows], tolerance)
    counts = end - start
    found = np.zeros(len(rows), bool)
    for a, b in _chunks(counts):
        n = counts[a:b]
        local = np.repeat(np.arange(a, b), n)
        position = np.repeat(start[a:b] - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
        ok = _close(reference.values[rows[local]], device.values[windows.order[position]], tolerance,
                    reference.angles)
        found[local[ok]] = True
    return found


def matching_rates(reference: Objects, device: Objects,
                   tolerances: Sequence[tuple[str, float]] = TOLERANCES) -> dict[str, float]:
    """traccc's matching rate per tolerance: reference objects with an agreeing device object,
    over max(N_reference, N_device)."""
    _check_pair(reference, device)
    if not tolerances or any(not 0.0 <= u < 1.0 for _, u in tolerances):
        raise AgreementInputError(f"tolerances must be relative values in [0, 1), not {list(tolerances)}.")
    denominator = max(len(reference), len(device))
    if denominator == 0:
        return {label: 1.0 for label, _ in tolerances}
    ascending = sorted(tolerances, key=lambda item: item[1])
    groups = _group_codes(reference, device)
    column = _best_column(reference, device, groups, ascending[-1][1])
    windows = _Windows(groups, device.values, column)
    # reference objects in the device order, so that the window searches run over sorted keys
    in_order = np.argsort(windows.keys_of(groups[0], None if column is None else reference.values[:, column]),
                          kind="stable")
    found = np.zeros(len(reference), bool)
    rates = {}
    for label, tolerance in ascending:  # an object matched at a smaller tolerance stays matched
        rows = in_order[~found[in_order]]
        found[rows[_match_rows(reference, device, windows, rows, tolerance)]] = True
        rates[label] = float(found.sum()) / denominator
    return {label: rates[label] for label, _ in tolerances}


def agreement_of(reference: Objects, device: Objects, headline: str) -> Agreement:
    """An :class:`auditor.Agreement` with the rate at every traccc tolerance."""
    return Agreement.from_rates(matching_rates(reference, device), headline=headline,
                                n_cpu=len(reference), n_gpu=len(device))


# --- products ---------------------------------------------------------------------------------


def _require(value: Any, kind: type, what: str) -> None:
    if not isinstance(value, kind):
        raise AgreementInputError(f"{what} must be {kind.__name__}, not {type(value).__name__}.")


def measurement_objects(measurements: Measurements) -> Objects:
    """Layer (equal), plane centre x, y, z (mm: the module), local0, local1 (mm), var0, var1 (mm^2)."""
    _require(measurements, Measurements, "measurements")
    values = np.column_stack([measurements.planes[:, 0:3], measurements.local0, measurements.local1,
                              measurements.var0, measurements.var1])
    return Objects.of(measurements.layer_index, values)


def compare_measurements(cpu: Measurements, gpu: Measurements) -> Agreement:
    """Measurements agree on their module and local position and variance."""
    return agreement_of(measurement_objects(cpu), measurement_objects(gpu), HEADLINES["measurements"])


def spacepoint_objects(spacepoints: Spacepoints) -> Objects:
    """Global x, y, z (mm)."""
    _require(spacepoints, Spacepoints, "spacepoints")
    return Objects.of(values=np.column_stack([spacepoints.x, spacepoints.y, spacepoints.z]))


def compare_spacepoints(cpu: Spacepoints, gpu: Spacepoints) -> Agreement:
    """Spacepoints agree on x, y and z."""
    return agreement_of(spacepoint_objects(cpu), spacepoint_objects(gpu), HEADLINES["spacepoints"])


def seed_objects(seeds: Seeds, spacepoints: Spacepoints | None = None) -> Objects:
    """Positions (x, y, z of bottom, middle, top) with ``spacepoints``; without, the three
    spacepoint indices (equal), valid when both collections index the same spacepoints."""
    _require(seeds, Seeds, "seeds")
    triplets = np.column_stack([seeds.bottom, seeds.middle, seeds.top]).astype(np.int64)
    if spacepoints is None:
        return Objects.of(ids=triplets)
    _require(spacepoints, Spacepoints, "spacepoints")
    if triplets.size and (triplets.min() < 0 or triplets.max() >= len(spacepoints)):
        raise AgreementInputError(f"seeds refer to spacepoints outside the {len(spacepoints)} given.")
    xyz = np.column_stack([spacepoints.x, spacepoints.y, spacepoints.z])
    return Objects.of(values=xyz[triplets].reshape(len(triplets), 9))


def compare_seeds(cpu: Seeds, gpu: Seeds, spacepoints: tuple[Spacepoints, Spacepoints] | None = None) -> Agreement:
    """Seeds agree when their bottom, middle and top spacepoints agree (as traccc compares
    seeds). ``spacepoints``: each device's spacepoints, or None when both index the same ones."""
    cpu_sp, gpu_sp = (None, None) if spacepoints is None else spacepoints
    return agreement_of(seed_objects(cpu, cpu_sp), seed_objects(gpu, gpu_sp), HEADLINES["seeds"])


def _measurement_rows(indices: np.ndarray, measurements: Measurements, what: str) -> np.ndarray:
    indices = np.asarray(indices, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(measurements)):
        raise AgreementInputError(f"{what} refer to measurements outside the {len(measurements)} given.")
    return indices


def parameter_objects(parameters: TrackParameters, measurements: Measurements | None = None) -> Objects:
    """Surface, then loc0, loc1 (mm), phi (angle), theta (rad), q/p (1/GeV). The surface is the
    measurement index (equal) without ``measurements``; with them, the measurement's layer
    (equal) and plane centre, so that differently ordered measurements compare."""
    _require(parameters, TrackParameters, "parameters")
    params = np.asarray(parameters.params, np.float64).reshape(len(parameters), 5)
    if measurements is None:
        return Objects.of(parameters.surface, params, angles=(2,))
    _require(measurements, Measurements, "measurements")
    rows = _measurement_rows(parameters.surface, measurements, "parameter surfaces")
    values = np.column_stack([params, measurements.planes[rows, 0:3]])
    return Objects.of(measurements.layer_index[rows], values, angles=(2,))


def compare_parameters(cpu: TrackParameters, gpu: TrackParameters,
                       measurements: tuple[Measurements, Measurements] | None = None) -> Agreement:
    """Track parameters agree on their surface and the five bound parameters (phi as an angle).
    ``measurements``: each device's measurements, or None when both index the same ones."""
    cpu_m, gpu_m = (None, None) if measurements is None else measurements
    return agreement_of(parameter_objects(cpu, cpu_m), parameter_objects(gpu, gpu_m), HEADLINES["parameters"])


def _measurement_sets(tracks: Tracks, identity: np.ndarray | None, width: int) -> np.ndarray:
    """(n, width): each track's sorted measurement identities, padded with -1."""
    counts = tracks.n_meas
    meas = np.asarray(tracks.meas, np.int64)[int(tracks.offsets[0]):int(tracks.offsets[-1])]
    if identity is not None:
        meas = np.asarray(identity, np.int64)[meas]
    track = np.repeat(np.arange(len(tracks)), counts)
    order = np.lexsort((meas, track))
    column = np.arange(len(meas)) - np.repeat(np.cumsum(counts) - counts, counts)
    sets = np.full((len(tracks), width), -1, np.int64)
    sets[track, column] = meas[order]
    return sets


def track_objects(tracks: Tracks, measurements: Measurements | None = None, width: int | None = None) -> Objects:
    """Holes and the set of measurements (equal), then the fitted loc0, loc1, phi (angle),
    theta, q/p and chi2. A measurement is its index without ``measurements``; with them, its
    representative hit id, so that differently ordered measurements compare. ``width``: the
    padded length of the measurement sets (at least the longest track)."""
    _require(tracks, Tracks, "tracks")
    longest = int(tracks.n_meas.max()) if len(tracks) else 0
    width = longest if width is None else width
    if width < longest:
        raise AgreementInputError(f"width {width} is shorter than the longest track ({longest} measurements).")
    identity = None
    if measurements is not None:
        _require(measurements, Measurements, "measurements")
        identity = measurements.hit_id
        _measurement_rows(tracks.meas, measurements, "tracks")
    ids = np.column_stack([np.asarray(tracks.n_holes, np.int64), _measurement_sets(tracks, identity, width)])
    values = np.column_stack([np.asarray(tracks.params, np.float64).reshape(len(tracks), 5), tracks.chi2])
    return Objects.of(ids, values, angles=(2,))


def compare_tracks(cpu: Tracks, gpu: Tracks,
                   measurements: tuple[Measurements, Measurements] | None = None) -> Agreement:
    """Tracks agree on their measurements, holes, fitted parameters and chi2. ``measurements``:
    each device's measurements, or None when both index the same ones."""
    _require(cpu, Tracks, "CPU tracks")
    _require(gpu, Tracks, "GPU tracks")
    width = max([int(t.n_meas.max()) for t in (cpu, gpu) if len(t)], default=0)
    cpu_m, gpu_m = (None, None) if measurements is None else measurements
    return agreement_of(track_objects(cpu, cpu_m, width), track_objects(gpu, gpu_m, width), HEADLINES["tracks"])


# --- stage comparators for hepaudit run ---------------------------------------------------------
# Both devices run a stage on the same (reference) input products, so indices into those inputs
# (spacepoints of seeds, measurements of parameters and tracks) identify the same objects.


#: What ``Chain.comparator`` registers: (reference outputs, device outputs) -> Agreement.
StageComparator = Callable[[Mapping[str, Any], Mapping[str, Any]], Agreement]


def _on_product(product: str, compare: Callable[[Any, Any], Agreement]) -> StageComparator:
    def comparator(cpu: Mapping[str, Any], gpu: Mapping[str, Any]) -> Agreement:
        return compare(to_host(cpu[product]), to_host(gpu[product]))

    comparator.__name__ = f"compare_{product}_outputs"
    comparator.__doc__ = f"Agreement of the stage's ``{product}`` on the two devices."
    return comparator


def stage_comparators() -> dict[str, StageComparator]:
    """Comparator per stage of the tracking chain (``chain.comparator(stage)(function)``)."""
    return {"clusterization": _on_product("measurements", compare_measurements),
            "spacepoints": _on_product("spacepoints", compare_spacepoints),
            "seeding": _on_product("seeds", compare_seeds),
            "estimation": _on_product("parameters", compare_parameters),
            "ckf": _on_product("candidates", compare_tracks),
            "ambiguity": _on_product("tracks", compare_tracks)}


# --- physics: track efficiency on both devices ----------------------------------------------------


@dataclass(frozen=True)
class EfficiencyCheck:
    """selection: particles counted (as in :mod:`reference.tracking.performance`);
    max_difference_points: largest accepted |GPU - CPU| efficiency, in percentage points."""

    selection: Selection = Selection()
    max_difference_points: float = 0.5

    def __post_init__(self) -> None:
        if not self.max_difference_points >= 0:
            raise AgreementInputError(f"max_difference_points must be >= 0, not {self.max_difference_points}.")


@dataclass(frozen=True)
class EfficiencyComparison:
    """Track efficiencies (fractions; None without selected particles) of both devices."""

    cpu: float | None
    gpu: float | None
    particles: int
    max_difference_points: float

    @property
    def difference_points(self) -> float | None:
        """GPU minus CPU efficiency in percentage points."""
        return None if self.cpu is None or self.gpu is None else 100.0 * (self.gpu - self.cpu)

    @property
    def within(self) -> bool:
        """True when the difference is at most ``max_difference_points`` (or nothing was selected)."""
        return self.difference_points is None or abs(self.difference_points) <= self.max_difference_points + 1e-12


def _lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each ``query`` value in ``keys``, or -1."""
    keys = np.asarray(keys)
    if len(keys) == 0:
        return np.full(len(query), -1, np.int64)
    sorter = np.argsort(keys, kind="stable")
    pos = sorter[np.clip(np.searchsorted(keys[sorter], query), 0, len(keys) - 1)]
    return np.where(keys[pos] == query, pos, -1)


def _hit_particles(event: Event) -> np.ndarray:
    """Particle row of every hit (-1: noise or unknown particle)."""
    if event.truth is None or event.particles is None:
        raise TrackingInputError("The efficiency comparison needs the truth and particles of the event.")
    truth_row = _lookup(event.truth.hit_id, event.hits.hit_id)
    if np.any(truth_row < 0):
        raise TrackingInputError("The truth does not cover every hit of the event.")
    particle_id = event.truth.particle_id[truth_row]
    return np.where(particle_id == 0, -1, _lookup(event.particles.particle_id, particle_id))


def _selected(event: Event, hit_particle: np.ndarray, selection: Selection) -> np.ndarray:
    """Particles counted by the tracking efficiency (the rule of ``performance.evaluate``)."""
    parts = event.particles
    pt = np.hypot(parts.px, parts.py)
    eta = np.arcsinh(parts.pz / np.maximum(pt, 1e-12))
    n_hits = np.bincount(hit_particle[hit_particle >= 0], minlength=len(parts))
    return ((np.hypot(parts.vx, parts.vy) < selection.max_production_radius_mm) & (pt > selection.min_pt_gev)
            & (np.abs(eta) < selection.max_abs_eta) & (n_hits >= selection.min_hits_tracking))


def track_efficiency(event: Event, tracks: Tracks, measurements: Measurements,
                     selection: Selection = Selection()) -> tuple[float | None, int]:
    """(efficiency, selected particles): the share of selected particles that some track
    matches (> 50 % of its measurements), as ``performance.evaluate`` counts it."""
    _require(tracks, Tracks, "tracks")
    _require(measurements, Measurements, "measurements")
    hit_particle = _hit_particles(event)
    selected = _selected(event, hit_particle, selection)
    hit_row = _lookup(event.hits.hit_id, np.asarray(measurements.hit_id))
    meas_particle = np.where(hit_row >= 0, hit_particle[hit_row], -1)
    matched = match_tracks(tracks, meas_particle)
    found = np.zeros(len(selected), bool)
    found[matched[matched >= 0]] = True
    n = int(selected.sum())
    return (float(found[selected].mean()) if n else None), n


def compare_efficiency(event: Event, cpu: tuple[Tracks, Measurements], gpu: tuple[Tracks, Measurements],
                       check: EfficiencyCheck = EfficiencyCheck()) -> EfficiencyComparison:
    """Track efficiency of each device's (tracks, measurements) against the event's truth."""
    cpu_tracks, cpu_meas = to_host(tuple(cpu))
    gpu_tracks, gpu_meas = to_host(tuple(gpu))
    cpu_eff, n = track_efficiency(event, cpu_tracks, cpu_meas, check.selection)
    gpu_eff, _ = track_efficiency(event, gpu_tracks, gpu_meas, check.selection)
    return EfficiencyComparison(cpu_eff, gpu_eff, n, check.max_difference_points)
