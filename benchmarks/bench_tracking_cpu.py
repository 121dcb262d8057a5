"""Speed and physics benchmark of the reference tracking chain on one CPU thread.

Usage (from the repository root):

    python benchmarks/bench_tracking_cpu.py --events 5 --repeats 5 --mu-scan 20,60,100,140,200,300

It measures, for simulated pile-up events of the built-in TrackML-like detector:
- numba JIT compilation of the whole chain (in a subprocess with an empty cache directory) and
  the start-up cost with a warm on-disk cache, reported separately from the per-event times;
- event generation time per mu = 200 event;
- per-stage wall time (time.perf_counter) of clusterization, spacepoint formation, seeding,
  parameter estimation, CKF and ambiguity resolution: median, min-max and IQR over
  events x repeats;
- truth-based physics performance averaged over the events;
- CPU_CHAIN, the default of ``hepaudit reconstruct`` (three iterations, inward extension, overlap
  pick-up): process CPU time per event and per stage, and its physics (``--chain-repeats``);
- a scan of the total time and event size versus mu (single pass, and CPU_CHAIN once per mu).
Results are printed as Markdown tables and written as JSON (default benchmarks/data/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

STAGES = ("clusterization", "spacepoints", "seeding", "estimation", "ckf", "ambiguity", "total")

JIT_SNIPPET = """
import time, sys
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
from reference.tracking.geometry import build_generic_detector
from reference.tracking.simulation import SimulationConfig, simulate_event
from reference.tracking.chain import reconstruct_event
from reference.tracking.performance import evaluate
det = build_generic_detector()
t1 = time.perf_counter()
ev = simulate_event(det, SimulationConfig(pileup=1), seed=1)
t2 = time.perf_counter()
res = reconstruct_event(ev, det)
evaluate(ev, res)
t3 = time.perf_counter()
res = reconstruct_event(ev, det)
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def jit_times() -> dict:
    """First-call cost of simulation and reconstruction with an empty and with a warm cache."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold_cache", "warm_cache"):
            r = subprocess.run([sys.executable, "-c", JIT_SNIPPET.format(root=str(ROOT))], env=env,
                               capture_output=True, text=True, check=True)
            imp, sim, first, second = map(float, r.stdout.split())
            out[label] = {"import_and_detector_s": imp, "simulate_first_call_s": sim,
                          "reconstruct_first_call_s": first, "reconstruct_second_call_s": second,
                          "jit_overhead_reconstruct_s": first - second}
    return out


def summarize(values) -> dict:
    v = np.asarray(values, float)
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "q25": float(np.percentile(v, 25)), "q75": float(np.percentile(v, 75)), "n": int(len(v))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pileup", type=int, default=200)
    ap.add_argument("--mu-scan", default="20,60,100,140,200,300")
    ap.add_argument("--scan-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-jit", action="store_true", help="skip the JIT subprocess measurement")
    ap.add_argument("--chain-repeats", type=int, default=2,
                    help="repeats per event of CPU_CHAIN, the default of hepaudit reconstruct (0: skip it)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "tracking_cpu.json")
    args = ap.parse_args()

    from dataclasses import replace

    from reference.tracking.chain import CPU_CHAIN, reconstruct_event
    from reference.tracking.geometry import build_generic_detector
    from reference.tracking.performance import combine, evaluate
    from reference.tracking.simulation import SimulationConfig, module_planes, simulate_event

    result = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "cores": os.cpu_count(),
              "python": platform.python_version(), "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}
    import numba
    result["numpy"] = np.__version__
    result["numba"] = numba.__version__
    if not args.no_jit:
        result["jit"] = jit_times()

    det = build_generic_detector()
    planes = module_planes(det)
    cfg = SimulationConfig(pileup=args.pileup)
    simulate_event(det, SimulationConfig(pileup=1), seed=0, planes=planes)  # warm-up
    events, sim_t = [], []
    for i in range(args.events):
        t0 = time.perf_counter()
        events.append(simulate_event(det, cfg, seed=[args.seed, i], planes=planes))
        sim_t.append(time.perf_counter() - t0)
    result["simulation_s"] = summarize(sim_t)
    result["event_size"] = {
        "hits": summarize([len(e.hits) for e in events]), "cells": summarize([len(e.cells) for e in events]),
        "particles": summarize([len(e.particles) for e in events]),
        "particles_pt_gt_1": summarize([int((np.hypot(e.particles.px, e.particles.py) > 1).sum()) for e in events]),
        "particles_pt_gt_0p5": summarize([int((np.hypot(e.particles.px, e.particles.py) > 0.5).sum()) for e in events]),
    }
    reconstruct_event(events[0], det)  # warm-up (JIT load)
    samples = {s: [] for s in STAGES}
    cpu_samples = {s: [] for s in STAGES}
    perfs, counts = [], []
    for ev in events:
        for _ in range(args.repeats):
            res = reconstruct_event(ev, det)
            for s in STAGES:
                samples[s].append(res.timings_s[s])
                cpu_samples[s].append(res.cpu_timings_s[s])
        perfs.append(evaluate(ev, res))
        counts.append({**res.info, **res.seeds.stats, **res.tracks_all.stats})
    result["stages_s"] = {s: summarize(v) for s, v in samples.items()}
    result["stages_cpu_s"] = {s: summarize(v) for s, v in cpu_samples.items()}
    result["load_average"] = os.getloadavg()
    result["physics"] = combine(perfs)
    result["physics_per_event"] = perfs
    result["counts_per_event"] = counts

    if args.chain_repeats > 0:
        result["cpu_chain"] = cpu_chain_times(events, det, args.chain_repeats)
    # hits used directly as spacepoints, layers derived from the hits (no detector description)
    ev = replace(events[0], cells=None)
    reconstruct_event(ev, None)
    tot = []
    for _ in range(args.repeats):
        res = reconstruct_event(ev, None)
        tot.append(res.timings_s["total"])
    result["hits_only_no_detector"] = {"total_s": summarize(tot), "physics": combine([evaluate(ev, res)])}

    scan = []
    for mu in [int(m) for m in args.mu_scan.split(",") if m]:
        ev = simulate_event(det, SimulationConfig(pileup=mu), seed=[args.seed, 1000 + mu], planes=planes)
        st = {s: [] for s in STAGES}
        for _ in range(args.scan_repeats):
            res = reconstruct_event(ev, det)
            for s in STAGES:
                st[s].append(res.timings_s[s])
        perf = evaluate(ev, res)
        chain = reconstruct_event(ev, det, CPU_CHAIN) if args.chain_repeats > 0 else None
        chain_extra = {} if chain is None else {
            "cpu_chain_total_cpu_s": chain.cpu_timings_s["total"],
            "cpu_chain_trackml_score": evaluate(ev, chain)["trackml_score"]}
        scan.append({**chain_extra, "mu": mu, "hits": len(ev.hits), "seeds": res.info["seeds"], "tracks": res.info["tracks"],
                     "stages_median_s": {s: float(np.median(v)) for s, v in st.items()},
                     "total_min_s": float(np.min(st["total"])), "total_max_s": float(np.max(st["total"])),
                     "track_efficiency": perf["after_ambiguity"]["efficiency"],
                     "seeding_efficiency": perf["seeding_efficiency"],
                     "fake_rate": perf["after_ambiguity"]["fake_rate"], "trackml_score": perf["trackml_score"]})
    result["mu_scan"] = scan
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print_markdown(result, args)


def cpu_chain_times(events, det, repeats: int) -> dict:
    """CPU_CHAIN (three iterations, extension, overlaps) on every event: wall and process CPU time
    per event and per stage, and the physics of the last repeat."""
    from reference.tracking.chain import CPU_CHAIN, reconstruct_event
    from reference.tracking.performance import combine, evaluate
    reconstruct_event(events[0], det, CPU_CHAIN)  # warm-up
    wall, cpu, stages, perfs = [], [], {}, []
    for ev in events:
        for _ in range(repeats):
            started = time.process_time()
            res = reconstruct_event(ev, det, CPU_CHAIN)
            cpu.append(time.process_time() - started)
            wall.append(res.timings_s["total"])
            for k, v in res.cpu_timings_s.items():
                stages.setdefault(k, []).append(v)
        perfs.append(evaluate(ev, res))
    return {"total_s": summarize(wall), "total_cpu_s": summarize(cpu),
            "stages_cpu_s": {k: summarize(v) for k, v in stages.items()}, "physics": combine(perfs)}


def print_markdown(r: dict, args) -> None:
    ms = 1000.0
    print(f"date {r['date']}; CPU: {r['cpu']} ({r['cores']} cores, one thread used); python {r['python']}, "
          f"numpy {r['numpy']}, numba {r['numba']}")
    print(f"command: python {r['command']}\n")
    if "jit" in r:
        c, w = r["jit"]["cold_cache"], r["jit"]["warm_cache"]
        print("| JIT / start-up (mu=1 event) | empty numba cache | warm numba cache |\n|---|---|---|")
        for k, label in (("import_and_detector_s", "import + detector build"),
                         ("simulate_first_call_s", "first simulate_event"),
                         ("reconstruct_first_call_s", "first reconstruct_event"),
                         ("jit_overhead_reconstruct_s", "first minus second reconstruct_event")):
            print(f"| {label} | {c[k]:.2f} s | {w[k]:.2f} s |")
        print()
    e = r["event_size"]
    print(f"mu={args.pileup}: {args.events} events; hits median {e['hits']['median']:.0f} "
          f"({e['hits']['min']:.0f}-{e['hits']['max']:.0f}), cells {e['cells']['median']:.0f}, particles "
          f"{e['particles']['median']:.0f}, pT>0.5 GeV {e['particles_pt_gt_0p5']['median']:.0f}, pT>1 GeV "
          f"{e['particles_pt_gt_1']['median']:.0f}")
    s = r["simulation_s"]
    print(f"event generation: median {s['median']:.3f} s (min-max {s['min']:.3f}-{s['max']:.3f}, n={s['n']})\n")
    print("| stage | wall median [ms] | wall min-max [ms] | wall IQR [ms] | CPU median [ms] | CPU min-max [ms] | n |\n"
          "|---|---|---|---|---|---|---|")
    for st in STAGES:
        v = r["stages_s"][st]
        c = r["stages_cpu_s"][st]
        print(f"| {st} | {v['median'] * ms:.1f} | {v['min'] * ms:.1f}-{v['max'] * ms:.1f} | "
              f"{v['q25'] * ms:.1f}-{v['q75'] * ms:.1f} | {c['median'] * ms:.1f} | {c['min'] * ms:.1f}-{c['max'] * ms:.1f} "
              f"| {v['n']} |")
    la = r["load_average"]
    print(f"(load average after the timing loop: {la[0]:.2f} {la[1]:.2f} {la[2]:.2f})")
    p = r["physics"]

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f} %"

    print(f"\nphysics (mean over {p['events']} events): seeding efficiency {pct(p['seeding_efficiency'])}, "
          f"track efficiency {pct(p['after_ambiguity']['efficiency'])}, fake rate {pct(p['after_ambiguity']['fake_rate'])}"
          f" (before ambiguity {pct(p['before_ambiguity']['fake_rate'])}), duplicate rate "
          f"{pct(p['after_ambiguity']['duplicate_rate'])} (before {pct(p['before_ambiguity']['duplicate_rate'])}), "
          f"TrackML score {p['trackml_score']:.4f}, seed purity {pct(p['seed_purity'])}")
    per = r["physics_per_event"]
    res = [e["seed_parameter_resolution"] for e in per]
    print(f"seed parameter resolution (68% half width, mean over events): phi "
          f"{np.mean([x['sigma_phi_rad'] for x in res]) * 1e3:.2f} mrad, theta "
          f"{np.mean([x['sigma_theta_rad'] for x in res]) * 1e3:.2f} mrad, pT "
          f"{np.mean([x['sigma_pt_rel'] for x in res]) * 100:.1f} %")
    if "cpu_chain" in r:
        c = r["cpu_chain"]
        q = c["physics"]
        t = c["total_cpu_s"]
        print(f"\nCPU_CHAIN (hepaudit reconstruct's default): CPU time per event median {t['median'] * ms:.0f} ms "
              f"(min-max {t['min'] * ms:.0f}-{t['max'] * ms:.0f}, n={t['n']}); per stage (median ms): "
              + ", ".join(f"{k} {v['median'] * ms:.0f}" for k, v in c["stages_cpu_s"].items() if k != "total")
              + f"; seeding efficiency {pct(q['seeding_efficiency'])}, track efficiency "
              f"{pct(q['after_ambiguity']['efficiency'])}, fake rate {pct(q['after_ambiguity']['fake_rate'])}, duplicate "
              f"rate {pct(q['after_ambiguity']['duplicate_rate'])}, TrackML score {q['trackml_score']:.4f}")
    h = r["hits_only_no_detector"]
    q = h["physics"]
    print(f"hits as spacepoints, no detector file (1 event): total median {h['total_s']['median'] * ms:.0f} ms; "
          f"seeding efficiency {pct(q['seeding_efficiency'])}, track efficiency {pct(q['after_ambiguity']['efficiency'])}, "
          f"fake rate {pct(q['after_ambiguity']['fake_rate'])}, TrackML score {q['trackml_score']:.4f}")
    print("\n| mu | hits | seeds | tracks | clusterization | seeding | CKF | total median (min-max) [ms] | "
          "track eff. | fake rate | TrackML score | CPU_CHAIN CPU time [ms] | CPU_CHAIN TrackML score |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in r["mu_scan"]:
        m = row["stages_median_s"]
        chain = (f"{row['cpu_chain_total_cpu_s'] * ms:.0f} | {row['cpu_chain_trackml_score']:.3f}"
                 if "cpu_chain_total_cpu_s" in row else "- | -")
        print(f"| {row['mu']} | {row['hits']} | {row['seeds']} | {row['tracks']} | {m['clusterization'] * ms:.1f} | "
              f"{m['seeding'] * ms:.1f} | {m['ckf'] * ms:.1f} | {m['total'] * ms:.1f} "
              f"({row['total_min_s'] * ms:.1f}-{row['total_max_s'] * ms:.1f}) | {pct(row['track_efficiency'])} | "
              f"{pct(row['fake_rate'])} | {row['trackml_score']:.3f} | {chain} |")


if __name__ == "__main__":
    main()
