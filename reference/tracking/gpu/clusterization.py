"""GPU clusterization: cells -> clusters -> measurements on the device (numba.cuda kernels on xp
arrays), with the algorithm and products of :mod:`reference.tracking.clusterization`.

One event takes five kernel launches, an xp sort and one host synchronisation (the cluster
count, needed to size the products):

1. the event's integer hit and cell columns are read in place when :func:`event_to_device`
   laid them out in one buffer, else copied (xp) into a device workspace that is cached per
   detector and size;
2. ``cell keys``: per cell its hit row (hit ids 1..N directly, else a binary search of the
   sorted hit ids), its module (binary search of the detector's geometry keys), the channel range
   check of the CPU chain, and a 62-bit key (event of a batch, module, ch1, ch0, cell index); cells on no module
   get a sentinel key that sorts last;
3. an xp sort of the keys orders the cells by (module, ch1, ch0), as the CPU's ``sort_cells``;
4. ``union``: one thread per sorted cell scans back over the cells of its module down to the row
   below (a bounded window in sorted order) and joins 8-connected neighbours by a
   compare-and-swap union-find with path halving; the smaller index becomes the root;
5. ``flatten``: each cell's root; roots are the first cell of their cluster, so a prefix sum of
   the root flags over the sorted cells numbers the clusters in the CPU's order (computed in the
   same kernel, a block scan plus a single-pass decoupled look-back across blocks, which saves
   the host time of a separate xp scan); the cluster count is the one host synchronisation;
6. ``accumulate``: float64 atomics add the charge-weighted moments of the cell centres, taken
   relative to the root cell's centre (no cancellation), and the cell of largest charge;
7. ``finalize``: mean, weighted variance + pitch^2/12, module plane, layer and representative
   hit per cluster, and per hit its measurement (the last valid cell of the hit decides, as the
   CPU's fancy assignment does).

A batch of events (:func:`clusterization_batch_gpu`) runs the same launches once: the hit and
cell columns of all events one after the other, followed by each event's first hit and first
cell; a cell's hit is looked up among its own event's hits, and the event leads the sort key
(above the module), so clusters never join across events and come event by event, each event's
in the CPU's order. The last kernel also writes every measurement's event and every event's
first measurement (a second, small host read).

numba.cuda is imported at module level (importing it needs no device): numba's CUDA simulator
only substitutes module-level references to it. The workspace is reused between calls: calls
are ordered on the device's default stream and must not run concurrently from several threads.
"""

# numba.cuda's intrinsics (cuda.grid, cuda.threadIdx, cuda.atomic.*) are typing stubs that pylint
# misreads inside kernels:
# pylint: disable=no-value-for-parameter,too-many-function-args,comparison-with-callable
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numba import cuda, njit

from auditor.products import to_host
from reference.tracking.clusterization import Clusters
from reference.tracking.errors import TrackingInputError
from reference.tracking.event import Cells, Event, Hits
from reference.tracking.geometry import Detector, Layers
from reference.tracking.gpu import backend
from reference.tracking.simulation import module_planes
from reference.tracking.spacepoints import Measurements, measurements_from_hits

SENTINEL = np.iinfo(np.int64).max  #: sort key of cells on no module (they sort last)
KEY_BITS = 62  #: bits of the sort key: module, ch1, ch0 and cell index
POS_BITS = 27  #: bits of a sorted position in the largest-charge rank (up to 2**27 cells)
WEIGHT_FLOOR = 1e-6  #: weight of cells with charge <= 0, as on the CPU
SCAN_THREADS = 256  #: threads per block of the kernel that numbers the clusters
_AGGREGATE = np.int64(1) << 61  # prefix-sum status of a block: its own total is known
_PREFIX = np.int64(2) << 61  # ... its inclusive prefix is known
_VALUE = _AGGREGATE - 1

# Header of the integer workspace: per-call sizes, key layout, region offsets.
(_NH, _NC, _NM, _CAPC, _SH_MOD, _SH_CH1, _SH_CH0, _MASK_CH1, _MASK_CH0, _MASK_CELL,
 _DET_KEYS, _DET_ORDER, _DET_NU, _DET_NV, _DET_LAYER,
 _KEY, _PARENT, _ROOT, _STATUS, _CUM, _CELL_ROW, _CELL_LABEL, _BEST, _CROOT, _NCELL,
 _F_MINHU, _F_MAXHU, _F_HV, _F_PU, _F_PV, _F_PLANES, _F_SUMS, _TICKET, _SH_EV, _MASK_MOD, _NE) = range(36)
_HEADER = 64
_NCL = _HEADER - 2  # number of clusters (the total of the prefix sum of root flags)
_UNSORTED = _HEADER - 1  # 1 where hit ids decrease somewhere, -1 otherwise
_HIT_LAST = _HEADER  # per hit: its last valid cell (input order), -1 if none
# _UNSORTED and every _HIT_LAST slot are -1 between calls: the measurement kernel resets what
# the key kernel set, and every other exit resets them on the host (``_reset_hits``).


@dataclass(frozen=True)
class ClusterizationConfig:
    """Options of the GPU clusterization.

    dtype: floating type of the products on the device, "float32" (default) or "float64": local
    positions, variances, charges and module planes of the products. Moments are accumulated in
    float64 either way; integer fields (module, layer, hit ids, labels) are int64.
    """

    dtype: str = "float32"

    def __post_init__(self):
        if self.dtype not in ("float32", "float64"):
            raise TrackingInputError(f"The GPU dtype must be 'float32' or 'float64', not {self.dtype!r}.")


@dataclass(frozen=True)
class ModuleCells:
    """Cells with their module row (index into the detector), channels and charge: the input of
    :func:`clusterize_gpu`, like the arguments of the CPU's ``clusterize`` (numpy or xp arrays)."""

    module: Any
    ch0: Any
    ch1: Any
    value: Any

    def __len__(self) -> int:
        return len(self.module)


@dataclass(frozen=True)
class DeviceDetector:
    """A detector's module table on the device, built once per detector (:func:`device_detector`).

    int_table (int64): sorted geometry keys, their module rows, channel counts nu and nv, layer
    index, n_modules each. float_table (float64): minhu, maxhu, hv, pitch_u, pitch_v, n_modules
    each, then the (n_modules, 12) module planes (centre, U, V, W). layers: the layer table as xp
    arrays. bits: bits of the sort key taken by module, ch1 and ch0.
    """

    int_table: Any
    float_table: Any
    layers: Layers
    n_modules: int
    bits: tuple


@dataclass(frozen=True)
class _Workspace:
    """Device scratch memory of one (detector, capacity): header + regions (see ``_header``)."""

    ints: Any
    floats: Any
    ints_k: Any
    floats_k: Any
    header: np.ndarray
    stage: Any  # int64 hit and cell columns of events whose columns are not laid out in one buffer
    stage_k: Any
    detector: Detector


class Identity:
    """Hashable handle comparing by identity, for caches keyed by detectors or layer tables
    (which hold arrays and are not hashable)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other) -> bool:
        return isinstance(other, Identity) and other.obj is self.obj


# ----------------------------------------------------------------------------------------------
# Scalar helpers


def _plain_mul(a, b):
    return a * b


def _rounded_mul():
    """A float64 product rounded on its own, for the cell centres. NVVM contracts a product and
    the add that follows it into one fused multiply-add (a single rounding); the CPU chain rounds
    the product first. The difference is below 1e-16 mm, but where the CPU's centre is exactly 0
    (a cell on a module's centre line) the GPU's was not, and a relative comparison cannot match
    0 against 1e-16. libdevice's dmul_rn is never contracted; the simulator rounds as the CPU."""
    if backend.simulated():
        return _plain_mul
    from numba.cuda import libdevice  # pylint: disable=import-outside-toplevel

    return libdevice.dmul_rn


@njit(inline="always")
def charge_rank(w, position):
    """Integer rising with the charge ``w`` > 0 (24 mantissa bits) and falling with the sorted
    position: its maximum is the largest charge, ties going to the first cell."""
    mantissa, exponent = math.frexp(w)
    q = (np.int64(exponent + 1100) << 24) | np.int64(mantissa * 16777216.0)
    return (q << POS_BITS) | ((np.int64(1) << POS_BITS) - 1 - position)


@njit(inline="always")
def local_to_global(centre, axis_u, axis_v, l0, l1):
    """One global coordinate of the local point (l0, l1) on a plane (same formula as the CPU)."""
    return centre + l0 * axis_u + l1 * axis_v


# ----------------------------------------------------------------------------------------------
# Device functions and kernels, built on first use (one builder per function)


@lru_cache(maxsize=None)
def _dev_lower_bound():
    backend.cuda()

    @cuda.jit(device=True)
    def lower_bound(a, start, n, value):
        """Index (from ``start``) of the first of the n sorted values a[start:] that is >= value."""
        lo = start
        hi = start + n
        while lo < hi:
            mid = (lo + hi) // 2
            if a[mid] < value:
                lo = mid + 1
            else:
                hi = mid
        return lo - start

    return lower_bound


@lru_cache(maxsize=None)
def _dev_hit_row():
    backend.cuda()
    lower_bound = _dev_lower_bound()

    @cuda.jit(device=True)
    def hit_row(ev, start, nh, hid):
        """Row of hit id ``hid`` among the nh sorted hit ids ev[start:start + nh] (ids 1..N
        directly), or -1."""
        row = start + hid - 1
        if start <= row < start + nh and ev[row] == hid:
            return row
        row = start + lower_bound(ev, start, nh, hid)
        if row < start + nh and ev[row] == hid:
            return row
        return -1

    return hit_row


@lru_cache(maxsize=None)
def _dev_event_of():
    backend.cuda()

    @cuda.jit(device=True)
    def event_of(ev, base, ne, i):
        """Event of item i from the ne + 1 increasing first items ev[base:] of the events of a batch
        (the last event whose first item is at most i)."""
        lo = 0
        hi = ne + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if ev[base + mid] <= i:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1

    return event_of


@lru_cache(maxsize=None)
def _dev_module_of():
    backend.cuda()
    lower_bound = _dev_lower_bound()

    @cuda.jit(device=True)
    def module_of(wi, ev, nh, row):
        """Module row of hit ``row`` from its (volume, layer, module) ids, or -1."""
        key = (ev[nh + row] << 40) | (ev[2 * nh + row] << 24) | ev[3 * nh + row]
        nm = wi[_NM]
        pos = lower_bound(wi, wi[_DET_KEYS], nm, key)
        if pos < nm and wi[wi[_DET_KEYS] + pos] == key:
            return wi[wi[_DET_ORDER] + pos]
        return -1

    return module_of


@lru_cache(maxsize=None)
def _dev_write_key():
    backend.cuda()

    @cuda.jit(device=True)
    def write_key(wi, c, m, channels, e):
        """Sort key of cell c of event e of a batch, on module row m with channels (ch0, ch1)
        (sentinel when off the detector); resets its parent and label."""
        ch0, ch1 = channels
        ok = 0 <= m < wi[_NM] and ch0 >= 0 and ch1 >= 0
        ok = ok and ch0 < wi[wi[_DET_NU] + m] and ch1 < wi[wi[_DET_NV] + m]
        key = SENTINEL
        if ok:
            key = (e << wi[_SH_EV]) | (m << wi[_SH_MOD]) | (ch1 << wi[_SH_CH1]) | (ch0 << wi[_SH_CH0]) | c
        wi[wi[_KEY] + c] = key
        wi[wi[_PARENT] + c] = c
        wi[wi[_CELL_LABEL] + c] = -1
        return ok

    return write_key


@lru_cache(maxsize=None)
def _dev_reset_scan():
    backend.cuda()

    @cuda.jit(device=True)
    def reset_scan(wi, t, nc):
        """Clear the block status words and the block ticket of the cluster numbering."""
        if t == 0:
            wi[_TICKET] = 0
        if t <= nc // SCAN_THREADS:
            wi[wi[_STATUS] + t] = 0

    return reset_scan


@lru_cache(maxsize=None)
def _dev_find():
    backend.cuda()

    @cuda.jit(device=True)
    def find(wi, p0, i):
        """Root of i in the parent array at wi[p0:], halving the path on the way."""
        parent = wi[p0 + i]
        while parent != i:
            grand = wi[p0 + parent]
            if grand != parent:
                wi[p0 + i] = grand
            i = parent
            parent = wi[p0 + i]
        return i

    return find


@lru_cache(maxsize=None)
def _dev_union():
    backend.cuda()
    find = _dev_find()

    @cuda.jit(device=True)
    def union(wi, p0, a, b):
        """Join the sets of a and b: the larger root is hooked under the smaller by
        compare-and-swap; a failed swap (the root moved) retries from the value it returned."""
        while True:
            a = find(wi, p0, a)
            b = find(wi, p0, b)
            if a == b:
                return
            if a < b:
                a, b = b, a
            old = cuda.atomic.cas(wi, p0 + a, a, b)
            if old == a:
                return
            a = old

    return union


@lru_cache(maxsize=None)
def _dev_neighbour_scan():
    backend.cuda()
    union = _dev_union()

    @cuda.jit(device=True)
    def neighbour_scan(wi, k0, i):
        """Join sorted cell i with the 8-connected cells before it: the scan stops at another
        module, two rows down, or left of the neighbourhood in the row below."""
        s1 = wi[_SH_CH1]
        s0 = wi[_SH_CH0]
        key = wi[k0 + i]
        ch1 = (key >> s1) & wi[_MASK_CH1]
        ch0 = (key >> s0) & wi[_MASK_CH0]
        j = i - 1
        while j >= 0:
            other = wi[k0 + j]
            d1 = ch1 - ((other >> s1) & wi[_MASK_CH1])
            d0 = ch0 - ((other >> s0) & wi[_MASK_CH0])
            if (other >> wi[_SH_MOD]) != (key >> wi[_SH_MOD]) or d1 > 1 or (d1 == 1 and d0 > 1):
                return
            if -1 <= d0 <= 1:
                union(wi, wi[_PARENT], i, j)
            j -= 1

    return neighbour_scan


@lru_cache(maxsize=None)
def _dev_centre():
    backend.cuda()
    mul = _rounded_mul()

    @cuda.jit(device=True)
    def centre(wi, wf, key):
        """Local (u, v) of the centre of the cell with sort key ``key``, with the CPU chain's
        arithmetic: v = (ch1 + 1/2) pitch_v - h_v, the trapezoid's half width at v, then u."""
        m = (key >> wi[_SH_MOD]) & wi[_MASK_MOD]
        ch1 = (key >> wi[_SH_CH1]) & wi[_MASK_CH1]
        ch0 = (key >> wi[_SH_CH0]) & wi[_MASK_CH0]
        hv = wf[wi[_F_HV] + m]
        v = mul(ch1 + 0.5, wf[wi[_F_PV] + m]) - hv
        hu = (mul(wf[wi[_F_MINHU] + m], hv + v) + mul(wf[wi[_F_MAXHU] + m], hv - v)) / (2.0 * hv)
        return mul(ch0 + 0.5, wf[wi[_F_PU] + m]) - hu, v

    return centre


@lru_cache(maxsize=None)
def _dev_moments():
    backend.cuda()
    centre = _dev_centre()

    @cuda.jit(device=True)
    def moments(wi, wf, j):
        """(module, local0, local1, var0, var1, charge) of cluster j."""
        key = wi[wi[_KEY] + wi[wi[_CROOT] + j]]
        m = (key >> wi[_SH_MOD]) & wi[_MASK_MOD]
        ur, vr = centre(wi, wf, key)
        s = wi[_F_SUMS]
        cap = wi[_CAPC]
        sw = wf[s + j]
        mu = wf[s + cap + j] / sw
        mv = wf[s + 2 * cap + j] / sw
        pu = wf[wi[_F_PU] + m]
        pv = wf[wi[_F_PV] + m]
        var0 = max(wf[s + 3 * cap + j] / sw - mu * mu, 0.0) + pu * pu / 12.0
        var1 = max(wf[s + 4 * cap + j] / sw - mv * mv, 0.0) + pv * pv / 12.0
        return m, ur + mu, vr + mv, var0, var1, sw

    return moments


@lru_cache(maxsize=None)
def _dev_rep_cell():
    backend.cuda()

    @cuda.jit(device=True)
    def rep_cell(wi, j):
        """Input index of the cell of largest charge of cluster j."""
        low = (np.int64(1) << POS_BITS) - 1
        position = low - (wi[wi[_BEST] + j] & low)
        return wi[wi[_KEY] + position] & wi[_MASK_CELL]

    return rep_cell


@lru_cache(maxsize=None)
def _dev_batch_rows():
    backend.cuda()
    event_of = _dev_event_of()

    @cuda.jit(device=True)
    def hit_range(ev, hb, ne, t, nh):
        """(event, first hit row, hit count) of cell t: one event (ne = 0) or its event of a batch,
        whose first hits start at ev[hb] and first cells at ev[hb + ne + 1]."""
        if ne == 0:
            return 0, 0, nh
        e = event_of(ev, hb + ne + 1, ne, t)
        return e, ev[hb + e], ev[hb + e + 1] - ev[hb + e]

    @cuda.jit(device=True)
    def ids_descend(ev, hb, ne, t):
        """Hit t + 1 has a smaller id than hit t of the same event."""
        return ev[t + 1] < ev[t] and (ne == 0 or ev[hb + event_of(ev, hb, ne, t) + 1] != t + 1)

    return hit_range, ids_descend


@lru_cache(maxsize=None)
def _event_keys_kernel():
    """Kernel: hit ids order check; per cell its hit row, module, key and the hit's last cell.

    ``ne`` > 0: a batch of ne events, whose first hit rows and first cells follow the columns
    (ne + 1 values each, see :func:`~reference.tracking.gpu.batch.batch_to_device`); a cell's hit
    is looked up among its own event's hits, and its event goes into the key. ``ne`` = 0: one
    event."""
    backend.cuda()
    hit_row = _dev_hit_row()
    hit_range, ids_descend = _dev_batch_rows()
    module_of = _dev_module_of()
    write_key = _dev_write_key()
    reset_scan = _dev_reset_scan()

    @cuda.jit
    def event_keys(wi, ev, nh, nc, ne):
        t = cuda.grid(1)
        if t == 0:
            wi[_NH] = nh
            wi[_NC] = nc
            wi[_NE] = ne
            wi[_NCL] = 0
        reset_scan(wi, t, nc)
        hb = 4 * nh + 3 * nc
        if t + 1 < nh and ids_descend(ev, hb, ne, t):
            wi[_UNSORTED] = 1
        if t < nc:
            e, hs, n = hit_range(ev, hb, ne, t, nh)
            row = hit_row(ev, hs, n, ev[4 * nh + t])
            m = module_of(wi, ev, nh, row) if row >= 0 else -1
            wi[wi[_CELL_ROW] + t] = row
            if write_key(wi, t, m, (ev[4 * nh + nc + t], ev[4 * nh + 2 * nc + t]), e):
                cuda.atomic.max(wi, _HIT_LAST + row, t)

    return event_keys


@lru_cache(maxsize=None)
def _module_keys_kernel():
    """Kernel: per cell (module row given) its key."""
    backend.cuda()
    write_key = _dev_write_key()
    reset_scan = _dev_reset_scan()

    @cuda.jit
    def module_keys(wi, ev, nc):
        t = cuda.grid(1)
        if t == 0:
            wi[_NH] = 0
            wi[_NC] = nc
            wi[_NE] = 0
            wi[_NCL] = 0
        reset_scan(wi, t, nc)
        if t < nc:
            wi[wi[_CELL_ROW] + t] = -1
            write_key(wi, t, ev[t], (ev[nc + t], ev[2 * nc + t]), 0)

    return module_keys


@lru_cache(maxsize=None)
def _union_kernel():
    """Kernel: every sorted cell joins its earlier 8-connected neighbours."""
    backend.cuda()
    neighbour_scan = _dev_neighbour_scan()

    @cuda.jit
    def union_kernel(wi):
        i = cuda.grid(1)
        if i < wi[_NC] and wi[wi[_KEY] + i] != SENTINEL:
            neighbour_scan(wi, wi[_KEY], i)

    return union_kernel


@lru_cache(maxsize=None)
def _dev_root():
    backend.cuda()

    @cuda.jit(device=True)
    def root(wi, wf, i):
        """Root of sorted cell i (-1 for cells on no module); zeroes the moments of slot i."""
        cap = wi[_CAPC]
        for k in range(5):
            wf[wi[_F_SUMS] + k * cap + i] = 0.0
        wi[wi[_BEST] + i] = 0
        wi[wi[_NCELL] + i] = 0
        if wi[wi[_KEY] + i] == SENTINEL:
            return -1
        r = i
        while wi[wi[_PARENT] + r] != r:
            r = wi[wi[_PARENT] + r]
        return r

    return root


@lru_cache(maxsize=None)
def _dev_block_scan():
    backend.cuda()

    @cuda.jit(device=True)
    def block_scan(shared, tid):
        """Inclusive prefix sum of shared[0:SCAN_THREADS] by the block's threads."""
        cuda.syncthreads()
        offset = 1
        while offset < SCAN_THREADS:
            value = shared[tid - offset] if tid >= offset else 0
            cuda.syncthreads()
            shared[tid] += value
            cuda.syncthreads()
            offset *= 2

    return block_scan


@lru_cache(maxsize=None)
def _dev_look_back():
    backend.cuda()

    @cuda.jit(device=True)
    def look_back(wi, b, total):
        """Exclusive prefix of block b (blocks numbered in start order): publish the block's own
        total, add the totals of earlier blocks back to the first whose inclusive prefix is
        known, then publish the inclusive prefix (single-pass decoupled look-back)."""
        status = wi[_STATUS]
        cuda.atomic.exch(wi, status + b, _AGGREGATE | total)
        prefix = 0
        j = b - 1
        while j >= 0:
            word = cuda.atomic.add(wi, status + j, 0)
            if word != 0:
                prefix += word & _VALUE
                j = -1 if word & _PREFIX else j - 1
        cuda.atomic.exch(wi, status + b, _PREFIX | (prefix + total))
        return prefix

    return look_back


@lru_cache(maxsize=None)
def _flatten_kernel():
    """Kernel: per sorted cell its root, and the clusters numbered by an inclusive prefix sum of
    the root flags over the sorted cells (so in order of first cell, as on the CPU)."""
    backend.cuda()
    root_of = _dev_root()
    block_scan = _dev_block_scan()
    look_back = _dev_look_back()

    @cuda.jit
    def flatten_kernel(wi, wf):
        shared = cuda.shared.array(SCAN_THREADS, np.int64)
        ticket = cuda.shared.array(1, np.int64)
        tid = cuda.threadIdx.x
        if tid == 0:
            ticket[0] = cuda.atomic.add(wi, _TICKET, 1)
        cuda.syncthreads()
        b = ticket[0]
        i = b * SCAN_THREADS + tid
        nc = wi[_NC]
        r = -1
        if i < nc:
            r = root_of(wi, wf, i)
            wi[wi[_ROOT] + i] = r
        shared[tid] = 1 if r == i else 0
        block_scan(shared, tid)
        if tid == 0:
            ticket[0] = look_back(wi, b, shared[SCAN_THREADS - 1])
        cuda.syncthreads()
        if i < nc:
            wi[wi[_CUM] + i] = ticket[0] + shared[tid]
        if i == nc - 1:
            wi[_NCL] = ticket[0] + shared[tid]

    return flatten_kernel


@lru_cache(maxsize=None)
def _accumulate_kernel():
    """Kernel: per cell, atomics into its cluster's moments, cell count and largest charge."""
    backend.cuda()
    centre = _dev_centre()

    @cuda.jit
    def accumulate(wi, wf, values):
        i = cuda.grid(1)
        if i >= wi[_NC]:
            return
        key = wi[wi[_KEY] + i]
        if key == SENTINEL:
            return
        root = wi[wi[_ROOT] + i]
        label = wi[wi[_CUM] + root] - 1
        c = key & wi[_MASK_CELL]
        u, v = centre(wi, wf, key)
        ur, vr = centre(wi, wf, wi[wi[_KEY] + root])
        w = np.float64(values[c])
        if w <= 0.0:
            w = WEIGHT_FLOOR
        du = u - ur
        dv = v - vr
        s = wi[_F_SUMS] + label
        cap = wi[_CAPC]
        cuda.atomic.add(wf, s, w)
        cuda.atomic.add(wf, s + cap, w * du)
        cuda.atomic.add(wf, s + 2 * cap, w * dv)
        cuda.atomic.add(wf, s + 3 * cap, w * du * du)
        cuda.atomic.add(wf, s + 4 * cap, w * dv * dv)
        cuda.atomic.add(wi, wi[_NCELL] + label, 1)
        cuda.atomic.max(wi, wi[_BEST] + label, charge_rank(w, i))
        if root == i:
            wi[wi[_CROOT] + label] = i
        wi[wi[_CELL_LABEL] + c] = label

    return accumulate


@lru_cache(maxsize=None)
def _dev_batch_columns():
    backend.cuda()

    @cuda.jit(device=True)
    def cluster_event(wi, j):
        """Event of cluster j in a batch (from its root's sort key)."""
        return wi[wi[_KEY] + wi[wi[_CROOT] + j]] >> wi[_SH_EV]

    @cuda.jit(device=True)
    def batch_columns(wi, out_i, t, n, ne):
        """Cluster t's event into the event column out_i[base:base + n], and the first cluster of
        every event (ne + 1 values, the last n) after it; base = 2 n + hits."""
        base = 2 * n + wi[_NH]
        e = cluster_event(wi, t)
        out_i[base + t] = e
        previous = cluster_event(wi, t - 1) if t > 0 else -1
        for k in range(previous + 1, e + 1):
            out_i[base + n + k] = t
        if t == n - 1:
            for k in range(e + 1, ne + 1):
                out_i[base + n + k] = n

    return batch_columns


@lru_cache(maxsize=None)
def _measurement_kernel():
    """Kernel: per cluster its measurement fields; per hit its measurement; for a batch of events
    (``_NE`` > 0), per cluster its event and per event its first cluster."""
    backend.cuda()
    moments = _dev_moments()
    rep_cell = _dev_rep_cell()
    batch_columns = _dev_batch_columns()

    @cuda.jit
    def finalize(wi, wf, ev, out_f, out_i):
        t = cuda.grid(1)
        n = wi[_NCL]
        ne = wi[_NE]
        if t < n:
            m, l0, l1, var0, var1, _ = moments(wi, wf, t)
            out_f[t] = l0
            out_f[n + t] = l1
            out_f[2 * n + t] = var0
            out_f[3 * n + t] = var1
            for k in range(12):
                out_f[4 * n + 12 * t + k] = wf[wi[_F_PLANES] + 12 * m + k]
            out_i[t] = wi[wi[_DET_LAYER] + m]
            out_i[n + t] = ev[wi[wi[_CELL_ROW] + rep_cell(wi, t)]]
            if ne > 0:
                batch_columns(wi, out_i, t, n, ne)
        if t == 0:
            wi[_UNSORTED] = -1
        if t < wi[_NH]:
            last = wi[_HIT_LAST + t]
            out_i[2 * n + t] = wi[wi[_CELL_LABEL] + last] if last >= 0 else -1
            wi[_HIT_LAST + t] = -1

    return finalize


@lru_cache(maxsize=None)
def _cluster_kernel():
    """Kernel: per cluster the fields of :class:`Clusters`; per cell its cluster label."""
    backend.cuda()
    moments = _dev_moments()
    rep_cell = _dev_rep_cell()

    @cuda.jit
    def finalize(wi, wf, out_f, out_i):
        t = cuda.grid(1)
        n = wi[_NCL]
        if t < n:
            m, l0, l1, var0, var1, charge = moments(wi, wf, t)
            out_f[t] = l0
            out_f[n + t] = l1
            out_f[2 * n + t] = var0
            out_f[3 * n + t] = var1
            out_f[4 * n + t] = charge
            out_i[t] = m
            out_i[n + t] = wi[wi[_NCELL] + t]
            out_i[2 * n + t] = rep_cell(wi, t)
        if t < wi[_NC]:
            out_i[3 * n + t] = wi[wi[_CELL_LABEL] + t]

    return finalize


# ----------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------
# Host side: device tables, workspace, launches


def _address(array) -> int:
    data = array.data
    return data.ptr if hasattr(data, "ptr") else array.__array_interface__["data"][0]


def _owner(array):
    while array.base is not None and hasattr(array.base, "shape"):
        array = array.base
    return array


def _follow(arrays: list, base) -> bool:
    """True when the C-contiguous ``arrays`` (views of ``base``) follow one another in memory."""
    position = _address(arrays[0])
    for a in arrays:
        if _owner(a) is not base or not a.flags.c_contiguous or a.dtype != base.dtype or _address(a) != position:
            return False
        position += a.nbytes
    return True


def consecutive_block(arrays: list):
    """The 1-D view covering ``arrays`` when they lie one after the other, C-contiguous and of one
    dtype, in one xp (or numpy) buffer, as :func:`event_to_device` and the GPU clusterization
    lay them out; None otherwise."""
    base = _owner(arrays[0])
    if base is arrays[0] or base.ndim != 1 or not _follow(arrays, base):
        return None
    start = (_address(arrays[0]) - _address(base)) // base.itemsize
    stop = start + sum(a.size for a in arrays)
    return base[start:stop] if stop <= base.size else None


def to_device(product):
    """A copy of a product dataclass with xp arrays in place of numpy arrays (nested too)."""
    xp = backend.xp()
    values = {}
    for f in dataclasses.fields(product):
        value = getattr(product, f.name)
        if dataclasses.is_dataclass(value):
            value = to_device(value)
        elif hasattr(value, "shape"):
            value = xp.asarray(value)
        values[f.name] = value
    return type(product)(**values)


def event_to_device(event: Event) -> Event:
    """The event with its hits and cells as xp arrays, laid out for the GPU clusterization: the
    integer columns (hit_id, volume_id, layer_id, module_id of the hits, then hit_id, ch0, ch1 of
    the cells) become int64 views, one after the other, of one device buffer, so that the
    kernels read them in place. Particles and truth stay on the host."""
    xp = backend.xp()
    hits = to_device(event.hits)
    if event.cells is None:
        return Event(hits, None, event.particles, event.truth, dict(event.info))
    cells = to_device(event.cells)
    columns = [hits.hit_id, hits.volume_id, hits.layer_id, hits.module_id, cells.hit_id, cells.ch0, cells.ch1]
    block = xp.concatenate(columns).astype(np.int64, copy=False)
    nh, nc = len(hits), len(cells)
    part = ([block[k * nh:(k + 1) * nh] for k in range(4)]
            + [block[4 * nh + k * nc:4 * nh + (k + 1) * nc] for k in range(3)])
    hits = dataclasses.replace(hits, hit_id=part[0], volume_id=part[1], layer_id=part[2], module_id=part[3])
    cells = dataclasses.replace(cells, hit_id=part[4], ch0=part[5], ch1=part[6])
    return Event(hits, cells, event.particles, event.truth, dict(event.info))


def _bits(count: int) -> int:
    """Bits needed for the values 0 .. count-1."""
    return max(int(count) - 1, 0).bit_length()


def _channel_counts(detector: Detector) -> tuple:
    """Channels per module along u and v, as the CPU chain's range check computes them."""
    nv = np.ceil(2 * detector.hv_mm / detector.pitch_v_mm - 1e-6).astype(np.int64)
    nu = np.ceil(2 * np.maximum(detector.maxhu_mm, detector.minhu_mm) / detector.pitch_u_mm - 1e-6).astype(np.int64)
    return nu, nv


def device_detector(detector: Detector) -> DeviceDetector:
    """The module table of ``detector`` on the device; built on the first call for a detector
    object and cached (by identity) for the next ones."""
    if not isinstance(detector, Detector):
        raise TrackingInputError("The GPU clusterization needs a Detector description.")
    return _cached_device_detector(Identity(detector))


@lru_cache(maxsize=4)
def _cached_device_detector(handle: Identity) -> DeviceDetector:
    detector = handle.obj
    xp = backend.xp()
    nu, nv = _channel_counts(detector)
    ints = np.concatenate([detector.sorted_keys, detector.sorted_order, nu, nv, detector.layer_index]).astype(np.int64)
    floats = np.concatenate([detector.minhu_mm, detector.maxhu_mm, detector.hv_mm, detector.pitch_u_mm,
                             detector.pitch_v_mm, module_planes(detector).ravel()]).astype(np.float64)
    n = len(detector)
    bits = (_bits(n), _bits(max(int(nv.max(initial=1)), 1)), _bits(max(int(nu.max(initial=1)), 1)))
    return DeviceDetector(xp.asarray(ints), xp.asarray(floats), to_device(detector.layers), n, bits)


def _capacity(n: int) -> int:
    return max(1024, 1 << (int(n) - 1).bit_length())


def key_fits(dev: DeviceDetector, cap_c: int, cap_e: int = 1) -> bool:
    """Whether ``cap_c`` cells of ``cap_e`` events fit the sort key (event, module, ch1, ch0,
    cell index) and the largest-charge rank."""
    return sum(dev.bits) + _bits(cap_e) + _bits(cap_c) <= KEY_BITS and cap_c <= 1 << POS_BITS


def _header(dev: DeviceDetector, cap_h: int, cap_c: int, cap_e: int = 1) -> tuple:
    """Header of the integer workspace and the sizes of both workspaces (``cap_e``: events of a
    batch, whose bits lead the sort key)."""
    bm, b1, b0 = dev.bits
    bi = _bits(cap_c)
    if not key_fits(dev, cap_c, cap_e):
        raise TrackingInputError(f"Too many cells ({cap_c}) for the {KEY_BITS}-bit sort key of this detector.")
    nm = dev.n_modules
    h = np.zeros(_HEADER, np.int64)
    h[[_NM, _CAPC, _SH_CH0, _SH_CH1, _SH_MOD, _SH_EV]] = nm, cap_c, bi, bi + b0, bi + b0 + b1, bi + b0 + b1 + bm
    h[[_MASK_CH0, _MASK_CH1, _MASK_CELL, _MASK_MOD]] = (1 << b0) - 1, (1 << b1) - 1, (1 << bi) - 1, (1 << bm) - 1
    h[_UNSORTED] = -1
    position = _HEADER + cap_h
    regions = [(_DET_KEYS, nm), (_DET_ORDER, nm), (_DET_NU, nm), (_DET_NV, nm), (_DET_LAYER, nm)]
    regions += [(slot, cap_c) for slot in (_KEY, _PARENT, _ROOT, _CUM, _CELL_ROW, _CELL_LABEL, _BEST, _CROOT,
                                           _NCELL)]
    regions += [(_STATUS, cap_c // SCAN_THREADS + 1)]
    for slot, size in regions:
        h[slot] = position
        position += size
    fposition = 0
    for slot, size in [(_F_MINHU, nm), (_F_MAXHU, nm), (_F_HV, nm), (_F_PU, nm), (_F_PV, nm),
                       (_F_PLANES, 12 * nm), (_F_SUMS, 5 * cap_c)]:
        h[slot] = fposition
        fposition += size
    return h, position, fposition


@lru_cache(maxsize=32)
def _cached_workspace(handle: Identity, caps: tuple, stream: int) -> _Workspace:  # pylint: disable=unused-argument
    xp = backend.xp()
    dev = device_detector(handle.obj)
    cap_h, cap_c, _ = caps
    header, n_int, n_float = _header(dev, *caps)
    ints = xp.empty(n_int, np.int64)
    floats = xp.empty(n_float, np.float64)
    stage = xp.empty(4 * cap_h + 3 * cap_c, np.int64)
    ints[:_HEADER] = xp.asarray(header)
    ints[_HEADER:_HEADER + cap_h] = -1
    ints[header[_DET_KEYS]:header[_DET_KEYS] + len(dev.int_table)] = dev.int_table
    floats[:len(dev.float_table)] = dev.float_table
    return _Workspace(ints, floats, backend.kernel_arg(ints), backend.kernel_arg(floats), header, stage,
                      backend.kernel_arg(stage), handle.obj)


def _workspace(detector: Detector, n_hits: int, n_cells: int, n_events: int = 1) -> _Workspace:
    """The scratch buffers for an event (or a batch of ``n_events``) of this size, one set per
    stream: events in flight on different streams (throughput mode) must not share them."""
    caps = (_capacity(n_hits), _capacity(n_cells), 1 << _bits(n_events))
    return _cached_workspace(Identity(detector), caps, backend.stream_key())


def _column_block(ws: _Workspace, columns: list):
    """Kernel view of the integer columns one after the other: their own buffer when they lie so
    already (see :func:`event_to_device`), else a copy in the workspace."""
    xp = backend.xp()
    block = consecutive_block(columns)
    if block is not None and block.dtype == np.int64:
        return backend.kernel_arg(block)
    total = sum(len(c) for c in columns)
    try:
        xp.concatenate([xp.asarray(c) for c in columns], out=ws.stage[:total])
    except (TypeError, ValueError) as error:
        raise TrackingInputError(f"Cell and hit columns must be 1-D integer arrays ({error}).") from error
    return ws.stage_k


def _checked_lengths(groups: list) -> None:
    """Every column of a group (hits, cells) is 1-D with the length of the group's first column."""
    for name, columns in groups:
        shape = (len(columns[0]),)
        if any(getattr(c, "shape", None) != shape for c in columns):
            raise TrackingInputError(f"The {name} columns must be 1-D arrays of one length.")


def _values(value):
    """Charges as a kernel view (any real dtype, read as float64 by the kernels)."""
    xp = backend.xp()
    value = xp.asarray(value)
    if value.dtype.kind not in "fiu":
        raise TrackingInputError("Cell values must be real numbers.")
    return backend.kernel_arg(value)


def _reset_hits(ws: _Workspace, n_hits: int) -> None:
    """Restore the between-calls state of the hit slots (see ``_HIT_LAST``)."""
    ws.ints[_UNSORTED:_HIT_LAST + n_hits] = -1


def _label_clusters(ws: _Workspace, n_cells: int) -> tuple:
    """Sort keys, union-find, roots, prefix sum; returns (number of clusters, hits unsorted)."""
    h = ws.header
    ws.ints[h[_KEY]:h[_KEY] + n_cells].sort()
    _union_kernel()[backend.blocks(n_cells)](ws.ints_k)
    _flatten_kernel()[backend.blocks(n_cells, SCAN_THREADS)](ws.ints_k, ws.floats_k)
    n_clusters, unsorted = (int(x) for x in to_host(ws.ints[_NCL:_HEADER]))
    return n_clusters, unsorted == 1


def _empty_clusters(config: ClusterizationConfig) -> Clusters:
    xp = backend.xp()
    f = xp.zeros(0, config.dtype)
    i = xp.zeros(0, np.int64)
    return Clusters(i, f, f, f, f, i, f, i, i)


def clusterize_gpu(cells: ModuleCells, detector: Detector,
                   config: ClusterizationConfig = ClusterizationConfig()) -> Clusters:
    """GPU twin of the CPU ``clusterize``: cells with module rows -> :class:`Clusters` (xp arrays).

    Cells whose module row or channels lie outside the detector join no cluster (cell_label
    -1). local0/1, var0/1 and charge are in ``config.dtype`` (float32 by default); the other
    fields are int64. Clusters come in the CPU's order (by first cell in (module, ch1, ch0)).
    rep_cell is the cell of largest charge; charges equal to 24 significant bits (float32
    resolution) count as equal, and ties go to the first cell in that order, as on the CPU.
    """
    n = len(cells)
    _checked_lengths([("cell", [cells.module, cells.ch0, cells.ch1, cells.value])])
    if n == 0:
        return _empty_clusters(config)
    xp = backend.xp()
    ws = _workspace(detector, 0, n)
    block = _column_block(ws, [cells.module, cells.ch0, cells.ch1])
    values = _values(cells.value)
    _module_keys_kernel()[backend.blocks(n)](ws.ints_k, block, n)
    n_cl, _ = _label_clusters(ws, n)
    _accumulate_kernel()[backend.blocks(n)](ws.ints_k, ws.floats_k, values)
    out_f = xp.empty(5 * n_cl, config.dtype)
    out_i = xp.empty(3 * n_cl + n, np.int64)
    _cluster_kernel()[backend.blocks(max(n_cl, n))](ws.ints_k, ws.floats_k, backend.kernel_arg(out_f),
                                                    backend.kernel_arg(out_i))
    f = [out_f[k * n_cl:(k + 1) * n_cl] for k in range(5)]
    i = [out_i[k * n_cl:(k + 1) * n_cl] for k in range(3)]
    return Clusters(i[0], f[0], f[1], f[2], f[3], i[1], f[4], i[2], out_i[3 * n_cl:])


def _hits_path(event: Event, detector: Detector | None, config: ClusterizationConfig) -> Measurements:
    """Events without cells (or without a detector): hits taken as measurements, as the CPU does,
    on the host, then copied to the device."""
    meas, _ = measurements_from_hits(to_host(event.hits), detector)
    if len(meas) == 0:
        raise TrackingInputError("No hit of the event lies on a module of the detector description.")
    dtype = np.dtype(config.dtype)
    meas = dataclasses.replace(meas, planes=meas.planes.astype(dtype), local0=meas.local0.astype(dtype),
                               local1=meas.local1.astype(dtype), var0=meas.var0.astype(dtype),
                               var1=meas.var1.astype(dtype))
    return to_device(meas)


def _sorted_hits(hits: Hits) -> tuple:
    """Hits in increasing hit id order, and the order (for events with unsorted hit ids)."""
    hits = to_device(hits)
    order = backend.xp().argsort(hits.hit_id, kind="stable")
    return Hits(*(getattr(hits, f.name)[order] for f in dataclasses.fields(hits))), order


def _measure(ws: _Workspace, columns: tuple, sizes: tuple, config: ClusterizationConfig):
    """The cell path's kernels on the integer block and charges ``columns`` of ``sizes`` = (hits,
    cells, events of a batch or 0): (measurements, the integer output) or None when hit ids are
    not sorted. For a batch, the integer output ends with the event column (one per measurement)
    and the first measurement of every event (events + 1)."""
    xp = backend.xp()
    nh, nc, ne = sizes
    block, values = columns
    try:
        _event_keys_kernel()[backend.blocks(max(nh, nc))](ws.ints_k, block, nh, nc, ne)
        n_cl, unsorted = _label_clusters(ws, nc)
        if unsorted or n_cl == 0:
            _reset_hits(ws, nh)
            if n_cl == 0 and not unsorted:
                raise TrackingInputError("No cell of the event lies on a module of the detector description.")
            return None
        _accumulate_kernel()[backend.blocks(nc)](ws.ints_k, ws.floats_k, values)
        out_f = xp.empty(16 * n_cl, config.dtype)
        out_i = xp.empty(2 * n_cl + nh + (n_cl + ne + 1 if ne else 0), np.int64)
        _measurement_kernel()[backend.blocks(max(n_cl, nh))](ws.ints_k, ws.floats_k, block, backend.kernel_arg(out_f),
                                                             backend.kernel_arg(out_i))
    except BaseException:
        _reset_hits(ws, nh)
        raise
    f = [out_f[k * n_cl:(k + 1) * n_cl] for k in range(4)]
    layers = device_detector(ws.detector).layers
    return Measurements(out_f[4 * n_cl:].reshape(n_cl, 12), f[0], f[1], f[2], f[3], out_i[:n_cl],
                        out_i[n_cl:2 * n_cl], out_i[2 * n_cl:2 * n_cl + nh], layers), out_i


def _cell_measurements(hits: Hits, cells: Cells, detector: Detector, config: ClusterizationConfig):
    """Measurements of the cells of an event (None when the hit ids are not sorted)."""
    columns = [hits.hit_id, hits.volume_id, hits.layer_id, hits.module_id, cells.hit_id, cells.ch0, cells.ch1]
    _checked_lengths([("hit", columns[:4]), ("cell", columns[4:] + [cells.value])])
    nh, nc = len(hits.hit_id), len(cells.hit_id)
    ws = _workspace(detector, nh, nc)
    measured = _measure(ws, (_column_block(ws, columns), _values(cells.value)), (nh, nc, 0), config)
    return None if measured is None else measured[0]


def batch_groups(cell_counts: list, detector: Detector) -> list[tuple[int, int]]:
    """The events of a batch (``cell_counts``: cells per event) in consecutive groups (first,
    stop) whose cells fit the sort key together, each as long as it can be; an event alone always
    makes a group (at pile-up 200 sixteen events fit together)."""
    dev = device_detector(detector)
    groups, first, total = [], 0, 0
    for k, n in enumerate(cell_counts):
        if k > first and not key_fits(dev, _capacity(total + n), 1 << _bits(k + 1 - first)):
            groups.append((first, k))
            first, total = k, 0
        total += n
    groups.append((first, len(cell_counts)))
    return groups


def clusterization_batch_gpu(batch, detector: Detector, config: ClusterizationConfig = ClusterizationConfig()):
    """The cells of a batch of events (:class:`~reference.tracking.gpu.batch.DeviceBatch`) in one
    pass: (measurements one event after the other, each event's as :func:`clusterization_gpu`
    gives them, with ``hit_measurement`` indexing the batch; the host counts per event; the
    event column, xp int64). The event leads the sort key, so clusters never join across events.
    None when the batch's cells do not fit the sort key or hit ids are not sorted (then run the
    events one at a time)."""
    nh, nc, ne = int(batch.hit_starts[-1]), int(batch.cell_starts[-1]), len(batch.hit_starts) - 1
    if not key_fits(device_detector(detector), _capacity(nc), 1 << _bits(ne)):
        return None
    measured = _measure(_workspace(detector, nh, nc, ne), (backend.kernel_arg(batch.block), _values(batch.values)),
                        (nh, nc, ne), config)
    if measured is None:
        return None
    meas, out_i = measured
    n_cl = len(meas)
    counts = np.diff(to_host(out_i[3 * n_cl + nh:]))
    if not counts.all():
        raise TrackingInputError(f"No cell of event {int(np.argmin(counts))} of the batch lies on a module of the "
                                 "detector description.")
    return meas, counts, out_i[2 * n_cl + nh:3 * n_cl + nh]


def clusterization_gpu(event: Event, detector: Detector | None,
                       config: ClusterizationConfig = ClusterizationConfig()) -> Measurements:
    """GPU twin of the chain's clusterization stage: event -> :class:`Measurements` (xp arrays).

    The event's columns may be numpy (copied to the device) or xp arrays (device resident;
    :func:`event_to_device` lays them out to be read in place). Cells are mapped to modules
    through their hits and range-checked exactly as on the CPU. planes, local0/1 and var0/1 are
    in ``config.dtype`` (float32 by default); layer_index, hit_id and hit_measurement are int64.
    Measurements come in the CPU's order, but only the set is promised (see
    :func:`canonical_order`). Events without cells or without a detector take their hits as
    measurements on the host, as the CPU does, and copy them to the device.
    """
    hits = event.hits
    if len(hits) == 0:
        raise TrackingInputError("The event has no hits.")
    if event.cells is None or detector is None or len(event.cells) == 0:
        return _hits_path(event, detector, config)
    meas = _cell_measurements(hits, event.cells, detector, config)
    if meas is None:
        sorted_hits, order = _sorted_hits(hits)
        meas = _cell_measurements(sorted_hits, event.cells, detector, config)
        hit_measurement = backend.xp().empty_like(meas.hit_measurement)
        hit_measurement[order] = meas.hit_measurement
        meas = dataclasses.replace(meas, hit_measurement=hit_measurement)
    return meas


def canonical_order(measurements: Measurements) -> np.ndarray:
    """Host permutation putting measurements in a canonical order: by module (layer, then plane
    centre z, y, x) then local0, local1, all rounded to float32 so that float32 and float64
    products order alike."""
    planes = to_host(measurements.planes).astype(np.float32)
    keys = (to_host(measurements.local1).astype(np.float32), to_host(measurements.local0).astype(np.float32),
            planes[:, 0], planes[:, 1], planes[:, 2], to_host(measurements.layer_index))
    return np.lexsort(keys)


def sort_measurements(measurements: Measurements) -> Measurements:
    """Host copy of ``measurements`` in :func:`canonical_order`, hit_measurement renumbered."""
    host = to_host(measurements)
    order = canonical_order(host)
    new_index = np.empty(len(order), np.int64)
    new_index[order] = np.arange(len(order))
    hm = host.hit_measurement
    renumbered = np.where(hm >= 0, new_index[np.maximum(hm, 0)], -1)
    return Measurements(host.planes[order], host.local0[order], host.local1[order], host.var0[order],
                        host.var1[order], host.layer_index[order], host.hit_id[order], renumbered, host.layers)
