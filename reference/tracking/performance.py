"""Truth-based physics performance: efficiencies, fake and duplicate rates, TrackML score,
parameter resolutions, in bins of pT and eta.

Definitions (per event):
- a measurement belongs to the particle of its largest-charge hit (noise: particle 0);
- a seed is matched to a particle when its three spacepoints belong to it;
- a track is matched to the particle owning more than 50% of its measurements, otherwise it
  is a fake; further tracks matched to an already matched particle are duplicates;
- efficiencies count selected particles: primary (production radius < 1 mm), pT > 1 GeV,
  |eta| < 2.5, with >= 3 pixel hits (seeding) or >= 7 hits (tracking);
- fake rate = fakes / tracks; duplicate rate = duplicates / tracks;
- TrackML score as in the TrackML challenge (weights from truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference.tracking.chain import submission
from reference.tracking.ckf import Tracks
from reference.tracking.errors import TrackingInputError
from reference.tracking.event import Event
from reference.tracking.geometry import PIXEL_VOLUMES

PT_BINS_GEV = (0.5, 1.0, 2.0, 5.0, 10.0, 100.0)
ETA_BINS = (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5)


@dataclass(frozen=True)
class Selection:
    """Particle selection for efficiencies."""

    min_pt_gev: float = 1.0
    max_abs_eta: float = 2.5
    min_pixel_hits_seeding: int = 3
    min_hits_tracking: int = 7
    max_production_radius_mm: float = 1.0


def trackml_score(truth_hit_id, truth_particle_id, truth_weight, sub_hit_id, sub_track_id) -> float:
    """TrackML score of a submission (each truth hit must appear once in the submission).

    For each track the majority particle is the one with most hits on it; a track counts
    when more than half of its hits belong to that particle and it holds more than half of
    the particle's hits; the score is the summed weight of those majority hits (weights
    normalised to 1).
    """
    truth_hit_id = np.asarray(truth_hit_id)
    sub_hit_id = np.asarray(sub_hit_id)
    if len(truth_hit_id) == 0:
        raise TrackingInputError("The truth table is empty; no TrackML score can be computed.")
    ts = np.argsort(sub_hit_id)
    pos = np.clip(np.searchsorted(sub_hit_id[ts], truth_hit_id), 0, max(len(sub_hit_id) - 1, 0))
    if len(sub_hit_id) != len(truth_hit_id) or np.any(sub_hit_id[ts][pos] != truth_hit_id):
        raise TrackingInputError("The submission must list every truth hit exactly once.")
    track = np.asarray(sub_track_id)[ts][pos]
    _, pidx = np.unique(truth_particle_id, return_inverse=True)
    _, tidx = np.unique(track, return_inverse=True)
    n_p = pidx.max() + 1
    w = np.asarray(truth_weight, np.float64)
    if not np.all(np.isfinite(w)):
        raise TrackingInputError("The truth weights contain non-finite values; no TrackML score can be computed.")
    total = w.sum()
    if total <= 0:
        return 0.0
    key = tidx.astype(np.int64) * n_p + pidx
    ukey, inv, count = np.unique(key, return_inverse=True, return_counts=True)
    wsum = np.bincount(inv, w)
    pair_t = ukey // n_p
    pair_p = ukey % n_p
    track_n = np.bincount(tidx)
    part_n = np.bincount(pidx)
    # majority pair per track: max count, ties -> smallest particle index
    order = np.lexsort((pair_p, -count, pair_t))
    first = np.ones(len(order), bool)
    first[1:] = pair_t[order][1:] != pair_t[order][:-1]
    best = order[first]
    good = (count[best] > 0.5 * track_n[pair_t[best]]) & (count[best] > 0.5 * part_n[pair_p[best]])
    return float(wsum[best][good].sum() / total)


def _particle_lookup(particle_id, query):
    sorter = np.argsort(particle_id)
    pos = np.clip(np.searchsorted(particle_id[sorter], query), 0, max(len(particle_id) - 1, 0))
    idx = sorter[pos]
    return np.where(particle_id[idx] == query, idx, -1)


def match_tracks(tracks: Tracks, meas_particle_index: np.ndarray) -> np.ndarray:
    """Matched particle index per track (-1 for fakes): > 50% of measurements."""
    n = len(tracks)
    if n == 0:
        return np.zeros(0, np.int64)
    tid = np.repeat(np.arange(n), tracks.n_meas)
    mp = meas_particle_index[tracks.meas]
    valid = mp >= 0
    n_p = int(max(meas_particle_index.max(), 0)) + 1
    key = tid[valid].astype(np.int64) * n_p + mp[valid]
    ukey, count = np.unique(key, return_counts=True)
    pt = ukey // n_p
    pp = ukey % n_p
    order = np.lexsort((pp, -count, pt))
    first = np.ones(len(order), bool)
    first[1:] = pt[order][1:] != pt[order][:-1]
    best = order[first]
    out = np.full(n, -1, np.int64)
    ok = count[best] > 0.5 * tracks.n_meas[pt[best]]
    out[pt[best][ok]] = pp[best][ok]
    return out


def _rates(tracks: Tracks, matched: np.ndarray) -> dict:
    n = len(tracks)
    fakes = int((matched < 0).sum())
    m = matched[matched >= 0]
    dups = len(m) - len(np.unique(m))
    return {"tracks": n, "fakes": fakes, "duplicates": int(dups),
            "fake_rate": fakes / n if n else 0.0, "duplicate_rate": dups / n if n else 0.0}


def _binned(values, passed, bins) -> list:
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = (values >= lo) & (values < hi)
        n = int(sel.sum())
        k = int(passed[sel].sum())
        rows.append({"lo": lo, "hi": hi, "n": n, "found": k, "efficiency": k / n if n else None})
    return rows


def _robust_sigma(x) -> float | None:
    if len(x) < 2:
        return None
    q16, q84 = np.percentile(x, [16, 84])
    return float(0.5 * (q84 - q16))


def evaluate(event: Event, result, selection: Selection = Selection(), sub_track_id=None) -> dict:
    """Physics performance of one reconstructed event (needs truth and particles)."""
    if event.truth is None or event.particles is None:
        raise TrackingInputError("Physics performance needs the truth and particles files.")
    truth = event.truth
    parts = event.particles
    hits = event.hits
    # hit row -> particle index
    t_sorter = np.argsort(truth.hit_id)
    tpos = np.clip(np.searchsorted(truth.hit_id[t_sorter], hits.hit_id), 0, len(truth.hit_id) - 1)
    t_row = t_sorter[tpos]
    if np.any(truth.hit_id[t_row] != hits.hit_id):
        raise TrackingInputError("The truth file does not cover every hit of the hits file.")
    hit_pidx = _particle_lookup(parts.particle_id, truth.particle_id[t_row])
    hit_pidx = np.where(truth.particle_id[t_row] == 0, -1, hit_pidx)
    h_sorter = np.argsort(hits.hit_id)
    meas = result.measurements
    mrow = h_sorter[np.clip(np.searchsorted(hits.hit_id[h_sorter], meas.hit_id), 0, len(hits) - 1)]
    meas_pidx = hit_pidx[mrow]

    pt = np.hypot(parts.px, parts.py)
    eta = np.arcsinh(parts.pz / np.maximum(pt, 1e-12))
    prod_r = np.hypot(parts.vx, parts.vy)
    n_hits = np.bincount(hit_pidx[hit_pidx >= 0], minlength=len(parts))
    is_pix = np.isin(hits.volume_id, PIXEL_VOLUMES)
    n_pix = np.bincount(hit_pidx[(hit_pidx >= 0) & is_pix], minlength=len(parts))
    base = (prod_r < selection.max_production_radius_mm) & (pt > selection.min_pt_gev) & \
           (np.abs(eta) < selection.max_abs_eta)
    sel_seed = base & (n_pix >= selection.min_pixel_hits_seeding)
    sel_track = base & (n_hits >= selection.min_hits_tracking)

    sp = result.spacepoints
    seeds = result.seeds
    pb = meas_pidx[sp.measurement[seeds.bottom]]
    pm = meas_pidx[sp.measurement[seeds.middle]]
    ptp = meas_pidx[sp.measurement[seeds.top]]
    pure = (pb == pm) & (pm == ptp) & (pb >= 0)
    seeded = np.zeros(len(parts), bool)
    seeded[pb[pure]] = True

    out = {"particles_selected_seeding": int(sel_seed.sum()), "particles_selected_tracking": int(sel_track.sum())}
    out["seeds"] = len(seeds)
    out["seed_purity"] = float(pure.mean()) if len(seeds) else 0.0
    out["seeding_efficiency"] = float(seeded[sel_seed].mean()) if sel_seed.any() else None

    for name, tracks in (("before_ambiguity", result.tracks_all), ("after_ambiguity", result.tracks)):
        matched = match_tracks(tracks, meas_pidx)
        found = np.zeros(len(parts), bool)
        found[matched[matched >= 0]] = True
        r = _rates(tracks, matched)
        r["efficiency"] = float(found[sel_track].mean()) if sel_track.any() else None
        out[name] = r
        if name == "after_ambiguity":
            sel_pt_t = (prod_r < selection.max_production_radius_mm) & (np.abs(eta) < selection.max_abs_eta) & \
                (n_hits >= selection.min_hits_tracking)
            out["track_efficiency_vs_pt"] = _binned(pt[sel_pt_t], found[sel_pt_t], PT_BINS_GEV)
            out["track_efficiency_vs_eta"] = _binned(eta[sel_track], found[sel_track], ETA_BINS)
    sel_pt = (prod_r < selection.max_production_radius_mm) & (np.abs(eta) < selection.max_abs_eta) & \
        (n_pix >= selection.min_pixel_hits_seeding)
    out["seeding_efficiency_vs_pt"] = _binned(pt[sel_pt], seeded[sel_pt], PT_BINS_GEV)
    out["seeding_efficiency_vs_eta"] = _binned(eta[sel_seed], seeded[sel_seed], ETA_BINS)

    # TrackML score
    if sub_track_id is None:
        _, sub_track_id = submission(result, hits.hit_id)
    if len(truth.hit_id) == len(hits.hit_id):
        out["trackml_score"] = trackml_score(truth.hit_id, truth.particle_id, truth.weight, hits.hit_id, sub_track_id)
    else:
        keep = np.isin(truth.hit_id, hits.hit_id)
        out["trackml_score"] = trackml_score(truth.hit_id[keep], truth.particle_id[keep], truth.weight[keep],
                                             hits.hit_id, sub_track_id)

    # resolutions of the estimated seed parameters against the truth at the bottom hit
    valid = result.seed_valid
    pure_v = pure[valid]
    params = result.parameters.params[pure_v]
    bottom_row = mrow[sp.measurement[seeds.bottom[valid][pure_v]]]
    tr = t_row[bottom_row]
    tp = np.column_stack([truth.tpx[tr], truth.tpy[tr], truth.tpz[tr]]).astype(np.float64)
    p_true = np.linalg.norm(tp, axis=1)
    ok = p_true > 0
    q = parts.q[pb[valid][pure_v]][ok].astype(np.float64)
    params = params[ok]
    tp = tp[ok]
    p_true = p_true[ok]
    pt_true = np.hypot(tp[:, 0], tp[:, 1])
    phi_true = np.arctan2(tp[:, 1], tp[:, 0])
    theta_true = np.arccos(np.clip(tp[:, 2] / p_true, -1, 1))
    d_phi = np.angle(np.exp(1j * (params[:, 2] - phi_true)))
    d_theta = params[:, 3] - theta_true
    qop_true = q / p_true
    pt_est = np.abs(np.sin(params[:, 3]) / params[:, 4])
    d_ptrel = (pt_est - pt_true) / pt_true
    charge_ok = np.sign(params[:, 4]) == np.sign(qop_true)
    res = {"n_seeds": int(len(params)), "charge_correct_fraction": float(charge_ok.mean()) if len(params) else None,
           "sigma_phi_rad": _robust_sigma(d_phi), "sigma_theta_rad": _robust_sigma(d_theta),
           "sigma_pt_rel": _robust_sigma(d_ptrel)}
    rows = []
    for lo, hi in zip(PT_BINS_GEV[:-1], PT_BINS_GEV[1:]):
        s = (pt_true >= lo) & (pt_true < hi)
        rows.append({"lo": lo, "hi": hi, "n": int(s.sum()), "sigma_phi_rad": _robust_sigma(d_phi[s]),
                     "sigma_theta_rad": _robust_sigma(d_theta[s]), "sigma_pt_rel": _robust_sigma(d_ptrel[s])})
    res["vs_pt"] = rows
    out["seed_parameter_resolution"] = res
    return out


def combine(per_event: list) -> dict:
    """Average the headline numbers over events (counts are summed)."""
    if not per_event:
        return {}
    keys = ("seeding_efficiency", "trackml_score", "seed_purity")
    out = {k: float(np.mean([e[k] for e in per_event if e.get(k) is not None])) if any(
        e.get(k) is not None for e in per_event) else None for k in keys}
    for name in ("before_ambiguity", "after_ambiguity"):
        tr = sum(e[name]["tracks"] for e in per_event)
        out[name] = {
            "tracks": tr,
            "efficiency": float(np.mean([e[name]["efficiency"] for e in per_event if e[name]["efficiency"] is not None]))
            if any(e[name]["efficiency"] is not None for e in per_event) else None,
            "fake_rate": sum(e[name]["fakes"] for e in per_event) / tr if tr else 0.0,
            "duplicate_rate": sum(e[name]["duplicates"] for e in per_event) / tr if tr else 0.0,
        }
    for key in ("seeding_efficiency_vs_pt", "seeding_efficiency_vs_eta", "track_efficiency_vs_pt",
                "track_efficiency_vs_eta"):
        rows = []
        for i, row in enumerate(per_event[0].get(key, [])):
            n = sum(e[key][i]["n"] for e in per_event)
            k = sum(e[key][i]["found"] for e in per_event)
            rows.append({"lo": row["lo"], "hi": row["hi"], "n": n, "found": k, "efficiency": k / n if n else None})
        out[key] = rows
    res = [e["seed_parameter_resolution"] for e in per_event]
    out["seed_parameter_resolution"] = {
        k: float(np.mean([r[k] for r in res if r.get(k) is not None])) if any(r.get(k) is not None for r in res)
        else None for k in ("sigma_phi_rad", "sigma_theta_rad", "sigma_pt_rel", "charge_correct_fraction")}
    out["events"] = len(per_event)
    return out


def plot_performance(perf: dict, path) -> None:
    """Efficiency vs pT and eta and seed resolution vs pT (matplotlib, Agg backend) as a png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key, ax, xlabel in (("vs_pt", axes[0], "pT [GeV]"), ("vs_eta", axes[1], "eta")):
        for name, label in ((f"seeding_efficiency_{key}", "seeding"), (f"track_efficiency_{key}", "tracking")):
            rows = perf.get(name, [])
            x = [0.5 * (r["lo"] + r["hi"]) for r in rows if r["efficiency"] is not None]
            y = [r["efficiency"] for r in rows if r["efficiency"] is not None]
            ax.plot(x, y, "o-", label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("efficiency")
        ax.set_ylim(0, 1.05)
        if key == "vs_pt":
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend()
    rows = [r for r in perf.get("seed_parameter_resolution", {}).get("vs_pt", []) if r.get("sigma_pt_rel") is not None]
    ax = axes[2]
    if rows:
        x = [0.5 * (r["lo"] + r["hi"]) for r in rows]
        ax.plot(x, [100 * r["sigma_pt_rel"] for r in rows], "o-", label="sigma(pT)/pT [%]")
        ax.plot(x, [1e3 * r["sigma_phi_rad"] for r in rows], "s-", label="sigma(phi) [mrad]")
        ax.plot(x, [1e3 * r["sigma_theta_rad"] for r in rows], "^-", label="sigma(theta) [mrad]")
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel("pT [GeV]")
    ax.set_title("seed parameter resolution")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
