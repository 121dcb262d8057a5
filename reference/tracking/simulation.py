"""Event generation: pile-up vertices, particles, helix transport through the detector.

Particles are transported along helices in the uniform field from layer to layer (outgoing
half loop only), with Highland multiple scattering and optional mean energy loss at every
layer crossing. Every crossed module gives a simulated hit that
:mod:`reference.tracking.digitization` turns into cells. Deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.tracking.digitization import DigitizationConfig, digitize_event
from reference.tracking.event import Event, Particles
from reference.tracking.geometry import Detector
from reference.tracking.helix import C_LIGHT, helix_advance, helix_plane_path, next_layer
from reference.tracking.kalman import highland_theta0

PION_MASS_GEV = 0.13957
MAX_CROSSINGS = 48
MAX_HITS_PER_PARTICLE = 40
SI_X0_MM = 93.7
SI_DEDX_GEV_PER_MM = 0.388e-3


@dataclass(frozen=True)
class SimulationConfig:
    """Event generation settings.

    pileup: number of pp vertices; particles_per_vertex: Poisson mean of charged particles per
    vertex; pT spectrum: exponential with slope ``pt_slope_gev`` above ``pt_min_gev`` plus a
    power-law tail (fraction ``hard_fraction``, index ``hard_index``, above 1 GeV); eta uniform
    in |eta| < eta_max; vertices Gaussian with ``vertex_sigma_z_mm`` / ``vertex_sigma_xy_mm``.
    """

    pileup: int = 200
    particles_per_vertex: float = 60.0
    pt_min_gev: float = 0.05
    pt_slope_gev: float = 0.42
    hard_fraction: float = 0.01
    hard_index: float = 3.0
    pt_max_gev: float = 100.0
    eta_max: float = 4.0
    vertex_sigma_z_mm: float = 55.0
    vertex_sigma_xy_mm: float = 0.015
    bz_tesla: float = 1.99724
    multiple_scattering: bool = True
    energy_loss: bool = True
    digitization: DigitizationConfig = DigitizationConfig()


@njit(cache=True)
def _flatten_planes(center, rotation):
    n = center.shape[0]
    planes = np.empty((n, 12))
    for i in range(n):
        planes[i, 0] = center[i, 0]
        planes[i, 1] = center[i, 1]
        planes[i, 2] = center[i, 2]
        for a in range(3):
            planes[i, 3 + a] = rotation[i, a, 0]
            planes[i, 6 + a] = rotation[i, a, 1]
            planes[i, 9 + a] = rotation[i, a, 2]
    return planes


def module_planes(detector: Detector) -> np.ndarray:
    """(n_modules, 12) plane rows: centre, U, V, W (the layout used by :mod:`helix`)."""
    return _flatten_planes(detector.center_mm, detector.rotation)


@njit(cache=True, inline="always")
def _grid_bin(phi, c2, layer, n_phi, n2, lo2, hi2, bin_offset):
    ip = int(math.floor((phi + math.pi) / (2.0 * math.pi) * n_phi[layer]))
    if ip >= n_phi[layer]:
        ip = n_phi[layer] - 1
    if ip < 0:
        ip = 0
    i2 = int(math.floor((c2 - lo2[layer]) / (hi2[layer] - lo2[layer]) * n2[layer]))
    if i2 < 0 or i2 >= n2[layer]:
        return -1
    return bin_offset[layer] + ip * n2[layer] + i2


@njit(cache=True)
def _transport(vx, vy, vz, px, py, pz, q, bz, normals, ms_on, eloss_on,
               l_kind, l_pos, l_lo, l_hi, l_x0,
               g_nphi, g_n2, g_lo2, g_hi2, g_off, g_start, g_items,
               planes, minhu, maxhu, hv):
    n = vx.shape[0]
    cap = n * MAX_HITS_PER_PARTICLE
    h_part = np.empty(cap, np.int64)
    h_mod = np.empty(cap, np.int64)
    h_state = np.empty((cap, 9))  # x, y, z, px, py, pz, local u, v and unused
    h_ldir = np.empty((cap, 3))
    nh = 0
    w2 = np.empty(6)
    for ip in range(n):
        p = math.sqrt(px[ip] ** 2 + py[ip] ** 2 + pz[ip] ** 2)
        if p < 1e-6 or q[ip] == 0:
            continue
        x, y, z = vx[ip], vy[ip], vz[ip]
        tx, ty, tz = px[ip] / p, py[ip] / p, pz[ip] / p
        exclude = -1
        nhp = 0
        turn = 0.0
        for icross in range(MAX_CROSSINGS):
            kappa = C_LIGHT * bz * q[ip] / p
            li, s = next_layer(x, y, z, tx, ty, tz, kappa, l_kind, l_pos, l_lo, l_hi, exclude, 1e-6)
            if li < 0:
                break
            turn += abs(kappa * s)
            if turn > math.pi:  # outgoing half loop only
                break
            x, y, z, tx, ty, tz = helix_advance(x, y, z, tx, ty, tz, kappa, s)
            phi = math.atan2(y, x)
            c2 = z if l_kind[li] == 0 else math.sqrt(x * x + y * y)
            b = _grid_bin(phi, c2, li, g_nphi, g_n2, g_lo2, g_hi2, g_off)
            if b >= 0:
                for k in range(g_start[b], g_start[b + 1]):
                    m = g_items[k]
                    pl = planes[m]
                    sm = helix_plane_path(x, y, z, tx, ty, tz, kappa, pl[0], pl[1], pl[2], pl[9], pl[10], pl[11])
                    if math.isnan(sm) or abs(sm) > 100.0:
                        continue
                    hx, hy, hz, hdx, hdy, hdz = helix_advance(x, y, z, tx, ty, tz, kappa, sm)
                    w2[0], w2[1], w2[2], w2[3], w2[4], w2[5] = hx, hy, hz, hdx, hdy, hdz
                    dx, dy, dz = w2[0] - pl[0], w2[1] - pl[1], w2[2] - pl[2]
                    u = dx * pl[3] + dy * pl[4] + dz * pl[5]
                    v = dx * pl[6] + dy * pl[7] + dz * pl[8]
                    if abs(v) > hv[m]:
                        continue
                    hu = (minhu[m] * (hv[m] + v) + maxhu[m] * (hv[m] - v)) / (2.0 * hv[m])
                    if abs(u) > hu:
                        continue
                    if nh >= cap or nhp >= MAX_HITS_PER_PARTICLE:
                        continue
                    h_part[nh] = ip
                    h_mod[nh] = m
                    h_state[nh, 0] = w2[0]
                    h_state[nh, 1] = w2[1]
                    h_state[nh, 2] = w2[2]
                    h_state[nh, 3] = p * w2[3]
                    h_state[nh, 4] = p * w2[4]
                    h_state[nh, 5] = p * w2[5]
                    h_state[nh, 6] = u
                    h_state[nh, 7] = v
                    h_state[nh, 8] = sm
                    h_ldir[nh, 0] = w2[3] * pl[3] + w2[4] * pl[4] + w2[5] * pl[5]
                    h_ldir[nh, 1] = w2[3] * pl[6] + w2[4] * pl[7] + w2[5] * pl[8]
                    h_ldir[nh, 2] = w2[3] * pl[9] + w2[4] * pl[10] + w2[5] * pl[11]
                    nh += 1
                    nhp += 1
            # material effects at the nominal layer crossing
            if l_kind[li] == 0:
                rr = math.sqrt(x * x + y * y)
                cosi = abs((x * tx + y * ty) / rr)
            else:
                cosi = abs(tz)
            cosi = max(cosi, 0.05)
            xx0 = l_x0[li] / cosi
            if eloss_on:
                e = math.sqrt(p * p + PION_MASS_GEV ** 2)
                e -= SI_DEDX_GEV_PER_MM * xx0 * SI_X0_MM
                if e <= PION_MASS_GEV * 1.0001:
                    break
                p = math.sqrt(e * e - PION_MASS_GEV ** 2)
            if ms_on and icross < normals.shape[1]:
                th0 = highland_theta0(p, xx0)
                # orthonormal e1, e2 perpendicular to t
                e1x, e1y, e1z = -ty, tx, 0.0
                nrm = math.sqrt(e1x * e1x + e1y * e1y)
                if nrm < 1e-9:
                    e1x, e1y, e1z = 1.0, 0.0, 0.0
                    nrm = 1.0
                e1x /= nrm
                e1y /= nrm
                e2x = ty * e1z - tz * e1y
                e2y = tz * e1x - tx * e1z
                e2z = tx * e1y - ty * e1x
                a1 = th0 * normals[ip, icross, 0]
                a2 = th0 * normals[ip, icross, 1]
                tx += a1 * e1x + a2 * e2x
                ty += a1 * e1y + a2 * e2y
                tz += a1 * e1z + a2 * e2z
                nt = math.sqrt(tx * tx + ty * ty + tz * tz)
                tx /= nt
                ty /= nt
                tz /= nt
            if p < 0.03:
                break
            exclude = li
    return h_part[:nh], h_mod[:nh], h_state[:nh], h_ldir[:nh]


def generate_particles(config: SimulationConfig, rng: np.random.Generator) -> Particles:
    """Vertices and primary particles (pions) for one event."""
    n_vtx = int(config.pileup)
    counts = rng.poisson(config.particles_per_vertex, size=n_vtx)
    n = int(counts.sum())
    vtx = np.repeat(np.arange(n_vtx), counts)
    within = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    vz_v = rng.normal(0.0, config.vertex_sigma_z_mm, n_vtx)
    vx_v = rng.normal(0.0, config.vertex_sigma_xy_mm, n_vtx)
    vy_v = rng.normal(0.0, config.vertex_sigma_xy_mm, n_vtx)
    pt = config.pt_min_gev + rng.exponential(config.pt_slope_gev, n)
    hard = rng.random(n) < config.hard_fraction
    u = rng.random(n)
    pt_hard = (1.0 - u * (1.0 - (config.pt_max_gev) ** (1.0 - config.hard_index))) ** (1.0 / (1.0 - config.hard_index))
    pt = np.where(hard, pt_hard, pt)
    eta = rng.uniform(-config.eta_max, config.eta_max, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    q = np.where(rng.random(n) < 0.5, -1, 1).astype(np.int32)
    pid = ((vtx.astype(np.int64) + 1) << 20) | (within.astype(np.int64) + 1)
    return Particles(particle_id=pid, particle_type=(211 * q).astype(np.int32), vx=vx_v[vtx],
                     vy=vy_v[vtx], vz=vz_v[vtx], px=pt * np.cos(phi), py=pt * np.sin(phi),
                     pz=pt * np.sinh(eta), q=q, nhits=np.zeros(n, np.int32))


def simulate_event(detector: Detector, config: SimulationConfig = SimulationConfig(), seed: int | list = 0,
                   planes: np.ndarray | None = None) -> Event:
    """Generate, transport and digitise one event; returns TrackML tables (hits, cells, truth)."""
    rng = np.random.default_rng(seed)
    particles = generate_particles(config, rng)
    normals = rng.standard_normal((len(particles), MAX_CROSSINGS, 2))
    if planes is None:
        planes = module_planes(detector)
    L = detector.layers
    G = detector.grid
    part, mod, state, ldir = _transport(
        particles.vx, particles.vy, particles.vz, particles.px, particles.py, particles.pz,
        particles.q.astype(np.float64), float(config.bz_tesla), normals, config.multiple_scattering,
        config.energy_loss, L.kind, L.position_mm, L.lo_mm, L.hi_mm, L.x_over_x0,
        G.n_phi, G.n2, G.lo2, G.hi2, G.bin_offset, G.bin_start, G.items,
        planes, detector.minhu_mm, detector.maxhu_mm, detector.hv_mm)
    return digitize_event(detector, planes, particles, part, mod, state, ldir, config.digitization, rng)
