"""GPU clusterization and spacepoint formation against the CPU stages.

Runs the numba.cuda kernels under the CUDA simulator (conftest.py) on hand-made cells and a tiny
simulated event; the last test runs the real kernels on a pile-up 200 event and is skipped
without a GPU.
"""

import dataclasses

import numpy as np
import pytest

from reference.tracking.audit_chain import clusterization
from reference.tracking.clusterization import clusterize
from reference.tracking.errors import TrackingInputError
from reference.tracking.event import Cells, Event, Hits
from reference.tracking.geometry import build_generic_detector
from reference.tracking.gpu import backend
from reference.tracking.gpu.batch import batch_to_device, stack_measurements
from reference.tracking.gpu.clusterization import (ClusterizationConfig, ModuleCells, batch_groups, canonical_order,
                                                   clusterization_batch_gpu, clusterization_gpu, clusterize_gpu,
                                                   consecutive_block, device_detector, event_to_device,
                                                   sort_measurements, to_host)
from reference.tracking.gpu.spacepoints import form_spacepoints_gpu
from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event
from reference.tracking.spacepoints import form_spacepoints

F64 = ClusterizationConfig("float64")


@pytest.fixture(name="detector", scope="module")
def fixture_detector():
    return build_generic_detector()


@pytest.fixture(name="pixel", scope="module")
def fixture_pixel(detector):
    """First pixel-barrel module row (336 x 1440 channels of 50 um)."""
    return int(np.nonzero(detector.volume_id == 8)[0][0])


@pytest.fixture(name="tiny_event", scope="module")
def fixture_tiny_event(detector):
    """One vertex with a few particles: about 50 hits, 200 cells."""
    return simulate_event(detector, SimulationConfig(pileup=1, particles_per_vertex=8), seed=3,
                          planes=module_planes(detector))


def _cells(module, ch0, ch1, value=None) -> ModuleCells:
    value = np.ones(len(module)) if value is None else np.asarray(value, float)
    return ModuleCells(np.asarray(module), np.asarray(ch0), np.asarray(ch1), value)


def _gpu_clusters(detector, cells: ModuleCells, config=F64):
    return to_host(clusterize_gpu(cells, detector, config))


def _assert_same_clusters(gpu, cpu, rtol=1e-12):
    """Same partition of the cells and, cluster by cluster, the same fields."""
    assert len(gpu) == len(cpu)
    # cluster k of the CPU <-> the GPU cluster of its cells
    to_gpu = np.full(len(cpu), -1)
    to_gpu[cpu.cell_label] = gpu.cell_label
    np.testing.assert_array_equal(to_gpu[cpu.cell_label], gpu.cell_label)
    assert sorted(to_gpu) == list(range(len(gpu)))
    for name in ("module_index", "n_cells", "rep_cell"):
        np.testing.assert_array_equal(getattr(gpu, name)[to_gpu], getattr(cpu, name))
    for name in ("local0", "local1", "var0", "var1", "charge"):
        np.testing.assert_allclose(getattr(gpu, name)[to_gpu], getattr(cpu, name), rtol=rtol, atol=1e-12)


def _compare_with_cpu(detector, module, ch0, ch1, value=None):
    cells = _cells(module, ch0, ch1, value)
    gpu = _gpu_clusters(detector, cells)
    _assert_same_clusters(gpu, clusterize(cells.module, cells.ch0, cells.ch1, cells.value, detector))
    return gpu


def test_l_shape_and_u_shape_are_one_cluster(detector, pixel):
    gpu = _compare_with_cpu(detector, [pixel] * 5, [5, 5, 5, 6, 7], [1, 2, 3, 3, 3])
    assert len(gpu) == 1
    # U: two columns joined only by the bottom row, the link that comes last in sorted order
    gpu = _compare_with_cpu(detector, [pixel] * 7, [0, 2, 0, 2, 0, 1, 2], [2, 2, 1, 1, 0, 0, 0])
    assert len(gpu) == 1 and gpu.n_cells[0] == 7


def test_diagonal_touching_joins_and_gap_separates(detector, pixel):
    gpu = _compare_with_cpu(detector, [pixel] * 4, [1, 2, 4, 6], [1, 2, 3, 2])
    assert len(gpu) == 3
    assert gpu.cell_label[0] == gpu.cell_label[1] != gpu.cell_label[2] != gpu.cell_label[3]
    # anti-diagonal too: (3, 5) touches (4, 4)
    gpu = _compare_with_cpu(detector, [pixel] * 2, [3, 4], [5, 4])
    assert len(gpu) == 1


def test_module_edges_and_neighbouring_modules(detector, pixel):
    # the same channels on two modules with consecutive rows never merge; edge channels are valid
    module = [pixel, pixel, pixel + 1, pixel + 1, pixel, pixel + 1]
    ch0 = [0, 335, 0, 335, 335, 0]
    ch1 = [0, 1439, 0, 1439, 1438, 1]
    gpu = _compare_with_cpu(detector, module, ch0, ch1)
    assert len(gpu) == 4
    # the last channel of a row does not wrap around to the first channel of the next row
    gpu = _compare_with_cpu(detector, [pixel, pixel], [0, 335], [5, 4])
    assert len(gpu) == 2


def test_single_cells_duplicates_and_unsorted_input(detector, pixel):
    rng = np.random.default_rng(1)
    ch0 = np.array([3, 4, 10, 11, 3, 20, 7])
    ch1 = np.array([3, 4, 10, 10, 3, 0, 30])
    perm = rng.permutation(len(ch0))
    gpu = _compare_with_cpu(detector, np.full(7, pixel), ch0[perm], ch1[perm], rng.uniform(1, 2, 7))
    assert len(gpu) == 4
    assert sorted(gpu.n_cells) == [1, 1, 2, 3]


def test_random_dense_cells_match_cpu(detector, pixel):
    """Dense random cells on three modules: long, branching clusters that need many unions, and
    three blocks of the cluster numbering (its prefix sum crosses blocks)."""
    rng = np.random.default_rng(5)
    n = 700
    module = rng.choice([pixel, pixel + 1, pixel + 7], n)
    ch0 = rng.integers(0, 30, n)
    ch1 = rng.integers(0, 30, n)
    value = rng.exponential(20.0, n)
    value[:5] = 0.0  # charges <= 0 weigh 1e-6, as on the CPU
    gpu = _compare_with_cpu(detector, module, ch0, ch1, value)
    assert 3 <= len(gpu) < n // 2


def test_float32_products_round_the_float64_ones(detector, pixel):
    rng = np.random.default_rng(2)
    module, ch0, ch1 = np.full(40, pixel), rng.integers(100, 110, 40), rng.integers(700, 712, 40)
    value = rng.uniform(10, 60, 40).astype(np.float32)
    g32 = _gpu_clusters(detector, _cells(module, ch0, ch1, value), ClusterizationConfig())
    g64 = _gpu_clusters(detector, _cells(module, ch0, ch1, value), F64)
    assert g32.local0.dtype == np.float32 and g64.local0.dtype == np.float64
    for name in ("local0", "local1", "var0", "var1", "charge"):
        np.testing.assert_array_equal(getattr(g32, name), getattr(g64, name).astype(np.float32))


def test_measurement_centre_variance_and_weighting(detector, pixel):
    pu, pv = detector.pitch_u_mm[pixel], detector.pitch_v_mm[pixel]
    hu, hv = detector.maxhu_mm[pixel], detector.hv_mm[pixel]
    one = _gpu_clusters(detector, _cells([pixel], [10], [20]))
    assert one.local0[0] == pytest.approx(10.5 * pu - hu)
    assert one.local1[0] == pytest.approx(20.5 * pv - hv)
    assert one.var0[0] == pytest.approx(pu ** 2 / 12)
    pair = _gpu_clusters(detector, _cells([pixel, pixel], [10, 11], [20, 20], [3.0, 1.0]))
    assert pair.local0[0] == pytest.approx((3 * 10.5 + 11.5) / 4 * pu - hu)
    assert pair.var0[0] == pytest.approx(3 / 16 * pu ** 2 + pu ** 2 / 12)
    assert pair.rep_cell[0] == 0 and pair.charge[0] == pytest.approx(4.0)


def test_cells_off_the_detector_join_no_cluster(detector, pixel):
    gpu = _gpu_clusters(detector, _cells([pixel, -1, pixel, pixel, len(detector)], [5, 5, 336, 6, 1], [5, 5, 5, 6, 1]))
    np.testing.assert_array_equal(gpu.cell_label, [0, -1, -1, 0, -1])
    assert len(gpu) == 1 and gpu.n_cells[0] == 2


def _assert_same_measurements(gpu, cpu, rtol, atol):
    a, b = sort_measurements(gpu), sort_measurements(cpu)
    assert len(a) == len(b)
    for name in ("layer_index", "hit_id", "hit_measurement"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("planes", "local0", "local1", "var0", "var1"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol)


def _assert_same_spacepoints(gpu_meas, gpu_sp, cpu_meas, cpu_sp, atol_mm):
    a, b = canonical_order(gpu_meas), canonical_order(cpu_meas)
    gpu_sp = to_host(gpu_sp)
    np.testing.assert_array_equal(gpu_sp.measurement, np.arange(len(gpu_sp)))
    for name in ("x", "y", "z"):
        np.testing.assert_allclose(getattr(gpu_sp, name)[a], getattr(cpu_sp, name)[b], rtol=0, atol=atol_mm)
    for name in ("var_r", "var_z"):
        np.testing.assert_allclose(getattr(gpu_sp, name)[a], getattr(cpu_sp, name)[b], rtol=2e-7, atol=1e-12)


def test_tiny_event_matches_cpu_in_float32_and_float64(detector, tiny_event):
    cpu = clusterization(tiny_event, detector)
    cpu_sp = form_spacepoints(cpu)
    assert len(cpu) > 20
    gpu = clusterization_gpu(event_to_device(tiny_event), detector)
    assert gpu.local0.dtype == np.float32 and gpu.planes.shape == (len(cpu), 12)
    _assert_same_measurements(gpu, cpu, rtol=1.2e-7, atol=1e-9)
    _assert_same_spacepoints(gpu, form_spacepoints_gpu(gpu), cpu, cpu_sp, atol_mm=2e-4)
    gpu64 = clusterization_gpu(tiny_event, detector, F64)
    _assert_same_measurements(gpu64, cpu, rtol=1e-12, atol=1e-12)
    _assert_same_spacepoints(gpu64, form_spacepoints_gpu(gpu64), cpu, cpu_sp, atol_mm=1e-9)


def _with_hits(event, hits, cells):
    return Event(hits, cells, event.particles, event.truth, dict(event.info))


def test_unsorted_and_sparse_hit_ids_and_invalid_cells(detector, tiny_event):
    hits, cells = tiny_event.hits, tiny_event.cells
    rng = np.random.default_rng(4)
    perm = rng.permutation(len(hits))
    new_id = 3 * hits.hit_id + 7  # not 1..N
    shuffled = Hits(*(getattr(hits, f.name)[perm] for f in dataclasses.fields(hits)))
    shuffled = dataclasses.replace(shuffled, hit_id=new_id[perm])
    ch0 = cells.ch0.copy()
    ch0[:3] = [-1, 5000, ch0[3]]  # out of the module
    cell_hits = new_id[cells.hit_id - 1]
    cell_hits[5] = 2  # no such hit
    moved = Cells(cell_hits, ch0, cells.ch1, cells.value)
    for event in (_with_hits(tiny_event, shuffled, moved),
                  _with_hits(tiny_event, dataclasses.replace(hits, hit_id=new_id), moved)):
        cpu = clusterization(event, detector)
        _assert_same_measurements(clusterization_gpu(event, detector, F64), cpu, rtol=1e-12, atol=1e-12)


def test_consecutive_events_share_the_workspace(detector, tiny_event):
    """A smaller event after a larger one (same workspace) leaves nothing of the first behind."""
    cells = tiny_event.cells
    keep = np.arange(len(cells)) % 3 == 0
    smaller = _with_hits(tiny_event, tiny_event.hits, Cells(*(getattr(cells, f.name)[keep]
                                                              for f in dataclasses.fields(cells))))
    for event in (tiny_event, smaller, tiny_event):
        _assert_same_measurements(clusterization_gpu(event, detector, F64), clusterization(event, detector),
                                  rtol=1e-12, atol=1e-12)


def test_events_without_cells_use_hits_as_on_the_cpu(detector, tiny_event):
    event = _with_hits(tiny_event, tiny_event.hits, None)
    cpu = clusterization(event, detector)
    _assert_same_measurements(clusterization_gpu(event, detector, F64), cpu, rtol=1e-12, atol=1e-12)
    cpu_sp = form_spacepoints(cpu)
    gpu = clusterization_gpu(event, None, F64)
    _assert_same_spacepoints(gpu, form_spacepoints_gpu(gpu), clusterization(event, None),
                             form_spacepoints(clusterization(event, None)), atol_mm=1e-9)
    assert len(cpu_sp) == len(cpu)


def test_device_layouts_are_read_in_place(detector, tiny_event):
    """event_to_device and the GPU products lay columns out one after the other, so the kernels
    take them without copies; separate arrays are not mistaken for such a block."""
    event = event_to_device(tiny_event)
    hits, cells = event.hits, event.cells
    block = consecutive_block([hits.hit_id, hits.volume_id, hits.layer_id, hits.module_id, cells.hit_id, cells.ch0,
                               cells.ch1])
    assert block is not None and len(block) == 4 * len(hits) + 3 * len(cells)
    np.testing.assert_array_equal(to_host(event.cells).ch0, tiny_event.cells.ch0)
    gpu = clusterization_gpu(event, detector)
    block = consecutive_block([gpu.local0, gpu.local1, gpu.var0, gpu.var1, gpu.planes])
    assert block is not None and len(block) == 16 * len(gpu)
    assert consecutive_block([tiny_event.cells.ch0, tiny_event.cells.ch1]) is None
    assert consecutive_block([gpu.local1, gpu.local0]) is None


def test_canonical_order_undoes_a_shuffle(detector, tiny_event):
    cpu = clusterization(tiny_event, detector)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(cpu))
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(len(perm))
    hm = np.where(cpu.hit_measurement >= 0, inverse[np.maximum(cpu.hit_measurement, 0)], -1)
    shuffled = dataclasses.replace(cpu, planes=cpu.planes[perm], local0=cpu.local0[perm], local1=cpu.local1[perm],
                                   var0=cpu.var0[perm], var1=cpu.var1[perm], layer_index=cpu.layer_index[perm],
                                   hit_id=cpu.hit_id[perm], hit_measurement=hm)
    a, b = sort_measurements(shuffled), sort_measurements(cpu)
    for f in dataclasses.fields(a):
        if f.name != "layers":
            np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))


def test_bad_input_gives_one_clear_error(detector, tiny_event):
    with pytest.raises(TrackingInputError, match="no hits"):
        clusterization_gpu(_with_hits(tiny_event, Hits(*[np.zeros(0, np.int64)] * 7), None), detector)
    cells = tiny_event.cells
    lost = Cells(cells.hit_id + 10 ** 6, cells.ch0, cells.ch1, cells.value)
    with pytest.raises(TrackingInputError, match="No cell"):
        clusterization_gpu(_with_hits(tiny_event, tiny_event.hits, lost), detector)
    with pytest.raises(TrackingInputError, match="dtype"):
        ClusterizationConfig("float16")
    with pytest.raises(TrackingInputError, match="integer"):
        clusterize_gpu(ModuleCells(np.zeros(2), np.zeros(2), np.zeros(2), np.ones(2)), detector)
    assert device_detector(detector) is device_detector(detector)


@pytest.mark.skipif(not backend.device_present(),
                    reason="needs a CUDA GPU with CuPy and NUMBA_ENABLE_CUDASIM=0 (the simulator is too slow for mu=200)")
def test_pileup_200_event_on_the_gpu_matches_cpu(detector):
    event = simulate_event(detector, SimulationConfig(pileup=200), seed=11, planes=module_planes(detector))
    cpu = clusterization(event, detector)
    gpu = clusterization_gpu(event_to_device(event), detector)
    _assert_same_measurements(gpu, cpu, rtol=1.2e-7, atol=1e-9)
    _assert_same_spacepoints(gpu, form_spacepoints_gpu(gpu), cpu, form_spacepoints(cpu), atol_mm=5e-4)
    gpu64 = clusterization_gpu(event_to_device(event), detector, F64)
    _assert_same_measurements(gpu64, cpu, rtol=1e-10, atol=1e-12)


def _same_measurements(a, b) -> None:
    """Integer fields equal; float64 ones to the last bits (the GPU's atomic sums of the cell
    moments come in any order)."""
    for f in dataclasses.fields(a):
        if f.name != "layers":
            x, y = to_host(getattr(a, f.name)), to_host(getattr(b, f.name))
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            if x.dtype.kind == "f":
                np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15, err_msg=f.name)
            else:
                np.testing.assert_array_equal(x, y, err_msg=f.name)


@pytest.fixture(name="batch_events", scope="module")
def fixture_batch_events(detector, tiny_event):
    """Three events, the first and last the same (same modules and channels: their cells must not
    join)."""
    other = simulate_event(detector, SimulationConfig(pileup=1, particles_per_vertex=4), seed=9,
                           planes=module_planes(detector))
    return [tiny_event, other, tiny_event]


def test_a_batch_is_clustered_in_one_pass_as_event_by_event(detector, batch_events):
    meas, counts, column = clusterization_batch_gpu(batch_to_device(batch_events), detector, F64)
    expected, expected_counts = stack_measurements([clusterization_gpu(e, detector, F64) for e in batch_events])
    assert counts.tolist() == expected_counts.tolist() and counts[0] == counts[2] and counts.all()
    _same_measurements(meas, expected)
    assert to_host(column).tolist() == np.repeat(np.arange(3), counts).tolist()
    hit_measurement = to_host(meas.hit_measurement)  # indexes the batch: the last event's hits its measurements
    n_hits = len(batch_events[0].hits)
    last = hit_measurement[-n_hits:]
    assert np.all((last == -1) | (last >= counts[0] + counts[1]))


def test_a_batch_the_sort_key_cannot_hold_is_clustered_in_groups(detector, batch_events, monkeypatch):
    """When the batch's events do not fit the sort key together, the chain's clusterization runs
    them in groups that do (down to single events), with the same products as one pass."""
    # pylint: disable=import-outside-toplevel
    from reference.tracking.chain import _Clock
    from reference.tracking.gpu import chain
    from reference.tracking.gpu import clusterization as gpu_clusterization

    batched = chain._measurements(batch_events, detector, _Clock({}, {}))  # pylint: disable=protected-access
    cells = [len(e.cells) for e in batch_events]
    bits = sum(device_detector(detector).bits) + (max(1023, sum(cells[:2]) - 1)).bit_length()
    for extra, groups in ((1, [(0, 2), (2, 3)]), (0, [(0, 1), (1, 2), (2, 3)])):  # event bits for two, for one
        monkeypatch.setattr(gpu_clusterization, "KEY_BITS", bits + extra)
        assert batch_groups(cells, detector) == groups
        assert clusterization_batch_gpu(batch_to_device(batch_events), detector) is None
        grouped = chain._measurements(batch_events, detector, _Clock({}, {}))  # pylint: disable=protected-access
        _same_measurements(grouped[0], batched[0])
        assert grouped[1].tolist() == batched[1].tolist() and grouped[2][1] == batched[2][1] == 3
        np.testing.assert_array_equal(to_host(grouped[2][0]), to_host(batched[2][0]))


def test_a_batch_with_unsorted_hit_ids_is_refused_and_leaves_the_workspace_clean(detector, batch_events):
    hits = batch_events[1].hits
    perm = np.random.default_rng(5).permutation(len(hits))
    shuffled = _with_hits(batch_events[1], Hits(*(getattr(hits, f.name)[perm] for f in dataclasses.fields(hits))),
                          batch_events[1].cells)
    assert clusterization_batch_gpu(batch_to_device([batch_events[0], shuffled]), detector, F64) is None
    meas, _, _ = clusterization_batch_gpu(batch_to_device(batch_events[:2]), detector, F64)
    _same_measurements(meas, stack_measurements([clusterization_gpu(e, detector, F64) for e in batch_events[:2]])[0])


def test_bad_events_in_a_batch_are_named(detector, batch_events):
    cells = batch_events[1].cells
    nowhere = _with_hits(batch_events[1], batch_events[1].hits, dataclasses.replace(cells, ch0=cells.ch0 + 100000))
    with pytest.raises(TrackingInputError, match="event 1 of the batch"):
        clusterization_batch_gpu(batch_to_device([batch_events[0], nowhere]), detector)
    with pytest.raises(TrackingInputError, match="Event 1 of the batch has no hits or no cells"):
        batch_to_device([batch_events[0], _with_hits(batch_events[1], batch_events[1].hits, None)])
    short = dataclasses.replace(cells, ch1=cells.ch1[:-1])
    with pytest.raises(TrackingInputError, match="cell columns of event 0"):
        batch_to_device([_with_hits(batch_events[1], batch_events[1].hits, short)] + batch_events[:1])
