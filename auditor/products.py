"""Data products: structures of arrays that know their size and move between host and device.

A product is a numpy array (host), a CuPy array or torch tensor (device), or any nesting of
dataclasses, named tuples, tuples, lists and dicts of those; other values (numbers, strings,
None) are carried along unchanged and count zero bytes. Moving a product converts each array and
rebuilds the containers, so stage code keeps its own types.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np


def _kind(value: Any) -> str:
    module = type(value).__module__
    if isinstance(value, np.ndarray):
        return "numpy"
    if module.startswith("cupy"):
        return "cupy"
    if module.startswith("torch") and hasattr(value, "element_size"):
        return "torch"
    if module.startswith("numba.cuda") and hasattr(value, "copy_to_host"):
        return "numba"
    return "other"


def _map(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """Rebuild ``value`` with ``leaf`` applied to every array."""
    if _kind(value) != "other":
        return leaf(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _map(getattr(value, f.name), leaf) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_map(v, leaf) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_map(v, leaf) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, leaf) for k, v in value.items()}
    return value


def _leaves(value: Any):
    if _kind(value) != "other":
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)


def nbytes(value: Any) -> int:
    """Bytes of array data in the product (containers and scalars count zero)."""
    total = 0
    for leaf in _leaves(value):
        kind = _kind(leaf)
        if kind == "torch":
            total += leaf.element_size() * leaf.numel()
        else:
            total += int(leaf.nbytes)
    return total


def location(value: Any) -> str:
    """``host``, ``device``, ``mixed`` or ``none`` (no arrays)."""
    kinds = {_kind(leaf) == "numpy" or (_kind(leaf) == "torch" and not leaf.is_cuda) for leaf in _leaves(value)}
    if not kinds:
        return "none"
    if kinds == {True}:
        return "host"
    return "device" if kinds == {False} else "mixed"


def to_host_pinned(value: Any) -> Any:
    """Like :func:`to_host`, with the CuPy arrays copied into page-locked host memory (CuPy's
    pinned pool) asynchronously on the current stream, and one synchronisation at the end: the
    copies run at DMA speed, overlap other streams' work and leave the host free meanwhile. The
    returned numpy arrays keep their pinned buffers alive."""
    import cupy

    stream = cupy.cuda.get_current_stream()

    def leaf(array: Any) -> Any:
        if _kind(array) != "cupy":
            return to_host(array)
        array = cupy.ascontiguousarray(array)
        memory = cupy.cuda.alloc_pinned_memory(max(array.nbytes, 1))
        out = np.frombuffer(memory, array.dtype, array.size).reshape(array.shape)
        array.get(stream=stream, out=out, blocking=False)
        return out

    host = _map(value, leaf)
    stream.synchronize()
    return host


def to_host(value: Any) -> Any:
    """A copy of the product with every array in host (numpy) memory."""
    def leaf(array: Any) -> Any:
        kind = _kind(array)
        if kind == "cupy":
            return array.get()
        if kind == "torch":
            return array.detach().cpu().numpy()
        if kind == "numba":
            return array.copy_to_host()
        return array

    return _map(value, leaf)


def to_device(value: Any, backend: str) -> Any:
    """The product with every array on the current GPU, as ``backend`` arrays.

    Host arrays in page-locked memory (see :func:`pin`) are copied by DMA directly; device
    arrays of another backend are shared through DLPack without a copy.
    """
    if backend in ("cupy", "numba"):
        import cupy

        def leaf(array: Any) -> Any:
            kind = _kind(array)
            if kind == "numpy":
                return cupy.asarray(array)
            if kind == "torch":
                return cupy.from_dlpack(array) if array.is_cuda else cupy.asarray(array.numpy())
            return array
    elif backend == "torch":
        import torch

        def leaf(array: Any) -> Any:
            kind = _kind(array)
            if kind == "numpy":
                return torch.from_numpy(np.ascontiguousarray(array)).to("cuda")
            if kind in ("cupy", "numba"):
                return torch.from_dlpack(array)
            if kind == "torch" and not array.is_cuda:
                return array.to("cuda", non_blocking=array.is_pinned())
            return array
    else:
        raise ValueError(f"unknown device backend {backend!r}")
    return _map(value, leaf)


def pin(value: Any, backend: str) -> Any:
    """A copy of the product whose host arrays live in page-locked (pinned) memory."""
    if backend == "torch":
        import torch

        return _map(value, lambda a: torch.from_numpy(np.ascontiguousarray(a)).pin_memory()
                    if _kind(a) == "numpy" else a)
    import cupy

    def leaf(array: Any) -> Any:
        if _kind(array) != "numpy":
            return array
        memory = cupy.cuda.alloc_pinned_memory(max(array.nbytes, 1))
        staged = np.frombuffer(memory, array.dtype, array.size).reshape(array.shape)
        staged[...] = array
        return staged

    return _map(value, leaf)
