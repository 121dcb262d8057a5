"""Measure the demo chain (radius, order, histogram of random points) with ``hepaudit run``'s
machinery on every device present, and save the full run report.

It exercises everything a GPU adds to a run: CUDA-event timing, resident inputs, device memory,
CPU-GPU agreement, pageable and pinned transfers, and the placement over measured transfers.
Usage: python benchmarks/bench_run_demo.py --size 1000000 --events 3 --mode normal --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auditor.placement_report import placement_for_chain  # noqa: E402
from auditor.profiler import ProfileOptions  # noqa: E402
from auditor.render import run_console  # noqa: E402
from auditor.run import run_chains  # noqa: E402
from auditor.energy_meter import EnergyMeter  # noqa: E402
from auditor.runner import save_report  # noqa: E402
from tests.auditor.demo_chain import build_demo_chain  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=3)
    parser.add_argument("--mode", default="normal", choices=("quick", "normal", "precise"))
    parser.add_argument("--no-energy", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("reports") / "demo")
    args = parser.parse_args()
    options = ProfileOptions(parameters={"size": args.size, "events": args.events}, mode=args.mode)
    from rich.console import Console

    meter = None if args.no_energy else EnergyMeter(args.mode)
    report = run_chains([build_demo_chain()], options, meter, print,
                        lambda chain, result: placement_for_chain(chain, result, 0.99))
    if meter is not None:
        report["energy"] = meter.describe()
        meter.close()
    save_report(report, args.out)
    run_console.render(report, Console(width=160))


if __name__ == "__main__":
    main()
