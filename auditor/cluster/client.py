"""Connect to a Dask scheduler, or start a local cluster sized to this machine.

``--scheduler`` (or ``scheduler`` in ``[tool.hepaudit]``) takes:

* ``local``: a cluster of worker processes on this machine, one per GPU (declaring the ``GPU``
  resource, with ``CUDA_VISIBLE_DEVICES`` set to its card) and one per remaining core;
* ``local:N``: the same with N workers in all;
* ``tcp://host:port`` (any address Dask accepts): an existing scheduler;
* ``path/to/scheduler.json``: a scheduler file, as dask-jobqueue and dask-mpi write them.

GPU work is submitted with ``resources={"GPU": 1}``: on an existing cluster, start GPU workers
with ``--resources GPU=1`` (one worker per card) or GPU stages will not be placed on them.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from auditor.errors import UserError

LOCAL = "local"
GPU_RESOURCE = "GPU"
CONNECT_TIMEOUT_S = 20


def require_distributed() -> Any:
    """The ``distributed`` module, or a UserError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise UserError("--scheduler needs Dask distributed, which is not installed: "
                        "pip install 'hepaudit[dask]'.") from None
    return distributed


def parse_local(address: str) -> int | None:
    """Workers asked for by ``local`` (None: sized to the machine) or ``local:N``."""
    _, _, count = address.partition(":")
    if not count:
        return None
    if not count.isdigit() or int(count) < 1:
        raise UserError(f"--scheduler {address!r}: after 'local:' give a number of workers of at least 1.")
    return int(count)


def local_gpu_count() -> int:
    """CUDA devices on this machine, asked of NVML first so the client never opens a CUDA context."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return int(pynvml.nvmlDeviceGetCount())
    except Exception:  # noqa: BLE001 - no NVML: ask the CUDA libraries
        pass
    from auditor.devices import gpu_status

    usable, reason = gpu_status()
    return int(reason.split()[0]) if usable and reason.split()[0].isdigit() else 0


def local_worker_specs(cores: int, gpus: int, workers: int | None = None) -> dict[str, dict[str, Any]]:
    """Worker specifications of a local cluster: GPU workers first, then CPU workers, one thread each."""
    total = workers or max(cores, gpus, 1)
    specs: dict[str, dict[str, Any]] = {}
    for index in range(total):
        options: dict[str, Any] = {"nthreads": 1, "memory_limit": 0, "dashboard_address": None,
                                   "silence_logs": logging.ERROR}
        name = f"cpu-{index - min(gpus, total)}"
        if index < gpus:
            name = f"gpu-{index}"
            options["resources"] = {GPU_RESOURCE: 1}
            options["env"] = {"CUDA_VISIBLE_DEVICES": str(index)}
        else:
            options["env"] = {"CUDA_VISIBLE_DEVICES": ""} if gpus else {}
        options["env"] = {**options["env"], "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        specs[name] = {"cls": "distributed.Nanny", "options": options}
    return specs


def _local_cluster(workers: int | None) -> Any:
    """A cluster of worker processes here; Dask's statistical profiler is off in its workers (it
    samples every worker thread and costs CPU time that would land in the measurements)."""
    distributed = require_distributed()
    import dask
    from distributed.deploy.spec import SpecCluster

    from auditor.devices import cpu_description

    specs = local_worker_specs(cpu_description()["cores"], local_gpu_count(), workers)
    for spec in specs.values():
        spec["cls"] = distributed.Nanny
    scheduler = {"cls": distributed.Scheduler, "options": {"dashboard_address": ":0"}}
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        return SpecCluster(workers=specs, scheduler=scheduler, silence_logs=40, name="hepaudit-local")


def _connect(address: str) -> tuple[Any, Any]:
    """(the local cluster started, or None; a connected Client)."""
    distributed = require_distributed()
    if address == LOCAL or address.startswith(LOCAL + ":"):
        cluster = _local_cluster(parse_local(address))
        try:
            return cluster, distributed.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
    if address.endswith(".json"):
        if not Path(address).is_file():
            raise UserError(f"Scheduler file {address} does not exist.")
        return None, distributed.Client(scheduler_file=address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    return None, distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)


@contextmanager
def open_client(address: str) -> Iterator[Any]:
    """A connected ``distributed.Client``; a local cluster it started is closed on exit."""
    problem = None
    try:
        cluster, client = _connect(address)
    except (OSError, TimeoutError, ValueError, RuntimeError) as exc:
        problem = f"Cannot reach the Dask scheduler at {address}: {exc}."
    if problem is not None:
        # The half-made Client is still referenced from the error's traceback: collected now, not at
        # interpreter exit, where its __del__ would wait 40 s for a stopped event loop.
        gc.collect()
        raise UserError(problem)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def describe_worker() -> dict[str, Any]:
    """Hardware of the worker this runs on (called on every worker through ``Client.run``)."""
    from auditor.devices import cpu_description, gpu_description, gpu_status

    usable, reason = gpu_status()
    gpu = gpu_description() if usable else None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {"host": socket.gethostname(), "pid": os.getpid(), "cpu": cpu_description(),
            "gpu": gpu, "gpu_status": reason, "gpu_slot": (visible or "0") if gpu else None}


def node_type(description: dict[str, Any]) -> str:
    """A short name for a kind of node: CPU model and cores, and the GPU model when one is usable."""
    cpu = description["cpu"]
    name = f"{cpu['model']} x{cpu['cores']}"
    gpu = description.get("gpu")
    return f"{name} + {gpu.get('name', 'GPU')}" if gpu else name
