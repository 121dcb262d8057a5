import numpy as np
import pytest

from reference.tracking.clusterization import ccl_sorted, clusterize, sort_cells


def _labels(module, ch0, ch1):
    module = np.asarray(module, np.int64)
    ch0 = np.asarray(ch0, np.int64)
    ch1 = np.asarray(ch1, np.int64)
    order = sort_cells(module, ch0, ch1, int(module.max()) + 1)
    lab, n = ccl_sorted(module[order], ch0[order], ch1[order])
    out = np.empty(len(module), np.int64)
    out[order] = lab
    return out, n


def _partition(labels):
    groups = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, set()).add(i)
    return sorted(tuple(sorted(g)) for g in groups.values())


def test_l_shape_is_one_cluster():
    # L shape: vertical bar plus a foot
    ch0 = [5, 5, 5, 6, 7]
    ch1 = [1, 2, 3, 3, 3]
    _, n = _labels([0] * 5, ch0, ch1)
    assert n == 1


def test_diagonal_touching_joins_but_gap_separates():
    labels, n = _labels([0, 0, 0], [1, 2, 4], [1, 2, 3])
    # (1,1)-(2,2) touch diagonally; (4,3) is two columns away
    assert n == 2
    assert labels[0] == labels[1] != labels[2]


def test_reverse_l_and_u_shape_merge_through_late_link():
    # U shape: two columns joined only at the bottom row, seen last in (ch1, ch0) order
    ch0 = [0, 2, 0, 2, 0, 1, 2]
    ch1 = [2, 2, 1, 1, 0, 0, 0]
    _, n = _labels([0] * 7, ch0, ch1)
    assert n == 1


def test_module_edges_and_module_boundaries():
    # same channels on two different modules must not merge; edge channels are valid
    module = [0, 0, 1, 1]
    ch0 = [0, 335, 0, 335]
    ch1 = [0, 1439, 0, 1439]
    _, n = _labels(module, ch0, ch1)
    assert n == 4
    # cells touching across the module edge index do not wrap around
    _, n = _labels([0, 0], [0, 335], [5, 5])
    assert n == 2


def test_unsorted_input_and_duplicates():
    rng = np.random.default_rng(1)
    ch0 = np.array([3, 4, 10, 11, 3, 20])
    ch1 = np.array([3, 4, 10, 10, 3, 0])
    perm = rng.permutation(len(ch0))
    labels, n = _labels(np.zeros(6, int), ch0[perm], ch1[perm])
    assert n == 3
    back = np.empty(6, np.int64)
    back[perm] = labels
    assert back[0] == back[1] == back[4]
    assert back[2] == back[3]
    assert len({back[0], back[2], back[5]}) == 3


def test_measurement_position_and_variance(detector):
    m = int(np.nonzero(detector.volume_id == 8)[0][0])
    pu = detector.pitch_u_mm[m]
    # one cell: centre of the cell, variance pitch^2/12
    cl = clusterize([m], [10], [20], [1.0], detector)
    hu = detector.maxhu_mm[m]
    hv = detector.hv_mm[m]
    assert cl.local0[0] == pytest.approx(10.5 * pu - hu)
    assert cl.local1[0] == pytest.approx(20.5 * detector.pitch_v_mm[m] - hv)
    assert cl.var0[0] == pytest.approx(pu ** 2 / 12)
    # two equal neighbouring cells: centre between them, variance (p/2)^2 + p^2/12
    cl = clusterize([m, m], [10, 11], [20, 20], [1.0, 1.0], detector)
    assert len(cl) == 1
    assert cl.local0[0] == pytest.approx(11.0 * pu - hu)
    assert cl.var0[0] == pytest.approx((pu / 2) ** 2 + pu ** 2 / 12)
    # charge weighting pulls towards the larger charge
    cl = clusterize([m, m], [10, 11], [20, 20], [3.0, 1.0], detector)
    assert cl.local0[0] == pytest.approx((3 * 10.5 + 11.5) / 4 * pu - hu)


def test_clusters_reproduce_simulated_hits(small_event, detector):
    """Isolated simulated hits are reproduced one-to-one by CCL (>= 97% of hits)."""
    ev = small_event
    hit_mod = detector.module_index(ev.hits.volume_id, ev.hits.layer_id, ev.hits.module_id)
    cells = ev.cells
    cl = clusterize(hit_mod[cells.hit_id - 1], cells.ch0, cells.ch1, cells.value, detector)
    # a hit is reproduced if all its cells share a cluster containing no other hit's cells
    lab = cl.cell_label
    per_hit = {}
    per_cluster = {}
    for h, c in zip(cells.hit_id, lab):
        per_hit.setdefault(h, set()).add(c)
        per_cluster.setdefault(c, set()).add(h)
    good = sum(1 for h, cs in per_hit.items() if len(cs) == 1 and len(per_cluster[next(iter(cs))]) == 1)
    assert good / len(per_hit) > 0.97
