"""Peak memory while a piece of work runs: host RSS sampled by a thread, device pool peaks."""

from __future__ import annotations

import threading
from typing import Any

import psutil


class PeakHostMemory:
    """Context manager sampling this process's resident set size every ``interval_s``.

    ``peak_mb`` is the highest RSS seen (including the last sample at exit); ``before_mb`` the
    RSS when the block started, so ``peak_mb - before_mb`` is what the block added at most.
    """

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.process = psutil.Process()
        self.before_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 1e6)

    def __enter__(self) -> "PeakHostMemory":
        self.before_mb = self.peak_mb = self.process.memory_info().rss / 1e6
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 1e6)


class PeakDeviceMemory:
    """Peak GPU memory of a block: torch's allocator peak, or CuPy's pool high-water mark.

    CuPy's default pool keeps freed blocks, so after releasing cached blocks at the start, the
    pool's total size at the end is the most it held during the block.
    """

    def __init__(self, backend: str):
        self.backend = backend
        self.peak_mb: float | None = None
        self.method = "cuda-memory"

    def __enter__(self) -> "PeakDeviceMemory":
        if self.backend == "torch":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        elif self.backend in ("cupy", "numba"):
            import cupy

            cupy.cuda.get_current_stream().synchronize()
            cupy.get_default_memory_pool().free_all_blocks()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.backend == "torch":
            import torch

            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 1e6
        elif self.backend in ("cupy", "numba"):
            import cupy

            cupy.cuda.get_current_stream().synchronize()
            self.peak_mb = cupy.get_default_memory_pool().total_bytes() / 1e6
