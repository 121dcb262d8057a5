"""Combinatorial Kalman filter on the device: the algorithm and :class:`CkfConfig` of
:mod:`reference.tracking.ckf`, one CUDA thread per seed.

0. Device tables: the measurements' global phi and coordinate 2, the per-layer bounds and window
   tolerances (``layer_bounds``, atomic minima and maxima) and the measurement grid of the CPU's
   :func:`~reference.tracking.ckf.measurement_grid` (built here unless given).
1. ``ckf_seeds``: every thread runs the CPU's filter for one seed: layer by layer with
   ``next_layer`` and ``helix_advance``, the candidate window on the measurement grid with the
   shared straight-line pre-selection (``line_residuals``), ``propagate_bound`` and
   ``kalman_chi2_2d`` for the candidates, ``bound_jacobian``, ``transport_covariance``,
   ``kalman_update_2d`` and ``add_scattering_noise`` for the branches, the overlap pick-up and the
   hole rules, all in the thread's fixed-capacity buffers (two generations of
   ``max_branches_per_seed`` branches, ``max_branches_per_surface`` candidates, the CPU's 256
   window measurements, ``min(64, 2 max_steps)`` measurements per branch). It keeps the best
   finished branch. What the CPU drops silently when a buffer is full (window measurements
   beyond 256, measurements beyond 64 per track) is dropped here too, and counted in
   ``stats["window_overflow"]`` / ``stats["track_overflow"]`` with a warning. Threads take the
   seeds sorted by theta, so that a warp's threads cross similar layers (10-15 % faster). The
   kernel waits mostly for instructions (Nsight Compute, RESULTS.md) and numba inlines a helper
   at every call site, so each large helper has one call site: holes and overlap pick-ups go
   through the candidates' propagation and the children's update.
2. Duplicate removal, the CPU's in-filter rule: a seed is skipped when ``skip_seed_min_used`` of
   its three measurements lie on tracks of seeds processed before it. The seeds go in chunks of
   the processing order (``SKIP_CHUNKS``). A chunk's seeds that the tracks of the earlier chunks
   already skip are not filtered; the others are, and as a seed's track does not depend on the
   other seeds, the rule is applied to the chunk afterwards by fixed-point rounds
   (``mark_users``: the first accepted track of every measurement, by atomic minimum, among
   tracks of at least ``skip_min_track_measurements`` measurements;
   ``decide``: the rule for every seed of the chunk). Round r settles at least the chunk's r-th
   seed, and a round without change is the sequential result, usually after 3-5 rounds; the
   host checks for it every second round.
3. ``emit_tracks``: the accepted tracks, in processing order as on the CPU, count -> allocate ->
   fill.

Host synchronisations: the input range check, one per chunk, one per two deduplication rounds
and the totals. Tracks equal the CPU's under the simulator; on a GPU its math
library and fused multiply-adds move chi2 values by about 1e-5 relative and, rarely, a decision
that sits on a cut (about 2 % of the tracks at pile-up 200; 99.6 % matched at traccc's
tolerances, same efficiency). Everything is float64, as on the CPU. Device helpers are
force-inlined where numba-cuda allows it.
"""

from __future__ import annotations

# numba.cuda's intrinsics (cuda.grid, cuda.atomic.min) are typing stubs whose signatures pylint misreads:
# pylint: disable=no-value-for-parameter,too-many-function-args

import inspect
import math
import warnings
from collections import namedtuple
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numba import cuda  # kernels must name numba.cuda as a module global (the simulator swaps it)

from reference.tracking.ckf import (MAX_SURFACE_CANDIDATES, MAX_TRACK_MEAS, MAX_WINDOW_ITEMS, CkfConfig, Tracks,
                                    _layer_plane, grid_bins, line_residuals, parameter_vector, seed_span_variance)
from reference.tracking.errors import TrackingInputError
from reference.tracking.estimation import TrackParameters
from reference.tracking.geometry import KIND_CYLINDER, LayerGrid
from reference.tracking.gpu import backend
from reference.tracking.gpu.clusterization import Identity
from reference.tracking.helix import C_LIGHT, bound_jacobian, helix_advance, next_layer, propagate_bound
from reference.tracking.kalman import add_scattering_noise, kalman_chi2_2d, kalman_update_2d, transport_covariance
from reference.tracking.spacepoints import Measurements

_THREADS = 64  # threads per block of the filter kernel (large per-thread state)
# ends of the chunks of the processing order that the skip rule settles one after the other. One
# chunk was fastest on an H100 (RESULTS.md): more chunks filter up to 31 % fewer branch steps, but
# each launch lasts as long as its slowest seeds.
SKIP_CHUNKS = (1.0,)
# the chunks for a batch of events (``events``): with several batches in flight on their own
# streams, the others fill the device while a launch waits for its slowest seeds, so finer chunks
# (fewer seeds filtered) pay. Three chunks gave 72 events/s against 59 with one (H200, batches of
# 8, 4 streams); these eight 101.9 against 96.0 with three (H100, batches of 8, 4 streams, the
# sets alternated in one run; RESULTS.md).
SKIP_CHUNKS_BATCH = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)
# most filter threads launched (None: one per seed); each thread takes the next seed of the launch
# list when it is done with one. Caps of 16k-32k threads were within 3 % of None on an H100.
FILTER_THREADS: int | None = None

# configuration vector: indices into reference.tracking.ckf.parameter_vector
(_BZ, _CHI2_MAX, _B_SURF, _B_SEED, _MAX_HOLES, _MAX_CONSEC, _MAX_STEPS, _MIN_MEAS, _MIN_P, _N_SIGMA, _MARGIN,
 _MAX_STEP, _PICKUP, _SKIP_MIN, _SPAN_SIG2, _SKIP_LEN) = range(16)
# branch integers and reals
_LAYER, _NMEAS, _HOLES, _CONSEC = range(4)
_CHI, _TURN = range(2)
# per-thread state: integers (st) and reals (fx)
(_SI, _CUR, _STEP, _NN, _LI, _NW, _NC, _REF, _NMB, _LAST, _BEST_N, _BEST_HOLES) = range(12)
_ST_SIZE = 12
(_GX, _GY, _GZ, _TX, _TY, _TZ, _KAPPA, _S, _TURN_NEW, _RI, _PHI, _C2, _TN, _SIG2, _VSLOPE, _DPHI, _W2, _CHI_NEW,
 _BEST_CHI2, _S_OVER, _S_OVER_BEST) = range(21)
_FX_SIZE = 21
# per-seed counters
_N_STEPS, _N_ITEMS, _N_PROP, _N_WIN_OVER, _N_MEAS_OVER = range(5)
_COUNTERS = ("branch_steps", "window_items", "propagations", "window_overflow", "track_overflow")
_N_COUNTERS = 5

SeedStates = namedtuple("SeedStates", "params cov surface meas3 cfg launch event")
SeedStates.__doc__ = """Seeds in processing order: parameters (n, 5), covariance (n, 25), plane (measurement
index), the three seed measurements (n, 3); cfg the configuration vector; launch the seed of every
filter thread (seeds sorted by theta, so that a warp's threads cross similar layers); event the
seed's event in a batch (0 for one event)."""
Hits = namedtuple("Hits", "planes local0 local1 var0 var1 layer phi c2")
Hits.__doc__ = """Measurements: planes (n, 12), local position and variance, layer, global phi and coordinate 2
(z on cylinders, r on disks)."""
Geo = namedtuple("Geo", "kind position lo hi delta x0 tol n_phi n2 lo2 hi2 bin_offset bin_start items")
Geo.__doc__ = """Layers (kind, position, extent, half thickness, material, window tolerance) and the
measurement grid (:class:`LayerGrid` fields). For a batch of events, the fields that depend on the
measurements (tol, lo2, hi2: events * layers; bin_start: events * bins + 1) hold every event's, one
after the other; the filter kernel takes each seed's event's. lo and hi are the nominal extents
(navigation)."""
Event = namedtuple("Event", "seeds hits geo")
LayerBounds = namedtuple("LayerBounds", "layer c2 var0 var1 lo hi tol row")
LayerBounds.__doc__ = """Measurements' layer, coordinate 2 and variances; per layer of every event the widened
extent (lo, hi) and the largest measurement extent (tol); row: the measurement's (event, layer) row
of those, event * layers + layer."""
Found = namedtuple("Found", "n meas chi2 holes params stats")
Found.__doc__ = """Best branch of every seed: measurement count (-1: no track), measurements (n, capacity),
chi2, holes, last filtered parameters, and the counters (n, 5)."""
Work = namedtuple("Work", ("p", "cov", "plane", "ints", "real", "meas", "pnew", "jac", "ref_cov", "cov_new", "tmp25",
                          "gain", "glob", "gu", "vplane", "cand_meas", "cand_chi2", "cand_s", "cand_params", "window",
                          "best_meas", "best_params", "over", "st", "fx", "cnt"))
Work.__doc__ = """One thread's buffers: two generations of branches (p, cov, plane, ints, real, meas), the
CPU's scratch vectors, candidates, window, best branch, the best overlap's propagated parameters, state
and counters."""
Users = namedtuple("Users", "first accepted changed")
Users.__doc__ = """Deduplication state: first accepted seed (processing position) using every measurement,
accepted seeds, and the changed flag of the round."""
Emit = namedtuple("Emit", "order pos start offsets meas chi2 holes params seed")
Emit.__doc__ = """Output of the accepted tracks: per seed its track slot (pos) and first measurement (start);
the :class:`Tracks` arrays."""


def capacities(config: CkfConfig) -> tuple[int, int, int]:
    """(branches per seed, candidates per surface, measurements per branch) of the device buffers.

    A branch gains at most two measurements per step (its own and an overlap), so
    ``min(MAX_TRACK_MEAS, 2 * max_steps)`` holds what the CPU keeps."""
    if config.max_branches_per_seed < 1 or config.max_steps < 1:
        raise TrackingInputError("max_branches_per_seed and max_steps must be at least 1.")
    if not 1 <= config.max_branches_per_surface <= MAX_SURFACE_CANDIDATES:
        raise TrackingInputError(f"max_branches_per_surface must lie in [1, {MAX_SURFACE_CANDIDATES}] "
                                 "(the CPU filter's candidate buffer).")
    return (int(config.max_branches_per_seed), int(config.max_branches_per_surface),
            int(min(MAX_TRACK_MEAS, 2 * config.max_steps)))


def _device_function(function):
    """``cuda.jit(device=True)``, forced inline where numba-cuda supports it: the state tuples are
    then resolved in the kernel instead of being passed, flattened, on every call."""
    options = {"device": True}
    if "forceinline" in inspect.signature(cuda.jit).parameters:
        options["forceinline"] = True
    return cuda.jit(**options)(function)


# ---------------------------------------------------------------- device helpers: one branch step

@_device_function
def _start_seed(ev, w, si):
    """Branch 0 of seed si (its parameters on the bottom measurement's plane); state reset."""
    seeds = ev.seeds
    s0 = seeds.surface[si]
    for k in range(5):
        w.p[0, 0, k] = seeds.params[si, k]
        w.best_params[k] = 0.0
    for k in range(25):
        w.cov[0, 0, k] = seeds.cov[si, k]
    for k in range(12):
        w.plane[0, 0, k] = ev.hits.planes[s0, k]
    w.ints[0, 0, _LAYER] = ev.hits.layer[s0]
    for k in range(1, 4):
        w.ints[0, 0, k] = 0
    w.real[0, 0, _CHI] = 0.0
    w.real[0, 0, _TURN] = 0.0
    for k in range(w.cnt.shape[0]):
        w.cnt[k] = 0
    w.st[_SI] = si
    w.st[_CUR] = 0
    w.st[_BEST_N] = -1
    w.st[_BEST_HOLES] = 0
    w.fx[_BEST_CHI2] = 0.0


@_device_function
def _next_surface(ev, w, b):
    """Global state of branch b and the layer it crosses next (-1: the branch ends)."""
    cur = w.st[_CUR]
    p = w.p[cur, b]
    pl = w.plane[cur, b]
    fx = w.fx
    cfg = ev.seeds.cfg
    st = math.sin(p[3])
    fx[_GX] = pl[0] + p[0] * pl[3] + p[1] * pl[6]
    fx[_GY] = pl[1] + p[0] * pl[4] + p[1] * pl[7]
    fx[_GZ] = pl[2] + p[0] * pl[5] + p[1] * pl[8]
    fx[_TX] = math.cos(p[2]) * st
    fx[_TY] = math.sin(p[2]) * st
    fx[_TZ] = math.cos(p[3])
    kappa = C_LIGHT * cfg[_BZ] * p[4]
    fx[_KAPPA] = kappa
    if abs(p[4]) > 1.0 / cfg[_MIN_P]:
        return -1
    li = w.ints[cur, b, _LAYER]
    s = 0.0
    if w.st[_STEP] > 0:
        geo = ev.geo
        li, s = next_layer(fx[_GX], fx[_GY], fx[_GZ], fx[_TX], fx[_TY], fx[_TZ], kappa, geo.kind, geo.position,
                           geo.lo, geo.hi, li, 1e-6)
        if li < 0 or s > cfg[_MAX_STEP] or w.real[cur, b, _TURN] + abs(kappa * s) > math.pi:
            return -1
    fx[_S] = s
    fx[_TURN_NEW] = w.real[cur, b, _TURN] + abs(kappa * s)
    return li


@_device_function
def _crossing(ev, w, b, li):
    """Position and direction at the layer crossing (glob) and the candidate window there."""
    fx = w.fx
    g = w.glob
    cfg = ev.seeds.cfg
    geo = ev.geo
    s = fx[_S]
    g0, g1, g2, g3, g4, g5 = helix_advance(fx[_GX], fx[_GY], fx[_GZ], fx[_TX], fx[_TY], fx[_TZ], fx[_KAPPA], s)
    g[0], g[1], g[2], g[3], g[4], g[5] = g0, g1, g2, g3, g4, g5
    xi, yi, zi = g[0], g[1], g[2]
    ri = math.sqrt(xi * xi + yi * yi)
    radial = abs((xi * g[3] + yi * g[4]) / ri)
    if geo.kind[li] == 0:
        c2, tn, t2 = zi, radial, abs(g[5])
    else:
        c2, tn, t2 = ri, abs(g[5]), radial
    tphi = abs((-yi * g[3] + xi * g[4]) / ri)
    tn = max(tn, 0.05)
    C = w.cov[w.st[_CUR], b]
    sig2 = C[0] + C[6] + s * s * (C[12] + C[18]) + (0.5 * s * s * C_LIGHT * cfg[_BZ]) ** 2 * C[24]
    sig2 = seed_span_variance(sig2, cfg[_SPAN_SIG2] * (w.st[_STEP] > 0), (ev.hits.planes, ev.hits.local0,
                              ev.hits.local1), ev.seeds.meas3[w.st[_SI]], (xi, yi, zi))
    base = cfg[_N_SIGMA] * math.sqrt(sig2) + cfg[_MARGIN] + geo.tol[li]
    dphi = (base + geo.delta[li] * tphi / tn) / max(ri, 1.0)
    if dphi > math.pi:
        dphi = math.pi
    fx[_RI], fx[_PHI], fx[_C2], fx[_TN], fx[_SIG2] = ri, math.atan2(yi, xi), c2, tn, sig2
    fx[_VSLOPE] = C[12] + C[18]
    fx[_DPHI] = dphi
    fx[_W2] = base + geo.delta[li] * t2 / tn


@_device_function
def _in_window(ev, w, m):
    """Measurement m inside the window and compatible with the straight-line pre-selection."""
    fx = w.fx
    hits = ev.hits
    dph = hits.phi[m] - fx[_PHI]
    if dph > math.pi:
        dph -= 2.0 * math.pi
    elif dph < -math.pi:
        dph += 2.0 * math.pi
    if abs(dph) > fx[_DPHI] or abs(hits.c2[m] - fx[_C2]) > fx[_W2]:
        return False
    ok, sl, r0, r1 = line_residuals(w.glob, hits.planes[m], hits.local0[m], hits.local1[m])
    if not ok:
        return False
    sig2c = fx[_SIG2] + sl * sl * fx[_VSLOPE]
    return not r0 * r0 / (sig2c + hits.var0[m]) + r1 * r1 / (sig2c + hits.var1[m]) > ev.seeds.cfg[_CHI2_MAX]


@_device_function
def _scan_bin(ev, w, bin_):
    """Window measurements of one grid bin into w.window (overflow counted, as the CPU drops it)."""
    geo = ev.geo
    for kk in range(geo.bin_start[bin_], geo.bin_start[bin_ + 1]):
        m = geo.items[kk]
        w.cnt[_N_ITEMS] += 1
        if not _in_window(ev, w, m):
            continue
        if w.st[_NW] < w.window.shape[0]:
            w.window[w.st[_NW]] = m
            w.st[_NW] += 1
        else:
            w.cnt[_N_WIN_OVER] += 1


@_device_function
def _scan_window(ev, w, li):
    """The grid bins of layer li around the crossing, as the CPU scans them."""
    geo = ev.geo
    fx = w.fx
    nphi = geo.n_phi[li]
    n2 = geo.n2[li]
    bw = 2.0 * math.pi / nphi
    ip0 = int(math.floor((fx[_PHI] - fx[_DPHI] + math.pi) / bw))
    ip1 = int(math.floor((fx[_PHI] + fx[_DPHI] + math.pi) / bw))
    ip1 = min(ip1, ip0 + nphi - 1)
    w2b = (geo.hi2[li] - geo.lo2[li]) / n2
    i20 = max(int(math.floor((fx[_C2] - fx[_W2] - geo.lo2[li]) / w2b)), 0)
    i21 = min(int(math.floor((fx[_C2] + fx[_W2] - geo.lo2[li]) / w2b)), n2 - 1)
    w.st[_NW] = 0
    for ipr in range(ip0, ip1 + 1):
        ip = ipr % nphi
        for i2 in range(i20, i21 + 1):
            _scan_bin(ev, w, geo.bin_offset[li] + ip * n2 + i2)


@_device_function
def _insert_candidate(w, cap, chi, m, sm):
    """Keep the best ``cap`` candidates sorted by chi2 (the CPU's insertion), with their path
    lengths sm and propagated parameters (w.pnew)."""
    nc = w.st[_NC]
    pos = nc
    while pos > 0 and w.cand_chi2[pos - 1] > chi:
        pos -= 1
    if pos >= cap:
        return
    for q in range(min(nc, cap - 1), pos, -1):
        w.cand_chi2[q] = w.cand_chi2[q - 1]
        w.cand_meas[q] = w.cand_meas[q - 1]
        w.cand_s[q] = w.cand_s[q - 1]
        for k in range(5):
            w.cand_params[q, k] = w.cand_params[q - 1, k]
    w.cand_chi2[pos] = chi
    w.cand_meas[pos] = m
    w.cand_s[pos] = sm
    for k in range(5):
        w.cand_params[pos, k] = w.pnew[k]
    if nc < cap:
        w.st[_NC] = nc + 1


@_device_function
def _hole_allowed(ev, w, b):
    """The hole rules for branch b (limits on holes and consecutive holes, room for a branch);
    the layer's tangent plane at the crossing into w.vplane when allowed."""
    cur = w.st[_CUR]
    cfg = ev.seeds.cfg
    extra = 1 if w.st[_STEP] > 0 else 0
    if (w.ints[cur, b, _HOLES] + extra > cfg[_MAX_HOLES] or w.ints[cur, b, _CONSEC] + extra > cfg[_MAX_CONSEC]
            or w.st[_NN] >= w.p.shape[1]):
        return False
    _layer_plane(w.glob[0], w.glob[1], w.glob[2], ev.geo.kind[w.st[_LI]], w.vplane)
    return True


@_device_function
def _hole_as_candidate(w, sm):
    """The hole (measurement -1, on w.vplane, path length sm, parameters in w.pnew) as the only
    candidate."""
    w.cand_meas[0] = -1
    w.cand_s[0] = sm
    for k in range(5):
        w.cand_params[0, k] = w.pnew[k]
    w.st[_NC] = 1


@_device_function
def _try_candidate(ev, w, b, m):
    """Predicted chi2 of measurement m (covariance transported once per layer, to the first
    candidate's plane, as the CPU does). m = -1: the hole, branch b propagated to the layer's
    tangent plane (w.vplane), the only candidate unless the propagation fails (one inlined
    propagation for both: the kernel's size bounds its speed)."""
    cur = w.st[_CUR]
    p = w.p[cur, b]
    pl = w.plane[cur, b]
    cfg = ev.seeds.cfg
    hits = ev.hits
    hole = m < 0
    if not hole:
        w.cnt[_N_PROP] += 1
    sm = propagate_bound(p, cfg[_BZ], pl, w.vplane if hole else hits.planes[m], w.pnew)
    if hole:
        if not math.isnan(sm):
            _hole_as_candidate(w, sm)
        return
    if math.isnan(sm) or abs(sm - w.fx[_S]) > 200.0:
        return
    if w.st[_REF] < 0:
        bound_jacobian(p, (cfg[_BZ], sm), pl, hits.planes[m], w.jac)
        transport_covariance(w.cov[cur, b], w.jac, w.ref_cov, w.tmp25)
        w.st[_REF] = m
    chi = kalman_chi2_2d(w.pnew, w.ref_cov, hits.local0[m], hits.local1[m], hits.var0[m], hits.var1[m], 0.0)
    if chi > cfg[_CHI2_MAX]:
        return
    _insert_candidate(w, int(cfg[_B_SURF]), chi, m, sm)


@_device_function
def _evaluate(ev, w, b, li):
    """Candidates of the layer: only the seed's own measurement on a seed layer, else the window;
    without any, the hole (measurement -1) when the hole rules allow it."""
    seeds = ev.seeds
    si = w.st[_SI]
    slot = -1
    for q in range(3):
        if ev.hits.layer[seeds.meas3[si, q]] == li:
            slot = q
    w.st[_NC] = 0
    w.st[_REF] = -1
    # one call site: the filter's largest helper is inlined once; the last pass is the hole's
    n = 1 if slot >= 0 else w.st[_NW]
    for e in range(n + 1):
        if e == n:
            if w.st[_NC] > 0 or not _hole_allowed(ev, w, b):
                break
            m = -1
        else:
            m = seeds.meas3[si, slot] if slot >= 0 else w.window[e]
        _try_candidate(ev, w, b, m)


@_device_function
def _append_meas(w, dst, m):
    """Append measurement m to branch dst of the next generation (overflow counted)."""
    nmb = w.st[_NMB]
    if nmb < w.meas.shape[2]:
        w.meas[1 - w.st[_CUR], dst, nmb] = m
        w.st[_NMB] = nmb + 1
    else:
        w.cnt[_N_MEAS_OVER] += 1


@_device_function
def _copy_history(w, b, dst):
    """Measurements of branch b into branch dst of the next generation."""
    cur = w.st[_CUR]
    nmb = w.ints[cur, b, _NMEAS]
    for k in range(nmb):
        w.meas[1 - cur, dst, k] = w.meas[cur, b, k]
    w.st[_NMB] = nmb


@_device_function
def _line_state(w, pu, pw):
    """w.gu = position and direction of bound parameters pu on plane pw."""
    stu = math.sin(pu[3])
    w.gu[0] = pw[0] + pu[0] * pw[3] + pu[1] * pw[6]
    w.gu[1] = pw[1] + pu[0] * pw[4] + pu[1] * pw[7]
    w.gu[2] = pw[2] + pu[0] * pw[5] + pu[1] * pw[8]
    w.gu[3] = math.cos(pu[2]) * stu
    w.gu[4] = math.sin(pu[2]) * stu
    w.gu[5] = math.cos(pu[3])


@_device_function
def _overlap_chi2(ev, w, m, m2):
    """Predicted chi2 of window measurement m2 on another module of the layer, from the updated
    state on m's plane (inf when pre-selection or propagation rejects it)."""
    hits = ev.hits
    cfg = ev.seeds.cfg
    pw = hits.planes[m]
    p2 = hits.planes[m2]
    if m2 == m or (p2[0] == pw[0] and p2[1] == pw[1] and p2[2] == pw[2]):
        return math.inf
    ok, sl, r0, r1 = line_residuals(w.gu, p2, hits.local0[m2], hits.local1[m2])
    if not ok:
        return math.inf
    nxt = 1 - w.st[_CUR]
    cu = w.cov[nxt, w.st[_NN]]
    sig2u = 2.0 * (cu[0] + cu[6] + sl * sl * (cu[12] + cu[18])) + 0.01
    if r0 * r0 / (sig2u + hits.var0[m2]) + r1 * r1 / (sig2u + hits.var1[m2]) > cfg[_PICKUP]:
        return math.inf
    w.cnt[_N_PROP] += 1
    s2 = propagate_bound(w.p[nxt, w.st[_NN]], cfg[_BZ], pw, p2, w.pnew)
    if math.isnan(s2) or abs(s2) > 50.0:
        return math.inf
    w.fx[_S_OVER] = s2
    return kalman_chi2_2d(w.pnew, cu, hits.local0[m2], hits.local1[m2], hits.var0[m2], hits.var1[m2], 0.0)


@_device_function
def _best_overlap(ev, w, m):
    """The window measurement with the lowest overlap chi2 below the pick-up cut (-1: none)."""
    best_o = -1
    best_oc = ev.seeds.cfg[_PICKUP]
    _line_state(w, w.p[1 - w.st[_CUR], w.st[_NN]], ev.hits.planes[m])
    for w_i in range(w.st[_NW]):
        m2 = w.window[w_i]
        c2o = _overlap_chi2(ev, w, m, m2)
        if c2o < best_oc:
            best_oc = c2o
            best_o = m2
            w.fx[_S_OVER_BEST] = w.fx[_S_OVER]
            for k in range(5):
                w.over[k] = w.pnew[k]
    return best_o


@_device_function
def _commit_child(w, b, pw, x_over_x0, hole):
    """Scattering on the plane pw, then the new branch's bookkeeping (child of branch b; a hole
    counts against the hole limits and adds no chi2)."""
    cur = w.st[_CUR]
    nxt = 1 - cur
    dst = w.st[_NN]
    pn = w.p[nxt, dst]
    if hole:
        cosi = w.fx[_TN]
    else:
        cosi = (math.cos(pn[2]) * math.sin(pn[3]) * pw[9] + math.sin(pn[2]) * math.sin(pn[3]) * pw[10]
                + math.cos(pn[3]) * pw[11])
    add_scattering_noise(pn, w.cov[nxt, dst], x_over_x0, cosi)
    for k in range(12):
        w.plane[nxt, dst, k] = pw[k]
    extra = 1 if hole and w.st[_STEP] > 0 else 0
    w.ints[nxt, dst, _LAYER] = w.st[_LI]
    w.ints[nxt, dst, _NMEAS] = w.st[_NMB]
    w.ints[nxt, dst, _HOLES] = w.ints[cur, b, _HOLES] + extra
    w.ints[nxt, dst, _CONSEC] = w.ints[cur, b, _CONSEC] + extra if hole else 0
    w.real[nxt, dst, _CHI] = w.real[cur, b, _CHI] if hole else w.real[cur, b, _CHI] + w.fx[_CHI_NEW]
    w.real[nxt, dst, _TURN] = w.fx[_TURN_NEW]
    w.st[_NN] = dst + 1


@_device_function
def _predicted(w, q):
    """Candidate q's propagated parameters into the next slot; with the layer's reference
    covariance when q is the reference candidate (True: the prediction is complete)."""
    nxt = 1 - w.st[_CUR]
    dst = w.st[_NN]
    for k in range(5):
        w.p[nxt, dst, k] = w.cand_params[q, k]
    m = w.cand_meas[q]
    if m < 0 or m != w.st[_REF]:
        return False
    for k in range(25):
        w.cov[nxt, dst, k] = w.ref_cov[k]
    return True


@_device_function
def _overlap_target(ev, w, m):
    """The new branch's overlap measurement for the pick-up (-1: pick-up off, none, or no room)."""
    if not (ev.seeds.cfg[_PICKUP] > 0.0 and w.st[_NW] > 1):
        return -1
    target = _best_overlap(ev, w, m)
    if target >= 0 and w.st[_NMB] >= w.meas.shape[2]:
        w.cnt[_N_MEAS_OVER] += 1
        return -1
    return target


@_device_function
def _jacobian_transport(ev, w, source, step, planes):
    """The transport Jacobian from source = (parameters, covariance) over step = (path length,
    output covariance) from plane planes[0] to plane planes[1], and the covariance transported
    with it."""
    p, cov = source
    s, out = step
    bound_jacobian(p, (ev.seeds.cfg[_BZ], s), planes[0], planes[1], w.jac)
    transport_covariance(cov, w.jac, out, w.tmp25)


@_device_function
def _transported(ev, w, b, q, stage):
    """Stage 0: the prediction of branch b on candidate q's plane into the next slot (the
    candidate's propagated parameters; its covariance transported with the Jacobian of its path
    length, or the layer's reference covariance); a hole candidate (measurement -1) lies on
    w.vplane. Stage 1: the new branch's overlap measurement (-1: none or no room), its
    prediction in w.over / w.cov_new. Returns the measurement. One call site of the Jacobian and
    the transport serves both stages and the hole: the kernel's size bounds its speed."""
    m = w.cand_meas[q]
    first = stage == 0
    if first:
        if _predicted(w, q):
            return m
        target = m
    else:
        target = _overlap_target(ev, w, m)
        if target < 0:
            return -1
    cur = w.st[_CUR]
    nxt = 1 - cur
    dst = w.st[_NN]
    # from branch b to the candidate's plane, or from the new branch to its overlap measurement
    source = (w.p[cur, b], w.cov[cur, b]) if first else (w.p[nxt, dst], w.cov[nxt, dst])
    step = (w.cand_s[q], w.cov[nxt, dst]) if first else (w.fx[_S_OVER_BEST], w.cov_new)
    _jacobian_transport(ev, w, source, step, (w.plane[cur, b] if first else ev.hits.planes[m],
                                              w.vplane if target < 0 else ev.hits.planes[target]))
    return target


@_device_function
def _take_overlap_prediction(w):
    """The overlap's prediction (w.over, w.cov_new) becomes the new branch's state."""
    nxt = 1 - w.st[_CUR]
    dst = w.st[_NN]
    for k in range(5):
        w.p[nxt, dst, k] = w.over[k]
    for k in range(25):
        w.cov[nxt, dst, k] = w.cov_new[k]


@_device_function
def _filtered(ev, w, b, m, first):
    """The chi2 test and Kalman update of the new branch with measurement m: the candidate (first,
    against the chi2 cut; -1 when it fails: no branch) or the overlap (against the pick-up cut,
    from its prediction; 0 when it fails). 1: updated, m appended."""
    hits = ev.hits
    cfg = ev.seeds.cfg
    nxt = 1 - w.st[_CUR]
    dst = w.st[_NN]
    chi = kalman_chi2_2d(w.p[nxt, dst] if first else w.over, w.cov[nxt, dst] if first else w.cov_new, hits.local0[m],
                         hits.local1[m], hits.var0[m], hits.var1[m], 0.0)
    if first and chi > cfg[_CHI2_MAX]:
        return -1
    if not first:
        if not chi < cfg[_PICKUP]:
            return 0
        _take_overlap_prediction(w)
    chi_new = kalman_update_2d(w.p[nxt, dst], w.cov[nxt, dst], hits.local0[m], hits.local1[m], hits.var0[m],
                               hits.var1[m], 0.0, w.gain)
    if first:
        w.fx[_CHI_NEW] = chi_new
        _copy_history(w, b, dst)
    else:
        w.fx[_CHI_NEW] += chi_new
    _append_meas(w, dst, m)
    w.st[_LAST] = m
    return 1


@_device_function
def _child(ev, w, b, q):
    """Branch b updated with candidate q (stage 0) and then with an overlap measurement on another
    module of the layer (stage 1, the CPU's pick-up; its plane becomes the branch's plane) as the
    next free branch. The hole candidate (measurement -1) gives the branch continued on the
    layer's tangent plane without a measurement."""
    hole = w.cand_meas[q] < 0
    for stage in range(2):
        m = _transported(ev, w, b, q, stage)
        if m < 0:
            break
        status = _filtered(ev, w, b, m, stage == 0)
        if status < 0:
            return
        if status == 0:
            break
    if hole:
        _copy_history(w, b, w.st[_NN])
    _commit_child(w, b, w.vplane if hole else ev.hits.planes[w.st[_LAST]], ev.geo.x0[w.st[_LI]], hole)


@_device_function
def _offer_best(w, buf, b):
    """Branch b of generation buf becomes the best finished one if it has more measurements (or
    as many and a lower chi2)."""
    nmb = w.ints[buf, b, _NMEAS]
    chi = w.real[buf, b, _CHI]
    if nmb > w.st[_BEST_N] or (nmb == w.st[_BEST_N] and chi < w.fx[_BEST_CHI2]):
        w.st[_BEST_N] = nmb
        w.fx[_BEST_CHI2] = chi
        w.st[_BEST_HOLES] = w.ints[buf, b, _HOLES]
        for k in range(nmb):
            w.best_meas[k] = w.meas[buf, b, k]
        for k in range(5):
            w.best_params[k] = w.p[buf, b, k]


@_device_function
def _advance_branch(ev, w, b):
    """One step of branch b: candidates on the next layer (branching), else a hole, else the end."""
    w.cnt[_N_STEPS] += 1
    li = _next_surface(ev, w, b)
    if li >= 0:
        w.st[_LI] = li
        _crossing(ev, w, b, li)
        _scan_window(ev, w, li)
        _evaluate(ev, w, b, li)
        if w.st[_NC] > 0:
            for q in range(w.st[_NC]):
                if w.st[_NN] >= w.p.shape[1]:
                    break
                _child(ev, w, b, q)
            return
    _offer_best(w, w.st[_CUR], b)


@_device_function
def track_seed(ev, w, si):
    """The CPU filter for seed si (processing position): its best branch into w.best_* and the
    state (w.st[_BEST_N] measurements)."""
    _start_seed(ev, w, si)
    nb = 1
    for step in range(int(ev.seeds.cfg[_MAX_STEPS])):
        w.st[_STEP] = step
        w.st[_NN] = 0
        for b in range(nb):
            _advance_branch(ev, w, b)
        nb = w.st[_NN]
        w.st[_CUR] = 1 - w.st[_CUR]
        if nb == 0:
            break
    for b in range(nb):  # branches alive after max_steps
        _offer_best(w, w.st[_CUR], b)


@_device_function
def _store(ev, w, out, si):
    """Seed si's best branch into out (n = -1 when shorter than min_measurements)."""
    n = w.st[_BEST_N]
    for k in range(w.cnt.shape[0]):
        out.stats[si, k] = w.cnt[k]
    if n < ev.seeds.cfg[_MIN_MEAS]:
        out.n[si] = -1
        return
    out.n[si] = n
    for k in range(n):
        out.meas[si, k] = w.best_meas[k]
    for k in range(5):
        out.params[si, k] = w.best_params[k]
    out.chi2[si] = w.fx[_BEST_CHI2]
    out.holes[si] = w.st[_BEST_HOLES]


@_device_function
def _decide(seeds, users, i):
    """The skip rule for seed i: kept unless skip_seed_min_used of its measurements lie on accepted
    tracks of earlier seeds (users.first from the previous round)."""
    used = 0
    for q in range(3):
        if users.first[seeds.meas3[i, q]] < i:
            used += 1
    keep = used < seeds.cfg[_SKIP_MIN]
    if keep != users.accepted[i]:
        users.accepted[i] = keep
        users.changed[0] = 1


@_device_function
def _emit_track(found, dst, i):
    """Seed i's track into slot dst.pos[i] of the output."""
    k = dst.pos[i]
    a = dst.start[i]
    dst.offsets[k] = a
    for j in range(found.n[i]):
        dst.meas[a + j] = found.meas[i, j]
    for j in range(5):
        dst.params[k, j] = found.params[i, j]
    dst.chi2[k] = found.chi2[i]
    dst.holes[k] = found.holes[i]
    dst.seed[k] = dst.order[i]


# ---------------------------------------------------------------- kernels

@lru_cache(maxsize=None)
def _filter_kernel(caps: tuple[int, int, int]):
    """ckf_seeds for one set of buffer capacities (compiled on first launch)."""
    backend.cuda()  # the numpy shim, before the first compile
    f8, i8, i4 = np.float64, np.int64, np.int32
    nb, nc, cap = caps

    @cuda.jit(**backend.kernel_options("ckf_filter"))
    def ckf_seeds(seeds, hits, geo, out, counter):
        w = Work(cuda.local.array((2, nb, 5), f8), cuda.local.array((2, nb, 25), f8),
                 cuda.local.array((2, nb, 12), f8), cuda.local.array((2, nb, 4), i8), cuda.local.array((2, nb, 2), f8),
                 cuda.local.array((2, nb, cap), i4), cuda.local.array(5, f8), cuda.local.array(25, f8),
                 cuda.local.array(25, f8), cuda.local.array(25, f8), cuda.local.array(25, f8), cuda.local.array(20, f8),
                 cuda.local.array(6, f8), cuda.local.array(6, f8), cuda.local.array(12, f8), cuda.local.array(nc, i8),
                 cuda.local.array(nc, f8), cuda.local.array(nc, f8), cuda.local.array((nc, 5), f8),
                 cuda.local.array(MAX_WINDOW_ITEMS, i4), cuda.local.array(cap, i4), cuda.local.array(5, f8),
                 cuda.local.array(5, f8), cuda.local.array(_ST_SIZE, i8), cuda.local.array(_FX_SIZE, f8), cuda.local.array(_N_COUNTERS, i8))
        nl = geo.kind.shape[0]
        nbins = geo.bin_offset[nl]
        k = cuda.atomic.add(counter, 0, 1)
        while k < seeds.launch.shape[0]:  # the next seed of the launch list, for whichever thread is free
            si = seeds.launch[k]
            # the seed's event's view of the tables (here: numba-cuda device functions cannot return arrays)
            e = seeds.event[si]
            lo, hi = e * nl, (e + 1) * nl
            ev = Event(seeds, hits, Geo(geo.kind, geo.position, geo.lo, geo.hi, geo.delta, geo.x0, geo.tol[lo:hi],
                                        geo.n_phi, geo.n2, geo.lo2[lo:hi], geo.hi2[lo:hi], geo.bin_offset,
                                        geo.bin_start[e * nbins:(e + 1) * nbins + 1], geo.items))
            track_seed(ev, w, si)
            _store(ev, w, out, si)
            k = cuda.atomic.add(counter, 0, 1)

    return ckf_seeds


@lru_cache(maxsize=None)
def _dedup_kernels():
    """mark_users and decide (the skip rule as fixed-point rounds) and emit_tracks."""
    backend.cuda()  # the numpy shim, before the first compile

    @cuda.jit
    def mark_users(found, seeds, users, lo, hi):
        j = lo + cuda.grid(1)
        if j < hi and users.accepted[j] and found.n[j] >= seeds.cfg[_SKIP_LEN]:
            for k in range(found.n[j]):
                cuda.atomic.min(users.first, found.meas[j, k], j)

    @cuda.jit
    def decide(found, seeds, users, lo, hi):
        i = lo + cuda.grid(1)
        if i < hi and found.n[i] >= 0:
            _decide(seeds, users, i)

    @cuda.jit
    def emit_tracks(found, users, dst):
        i = cuda.grid(1)
        if i < found.n.shape[0] and users.accepted[i]:
            _emit_track(found, dst, i)

    return mark_users, decide, emit_tracks


@lru_cache(maxsize=None)
def _bounds_kernel():
    """layer_bounds: per-layer extremes by atomic minimum / maximum (exact, order-independent)."""
    backend.cuda()  # the numpy shim, before the first compile

    @cuda.jit
    def layer_bounds(b):
        m = cuda.grid(1)
        if m < b.layer.shape[0]:
            layer = b.row[m]
            cuda.atomic.min(b.lo, layer, b.c2[m] - 1.0)
            cuda.atomic.max(b.hi, layer, b.c2[m] + 1.0)
            cuda.atomic.max(b.tol, layer, math.sqrt(3.0 * max(b.var0[m], b.var1[m])))

    return layer_bounds


# ---------------------------------------------------------------- host steps

def _host(a) -> np.ndarray:
    """A device or host array as numpy (one synchronisation for a device array)."""
    return a if isinstance(a, np.ndarray) else a.get()




def _measurement_geometry(meas: Measurements):
    """Global phi and coordinate 2 (z on cylinders, r on disks) of every measurement, on the device."""
    xp = backend.xp()
    g = xp.asarray(meas.planes)
    local0 = xp.asarray(meas.local0)
    local1 = xp.asarray(meas.local1)
    pos = g[:, 0:3] + local0[:, None] * g[:, 3:6] + local1[:, None] * g[:, 6:9]
    kind = xp.asarray(meas.layers.kind)
    layer = xp.asarray(meas.layer_index)
    phi = xp.arctan2(pos[:, 1], pos[:, 0])
    c2 = xp.where(kind[layer] == KIND_CYLINDER, pos[:, 2], xp.hypot(pos[:, 0], pos[:, 1]))
    return phi, c2


def _layer_bounds(meas: Measurements, c2, events: tuple = (None, 1)) -> LayerBounds:
    """Per layer of every event: the extent widened to hold the event's measurements (lo, hi) and
    the window tolerance (largest measurement extent, at most 10 mm), as the CPU's
    ``np.minimum.at`` / ``np.maximum.at``. ``events`` = (event of every measurement or None for
    one event, number of events)."""
    xp = backend.xp()
    layers = meas.layers
    layer = xp.asarray(meas.layer_index).astype(xp.int64)
    column, n_events = events
    row = layer if column is None else column * len(layers) + layer
    bounds = LayerBounds(layer, c2, xp.asarray(meas.var0, dtype=xp.float64), xp.asarray(meas.var1, dtype=xp.float64),
                         xp.tile(xp.asarray(layers.lo_mm, dtype=xp.float64), n_events),
                         xp.tile(xp.asarray(layers.hi_mm, dtype=xp.float64), n_events),
                         xp.zeros(n_events * len(layers)), row)
    if c2.shape[0]:
        backend.launch(_bounds_kernel(), c2.shape[0], bounds)
    return bounds


def _grid_shape(layers) -> tuple:
    """Per-layer bin counts and bin offsets on the device, and the number of bins: the CPU's
    :func:`~reference.tracking.ckf.grid_bins` on the host, once per layer table (the GPU chain's
    table is the cached device detector's), so events need no device work or synchronisation."""
    return _cached_grid_shape(Identity(layers))


@lru_cache(maxsize=8)
def _cached_grid_shape(handle: Identity) -> tuple:
    layers = handle.obj  # host or device arrays
    xp = backend.xp()
    n_phi, n2 = grid_bins(SimpleNamespace(**{name: _host(getattr(layers, name))
                                             for name in ("kind", "position_mm", "lo_mm", "hi_mm")}))
    bin_offset = np.zeros(len(n_phi) + 1, np.int64)
    bin_offset[1:] = np.cumsum(n_phi * n2)
    return xp.asarray(n_phi), xp.asarray(n2), xp.asarray(bin_offset), int(bin_offset[-1])


def _grid(meas: Measurements, geometry: tuple, bounds: LayerBounds, n_events: int = 1) -> LayerGrid:
    """The measurement grid from the measurements' (phi, coordinate 2) and the layer bounds; for a
    batch, every event's bins one after the other (lo2, hi2 and bin_start as in :class:`Geo`)."""
    xp = backend.xp()
    n_phi, n2, bin_offset, n_bins = _grid_shape(meas.layers)
    phi, c2 = geometry
    layer, row = bounds.layer, bounds.row
    lo2 = bounds.lo - 1e-6
    hi2 = bounds.hi + 1e-6
    tw = 2 * np.pi / n_phi[layer]
    ip = xp.mod(xp.floor((phi + np.pi) / tw).astype(xp.int64), n_phi[layer])
    w2 = (hi2[row] - lo2[row]) / n2[layer]
    i2 = xp.clip(xp.floor((c2 - lo2[row]) / w2).astype(xp.int64), 0, n2[layer] - 1)
    b = (row - layer) // len(meas.layers) * n_bins + bin_offset[layer] + ip * n2[layer] + i2
    order = xp.argsort(b, kind="stable")
    bin_start = xp.searchsorted(b[order], xp.arange(n_events * n_bins + 1)).astype(xp.int64)
    return LayerGrid(n_phi, n2, lo2, hi2, bin_offset, bin_start, order.astype(xp.int32))


def measurement_grid(meas: Measurements) -> LayerGrid:
    """The CPU's :func:`reference.tracking.ckf.measurement_grid` built on the device (xp arrays)."""
    geometry = _measurement_geometry(meas)
    return _grid(meas, geometry, _layer_bounds(meas, geometry[1]))


def _hits_and_geometry(meas: Measurements, grid: LayerGrid | None, events: tuple = (None, 1)) -> tuple[Hits, Geo]:
    """Device tables of the measurements, the layers and the grid (``events``: see
    :func:`_layer_bounds`)."""
    xp = backend.xp()
    layers = meas.layers
    phi, c2 = _measurement_geometry(meas)
    bounds = _layer_bounds(meas, c2, events)
    if grid is None:
        grid = _grid(meas, (phi, c2), bounds, events[1])
    hits = Hits(xp.ascontiguousarray(xp.asarray(meas.planes, dtype=xp.float64)),
                xp.asarray(meas.local0, dtype=xp.float64), xp.asarray(meas.local1, dtype=xp.float64), bounds.var0,
                bounds.var1, bounds.layer, phi, c2)
    layer_tables = [xp.asarray(a) for a in (layers.kind, layers.position_mm, layers.lo_mm, layers.hi_mm,
                                            layers.delta_mm, layers.x_over_x0)]
    grid_tables = [xp.asarray(getattr(grid, name)) for name in ("n_phi", "n2", "lo2", "hi2", "bin_offset",
                                                               "bin_start", "items")]
    return hits, Geo(*layer_tables, xp.minimum(bounds.tol, 10.0), *grid_tables)


@lru_cache(maxsize=16)
def _config_vector(config: CkfConfig):
    """The configuration vector on the device, once per configuration (read-only)."""
    return backend.device_constant(parameter_vector(config))


def _seed_states(params: TrackParameters, seed_measurements, order, config: CkfConfig, event) -> SeedStates:
    """Seeds in processing order; ``event``: the event of every measurement (None: one event)."""
    xp = backend.xp()
    meas3 = xp.asarray(seed_measurements).astype(xp.int64).reshape(-1, 3)[order]
    states = xp.ascontiguousarray(xp.asarray(params.params, dtype=xp.float64)[order])
    surface = xp.asarray(params.surface).astype(xp.int64)[order]
    seed_event = xp.zeros(len(surface), xp.int64) if event is None else event[surface]
    return SeedStates(states, xp.ascontiguousarray(xp.asarray(params.cov, dtype=xp.float64)[order]), surface,
                      xp.ascontiguousarray(meas3), _config_vector(config), xp.argsort(states[:, 3]), seed_event)


def _check_inputs(params: TrackParameters, seed_measurements, meas: Measurements, order) -> None:
    """Shapes on the host, index ranges with one device reduction."""
    xp = backend.xp()
    n = len(params)
    shape = tuple(seed_measurements.shape)
    if shape != (n, 3):
        raise TrackingInputError(f"seed_measurements must have shape ({n}, 3) for {n} seeds, not {shape}.")
    if tuple(params.params.shape) != (n, 5) or tuple(params.cov.shape) != (n, 25):
        raise TrackingInputError("params must hold (n, 5) parameters and (n, 25) covariances for its n surfaces.")
    if order.ndim != 1:
        raise TrackingInputError("seed_order must be a one-dimensional array of seed rows.")
    n_meas = len(meas)
    bad = [xp.any((order < 0) | (order >= n))] if order.shape[0] else []
    if n:
        surface, meas3 = xp.asarray(params.surface), xp.asarray(seed_measurements)
        bad += [xp.any((surface < 0) | (surface >= n_meas)), xp.any((meas3 < 0) | (meas3 >= n_meas))]
    flags = _host(xp.stack(bad)) if bad else np.zeros(0, bool)
    if flags.any():
        raise TrackingInputError("seed_order, the seed surfaces and seed_measurements must index existing seeds "
                                 f"and the {n_meas} measurements.")


def prepare(params: TrackParameters, seed_measurements, meas: Measurements, config: CkfConfig = CkfConfig(),
            **options) -> tuple[object, Event]:
    """Checked device tables for the filter: (processing order, :class:`Event`). ``options``:
    seed_order, grid and events, as for :func:`find_tracks`."""
    unknown = set(options) - {"seed_order", "grid", "events"}
    if unknown:
        raise TrackingInputError(f"find_tracks takes seed_order, grid and events as options, not {sorted(unknown)}.")
    xp = backend.xp()
    seed_order = options.get("seed_order")
    n = len(params)
    order = xp.arange(n, dtype=xp.int64) if seed_order is None else xp.asarray(seed_order).astype(xp.int64)
    seed_measurements = xp.asarray(seed_measurements)
    _check_inputs(params, seed_measurements, meas, order)
    events = options.get("events")
    column, n_events = None, 1
    if events is not None:
        column, n_events = backend.checked_event_column(len(meas), events, "measurement")
        if options.get("grid") is not None:
            raise TrackingInputError("A given measurement grid serves one event; leave grid out for a batch of events.")
    hits, geo = _hits_and_geometry(meas, options.get("grid"), (column, n_events))
    return order, Event(_seed_states(params, seed_measurements, order, config, column), hits, geo)


def _new_found(n: int, caps: tuple[int, int, int]) -> Found:
    xp = backend.xp()
    return Found(xp.full(n, -1, xp.int64), xp.zeros((n, caps[2]), xp.int32), xp.zeros(n), xp.zeros(n, xp.int64),
                 xp.zeros((n, 5)), xp.zeros((n, _N_COUNTERS), xp.int64))


def _run_filter(ev: Event, caps: tuple[int, int, int], found: Found, launch) -> None:
    """The filter kernel for the seeds (processing positions) in ``launch``, results into ``found``."""
    if launch.shape[0]:
        xp = backend.xp()
        threads = launch.shape[0] if FILTER_THREADS is None else min(launch.shape[0], FILTER_THREADS)
        backend.launch(_filter_kernel(tuple(caps)), threads, ev.seeds._replace(launch=launch), ev.hits, ev.geo, found,
                       xp.zeros(1, xp.int64), threads=_THREADS)


def filter_seeds(ev: Event, caps: tuple[int, int, int]) -> Found:
    """The filter for every seed of ``ev`` with buffer capacities ``caps`` (branches per seed,
    candidates per surface, measurements per branch; see :func:`capacities`)."""
    found = _new_found(ev.seeds.surface.shape[0], caps)
    _run_filter(ev, caps, found, ev.seeds.launch)
    return found


def chunk_bounds(n: int, fractions=SKIP_CHUNKS) -> list:
    """End positions of the chunks of ``n`` seeds (increasing fractions of the processing order,
    the last one 1)."""
    fractions = tuple(float(f) for f in fractions)
    if not fractions or fractions[-1] != 1.0 or any(not a < b for a, b in zip((0.0,) + fractions, fractions)):
        raise TrackingInputError("chunks must be increasing fractions in (0, 1] that end with 1.")
    return sorted({int(round(f * n)) for f in fractions} - {0})


def _chunk_launch(seeds: SeedStates, first, bounds: tuple):
    """Seeds of the chunk [lo, hi) that the skip rule leaves after the tracks of the earlier
    chunks (``first``: first accepted user of every measurement), sorted by theta."""
    xp = backend.xp()
    lo, hi = bounds
    rows = xp.arange(lo, hi)
    if lo > 0:
        used = (first[seeds.meas3[lo:hi]] < lo).sum(axis=1)
        rows = rows[used < seeds.cfg[_SKIP_MIN]]
    return rows[xp.argsort(seeds.params[rows, 3], kind="stable")]


def _settle(found: Found, seeds: SeedStates, users: Users, base, bounds: tuple) -> int:
    """The skip rule for the seeds of chunk [lo, hi) by fixed-point rounds (the earlier chunks
    settled, their measurement users in ``base``); returns the rounds."""
    mark, decide, _ = _dedup_kernels()
    lo, hi = bounds
    for rounds in range(2, hi - lo + 4, 2):  # round r settles the chunk's seed r - 1 at the latest
        for second in (False, True):  # two rounds per synchronisation: a round without change is the fixed point
            users.first[...] = base
            if second:
                users.changed.fill(0)
            backend.launch(mark, hi - lo, found, seeds, users, lo, hi)
            backend.launch(decide, hi - lo, found, seeds, users, lo, hi)
        if not int(_host(users.changed)[0]):
            return rounds
    raise AssertionError("the skip rule did not reach its fixed point")  # unreachable: see the loop bound


def filter_and_skip(ev: Event, caps: tuple[int, int, int], skip_used: bool, chunks=SKIP_CHUNKS) -> tuple:
    """The filter and the CPU's skip rule: (found, users, stats).

    Without the rule every seed is filtered. With it the seeds go in chunks of the processing
    order: a chunk's seeds that the tracks of the earlier chunks already skip are not filtered
    (the CPU skips them too, as the used measurements only grow), the others are, and the rule
    then settles the chunk by fixed-point rounds. Any chunking gives the CPU's tracks; chunks
    of one seed filter exactly the seeds the CPU runs."""
    xp = backend.xp()
    n = ev.seeds.surface.shape[0]
    if not skip_used:
        found = filter_seeds(ev, caps)
        return found, Users(xp.zeros(1, xp.int64), found.n >= 0, xp.zeros(1, xp.int32)), {"seeds_run": n,
                                                                                            "dedup_rounds": 0}
    found = _new_found(n, caps)
    users = Users(xp.full(ev.hits.layer.shape[0], n, xp.int64), xp.zeros(n, xp.bool_), xp.zeros(1, xp.int32))
    base = users.first.copy()
    stats = {"seeds_run": 0, "dedup_rounds": 0}
    lo = 0
    for hi in chunk_bounds(n, chunks):
        launch = _chunk_launch(ev.seeds, base, (lo, hi))
        stats["seeds_run"] += int(launch.shape[0])
        _run_filter(ev, caps, found, launch)
        users.accepted[lo:hi] = found.n[lo:hi] >= 0
        stats["dedup_rounds"] += _settle(found, ev.seeds, users, base, (lo, hi))
        base = users.first.copy()
        lo = hi
    return found, users, stats


def _exclusive_sum(values, out_order):
    """Per position, the sum of ``values`` before it in ``out_order`` (all positions; None: in
    position order)."""
    xp = backend.xp()
    if out_order is None:
        return xp.cumsum(values) - values
    ordered = values[out_order]
    out = xp.empty_like(values)
    out[out_order] = xp.cumsum(ordered) - ordered
    return out


def _emit(found: Found, users: Users, orders: tuple, stats: dict) -> Tracks:
    """Accepted tracks in processing order (count -> allocate -> fill); orders = (processing order,
    None or the processing positions in the output order: by event for a batch)."""
    xp = backend.xp()
    order, out_order = orders
    accepted = users.accepted
    kept = accepted.astype(xp.int64)
    counts = xp.where(accepted, found.n, 0)
    pos, start = _exclusive_sum(kept, out_order), _exclusive_sum(counts, out_order)
    totals = _host(xp.concatenate((xp.stack((kept.sum(), counts.sum())), found.stats.sum(axis=0))))
    n_tracks, n_total = int(totals[0]), int(totals[1])
    dst = Emit(order, pos, start, xp.empty(n_tracks + 1, xp.int64), xp.empty(n_total, xp.int64),
               xp.empty(n_tracks), xp.empty(n_tracks, xp.int64), xp.empty((n_tracks, 5)), xp.empty(n_tracks, xp.int64))
    dst.offsets[n_tracks] = n_total
    if n_tracks:
        backend.launch(_dedup_kernels()[2], found.n.shape[0], found, users, dst)
    stats = dict(stats)
    stats.update({name: int(v) for name, v in zip(_COUNTERS, totals[2:])})
    stats["tracks"] = n_tracks
    return Tracks(dst.offsets, dst.meas, dst.chi2, dst.holes, dst.params, dst.seed, stats)


def _report_overflow(stats: dict) -> None:
    if stats["window_overflow"] or stats["track_overflow"]:
        warnings.warn(f"GPU CKF buffers overflowed: {stats['window_overflow']} window measurements beyond "
                      f"{MAX_WINDOW_ITEMS} and {stats['track_overflow']} track measurements beyond the branch "
                      "capacity were dropped (as the CPU drops them).", RuntimeWarning, stacklevel=3)


def find_tracks(params: TrackParameters, seed_measurements, meas: Measurements, config: CkfConfig = CkfConfig(),
                **options) -> Tracks:
    """The CPU's :func:`reference.tracking.ckf.find_tracks` on the device, called the same way:
    ``find_tracks(params, seed_measurements, meas, config, seed_order=..., grid=...)``.

    Inputs may be host or device arrays. ``seed_order``: processing order (default: as given);
    ``grid``: the measurement grid (host or device, e.g. from :func:`measurement_grid`), built on
    the device when None; ``events`` = (event of every measurement, number of events): a batch of
    events at once, each seed searching its own event's measurements (each event's layer
    extents, tolerances and grid, as alone; the skip rule is per measurement, so per event). A
    batch gives every event the tracks it gets alone, in processing order, the events one after
    the other, and settles the skip rule in :data:`SKIP_CHUNKS_BATCH`. Returns
    :class:`Tracks` with device arrays in the CPU's order;
    ``stats`` holds the counters over all seeds (the filter runs every seed, the skip rule comes
    afterwards), ``dedup_rounds`` and ``tracks``.
    """
    caps = capacities(config)
    batch = options.get("events") is not None
    chunks = options.pop("chunks", SKIP_CHUNKS_BATCH if batch else SKIP_CHUNKS)
    order, ev = prepare(params, seed_measurements, meas, config, **options)
    found, users, stats = filter_and_skip(ev, caps, bool(config.skip_used_seeds), chunks)
    by_event = backend.xp().argsort(ev.seeds.event, kind="stable") if batch else None
    tracks = _emit(found, users, (order, by_event), stats)
    _report_overflow(tracks.stats)
    return tracks


def canonical_order(tracks: Tracks):
    """Permutation that sorts tracks by seed row (one track per seed); host or device arrays."""
    xp = np if isinstance(tracks.seed, np.ndarray) else backend.xp()
    return xp.argsort(tracks.seed, kind="stable")


def canonical(tracks: Tracks) -> Tracks:
    """The tracks on the host, sorted by seed row (for comparisons of any two track sets)."""
    host = Tracks(*(_host(getattr(tracks, name)) for name in ("offsets", "meas", "chi2", "n_holes", "params", "seed")),
                  dict(tracks.stats))
    return host.subset(canonical_order(host))


def tracks_from_seeds(seeds, spacepoints, measurements: Measurements, estimate: tuple,
                      config: CkfConfig = CkfConfig()) -> Tracks:
    """The CKF as the chain runs it: from the valid seeds of ``estimate`` = (parameters,
    seed_valid), taken in descending seed weight, with the measurement grid built on the device.
    For a batch, ``estimate`` = (parameters, seed_valid, events), with ``events`` = (event of
    every measurement, number of events): each event's seeds in descending weight, the events
    interleaved (:func:`_interleaved`)."""
    parameters, seed_valid = estimate[:2]
    events = estimate[2] if len(estimate) > 2 else None
    xp = backend.xp()
    sp_meas = spacepoints.measurement
    seed_measurements = xp.stack([sp_meas[seeds.bottom], sp_meas[seeds.middle], sp_meas[seeds.top]], axis=1)[seed_valid]
    order = xp.argsort(-seeds.weight[seed_valid], kind="stable")
    if events is not None:
        order = _interleaved(order, xp.asarray(events[0])[seed_measurements[order, 0]], events[1])
    return find_tracks(parameters, seed_measurements, measurements, config, seed_order=order, events=events)


def _interleaved(order, event, n_events: int):
    """A batch's processing order: every event's seeds in their own order (``order``; ``event``
    the event of each), the events interleaved by the fraction of their seeds processed, so that
    the skip rule's chunks (:data:`SKIP_CHUNKS_BATCH`) take the same share of every event. The skip
    rule only compares seeds of one event, so the tracks are every event's own."""
    xp = backend.xp()
    by_event = xp.argsort(event, kind="stable")
    order, event = order[by_event], event[by_event]
    counts = xp.bincount(event, minlength=n_events)
    rank = xp.arange(order.shape[0]) - (xp.cumsum(counts) - counts)[event]
    return order[xp.argsort((rank + 0.5) / counts[event], kind="stable")]
