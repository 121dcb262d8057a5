"""Device backend for the GPU tracking stages: numba.cuda with CuPy arrays on a GPU, or numba's
CUDA simulator with numpy arrays (``NUMBA_ENABLE_CUDASIM=1``).

Kernels are launched with arguments converted by :func:`kernel_arg`: on a GPU, a CuPy array is
wrapped as a numba device array, which launches about 2.5x faster than passing the CuPy array
itself (16 versus 41 us per launch measured on an H100).
"""

from __future__ import annotations

import ctypes
import os
from functools import lru_cache
from types import ModuleType

import numpy as np


class GPUUnavailable(RuntimeError):
    """No CUDA device (and no simulator) can run the GPU stages."""


def simulated() -> bool:
    """True when numba's CUDA simulator is enabled (kernels run on the host, on numpy arrays)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@lru_cache(maxsize=None)
def cuda() -> ModuleType:
    """``numba.cuda``, importable under numpy 2.5 as well: numba-cuda 0.30 still calls
    ``np.row_stack``, which numpy 2.5 removed, so the alias is restored before the first compile."""
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
    from numba import cuda as numba_cuda  # pylint: disable=import-outside-toplevel

    return numba_cuda


@lru_cache(maxsize=None)
def xp() -> ModuleType:
    """The array module of the device: CuPy on a GPU, numpy under the simulator."""
    if simulated():
        return np
    try:
        import cupy  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise GPUUnavailable("The GPU stages need CuPy (pip install 'hepaudit[gpu]').") from error
    if not cuda().is_available():
        raise GPUUnavailable("No CUDA device is available for the GPU stages.")
    return cupy


def device_present() -> bool:
    """True when CuPy is installed and numba sees a CUDA device (a broken driver counts as none);
    False under the simulator, which runs on the host."""
    if simulated():
        return False
    import importlib.util  # pylint: disable=import-outside-toplevel

    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        return bool(cuda().is_available())
    except Exception:  # pylint: disable=broad-except  # a broken driver counts as no device
        return False


def kernel_arg(array):
    """The form of ``array`` that kernels are launched with: under the simulator the array itself;
    on a GPU a CuPy array wrapped as a numba device array directly from its pointer (about 4 us,
    against about 24 us for ``cuda.as_cuda_array``, which also queries the pointer and
    synchronises the stream), or through ``as_cuda_array`` if numba's internals differ."""
    if simulated() or isinstance(array, np.ndarray):
        return array
    numba_cuda = cuda()
    try:
        from numba.cuda.cudadrv import devicearray, driver  # pylint: disable=import-outside-toplevel

        pointer = driver.MemoryPointer(numba_cuda.current_context(), array.data.ptr, array.nbytes, owner=array)
        return devicearray.DeviceNDArray(array.shape, array.strides, array.dtype, gpu_data=pointer)
    except (AttributeError, TypeError, ImportError):
        return numba_cuda.as_cuda_array(array)


# register caps per kernel family ("ckf_filter", "doublets", "triplets"), read when a kernel is
# first compiled (None or absent: the compiler's choice). Measured on an H100 with
# benchmarks/bench_gpu_registers.py (RESULTS.md): uncapped, the doublet and triplet kernels take
# 89-105 registers, and capping them at 72 and 56 made seeding about 0.5 ms faster with the same
# seeds. The CKF filter kernel (255 registers) gained nothing reproducible from a cap.
MAX_REGISTERS: dict = {"doublets": 72, "triplets": 56}


def kernel_options(family: str) -> dict:
    """``cuda.jit`` options of a kernel family: its register cap (not under the simulator)."""
    cap = MAX_REGISTERS.get(family)
    return {} if cap is None or simulated() else {"max_registers": int(cap)}


_STREAMS: dict = {}


def stream_key() -> int:
    """The current CuPy stream's handle (0 for the default stream and under the simulator): the key
    of per-stream scratch buffers."""
    if simulated():
        return 0
    import cupy  # pylint: disable=import-outside-toplevel

    return cupy.cuda.get_current_stream().ptr


def stream():
    """The numba stream kernels are launched on: the current CuPy stream, so that events queued
    from several host threads, each on its own CuPy stream, run concurrently on the device (the
    default stream when none is set); 0 under the simulator."""
    if simulated():
        return 0
    pointer = stream_key()
    found = _STREAMS.get(pointer)
    if found is None:
        numba_cuda = cuda()
        found = numba_cuda.default_stream() if pointer == 0 else numba_cuda.external_stream(pointer)
        _STREAMS[pointer] = found
    return found


def blocks(n: int, threads: int = 256) -> tuple:
    """Launch configuration covering ``n`` threads (at least one block), on the current stream."""
    return max(1, (int(n) + threads - 1) // threads), threads, stream()


def free_cached_memory() -> None:
    """Give the blocks CuPy's memory pools keep for reuse back to the device (after running out of
    device memory); no-op under the simulator."""
    if not simulated():
        import cupy  # pylint: disable=import-outside-toplevel

        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()


def synchronize() -> None:
    """Wait for the work queued on the current stream (no-op under the simulator)."""
    if not simulated():
        import cupy  # pylint: disable=import-outside-toplevel

        cupy.cuda.get_current_stream().synchronize()


def gather(destination, parts: list) -> None:
    """Copy ``parts`` (numpy or xp arrays) one after the other into the 1-D xp array
    ``destination``, cast to its dtype. Host parts go in one asynchronous copy each on the
    current stream, straight from their memory: at DMA speed from page-locked memory, without the
    staging copy on the host that ``cupy.asarray`` makes. The caller keeps them alive until the
    stream has passed the copies (from pageable memory a copy returns once its data are staged).
    Host parts of another dtype are copied as they are and cast on the device."""
    dtypes = {part.dtype for part in parts}
    host = all(isinstance(part, np.ndarray) for part in parts)
    if not simulated() and host and len(dtypes) == 1 and destination.dtype not in dtypes:
        stage = xp().empty(destination.shape, dtypes.pop())
        gather(stage, parts)
        destination[...] = stage
        return
    position = 0
    for part in parts:
        _copy_into(destination[position:position + len(part)], part)
        position += len(part)


def _copy_into(destination, source) -> None:
    if simulated() or not isinstance(source, np.ndarray):
        destination[...] = source
        return
    if source.dtype != destination.dtype or not source.flags.c_contiguous:
        destination[...] = xp().asarray(source)
        return
    if source.size:
        import cupy  # pylint: disable=import-outside-toplevel

        runtime = cupy.cuda.runtime
        runtime.memcpyAsync(destination.data.ptr, source.ctypes.data, source.nbytes, runtime.memcpyHostToDevice,
                            cupy.cuda.get_current_stream().ptr)


def device_constant(array: np.ndarray):
    """A read-only table on the device (xp array), complete before any stream reads it: for
    constants cached once per configuration and shared by the streams of throughput mode."""
    out = xp().asarray(array)
    synchronize()
    return out


def checked_event_column(n: int, events: tuple | None, what: str) -> tuple:
    """(event of each of the ``n`` items as an xp int64 array, number of events) for a batch of
    events given as ``events`` = (event column, number of events); all zeros and 1 for one event
    (``events`` None). A malformed column raises one clear :class:`TrackingInputError`."""
    from reference.tracking.errors import TrackingInputError  # pylint: disable=import-outside-toplevel

    array = xp()
    if events is None:
        return array.zeros(n, array.int64), 1
    column, n_events = events
    column = array.asarray(column)
    if column.shape != (n,) or column.dtype.kind not in "iu" or int(n_events) < 1:
        raise TrackingInputError(f"events must be (the event of every {what} as integers, the number of events).")
    return column.astype(array.int64, copy=False), int(n_events)


# ---------------------------------------------------------------- launches

_COMPILED: dict = {}


def _type_key(arg):
    """What numba's typing of a launch argument depends on, cheaply: array dtype, dimensions and
    C-contiguity, recursively for tuples; the type for scalars."""
    if isinstance(arg, tuple):
        return tuple(_type_key(a) for a in arg)
    if hasattr(arg, "dtype") and hasattr(arg, "ndim"):
        return arg.dtype.str, arg.ndim, bool(arg.flags.c_contiguous)
    return type(arg)


def _flat_args(arg, out: list) -> None:
    """numba's kernel-argument layout of ``arg``: an array is (meminfo, parent, size, itemsize,
    data pointer, shape..., strides in bytes...), a tuple its fields in order, a float a double
    and an int an int64 (numba's typing of Python scalars)."""
    if isinstance(arg, tuple):
        for a in arg:
            _flat_args(a, out)
    elif hasattr(arg, "data") and hasattr(arg, "strides"):
        out.extend((0, 0, arg.size, arg.itemsize, arg.data.ptr, *arg.shape, *arg.strides))
    elif isinstance(arg, float):
        out.append(ctypes.c_double(arg))
    else:
        out.append(ctypes.c_int64(arg))


def _direct_launcher(kernel, args):
    """A function launching the kernel compiled for ``args`` (xp arrays, tuples, scalars)
    without numba's per-call typing and argument wrapping (about 20 us per array), or None if
    numba's internals differ from those it was written for (numba-cuda 0.30)."""
    try:
        from numba.cuda import dispatcher  # pylint: disable=import-outside-toplevel

        compiled = kernel.overloads[tuple(kernel.typeof_pyval(view_arg(a)) for a in args)]
        function = compiled._codelibrary.get_cufunc().kernel  # pylint: disable=protected-access
        make_config, core_launch = dispatcher.LaunchConfig, dispatcher.launch
    except (AttributeError, ImportError, KeyError):
        return None

    def run(launch_config, arguments):
        flat: list = []
        for a in arguments:
            _flat_args(a, flat)
        config = make_config(grid=launch_config[0], block=launch_config[1], shmem_size=0)
        core_launch(launch_config[2], config, function, *flat)

    return run


def launch(kernel, n: int, *args, threads: int = 256) -> None:
    """Launch ``kernel`` over n threads (blocks of ``threads``) with ``args``: xp arrays, named
    tuples of them, scalars.

    The first launch for given argument types goes through numba's dispatch (which compiles);
    later ones on a GPU call the compiled kernel directly on the current stream (see
    :func:`_direct_launcher` and :func:`stream`); under the simulator numba runs the kernel."""
    launch_config = blocks(n, threads)
    if simulated():
        kernel[launch_config](*args)
        return
    key = (kernel, _type_key(args))
    run = _COMPILED.get(key)
    if run is not None:
        run(launch_config, args)
        return
    kernel[launch_config](*(view_arg(a) for a in args))
    run = _direct_launcher(kernel, args)
    if run is not None:
        _COMPILED[key] = run


def view_arg(arg):
    """A launch argument in numba's kernel-argument form: device views of xp arrays, also inside
    tuples (same tuple type)."""
    if isinstance(arg, tuple):
        fields = [view_arg(a) for a in arg]
        return type(arg)(*fields) if hasattr(arg, "_fields") else tuple(fields)
    return kernel_arg(arg) if hasattr(arg, "dtype") else arg
