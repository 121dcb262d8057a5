"""GPU seeding against the CPU seeding.

The kernels run under numba's CUDA simulator (conftest.py) on a tiny simulated event (one vertex,
a few tens of particles; spacepoints from the CPU chain's stages); the last test runs the real
kernels on a pile-up 200 event and is skipped without a GPU.
"""

import dataclasses

import numpy as np
import pytest

from reference.tracking.errors import TrackingInputError
from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.gpu.seeding import canonical, canonical_order, find_seeds, matching_rate
from reference.tracking.seeding import Seeds, SeedingConfig
from reference.tracking.seeding import find_seeds as cpu_find_seeds
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
from reference.tracking.spacepoints import Spacepoints, form_spacepoints, measurements_from_hits


def _host(a) -> np.ndarray:
    return np.asarray(a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else a)


def _spacepoints(pileup: int, particles_per_vertex: float, seed: int) -> Spacepoints:
    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=pileup, particles_per_vertex=particles_per_vertex),
                           seed=seed, planes=module_planes(detector))
    meas, _ = measurements_from_hits(event.hits, detector)
    return form_spacepoints(meas)


@pytest.fixture(scope="module", name="tiny_sp")
def fixture_tiny_sp():
    """One vertex with about 30 particles: about 200 spacepoints and 40 seeds."""
    return _spacepoints(1, 30.0, 3)


def _triples(seeds) -> set:
    return set(zip(_host(seeds.bottom).tolist(), _host(seeds.middle).tolist(), _host(seeds.top).tolist()))


def _assert_same_seeds(gpu, cpu):
    """Same seeds with the same weights and z at the beam line, and the same doublet counts.

    Under the simulator the kernels run the CPU's compiled helpers: same order, bit for bit. On a
    GPU, CUDA's fused multiply-adds move weights and z by ulps: same set, weights within 1e-9."""
    for name in ("bottom_doublets", "top_doublets", "middles"):
        assert gpu.stats[name] == cpu.stats[name], name
    if backend.simulated():
        for name in ("bottom", "middle", "top", "weight", "z_vertex"):
            np.testing.assert_array_equal(_host(getattr(gpu, name)), getattr(cpu, name), err_msg=name)
        return
    a, b = canonical(gpu), canonical(cpu)
    for name in ("bottom", "middle", "top"):
        np.testing.assert_array_equal(_host(getattr(a, name)), getattr(b, name), err_msg=name)
    for name in ("weight", "z_vertex"):
        np.testing.assert_allclose(_host(getattr(a, name)), getattr(b, name), rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("config", [SeedingConfig(), SeedingConfig(min_pt_gev=0.15, max_seeds_per_middle=2),
                                    SeedingConfig(max_seeds_per_middle=1, compat_seed_limit=1, impact_max_mm=3.0)],
                         ids=["traccc", "low-pt", "tight"])
def test_float64_seeds_equal_the_cpu_seeds(tiny_sp, config):
    cpu = cpu_find_seeds(tiny_sp, config)
    gpu = find_seeds(tiny_sp, config, dtype="float64")
    assert len(cpu) >= 15
    _assert_same_seeds(gpu, cpu)
    assert gpu.stats["triplets"] >= len(cpu)


@pytest.mark.skipif(not backend.simulated(), reason="buffer sizes are compile-time constants of the GPU kernels")
def test_buffers_too_small_for_some_jobs_change_nothing(tiny_sp, monkeypatch):
    """Doublet jobs and bottom doublets whose results do not fit the count kernels' buffers are
    scanned again by the fill kernels (the simulator reads the sizes at run time)."""
    import reference.tracking.gpu.seeding as gpu_seeding  # pylint: disable=import-outside-toplevel

    config = SeedingConfig(min_pt_gev=0.15, max_seeds_per_middle=2)
    monkeypatch.setattr(gpu_seeding, "_DOUBLET_SLOTS", 1)
    monkeypatch.setattr(gpu_seeding, "_TRIPLET_SLOTS", 1)
    _assert_same_seeds(find_seeds(tiny_sp, config, dtype="float64"), cpu_find_seeds(tiny_sp, config))


def test_per_middle_doublet_limit_keeps_the_first_in_scan_order(monkeypatch):
    """The CPU keeps the first 2048 doublets of a middle and side in scan order: counts per
    (side, middle, phi neighbour) are cut in that order."""
    import reference.tracking.gpu.seeding as gpu_seeding  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(gpu_seeding, "_MAX_DOUBLETS", 5)
    cnt = backend.xp().asarray([[[2, 2, 2], [6, 0, 1], [0, 0, 0]]])
    capped = gpu_seeding._cap_counts(cnt)  # pylint: disable=protected-access
    assert _host(capped).tolist() == [[[2, 2, 1], [5, 0, 0], [0, 0, 0]]]


def test_float32_seeds_match_at_one_percent(tiny_sp):
    cpu = cpu_find_seeds(tiny_sp)
    gpu = find_seeds(tiny_sp)
    assert _host(gpu.weight).dtype == np.float32
    assert matching_rate(cpu, gpu, tiny_sp, 0.01) >= 0.99
    assert len(_triples(gpu) ^ _triples(cpu)) <= 0.01 * len(cpu)
    np.testing.assert_allclose(_host(canonical(gpu).z_vertex), canonical(cpu).z_vertex, rtol=1e-4, atol=1e-3)


def test_spacepoints_outside_the_region_and_invalid_ones_are_ignored(tiny_sp):
    """Extra far-away, NaN and out-of-z spacepoints (appended and shuffled in) change nothing."""
    rng = np.random.default_rng(5)
    n = len(tiny_sp)
    extra = {"x": [500.0, np.nan, 40.0, 1.0], "y": [0.0, 50.0, 30.0, np.inf], "z": [10.0, 0.0, 2500.0, 0.0]}
    cols = {}
    for f in dataclasses.fields(Spacepoints):
        base = getattr(tiny_sp, f.name)
        add = extra.get(f.name, np.zeros(4) if base.dtype.kind == "f" else np.arange(n, n + 4))
        cols[f.name] = np.concatenate([base, np.asarray(add, base.dtype)])
    perm = rng.permutation(n + 4)
    shuffled = Spacepoints(**{k: v[perm] for k, v in cols.items()})
    cpu = cpu_find_seeds(tiny_sp)
    gpu = find_seeds(shuffled, dtype="float64")
    back = np.argsort(perm)  # new index -> old index is perm[new]
    assert back[perm].tolist() == list(range(n + 4))
    got = {(perm[b], perm[m], perm[t]) for b, m, t in _triples(gpu)}
    assert got == _triples(cpu)
    assert gpu.stats["middles"] == cpu.stats["middles"]


def test_empty_and_seedless_inputs():
    empty = Spacepoints(*(np.zeros(0) for _ in range(3)), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    seeds = find_seeds(empty)
    assert len(seeds) == 0 and seeds.stats["middles"] == 0
    # three spacepoints on a line, but too close in radius for any doublet
    sp = Spacepoints(np.array([40.0, 45.0, 50.0]), np.zeros(3), np.zeros(3), np.arange(3), np.zeros(3), np.zeros(3))
    assert len(find_seeds(sp, dtype="float64")) == 0 == len(cpu_find_seeds(sp))


def test_canonical_order_undoes_a_shuffle(tiny_sp):
    gpu = find_seeds(tiny_sp, dtype="float64")
    perm = np.random.default_rng(1).permutation(len(gpu))
    shuffled = Seeds(*(_host(getattr(gpu, f))[perm] for f in ("bottom", "middle", "top", "weight", "z_vertex")))
    a, b = canonical(shuffled), canonical(gpu)
    for name in ("bottom", "middle", "top", "weight"):
        np.testing.assert_array_equal(_host(getattr(a, name)), _host(getattr(b, name)))
    keys = np.stack([_host(a.middle), _host(a.bottom), _host(a.top)], 1)
    assert (np.diff(keys[:, 0]) >= 0).all() and len(np.unique(keys, axis=0)) == len(keys)
    assert len(canonical_order(shuffled)) == len(gpu)


def test_matching_rate_follows_the_traccc_definition(tiny_sp):
    cpu = cpu_find_seeds(tiny_sp)
    n = len(cpu)
    assert matching_rate(cpu, cpu, tiny_sp, 0.0001) == 1.0
    fewer = Seeds(cpu.bottom[1:], cpu.middle[1:], cpu.top[1:], cpu.weight[1:], cpu.z_vertex[1:])
    assert matching_rate(cpu, fewer, tiny_sp, 0.01) == pytest.approx((n - 1) / n)
    assert matching_rate(fewer, cpu, tiny_sp, 0.01) == pytest.approx((n - 1) / n)
    # a copy of the spacepoints moved by 0.5 %: matched at 1 %, not at 0.1 %
    moved = Spacepoints(np.concatenate([tiny_sp.x, tiny_sp.x * 1.005]), np.concatenate([tiny_sp.y, tiny_sp.y * 1.005]),
                        np.concatenate([tiny_sp.z, tiny_sp.z * 1.005]), np.arange(2 * len(tiny_sp)),
                        np.zeros(2 * len(tiny_sp)), np.zeros(2 * len(tiny_sp)))
    shifted = Seeds(cpu.bottom + len(tiny_sp), cpu.middle + len(tiny_sp), cpu.top + len(tiny_sp), cpu.weight,
                    cpu.z_vertex)
    assert matching_rate(cpu, shifted, moved, 0.01) == 1.0
    assert matching_rate(cpu, shifted, moved, 0.001) == 0.0


def _concatenated(parts: list) -> tuple:
    """The spacepoints of several events one after the other, with their event column."""
    cols = {f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Spacepoints)}
    return Spacepoints(**cols), np.repeat(np.arange(len(parts)), [len(p) for p in parts])


def test_a_batch_of_events_gets_each_event_s_own_seeds(tiny_sp):
    """Four events seeded at once give each event the seeds it gets alone, in the same order,
    although the events overlap in space: grid cells and radius extremes are per event. The
    first and last are the same event (shared cells would make seeds across the copies); the
    second has only far-out spacepoints left, so its radius extremes differ."""
    other = _spacepoints(1, 30.0, 4)
    far = Spacepoints(*(getattr(other, f.name)[other.x ** 2 + other.y ** 2 > 60.0 ** 2]
                        for f in dataclasses.fields(Spacepoints)))
    parts = [tiny_sp, far, other, tiny_sp]
    batch, column = _concatenated(parts)
    config = SeedingConfig(min_pt_gev=0.15, max_seeds_per_middle=2)
    got = find_seeds(batch, config, dtype="float64", events=(column, 4))
    start = 0
    pieces = []
    for part in parts:
        alone = find_seeds(part, config, dtype="float64")
        pieces.append(np.stack([_host(getattr(alone, n)) + start for n in ("bottom", "middle", "top")], 1))
        start += len(part)
    expected = np.concatenate(pieces)
    assert len(expected) > 40 and len(pieces[1]) < len(pieces[2])
    np.testing.assert_array_equal(np.stack([_host(getattr(got, n)) for n in ("bottom", "middle", "top")], 1), expected)
    with pytest.raises(TrackingInputError, match="events"):
        find_seeds(batch, config, events=(column[1:], 4))


def test_bad_options_give_one_clear_error(tiny_sp):
    with pytest.raises(TrackingInputError, match="dtype"):
        find_seeds(tiny_sp, dtype="float16")
    with pytest.raises(TrackingInputError, match="compat_seed_limit"):
        find_seeds(tiny_sp, SeedingConfig(compat_seed_limit=17))
    with pytest.raises(TrackingInputError, match="max_seeds_per_middle"):
        find_seeds(tiny_sp, SeedingConfig(max_seeds_per_middle=0))


@pytest.mark.skipif(not backend.device_present(),
                    reason="needs a CUDA GPU with CuPy and NUMBA_ENABLE_CUDASIM=0 (the simulator is too slow for mu=200)")
def test_pileup_200_event_on_the_gpu_matches_cpu():
    sp = _spacepoints(200, 60.0, 11)
    xp = backend.xp()
    sp_dev = Spacepoints(*(xp.asarray(getattr(sp, f.name)) for f in dataclasses.fields(Spacepoints)))
    cpu = cpu_find_seeds(sp)
    assert len(cpu) > 10000
    gpu64 = find_seeds(sp_dev, dtype="float64")
    common = len(_triples(gpu64) & _triples(cpu))
    # float64 on the device: CUDA's math library and fused multiply-adds may move a cut by an ulp
    assert common >= 0.9999 * len(cpu) and abs(len(gpu64) - len(cpu)) <= 1e-4 * len(cpu) + 1
    gpu32 = find_seeds(sp_dev)
    assert matching_rate(cpu, gpu32, sp, 0.01) >= 0.99
