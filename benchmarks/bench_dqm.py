"""The DQM experiment at full size, with its figures of merit as Markdown tables.

Usage (from the repository root):

    python benchmarks/bench_dqm.py --device cuda --out reports/dqm-h100
    python benchmarks/bench_dqm.py --summarise reports/dqm-h100/results.json
    python benchmarks/bench_dqm.py --models lstm --heavy-ion-runs 0 --no-student --inputs global --window 32


Runs ``reference.dqm.experiment.run_experiment`` with the default configuration (150 pp runs,
LSTM and xLSTM teachers, the distilled student with 300 extra runs, continual learning on 24
heavy-ion runs), trains on ``--device``, measures CPU latency on this host, and prints the tables
that go into benchmarks/RESULTS.md, next to the issue's targets. ``--inputs global --window 32``
reproduces the former inputs (one standardisation over all runs); the default inputs are relative
to each run's reference with A-C differences (``reference.dqm.inputs``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"noise_burst": 0.99, "hv_trip": 0.98, "desync": 0.98, "trigger": 0.97, "noisy_channel": 0.85}


def _pct(entry: dict) -> str:
    return "n/a" if entry["rate"] is None else f"{100 * entry['rate']:.1f} % (n={entry['n']})"


def _auc(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def auc_table(results: dict) -> list[str]:
    names = [n for n in results if "evaluation" in results[n]]
    lines = ["| anomaly type | target | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for kind, target in TARGETS.items():
        cells = [f"{_auc(results[n]['evaluation']['auc'][kind])}" for n in names]
        lines.append(f"| {kind} | >= {target} | " + " | ".join(cells) + " |")
    lines.append("| macro | - | " + " | ".join(_auc(results[n]["evaluation"]["auc"]["macro"]) for n in names) + " |")
    for key, label in (("false_alarm", "false alarms on good test windows (1 % on validation)"),
                       ("benign_all", "benign-control windows above threshold (target <= 1 %)"),
                       ("benign_lumi_step", "of which luminosity step"), ("benign_run_change", "of which run change")):
        lines.append(f"| {label} | | " + " | ".join(_pct(results[n]["evaluation"]["at_threshold"][key]) for n in names) + " |")
    return lines


def efficiency_table(results: dict) -> list[str]:
    names = [n for n in results if "evaluation" in results[n]]
    lines = ["| efficiency at 1 % false alarms (with 3-window persistence) | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for kind in TARGETS:
        lines.append(f"| {kind} | " + " | ".join(
            f"{_pct(results[n]['evaluation']['at_threshold'][kind])} ({_pct(results[n]['evaluation']['with_persistence'][kind])})"
            for n in names) + " |")
    lines.append("| false alarms | " + " | ".join(
        f"{_pct(results[n]['evaluation']['at_threshold']['false_alarm'])} ({_pct(results[n]['evaluation']['with_persistence']['false_alarm'])})"
        for n in names) + " |")
    return lines


def cost_table(results: dict) -> list[str]:
    lines = ["| model | parameters | MACs / window | CPU batch 1, 1 thread: median (IQR) | CPU batch 1024 |",
             "|---|---|---|---|---|"]
    for name, result in results.items():
        cost = result.get("cost")
        if not cost:
            continue
        single, many = cost["cpu_latency_batch1_1thread"], cost["cpu_latency_batch1024"]
        lines.append(f"| {name} | {cost['parameters']:,} | {cost['macs_per_window']['total_macs']:,} | "
                     f"{single['median_s'] * 1e6:.1f} us ({single['q25_s'] * 1e6:.1f}-{single['q75_s'] * 1e6:.1f}) | "
                     f"{1024 / many['median_s']:,.0f} windows/s ({many['threads']} threads) |")
    return lines


def student_lines(results: dict) -> list[str]:
    if "student" not in results:
        return []
    agreement = results["student"]["agreement"]
    teacher = results["student"]["teacher"]
    t_cost, s_cost = results[teacher]["cost"], results["student"]["cost"]
    teacher_s = t_cost["cpu_latency_batch1_1thread"]["median_s"]
    speed = f"{teacher_s / s_cost['cpu_latency_batch1_1thread']['median_s']:.1f}x faster at batch 1 on one CPU thread (torch)"
    if "cpu_latency_batch1_kernel" in s_cost:
        kernel = s_cost["cpu_latency_batch1_kernel"]["median_s"]
        speed += f", {teacher_s / kernel:.1f}x through its compiled kernel ({kernel * 1e6:.1f} us)"
    macs = t_cost["macs_per_window"]["total_macs"] / s_cost["macs_per_window"]["total_macs"]
    deltas = ", ".join(f"{k} {v:+.4f}" for k, v in agreement["delta_auc"].items() if v is not None)
    return [f"Student vs {teacher} teacher (targets: correlation >= 0.95, AUC drop <= 0.01 per type, >= 50x fewer "
            f"MACs, >= 10x faster batch-1 CPU): Pearson {agreement['pearson']:.4f}, Spearman "
            f"{agreement['spearman']:.4f}, EMD {agreement['emd']:.4f}; AUC change {deltas}; {macs:.0f}x fewer MACs; "
            f"{speed}; benign-control windows above threshold "
            f"{_pct(results['student']['evaluation']['at_threshold']['benign_all'])}."]


def continual_lines(results: dict) -> list[str]:
    lines = []
    for name, result in results.items():
        c = result.get("continual")
        if c:
            lines.append(f"Continual learning, {name}: pp macro AUC {c['pp_macro_auc_before']:.4f} before, "
                         f"{c['pp_macro_auc_after']:.4f} after fine-tuning on heavy-ion runs (lost "
                         f"{c['pp_auc_lost']:+.4f}); heavy-ion macro AUC after {_auc(c['heavy_ion_auc_after']['macro'])}.")
    return lines


def inputs_line(document: dict) -> str:
    """What the autoencoders saw: the input transform, the window and the data sizes."""
    config = document.get("config", {})
    inputs = config.get("inputs", "global")
    if inputs == "run_reference":
        inputs += f" (reference: median of the first {config['reference_lb']} LBs; A-C differences {config['ac_differences']})"
    return (f"Inputs {inputs}; window {config.get('window')} LBs; {config.get('runs')} runs; "
            f"windows {document.get('windows')}.")


def summarise(document: dict) -> str:
    results = document["results"]
    parts = [[inputs_line(document)], auc_table(results), efficiency_table(results), cost_table(results), student_lines(results),
             continual_lines(results)]
    return "\n\n".join("\n".join(p) for p in parts if p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "data" / "dqm")
    parser.add_argument("--models", default="lstm,xlstm", help="Autoencoders to train (the first is the teacher).")
    parser.add_argument("--heavy-ion-runs", type=int, default=24, help="0 skips the continual-learning step.")
    parser.add_argument("--summarise", type=Path, help="Only print the tables of an existing results.json.")
    parser.add_argument("--no-student", action="store_true", help="Skip the distilled student.")
    parser.add_argument("--inputs", default=None, help="run_reference (default) or global (the former inputs).")
    parser.add_argument("--window", type=int, default=None, help="LBs per window (default: ExperimentConfig's).")
    parser.add_argument("--runs", type=int, default=None, help="pp runs (default: ExperimentConfig's).")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(json.loads(args.summarise.read_text())))
        return
    from reference.dqm.experiment import ExperimentConfig, run_experiment

    config = ExperimentConfig(models=tuple(args.models.split(",")), heavy_ion_runs=args.heavy_ion_runs,
                              student=not args.no_student)
    changes = {"inputs": args.inputs, "window": args.window, "runs": args.runs}
    config = replace(config, **{k: v for k, v in changes.items() if v is not None})
    config = replace(config, train=replace(config.train, device=args.device),
                     student_train=replace(config.student_train, device=args.device))
    start = time.perf_counter()
    document = run_experiment(config, args.out, step=lambda m: print(f"{time.perf_counter() - start:7.1f} s  {m}",
                                                                     flush=True))
    print(f"\nwall time {time.perf_counter() - start:.0f} s on {platform.processor() or platform.machine()}, "
          f"training device {args.device}\n")
    print(summarise(document))


if __name__ == "__main__":
    main()
