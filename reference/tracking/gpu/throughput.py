"""Throughput mode: several events in flight on one GPU, each host thread on its own CUDA stream.

One event keeps an H100 only partly busy (the CKF launches one thread per seed, the smaller stages
are dominated by launch and synchronisation latency, and the host copies, count reads and the
ambiguity resolution leave the device idle). Here ``streams`` host threads take events from a
queue; each runs the whole chain (:func:`reconstruct_event_gpu`, copies and host ambiguity
resolution included) inside its own non-blocking CuPy stream, and every kernel is launched on the
current stream (:func:`backend.stream`), so the work of different events overlaps on the device
and with the host work. With ``batch`` > 1 a thread takes that many events at a time and runs
them as one batch (:func:`reconstruct_batch_gpu`): the host's work per event shrinks, and the
CKF launches hold several events' seeds. Results are returned in event order and are the same as
one at a time.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Sequence

from reference.tracking.chain import ChainConfig, ChainResult
from reference.tracking.event import Event
from reference.tracking.geometry import Detector
from reference.tracking.gpu import backend
from reference.tracking.gpu.chain import reconstruct_batch_gpu, reconstruct_event_gpu


@dataclass(frozen=True)
class Throughput:
    """Events reconstructed, wall seconds, events per second and the results in event order."""

    streams: int
    seconds: float
    results: tuple[ChainResult, ...]

    @property
    def events_per_s(self) -> float:
        return len(self.results) / self.seconds if self.seconds > 0 else float("inf")


def _run_item(item: tuple, detector: Detector | None, config: ChainConfig, out: list) -> None:
    """Reconstruct one queued item, (first index, events), into ``out``; an error goes into the
    slots of its events. A batch that does not fit in the device's memory beside the others in
    flight runs again one event at a time, with a warning."""
    first, events = item
    try:
        try:
            results = reconstruct_batch_gpu(events, detector, config)  # one event: reconstruct_event_gpu
        except MemoryError:  # CuPy's OutOfMemoryError is one
            if len(events) < 2:
                raise
            backend.free_cached_memory()
            warnings.warn(f"A batch of {len(events)} events did not fit in the GPU's memory beside the other "
                          "streams' and ran one event at a time; fewer streams or smaller batches avoid that.",
                          RuntimeWarning, stacklevel=2)
            results = [reconstruct_event_gpu(event, detector, config) for event in events]
    except Exception as error:  # pylint: disable=broad-except  # re-raised in the caller's thread
        results = [error] * len(events)
    out[first:first + len(events)] = results


def _worker(work: queue.Queue, detector: Detector | None, config: ChainConfig, out: list) -> None:
    """Reconstruct queued items on this thread's own stream until the queue is empty."""
    import cupy  # pylint: disable=import-outside-toplevel,import-error  # only on GPU machines

    with cupy.cuda.Stream(non_blocking=True):
        while True:
            try:
                item = work.get_nowait()
            except queue.Empty:
                return
            _run_item(item, detector, config, out)


def reconstruct_many(events: Sequence[Event], detector: Detector | None = None, config: ChainConfig = ChainConfig(),
                     streams: int = 4, batch: int = 1) -> Throughput:
    """Reconstruct ``events`` with ``streams`` batches of ``batch`` events in flight; the first
    error of an event is raised."""
    if streams < 1 or batch < 1:
        raise ValueError("streams and batch must be at least 1")
    if backend.simulated():
        streams = 1  # the simulator runs kernels on the host: nothing to overlap
    events = list(events)
    work = _queue(events, batch)
    out: list = [None] * len(events)
    started = time.perf_counter()
    if streams == 1:
        _serial(work, detector, config, out)
    else:
        threads = [threading.Thread(target=_worker, args=(work, detector, config, out), daemon=True)
                   for _ in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    seconds = time.perf_counter() - started
    for result in out:
        if isinstance(result, Exception):
            raise result
    return Throughput(streams, seconds, tuple(out))


def _queue(events: list, batch: int) -> queue.Queue:
    """The work items: (index of the first event, the batch's events)."""
    work: queue.Queue = queue.Queue()
    for first in range(0, len(events), batch):
        work.put((first, events[first:first + batch]))
    return work


def _serial(work: queue.Queue, detector: Detector | None, config: ChainConfig, out: list) -> None:
    while not work.empty():
        _run_item(work.get_nowait(), detector, config, out)
