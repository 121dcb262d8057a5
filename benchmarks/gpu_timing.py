"""Shared helpers of the GPU benchmark scripts: summary statistics, the GPU check and CUDA-event
timing."""

from __future__ import annotations

import sys

import numpy as np


def summarize_ms(values) -> dict:
    """Median, quartiles, min, max and count of times in ms."""
    v = np.asarray(values, float)
    return {"median": float(np.median(v)), "q25": float(np.percentile(v, 25)), "q75": float(np.percentile(v, 75)),
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


def gpu_or_exit():
    """CuPy and a CUDA device, or exit with one sentence."""
    from reference.tracking.gpu import backend  # pylint: disable=import-outside-toplevel

    if backend.simulated():
        sys.exit("This benchmark needs a real GPU: unset NUMBA_ENABLE_CUDASIM.")
    try:
        return backend.xp()
    except backend.GPUUnavailable as error:
        sys.exit(f"No GPU to benchmark on: {error}")


def host_profile(fn, calls: int, top: int = 30) -> list:
    """cProfile of ``calls`` calls of ``fn()``: the ``top`` functions by own time, as [function
    (file name:line(name)), calls, own ms per call of fn, cumulative ms per call of fn]."""
    import cProfile
    import pstats
    from pathlib import Path

    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        fn()
    profile.disable()
    rows = sorted(pstats.Stats(profile).stats.items(), key=lambda item: -item[1][2])[:top]
    return [[f"{Path(f).name}:{line}({name})", count, 1e3 * own / calls, 1e3 * cum / calls]
            for (f, line, name), (_, count, own, cum, _) in rows]


def timed(cp, fn, repeats: int) -> list:
    """CUDA-event times (ms) of ``fn()`` over ``repeats`` calls (after the caller's warm-up)."""
    out = []
    for _ in range(repeats):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(cp.cuda.get_elapsed_time(start, end))
    return out
