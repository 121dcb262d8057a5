"""A/B of the CPU tracking chain (``CPU_CHAIN``) between two source trees on the same events.

Usage (from the repository root; events from ``hepaudit simulate ... --out EVENTS``):

    python benchmarks/ab_tracking_cpu.py EVENTS --tree . --rounds 2
    python benchmarks/ab_tracking_cpu.py EVENTS --tree OTHER_CHECKOUT --rounds 2

Runs in one process for the given tree (its ``reference`` package first on the path), one numba
thread, after a warm-up event: per event the CPU time of ``reconstruct_event`` (process time),
the per-stage CPU times (``cpu_timings_s``) and the TrackML score and efficiencies. Prints one
JSON list. Run it once per tree, alternating, to compare versions on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path, help="directory with TrackML events and detectors.csv")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1],
                        help="source tree whose reference package is timed (default: this one)")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    # pylint: disable=import-outside-toplevel  # imported from the chosen tree
    from reference.tracking.chain import CPU_CHAIN, reconstruct_event, submission
    from reference.tracking.performance import evaluate
    from reference.tracking.trackml_io import list_events, read_detector, read_event
    detector = read_detector(args.events / "detectors.csv")
    events = [read_event(args.events, prefix) for prefix in list_events(args.events)]
    if not events:
        sys.exit(f"No TrackML event in {args.events}.")
    reconstruct_event(events[0], detector, CPU_CHAIN)  # warm-up (JIT)
    out = []
    for _ in range(args.rounds):
        for index, event in enumerate(events):
            started = time.process_time()
            result = reconstruct_event(event, detector, CPU_CHAIN)
            seconds = time.process_time() - started
            _, track_id = submission(result, event.hits.hit_id)
            perf = evaluate(event, result, sub_track_id=track_id)
            out.append({"event": index, "cpu_s": seconds,
                        "stages_s": {k: round(v, 4) for k, v in result.cpu_timings_s.items()},
                        "physics": {k: v for k, v in perf.items() if isinstance(v, (int, float))}})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
