"""What hardware is here, and device-side timing and synchronisation.

GPU libraries (CuPy, torch with CUDA, NVML) are imported only when asked for; their absence is a
normal state reported in words, never an error.
"""

from __future__ import annotations

import os
import platform
import time
from functools import lru_cache
from typing import Any


def cpu_description() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"model": model, "cores": cores, "machine": platform.machine(), "system": platform.system()}


@lru_cache(maxsize=1)
def gpu_status() -> tuple[bool, str]:
    """(usable, reason): whether a CUDA GPU can run work here, and in words why not."""
    try:
        import cupy
    except ImportError:
        cupy = None
    if cupy is not None:
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # noqa: BLE001 - CuPy raises its own CUDARuntimeError family
            return False, f"CuPy is installed but no CUDA device is usable ({exc})"
        if count > 0:
            return True, f"{count} CUDA device(s) through CuPy"
    try:
        import torch

        if torch.cuda.is_available():
            return True, f"{torch.cuda.device_count()} CUDA device(s) through torch"
    except ImportError:
        pass
    if cupy is None:
        return False, "no CUDA GPU: CuPy is not installed and torch sees no CUDA device"
    return False, "no CUDA GPU found"


def gpu_description() -> dict[str, Any] | None:
    """Name, memory, driver and runtime versions of GPU 0, or None without a GPU."""
    usable, _ = gpu_status()
    if not usable:
        return None
    info: dict[str, Any] = {}
    try:
        import cupy

        properties = cupy.cuda.runtime.getDeviceProperties(0)
        name = properties["name"]
        info["name"] = name.decode() if isinstance(name, bytes) else str(name)
        info["memory_gb"] = round(properties["totalGlobalMem"] / 2**30, 1)
        info["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        info["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        info["cupy"] = cupy.__version__
    except Exception:  # noqa: BLE001 - torch-only machines fill in below
        pass
    try:
        import pynvml

        pynvml.nvmlInit()
        info["driver"] = _text(pynvml.nvmlSystemGetDriverVersion())
        info.setdefault("name", _text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))))
    except Exception:  # noqa: BLE001 - NVML is optional
        pass
    try:
        import torch

        if torch.cuda.is_available():
            info.setdefault("name", torch.cuda.get_device_name(0))
            info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def synchronize(backend: str) -> None:
    """Wait for all queued GPU work of ``backend`` (no-op on the CPU)."""
    if backend in ("cupy", "numba"):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif backend == "torch":
        import torch

        torch.cuda.synchronize()


class Timer:
    """Time one piece of work: CUDA events on the GPU, ``perf_counter`` on the CPU.

    Use as ``with timer: work()`` then read ``timer.seconds``. On the GPU the events are recorded
    on the current stream and the timer synchronises on the end event, so the time is the
    device's, not the launch's.
    """

    def __init__(self, backend: str = "numpy"):
        self.backend = backend
        self.seconds = float("nan")
        self.method = "perf-counter" if backend == "numpy" else "cuda-events"
        self._events: tuple[Any, Any] | None = None
        self._start = 0.0

    def __enter__(self) -> "Timer":
        if self.backend in ("cupy", "numba"):
            import cupy

            self._events = (cupy.cuda.Event(), cupy.cuda.Event())
            self._events[0].record()
        elif self.backend == "torch":
            import torch

            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self._events[0].record()
        else:
            self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._events is None:
            self.seconds = time.perf_counter() - self._start
            return
        start, end = self._events
        end.record()
        end.synchronize()
        if self.backend == "torch":
            self.seconds = start.elapsed_time(end) / 1e3
        else:
            import cupy

            self.seconds = cupy.cuda.get_elapsed_time(start, end) / 1e3
