"""GPU combinatorial Kalman filter against the CPU filter.

The kernels run under numba's CUDA simulator (conftest.py) on small simulated events (one vertex of
30 particles, and pile-up 10 of 15-particle vertices: about 40 and 250 seeds), with the seeds,
parameters and measurements of the CPU chain; the last test runs the real kernels on a pile-up 200
event and is skipped without a GPU.
"""

import dataclasses

import numpy as np
import pytest

from reference.tracking.agreement import compare_efficiency, compare_tracks
from reference.tracking.chain import LowPtIteration, reconstruct_event
from reference.tracking.ckf import CkfConfig, Tracks
from reference.tracking.ckf import find_tracks as cpu_find_tracks
from reference.tracking.ckf import measurement_grid as cpu_grid
from reference.tracking.errors import TrackingInputError
from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.gpu import ckf as gpu
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
from reference.tracking.spacepoints import Measurements


def _host(a) -> np.ndarray:
    return np.asarray(a if isinstance(a, np.ndarray) else a.get())


def _event(pileup: int, particles_per_vertex: float, seed: int):
    detector = build_generic_detector()
    event = simulate_event(detector, SimulationConfig(pileup=pileup, particles_per_vertex=particles_per_vertex),
                           seed=seed, planes=module_planes(detector))
    return event, reconstruct_event(event, detector)


def _inputs(res):
    """(parameters, seed measurements, processing order) as the chain hands them to the CKF."""
    sp, seeds = res.spacepoints, res.seeds
    seed_meas = np.column_stack([sp.measurement[seeds.bottom], sp.measurement[seeds.middle],
                                 sp.measurement[seeds.top]])[res.seed_valid]
    return res.parameters, seed_meas, np.argsort(-seeds.weight[res.seed_valid], kind="stable")


@pytest.fixture(scope="module", name="tiny")
def tiny_event():
    """One vertex with 30 particles: about 200 measurements and 40 seeds."""
    return _event(1, 30.0, 3)[1]


@pytest.fixture(scope="module", name="small")
def small_event():
    """Pile-up 10 of 15-particle vertices: about 1400 measurements, 250 seeds, 55 tracks."""
    return _event(10, 15.0, 3)[1]


def _assert_same_tracks(gpu_tracks: Tracks, cpu_tracks: Tracks) -> None:
    """Same tracks in the same order with the same measurements, holes and seeds; chi2 and
    parameters within 1e-6 relative. On a real GPU (its own math library and fused multiply-adds)
    a rounding difference can flip a cut: there at least 95 % of the tracks must agree at
    traccc's 0.1 % tolerance."""
    if not backend.simulated():
        host = Tracks(*(_host(getattr(gpu_tracks, f)) for f in ("offsets", "meas", "chi2", "n_holes", "params", "seed")))
        assert compare_tracks(cpu_tracks, host).rates["0.1%"] >= 0.95
        return
    for name in ("offsets", "meas", "n_holes", "seed"):
        np.testing.assert_array_equal(_host(getattr(gpu_tracks, name)), getattr(cpu_tracks, name), err_msg=name)
    for name in ("chi2", "params"):
        np.testing.assert_allclose(_host(getattr(gpu_tracks, name)), getattr(cpu_tracks, name), rtol=1e-6, atol=1e-12,
                                   err_msg=name)


def _bin_of_measurement(grid) -> np.ndarray:
    start, items = _host(grid.bin_start), _host(grid.items)
    bins = np.empty(len(items), np.int64)
    bins[items] = np.repeat(np.arange(len(start) - 1), np.diff(start))
    return bins


def test_grid_built_on_the_device_equals_the_cpu_grid(small):
    """Equal under the simulator; on a GPU (its own atan2 and hypot) the same layer binning, and
    measurements in the same bin but for rounding at bin edges."""
    cpu, dev = cpu_grid(small.measurements), gpu.measurement_grid(small.measurements)
    for name in ("n_phi", "n2", "bin_offset"):
        np.testing.assert_array_equal(_host(getattr(dev, name)), getattr(cpu, name), err_msg=name)
    for name in ("lo2", "hi2"):
        np.testing.assert_allclose(_host(getattr(dev, name)), getattr(cpu, name), rtol=1e-12, err_msg=name)
    same = _bin_of_measurement(dev) == _bin_of_measurement(cpu)
    assert same.all() if backend.simulated() else same.mean() >= 0.999


CONFIGS = {"traccc": CkfConfig(), "no-skip": CkfConfig(skip_used_seeds=False), "low-pt": LowPtIteration().ckf,
           "wide": CkfConfig(max_branches_per_surface=3, max_branches_per_seed=4, max_holes=1),
           "no-overlap": CkfConfig(overlap_chi2_max=0.0, max_consecutive_holes=2, skip_seed_min_used=1),
           "no-span-cap": CkfConfig(seed_span_sigma_mm=0.0), "tight-span-cap": CkfConfig(seed_span_sigma_mm=0.2),
           "skip-long-tracks": CkfConfig(min_measurements=5, skip_min_track_measurements=9)}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_tracks_equal_the_cpu_tracks(small, name):
    config = CONFIGS[name]
    params, seed_meas, order = _inputs(small)
    cpu = cpu_find_tracks(params, seed_meas, small.measurements, config, seed_order=order)
    dev = gpu.find_tracks(params, seed_meas, small.measurements, config, seed_order=order)
    assert len(cpu) >= 30
    _assert_same_tracks(dev, cpu)
    assert dev.stats["tracks"] == len(cpu)
    if config.skip_used_seeds:
        assert cpu.stats["seeds_run"] <= dev.stats["seeds_run"] <= len(params)
    else:
        assert dev.stats["seeds_run"] == len(params) == cpu.stats["seeds_run"]
    assert dev.stats["branch_steps"] >= cpu.stats["branch_steps"]
    assert dev.stats["window_overflow"] == dev.stats["track_overflow"] == 0
    assert (dev.stats["dedup_rounds"] >= 2) == config.skip_used_seeds  # seeds on found tracks were skipped


def test_a_batch_of_events_gets_each_event_s_own_tracks(tiny, small):
    """Three events in one launch (measurements one after the other, seeds by event then weight):
    every event gets the CPU's tracks of that event alone, although the events overlap in space
    (the grid, layer extents and tolerances are per event). The first and last are the same
    event: without the separation their seeds would pick up each other's measurements."""
    from reference.tracking.gpu.batch import event_column, stack_measurements  # pylint: disable=import-outside-toplevel

    parts = [small, tiny, small]
    meas, counts = stack_measurements([p.measurements for p in parts])
    starts = np.concatenate(([0], np.cumsum(counts)))
    params, seed_meas, orders, expected = [], [], [], []
    n_seeds = 0
    for k, res in enumerate(parts):
        p, sm, order = _inputs(res)
        cpu = cpu_find_tracks(p, sm, res.measurements, seed_order=order)
        expected.append(Tracks(cpu.offsets, cpu.meas + starts[k], cpu.chi2, cpu.n_holes, cpu.params, cpu.seed + n_seeds))
        params.append(type(p)(p.params, p.cov, p.surface + starts[k]))
        seed_meas.append(sm + starts[k])
        orders.append(order + n_seeds)
        n_seeds += len(p)
    both = type(params[0])(*(np.concatenate([getattr(p, n) for p in params]) for n in ("params", "cov", "surface")))
    dev = gpu.find_tracks(both, np.concatenate(seed_meas), meas, seed_order=np.concatenate(orders),
                          events=(event_column(counts), 3))
    offsets = np.concatenate(([0], np.cumsum(np.concatenate([e.n_meas for e in expected]))))
    joined = Tracks(offsets, *(np.concatenate([getattr(e, n) for e in expected])
                               for n in ("meas", "chi2", "n_holes", "params", "seed")))
    assert len(expected[0]) >= 30 and len(expected[1]) >= 3
    _assert_same_tracks(dev, joined)
    # the chain's order (events interleaved by the share of their seeds processed) and three chunks
    xp = backend.xp()
    column = event_column(counts)
    order = xp.asarray(np.concatenate(orders))
    first_meas = xp.asarray(np.concatenate(seed_meas)[:, 0])
    interleaved = _host(gpu._interleaved(order, column[first_meas[order]], 3))  # pylint: disable=protected-access
    assert not np.array_equal(interleaved, _host(order))
    chunked = gpu.find_tracks(both, np.concatenate(seed_meas), meas, seed_order=interleaved, events=(column, 3),
                              chunks=(0.3, 0.6, 1.0))
    chunked = Tracks(*(_host(getattr(chunked, f)) for f in ("offsets", "meas", "chi2", "n_holes", "params", "seed")))
    seed_event = np.repeat(np.arange(3), [len(p) for p in params])
    _assert_same_tracks(chunked.subset(np.argsort(seed_event[chunked.seed], kind="stable")), joined)
    with pytest.raises(TrackingInputError, match="one event"):
        gpu.find_tracks(both, np.concatenate(seed_meas), meas, grid=cpu_grid(tiny.measurements),
                        events=(event_column(counts), 3))
    with pytest.raises(TrackingInputError, match="every measurement"):
        gpu.find_tracks(both, np.concatenate(seed_meas), meas, events=(event_column(counts)[1:], 3))


def test_the_skip_rule_follows_the_processing_order(tiny):
    """Reversed order, a given grid and default order: the skip rule follows the order like the CPU's."""
    params, seed_meas, order = _inputs(tiny)
    grid = cpu_grid(tiny.measurements)
    for seed_order in (order[::-1].copy(), None):
        cpu = cpu_find_tracks(params, seed_meas, tiny.measurements, seed_order=seed_order, grid=grid)
        dev = gpu.find_tracks(params, seed_meas, tiny.measurements, seed_order=seed_order, grid=grid)
        assert len(cpu) >= 3
        _assert_same_tracks(dev, cpu)


def test_any_chunking_of_the_skip_rule_gives_the_cpu_tracks(small):
    """One chunk filters every seed; chunks of one seed filter exactly the seeds the CPU runs, with
    its branch steps; tracks equal the CPU's for every chunking, and more chunks filter fewer seeds."""
    params, seed_meas, order = _inputs(small)
    grid = cpu_grid(small.measurements)
    cpu = cpu_find_tracks(params, seed_meas, small.measurements, seed_order=order, grid=grid)
    n = len(params)
    runs = []
    for chunks in ((1.0,), (0.5, 1.0), (0.125, 0.25, 0.5, 1.0), tuple((k + 1) / n for k in range(n))):
        dev = gpu.find_tracks(params, seed_meas, small.measurements, seed_order=order, grid=grid, chunks=chunks)
        _assert_same_tracks(dev, cpu)
        runs.append(dev.stats["seeds_run"])
    assert runs[0] == n and runs == sorted(runs, reverse=True) and runs[-1] < runs[0]
    assert runs[-1] == cpu.stats["seeds_run"] and dev.stats["branch_steps"] == cpu.stats["branch_steps"]
    assert gpu.chunk_bounds(10, (0.125, 0.25, 0.5, 1.0)) == [1, 2, 5, 10]
    for bad in ((), (0.5,), (0.5, 0.25, 1.0), (0.0, 1.0)):
        with pytest.raises(TrackingInputError, match="increasing fractions"):
            gpu.chunk_bounds(10, bad)


def test_fewer_filter_threads_than_seeds_take_every_seed(tiny, monkeypatch):
    """Three filter threads take the seeds one after the other: the CPU's tracks and every seed's
    counters, as with one thread per seed."""
    params, seed_meas, order = _inputs(tiny)
    config = CkfConfig(skip_used_seeds=False)
    cpu = cpu_find_tracks(params, seed_meas, tiny.measurements, config, seed_order=order)
    one_each = gpu.find_tracks(params, seed_meas, tiny.measurements, config, seed_order=order)
    monkeypatch.setattr(gpu, "FILTER_THREADS", 3)
    three = gpu.find_tracks(params, seed_meas, tiny.measurements, config, seed_order=order)
    assert len(params) > 3 * 5
    _assert_same_tracks(three, cpu)
    assert three.stats == one_each.stats


def test_canonical_order_sorts_tracks_by_seed(small):
    """Any order of the same tracks gives the same canonical tracks; device tracks sort by seed."""
    params, seed_meas, order = _inputs(small)
    cpu = cpu_find_tracks(params, seed_meas, small.measurements, seed_order=order)
    shuffled = cpu.subset(np.random.default_rng(1).permutation(len(cpu)))
    assert not np.array_equal(shuffled.seed, cpu.seed)
    a, b = gpu.canonical(cpu), gpu.canonical(shuffled)
    assert np.all(np.diff(a.seed) > 0)
    for name in ("offsets", "meas", "seed", "n_holes", "chi2", "params"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    dev = gpu.find_tracks(params, seed_meas, small.measurements, seed_order=order[::-1].copy())
    assert np.all(np.diff(_host(dev.seed)[_host(gpu.canonical_order(dev))]) > 0)
    assert np.all(np.diff(gpu.canonical(dev).seed) > 0)


def _with_copies(meas: Measurements, m: int, copies: int) -> Measurements:
    """``meas`` with ``copies`` duplicates of measurement m appended."""
    rows = np.concatenate([np.arange(len(meas)), np.full(copies, m)])
    fields = {f.name: getattr(meas, f.name)[rows] for f in dataclasses.fields(meas)
              if f.name not in ("hit_measurement", "layers")}
    return Measurements(**fields, hit_measurement=meas.hit_measurement, layers=meas.layers)


def test_window_overflow_is_counted_and_reported(tiny):
    """300 copies of a track measurement fill the 256-item window: dropped as on the CPU, counted
    and warned about."""
    params, seed_meas, order = _inputs(tiny)
    first = cpu_find_tracks(params, seed_meas, tiny.measurements, seed_order=order)
    crowded = _with_copies(tiny.measurements, int(first.meas[first.offsets[0] + 4]), 300)
    cpu = cpu_find_tracks(params, seed_meas, crowded, seed_order=order)
    with pytest.warns(RuntimeWarning, match="window measurements beyond 256"):
        dev = gpu.find_tracks(params, seed_meas, crowded, seed_order=order)
    assert dev.stats["window_overflow"] > 0
    assert dev.stats["track_overflow"] == 0
    _assert_same_tracks(dev, cpu)


def test_track_capacity_overflow_is_counted(tiny):
    """Branches of at most 4 measurements: what does not fit is counted, never written."""
    params, seed_meas, order = _inputs(tiny)
    config = CkfConfig(min_measurements=3)
    cpu = cpu_find_tracks(params, seed_meas, tiny.measurements, config, seed_order=order)
    order_d, tables = gpu.prepare(params, seed_meas, tiny.measurements, config, seed_order=order)
    nb, nc, _ = gpu.capacities(config)
    found = gpu.filter_seeds(tables, (nb, nc, 4))
    n, overflow = _host(found.n), _host(found.stats)[:, 4]
    assert n.max() == 4 and _host(found.meas).shape[1] == 4
    assert overflow.sum() > 0
    long_tracks = {int(s) for s, k in zip(cpu.seed, cpu.n_meas) if k > 4}
    assert long_tracks and all(overflow[np.flatnonzero(_host(order_d) == s)[0]] > 0 for s in long_tracks)
    with pytest.warns(RuntimeWarning, match="4 track measurements"):
        gpu._report_overflow({"window_overflow": 0, "track_overflow": 4})  # pylint: disable=protected-access


def test_no_seeds_give_no_tracks(tiny):
    params, seed_meas, _ = _inputs(tiny)
    dev = gpu.find_tracks(type(params)(params.params[:0], params.cov[:0], params.surface[:0]), seed_meas[:0],
                          tiny.measurements)
    assert len(dev) == 0 and _host(dev.offsets).tolist() == [0] and dev.stats["seeds_run"] == 0


@pytest.mark.parametrize("change, message", [
    ({"seed_measurements": "short"}, "must have shape"),
    ({"seed_order": "out of range"}, "must index existing seeds"),
    ({"options": {"grid_size": 3}}, "options"),
    ({"config": CkfConfig(max_branches_per_surface=0)}, "max_branches_per_surface"),
    ({"config": CkfConfig(max_branches_per_seed=0)}, "at least 1"),
])
def test_bad_input_gets_one_clear_sentence(tiny, change, message):
    params, seed_meas, order = _inputs(tiny)
    if "seed_measurements" in change:
        seed_meas = seed_meas[:, :2]
    if "seed_order" in change:
        order = order + len(params)
    with pytest.raises(TrackingInputError, match=message):
        gpu.find_tracks(params, seed_meas, tiny.measurements, change.get("config", CkfConfig()), seed_order=order,
                        **change.get("options", {}))


def _gpu_or_skip():
    if backend.simulated():
        pytest.skip("needs a real GPU (NUMBA_ENABLE_CUDASIM is set)")
    try:
        backend.xp()
    except backend.GPUUnavailable as error:
        pytest.skip(str(error))


def test_pileup_200_tracks_agree_with_the_cpu_on_a_gpu():
    """Real kernels at mu = 200: traccc's matching rate >= 99 % at its 1 % headline tolerance,
    and the track efficiency after the (CPU) ambiguity resolution within 0.5 points."""
    _gpu_or_skip()
    from auditor.products import to_device, to_host  # pylint: disable=import-outside-toplevel
    from reference.tracking.ambiguity import resolve_ambiguities  # pylint: disable=import-outside-toplevel
    from reference.tracking.chain import ChainConfig  # pylint: disable=import-outside-toplevel
    event, res = _event(200, SimulationConfig().particles_per_vertex, 11)
    params, seed_meas, order = _inputs(res)
    dev_inputs = to_device((params, seed_meas, res.measurements, order), "cupy")
    tracks = to_host(gpu.find_tracks(*dev_inputs[:3], ChainConfig().ckf, seed_order=dev_inputs[3]))
    assert compare_tracks(res.tracks_all, tracks).rate >= 0.99
    resolved = resolve_ambiguities(tracks, len(res.measurements), ChainConfig().ambiguity)
    efficiency = compare_efficiency(event, (res.tracks, res.measurements), (resolved, res.measurements))
    assert efficiency.particles > 500 and efficiency.within, efficiency


def test_register_caps_reach_the_compiler_only_on_a_gpu(monkeypatch):
    """A family's cap becomes cuda.jit's max_registers on a GPU; no cap, or the simulator, gives none."""
    monkeypatch.setattr(backend, "MAX_REGISTERS", {"ckf_filter": 168, "doublets": None})
    monkeypatch.setattr(backend, "simulated", lambda: False)
    assert backend.kernel_options("ckf_filter") == {"max_registers": 168}
    assert backend.kernel_options("doublets") == backend.kernel_options("unknown") == {}
    monkeypatch.setattr(backend, "simulated", lambda: True)
    assert backend.kernel_options("ckf_filter") == {}
