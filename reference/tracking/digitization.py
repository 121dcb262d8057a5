"""Digitisation: simulated module crossings -> cells (charge sharing along the path) + noise.

The charge of a crossing is proportional to the path length in silicon and is deposited
uniformly along the straight segment between the entry and exit points of the sensor; cells
collect the charge of the part of the segment that lies above them. Cluster sizes therefore
grow with the incidence angle as in real pixel detectors. Cells below threshold are dropped;
crossings left with no cell are lost (inefficiency). Random noise cells become noise hits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.tracking.event import Cells, Event, Hits, Particles, Truth, trackml_weights
from reference.tracking.geometry import Detector

MAX_SAMPLES = 4000


@dataclass(frozen=True)
class DigitizationConfig:
    """dedx_per_mm: deposited charge per mm of silicon (arbitrary 'value' units, ~keV);
    threshold_fraction: cell threshold as a fraction of the charge of a normal-incidence
    crossing; charge_smear_fraction: relative Gaussian noise on every cell;
    noise_hits_fraction: number of noise hits per particle hit."""

    dedx_per_mm: float = 388.0
    threshold_fraction: float = 0.1
    charge_smear_fraction: float = 0.05
    noise_hits_fraction: float = 0.05


@njit(cache=True)
def _digitize(mod, state, ldir, thickness, minhu, maxhu, hv, pitch_u, pitch_v, dedx, thr_frac,
              smear, noise):
    n = mod.shape[0]
    cap = n * 16 + 1024
    c_hit = np.empty(cap, np.int64)
    c_ch0 = np.empty(cap, np.int32)
    c_ch1 = np.empty(cap, np.int32)
    c_val = np.empty(cap, np.float64)
    nc = 0
    for i in range(n):
        m = mod[i]
        t = thickness[m]
        du, dv, dw = ldir[i, 0], ldir[i, 1], ldir[i, 2]
        if abs(dw) < 1e-3:
            dw = 1e-3 if dw >= 0 else -1e-3
        hu_len = 0.5 * t * du / dw
        hv_len = 0.5 * t * dv / dw
        u0 = state[i, 6] - hu_len
        v0 = state[i, 7] - hv_len
        lu = 2.0 * hu_len
        lv = 2.0 * hv_len
        path = t / abs(dw)
        total = dedx * path
        thr = thr_frac * dedx * t
        pmin = min(pitch_u[m], pitch_v[m])
        ns = int(math.ceil(math.sqrt(lu * lu + lv * lv) / (0.2 * pmin))) + 1
        if ns > MAX_SAMPLES:
            ns = MAX_SAMPLES
        q = total / ns
        cur0 = -1
        cur1 = -1
        acc = 0.0
        for k in range(ns + 1):
            if k < ns:
                f = (k + 0.5) / ns
                u = u0 + f * lu
                v = v0 + f * lv
                ch1 = int(math.floor((v + hv[m]) / pitch_v[m]))
                vc = (ch1 + 0.5) * pitch_v[m] - hv[m]
                hu = (minhu[m] * (hv[m] + vc) + maxhu[m] * (hv[m] - vc)) / (2.0 * hv[m])
                ch0 = int(math.floor((u + hu) / pitch_u[m]))
                inside = abs(v) <= hv[m] and ch0 >= 0 and (ch0 + 1) * pitch_u[m] <= 2.0 * hu + 1e-9
                if not inside:
                    ch0 = -2
                    ch1 = -2
            else:
                ch0 = -3
                ch1 = -3
            if ch0 != cur0 or ch1 != cur1:
                if cur0 >= 0 and acc > 0.0:
                    val = acc * (1.0 + smear * noise[(i * 7 + cur0 * 3 + cur1) % noise.shape[0]])
                    if val >= thr and nc < cap:
                        c_hit[nc] = i
                        c_ch0[nc] = cur0
                        c_ch1[nc] = cur1
                        c_val[nc] = val
                        nc += 1
                cur0 = ch0
                cur1 = ch1
                acc = 0.0
            if ch0 >= 0:
                acc += q
    return c_hit[:nc], c_ch0[:nc], c_ch1[:nc], c_val[:nc]


def digitize_event(detector: Detector, planes, particles: Particles, part, mod, state, ldir,
                   config: DigitizationConfig, rng: np.random.Generator) -> Event:
    """Turn simulated crossings into TrackML hits/cells/truth tables (with noise hits)."""
    D = detector
    smear_noise = rng.standard_normal(100_003)
    c_hit, c_ch0, c_ch1, c_val = _digitize(mod, state, ldir, D.thickness_mm, D.minhu_mm, D.maxhu_mm,
                                           D.hv_mm, D.pitch_u_mm, D.pitch_v_mm, config.dedx_per_mm,
                                           config.threshold_fraction, config.charge_smear_fraction,
                                           smear_noise)
    n_sim = len(mod)
    has_cells = np.bincount(c_hit, minlength=n_sim) > 0
    keep = np.nonzero(has_cells)[0]
    # noise hits: one or two cells at random positions of random modules
    n_noise = int(round(config.noise_hits_fraction * len(keep)))
    nmod = rng.integers(0, len(D), n_noise)
    nv = np.maximum((2 * D.hv_mm[nmod] / D.pitch_v_mm[nmod]).astype(np.int64), 1)
    n_ch1 = (rng.random(n_noise) * nv).astype(np.int64)
    vc = (n_ch1 + 0.5) * D.pitch_v_mm[nmod] - D.hv_mm[nmod]
    hu = (D.minhu_mm[nmod] * (D.hv_mm[nmod] + vc) + D.maxhu_mm[nmod] * (D.hv_mm[nmod] - vc)) / (2 * D.hv_mm[nmod])
    nu = np.maximum((2 * hu / D.pitch_u_mm[nmod]).astype(np.int64), 1)
    n_ch0 = (rng.random(n_noise) * nu).astype(np.int64)
    n_val = config.dedx_per_mm * D.thickness_mm[nmod] * rng.uniform(0.2, 1.0, n_noise)

    # all hits: kept simulated ones then noise; order by module, assign hit_id 1..N
    h_mod = np.concatenate([mod[keep], nmod])
    h_src = np.concatenate([keep, -1 - np.arange(n_noise)])
    order = np.argsort(h_mod, kind="stable")
    h_mod = h_mod[order]
    h_src = h_src[order]
    n_hits = len(h_mod)
    hit_id = np.arange(1, n_hits + 1, dtype=np.int64)
    # map simulated crossing -> hit_id
    sim_to_hit = np.full(n_sim, -1, np.int64)
    is_sim = h_src >= 0
    sim_to_hit[h_src[is_sim]] = hit_id[is_sim]
    noise_to_hit = np.empty(n_noise, np.int64)
    noise_to_hit[-1 - h_src[~is_sim]] = hit_id[~is_sim]
    cells_hit = np.concatenate([sim_to_hit[c_hit], noise_to_hit])
    cells_ch0 = np.concatenate([c_ch0, n_ch0.astype(np.int32)])
    cells_ch1 = np.concatenate([c_ch1, n_ch1.astype(np.int32)])
    cells_val = np.concatenate([c_val, n_val])
    corder = np.argsort(cells_hit, kind="stable")
    cells = Cells(cells_hit[corder], cells_ch0[corder], cells_ch1[corder], cells_val[corder].astype(np.float32))

    # measured hit position: charge-weighted centroid of its cells, in global coordinates
    cm = h_mod[cells.hit_id - 1]
    v = (cells.ch1 + 0.5) * D.pitch_v_mm[cm] - D.hv_mm[cm]
    hu = (D.minhu_mm[cm] * (D.hv_mm[cm] + v) + D.maxhu_mm[cm] * (D.hv_mm[cm] - v)) / (2 * D.hv_mm[cm])
    u = (cells.ch0 + 0.5) * D.pitch_u_mm[cm] - hu
    w = cells.value.astype(np.float64)
    sw = np.bincount(cells.hit_id - 1, w, n_hits)
    uc = np.bincount(cells.hit_id - 1, w * u, n_hits) / sw
    vcn = np.bincount(cells.hit_id - 1, w * v, n_hits) / sw
    pl = planes[h_mod]
    xyz = pl[:, 0:3] + uc[:, None] * pl[:, 3:6] + vcn[:, None] * pl[:, 6:9]
    hits = Hits(hit_id, xyz[:, 0].astype(np.float32), xyz[:, 1].astype(np.float32),
                xyz[:, 2].astype(np.float32), D.volume_id[h_mod], D.layer_id[h_mod], D.module_id[h_mod])

    # truth
    src = np.where(is_sim, h_src, 0)
    pidx = part[src]
    t_pid = np.where(is_sim, particles.particle_id[pidx], 0)
    t_xyz = np.where(is_sim[:, None], state[src, 0:3], xyz)
    t_p = np.where(is_sim[:, None], state[src, 3:6], 0.0)
    nhits = np.bincount(pidx[is_sim], minlength=len(particles)).astype(np.int32)
    particles = Particles(particles.particle_id, particles.particle_type, particles.vx, particles.vy,
                          particles.vz, particles.px, particles.py, particles.pz, particles.q, nhits)
    weight = trackml_weights(t_pid, t_xyz[:, 2], particles.particle_id, particles.vz,
                             np.hypot(particles.px, particles.py), particles.nhits)
    truth = Truth(hit_id, t_pid, t_xyz[:, 0].astype(np.float32), t_xyz[:, 1].astype(np.float32),
                  t_xyz[:, 2].astype(np.float32), t_p[:, 0].astype(np.float32),
                  t_p[:, 1].astype(np.float32), t_p[:, 2].astype(np.float32), weight.astype(np.float32))
    return Event(hits=hits, cells=cells, particles=particles, truth=truth)
