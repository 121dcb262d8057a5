"""The distillation experiment at full size, with its Pareto tables as Markdown.

Usage (from the repository root):

    python benchmarks/bench_distill.py --out reports/distill
    python benchmarks/bench_distill.py --tasks dqm --device cuda --out reports/distill-dqm
    python benchmarks/bench_distill.py --summarise reports/distill/results.json

Runs ``reference.distill.experiment.run_experiment`` with the default configuration (digits,
seeds from 8 simulated events at pile-up 50, DQM with a 40-run LSTM teacher; students at float32,
W8A8, W6A6, W4A6, W4A4, W2A4 and mixed), trains on ``--device``, measures CPU latency on this host
(and GPU latency when CUDA is present), and prints one table per task plus the DQM targets.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _us(seconds) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e6:,.1f} us"


def _number(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def pareto_table(result: dict) -> list[str]:
    """Markdown rows: the teacher, then every student with its score, BOPs, reduction and latency."""
    from reference.distill.experiment import pareto_rows

    lines = [f"| student | {result['metric']} (integer path) | lost | BOPs (full) | BOPs reduction | "
             "CPU batch 1 | CPU batch 4096 | CPU speedup batch 1 | Pareto |", "|---|---|---|---|---|---|---|---|---|"]
    for row in pareto_rows(result):
        score = _number(row["score"]) + (f" ({_number(row['score_integer'])})" if row.get("score_integer") is not None else "")
        lines.append(f"| {row['student']} | {score} | {row['lost']:+.4f} | {row['bops']:.3g} | "
                     f"{row['bops_reduction']:,.0f}x | {_us(row['cpu_small_s'])} | {_us(row['cpu_large_s'])} | "
                     f"{row.get('cpu_speedup_small', 1.0):.1f}x | {'yes' if row['front'] else ''} |")
    return lines


def gpu_lines(result: dict) -> list[str]:
    """GPU latency of the teacher and the float32 students, or the note saying why it is missing."""
    teacher = result["teacher"]["gpu_latency"]
    if "skipped" in teacher:
        return [f"GPU latency: skipped ({teacher['skipped']})"]
    lines = ["| model | GPU batch 1 | GPU batch 4096 |", "|---|---|---|",
             f"| teacher | {_us(teacher['small']['median_s'])} | {_us(teacher['large']['median_s'])} |"]
    for point in result["points"]:
        gpu = point["gpu_latency"]
        lines.append(f"| {point['target']} {point['setting']} (torch) | {_us(gpu['small']['median_s'])} | "
                     f"{_us(gpu['large']['median_s'])} |")
    return lines


def target_lines(result: dict) -> list[str]:
    """The issue's DQM targets, met or not."""
    lines = ["| student | AUC lost | required | BOPs reduction | required | met |", "|---|---|---|---|---|---|"]
    for name, entry in result.get("targets", {}).items():
        need = entry["required"]
        lines.append(f"| {name} | {entry['auc_lost']:+.4f} | <= {need['auc_lost_at_most']} | "
                     f"{entry['bops_reduction']:,.0f}x | >= {need['bops_reduction_at_least']:,.0f}x | "
                     f"{'yes' if entry['met'] else 'no'} |")
    return lines


def summarise(document: dict) -> str:
    lines = []
    for name, result in document["tasks"].items():
        lines += [f"### {name} ({result['metric']}; teacher {result['teacher']['score']:.4f}, "
                  f"{result['teacher']['bops']:.3g} BOPs)", ""] + pareto_table(result) + [""] + gpu_lines(result) + [""]
        if "targets" in result:
            lines += ["DQM targets:", ""] + target_lines(result) + [""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "distill")
    parser.add_argument("--tasks", default="digits,seeds,dqm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--targets", help="Student targets to train, e.g. teacher or metric (default: all).")
    parser.add_argument("--summarise", type=Path, help="Print the tables of an existing results.json and stop.")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(json.loads(args.summarise.read_text())))
        return
    from dataclasses import replace

    from reference.distill.experiment import ExperimentConfig, run_experiment, with_device

    targets = None if args.targets is None else tuple(args.targets.split(","))
    config = with_device(replace(ExperimentConfig(), tasks=tuple(args.tasks.split(",")), targets=targets), args.device)
    start = time.perf_counter()
    document = run_experiment(config, args.out, step=lambda message: print(f"[{time.perf_counter() - start:7.1f} s] {message}",
                                                                           flush=True))
    print(f"\nhost: {platform.node()} ({platform.processor() or platform.machine()}), "
          f"{time.perf_counter() - start:.0f} s in all\n")
    print(summarise(document))


if __name__ == "__main__":
    main()
