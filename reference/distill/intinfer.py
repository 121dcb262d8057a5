"""Integer inference of an exported QuantMLP on the CPU (numba kernels).

Per layer: the input codes (int8, or uint8 for 8-bit unsigned inputs) times the int8 weight codes are
accumulated in int32, starting from the int32 bias code. Then the layer repeats the float32 steps of
the fake-quant forward in ``quant``: y = float32(acc) * multiplier (multiplier = s_x s_w), a ReLU
between layers, and the next layer's codes clamp(rint(y / s_next)), rounding half to even as
torch.round does. The accumulator is exact on both sides (|acc| < 2^24, which QuantLinear
guarantees) and every float32 step is one correctly rounded IEEE operation, so the codes equal
those of the fake-quant model in eval mode bit for bit, and the float output agrees to float rounding.

Requantization therefore uses a float32 multiply and divide, not a fixed-point multiplier and shift.
Storage: b-bit codes sit in 8-bit containers; 4-bit and 2-bit codes are not packed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from reference.distill.quant import IntegerLayer, IntegerModel, QuantError


@njit(cache=True)
def _quantize(values, scale, limits, out):
    """out[i, j] = clamp(rint(float32(values[i, j] / scale)), limits[0], limits[1])."""
    for row in range(values.shape[0]):
        for col in range(values.shape[1]):
            code = np.rint(np.float32(values[row, col] / scale))
            out[row, col] = min(max(code, limits[0]), limits[1])


@njit(cache=True)
def _accumulate(codes, weight, bias):
    """int32 accumulators bias[o] + sum_i codes[b, i] weight[o, i], shape (batch, out)."""
    batch, n_in = codes.shape
    n_out = weight.shape[0]
    acc = np.empty((batch, n_out), np.int32)
    for row in range(batch):
        for out in range(n_out):
            total = np.int32(bias[out])
            for col in range(n_in):
                total = np.int32(total + np.int32(codes[row, col]) * np.int32(weight[out, col]))
            acc[row, out] = total
    return acc


@njit(cache=True)
def _rescale(acc, multiplier, relu):
    """float32(acc[b, o]) * multiplier[o] in float32, then max(., 0) when relu."""
    out = np.empty(acc.shape, np.float32)
    for row in range(acc.shape[0]):
        for col in range(acc.shape[1]):
            value = np.float32(np.float32(acc[row, col]) * multiplier[col])
            if relu and value < 0:
                value = np.float32(0.0)
            out[row, col] = value
    return out


@dataclass(frozen=True)
class IntegerTrace:
    """Everything integer inference computed for one batch."""

    codes: tuple[np.ndarray, ...]  #: input codes of each layer, (batch, in_l)
    accumulators: tuple[np.ndarray, ...]  #: int32 accumulators of each layer, (batch, out_l)
    output: np.ndarray  #: float32 (batch, out) of the last layer


def as_float32(x) -> np.ndarray:
    """A numpy float32 array of x (a numpy array, a nested sequence or a torch tensor on any device)."""
    return np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float32)


def _as_batch(model: IntegerModel, x) -> np.ndarray:
    if not isinstance(model, IntegerModel) or not model.layers:
        raise QuantError("integer inference needs an IntegerModel from export_integer.")
    array = as_float32(x)
    if array.ndim > 2:
        array = array.reshape(array.shape[0], -1)
    if array.ndim != 2 or array.shape[1] != model.in_features:
        raise QuantError(f"integer inference expects inputs of shape (batch, {model.in_features}) or flattening "
                         f"to it, got {array.shape}.")
    return np.ascontiguousarray(array)


def quantize_values(values: np.ndarray, scale: np.float32, spec) -> np.ndarray:
    """Codes clamp(rint(float32(values / scale))) of float32 values (batch, k) in spec's container."""
    out = np.empty(values.shape, spec.container)
    _quantize(np.ascontiguousarray(values, np.float32), np.float32(scale),
              np.array([spec.q_min, spec.q_max], np.float32), out)
    return out


def _codes(values: np.ndarray, layer: IntegerLayer) -> np.ndarray:
    return quantize_values(values, layer.input_scale, layer.input_spec)


def quantize_input(model: IntegerModel, x) -> np.ndarray:
    """Input codes of the first layer for float inputs x, shape (batch, in_features)."""
    return _codes(_as_batch(model, x), model.layers[0])


def trace(model: IntegerModel, x) -> IntegerTrace:
    """Integer inference of a batch x (float32 (batch, in) or flattening to it), keeping every stage."""
    values = _as_batch(model, x)
    codes, accumulators = [], []
    for layer in model.layers:
        codes.append(_codes(values, layer))
        accumulators.append(_accumulate(codes[-1], layer.weight, layer.bias))
        values = _rescale(accumulators[-1], layer.multiplier, layer.relu)
    return IntegerTrace(tuple(codes), tuple(accumulators), values)


def infer(model: IntegerModel, x) -> np.ndarray:
    """Float32 outputs (batch, out) of integer inference for a batch x. A model with a front stage
    of its own (``frontend.IntegerStatsModel``) runs through its ``infer``."""
    if not isinstance(model, IntegerModel) and hasattr(model, "infer"):
        return model.infer(x)
    return trace(model, x).output


def infer_one(model: IntegerModel, x) -> np.ndarray:
    """Float32 outputs (out,) for one sample x of in_features values (or an array flattening to them)."""
    sample = as_float32(x).reshape(1, -1)
    return infer(model, sample)[0]


def latency_int(model: IntegerModel, batch: int = 1, repeats: int = 100) -> dict:
    """Seconds per integer-inference call (float input codes -> float output) on random inputs.

    Timed after warm-up calls (which also compile the kernels). Returns median, IQR (q25, q75), min
    and max in seconds, with repeats, warm-up calls, batch and device, like the float latency helper.
    """
    for name, value in (("batch", batch), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise QuantError(f"latency_int {name} must be a positive integer, got {value!r}.")
    x = np.random.default_rng(0).standard_normal((batch, model.in_features)).astype(np.float32)
    warmup = max(3, repeats // 10)
    times = []
    for call in range(warmup + repeats):
        start = time.perf_counter()
        infer(model, x)
        if call >= warmup:
            times.append(time.perf_counter() - start)
    q25, _, q75 = statistics.quantiles(times, n=4) if repeats > 1 else (times[0],) * 3
    return {"median_s": statistics.median(times), "q25_s": q25, "q75_s": q75, "iqr_s": q75 - q25,
            "min_s": min(times), "max_s": max(times), "repeats": repeats, "warmup": warmup,
            "batch": batch, "device": "cpu", "method": "perf-counter"}
