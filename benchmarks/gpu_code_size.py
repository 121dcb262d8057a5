"""Machine-code size of the GPU CKF filter kernel, compiled without a GPU.

Usage (from the repository root; needs numba-cuda and NVIDIA's compiler wheels, no GPU):

    pip install numba-cuda==0.30.4 nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12
    python benchmarks/gpu_code_size.py [--without HELPER ...]

The filter kernel (``ckf_seeds``, default :class:`CkfConfig`) is compiled to PTX for sm_90 (the
H100 / H200) and assembled with ``ptxas -v``. Printed: PTX instructions, SASS instructions (bytes of
the kernel's ``.text`` section / 16), registers and spills as ``ptxas`` reports them. The profile
(RESULTS.md) showed the kernel bound by instruction fetch, so its size is a figure to watch.
``--without NAME`` replaces a device helper of :mod:`reference.tracking.gpu.ckf` by an empty one
before compiling (in a child process each), which shows how much code the helper adds: one of
``_child``, ``_evaluate``, ``_scan_window``, ``_crossing``, ``_hole_candidate``, ``_best_overlap``,
``_offer_best``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# empty stand-ins (same arguments, trivial result) for --without
STAND_INS = {"_child": "lambda ev, w, b, q: None", "_evaluate": "lambda ev, w, b, li: None",
             "_scan_window": "lambda ev, w, li: None", "_crossing": "lambda ev, w, b, li: None",
             "_hole_candidate": "lambda ev, w, b: False", "_best_overlap": "lambda ev, w, m: -1",
             "_offer_best": "lambda w, buf, b: None"}


def _compiler():
    """numba.cuda set up to compile for sm_90 without a device, and the path of ptxas."""
    from numba import cuda
    try:
        import numba.cuda.dispatcher as dispatcher  # numba-cuda: device functions ask the device's capability
    except ImportError:
        sys.exit("This needs numba-cuda (pip install numba-cuda).")

    class Hopper:  # pylint: disable=too-few-public-methods
        compute_capability = (9, 0)

    dispatcher.get_current_device = Hopper
    try:
        import nvidia.cuda_nvcc  # pylint: disable=import-outside-toplevel
    except ImportError:
        sys.exit("This needs ptxas from NVIDIA's compiler wheel (pip install nvidia-cuda-nvcc-cu12).")
    ptxas = Path(next(iter(nvidia.cuda_nvcc.__path__))) / "bin" / "ptxas"
    return cuda, ptxas


def _signature():
    """numba types of the filter kernel's arguments (shapes do not matter)."""
    import numba
    import numpy as np

    from reference.tracking.gpu import ckf as gc
    f8, i8, i4 = np.float64, np.int64, np.int32

    def z(dtype, ndim):
        return np.zeros((1,) * ndim, dtype)
    seeds = gc.SeedStates(z(f8, 2), z(f8, 2), z(i8, 1), z(i8, 2), z(f8, 1), z(i8, 1), z(i8, 1))
    hits = gc.Hits(z(f8, 2), z(f8, 1), z(f8, 1), z(f8, 1), z(f8, 1), z(i8, 1), z(f8, 1), z(f8, 1))
    geo = gc.Geo(z(i4, 1), *[z(f8, 1)] * 6, z(i8, 1), z(i8, 1), z(f8, 1), z(f8, 1), z(i8, 1), z(i8, 1), z(i4, 1))
    found = gc.Found(z(i8, 1), z(i4, 2), z(f8, 1), z(i8, 1), z(f8, 2), z(i8, 2))
    return tuple(numba.typeof(a) for a in (seeds, hits, geo, found, z(i8, 1)))


def measure(without: str | None = None) -> str:
    """One line: the filter kernel's PTX and SASS size, registers and spills."""
    cuda, ptxas = _compiler()
    from reference.tracking.ckf import CkfConfig
    from reference.tracking.gpu import ckf as gc
    if without:
        setattr(gc, without, gc._device_function(eval(STAND_INS[without])))  # pylint: disable=eval-used,protected-access
    kernel = gc._filter_kernel(gc.capacities(CkfConfig()))  # pylint: disable=protected-access
    ptx, _ = cuda.compile_ptx(kernel.py_func, _signature(), cc=(9, 0))
    instructions = sum(1 for line in ptx.splitlines() if line.strip() and not line.strip().startswith(
        (".", "//", "{", "}", "$")) and not line.strip().endswith(":"))
    with tempfile.TemporaryDirectory() as folder:
        source, cubin = os.path.join(folder, "k.ptx"), os.path.join(folder, "k.cubin")
        Path(source).write_text(ptx, encoding="utf-8")
        report = subprocess.run([str(ptxas), "-arch=sm_90", "-v", source, "-o", cubin], capture_output=True,
                                text=True, check=True).stderr
        sections = subprocess.run(["readelf", "-S", "-W", cubin], capture_output=True, text=True, check=True).stdout
    text = sum(int(m.group(1), 16) for m in re.finditer(r"\.text\.\S+\s+PROGBITS\s+\S+\s+\S+\s+(\S+)", sections))
    registers = re.search(r"Used (\d+) registers", report)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", report)
    return (f"{without or 'filter kernel'}: {instructions} PTX instructions, {text // 16} SASS instructions "
            f"({text} bytes), {registers.group(1) if registers else '?'} registers, spill stores/loads "
            f"{spills.group(1) if spills else '?'}/{spills.group(2) if spills else '?'} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without", nargs="*", default=[], choices=sorted(STAND_INS),
                        help="device helpers to replace by empty ones, one compile each")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(measure(args.one or None), flush=True)
        return
    for name in [""] + args.without:  # a fresh process each: numba caches the compiled helpers
        done = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, check=False)
        print(done.stdout.strip() or f"{name or 'filter kernel'}: failed: {done.stderr.strip().splitlines()[-1:]}",
              flush=True)


if __name__ == "__main__":
    main()
