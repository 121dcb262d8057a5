"""DQM students that start from the window statistics, with the window itself quantized.

The DQM teacher scores a window by its worst reconstruction-error channel (a feature's mean or peak
squared error over the window). A student that reads the flattened window must learn variances and
peaks from 1,536 raw values; a student that reads per-feature statistics of the window gets them
directly (``reference.dqm.models.WindowStatistics``: log variance, log peak squared deviation from
the window mean, log mean square, mean).

:class:`StatsStudent` is that student as a two-stage model: :class:`WindowStatsFront` then an MLP
(float32, or a ``QuantMLP``). In a quantized student the window is quantized first (per tensor,
``act_bits`` of the first layer, running-max scale as every ``QuantLinear`` input), and the
statistics are computed from the integer codes: sums of codes and of their squares are exact
integers, and :func:`code_statistics` turns them into the 4F features in float64 (one numba
function, used by the fake-quant forward on the CPU and by integer inference alike, so the two
agree bit for bit). The MLP then quantizes the statistics at its own input bits.

Cost: the sum of squares is a dot product of each feature's series of codes with itself, T
multiply-accumulates of b_a x b_a bits per feature (``bops``); the sum of codes, the minimum and
maximum, the divisions and the 3F logarithms are element-wise and count 0, like the teacher's
sigmoids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit
from torch import nn

from reference.distill import intinfer
from reference.distill.quant import InputQuantizer, IntegerModel, QuantError, QuantSpec, export_integer
from reference.dqm.models import STATS_FLOOR, WindowStatistics

N_STATISTICS = 4  #: statistics per feature: log variance, log peak squared deviation, log mean square, mean
#: range of the window codes in standardised units (larger values saturate). Chosen on the
#: validation loss of W4A4 students regressing the teacher's log score (64-lumiblock windows,
#: 40,000 training windows, 12 epochs): running max 0.069, +-4: 0.093, +-6: 0.067, +-8: 0.052,
#: +-12: 0.041, +-16: 0.047, +-24: 0.068
WINDOW_RANGE = 12.0


@njit(cache=True)
def _code_statistics(codes, scale, floor):
    """Statistics (n, 4F) float32 of integer codes (n, T, F) at float64 scale, from exact sums."""
    n, steps, n_features = codes.shape
    out = np.empty((n, N_STATISTICS * n_features), np.float32)
    square_scale = scale * scale
    for i in range(n):
        for j in range(n_features):
            total = 0
            squares = 0
            low = high = codes[i, 0, j]
            for t in range(steps):
                code = codes[i, t, j]
                total += code
                squares += code * code
                low = min(low, code)
                high = max(high, code)
            # variance and peak in code units with integer numerators: exact below 2^53
            variance = (squares * steps - total * total) / (steps * steps)
            peak = max(high * steps - total, total - low * steps)
            out[i, j] = math.log(max(variance * square_scale, floor))
            out[i, n_features + j] = math.log(max(peak * peak / (steps * steps) * square_scale, floor))
            out[i, 2 * n_features + j] = math.log(max(squares / steps * square_scale, floor))
            out[i, 3 * n_features + j] = total / steps * scale
    return out


def code_statistics(codes: np.ndarray, scale: float) -> np.ndarray:
    """WindowStatistics (n, 4F) float32 of a window's integer codes (n, T, F) at ``scale``."""
    codes = np.ascontiguousarray(codes, np.int64)
    if codes.ndim != 3 or codes.shape[1] < 1:
        raise QuantError(f"window codes must have shape (n, T, F), got {codes.shape}.")
    return _code_statistics(codes, float(scale), STATS_FLOOR)


def _torch_code_statistics(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The same statistics from the dequantized window in float64 torch, for inputs on a GPU
    (equal to :func:`code_statistics` to float64 rounding, not bit for bit)."""
    return WindowStatistics()(codes.double() * scale.double()).float()


class WindowStatsFront(nn.Module):
    """Flattened windows (n, T*F) -> statistics (n, 4F). With ``input_spec`` the window is quantized
    first, over +-``input_range`` (None: the running max of its batches), and the statistics come
    from its integer codes (:func:`code_statistics`)."""

    def __init__(self, window: int, n_features: int, input_spec: QuantSpec | None = None,
                 input_range: float | None = WINDOW_RANGE):
        super().__init__()
        self.window, self.n_features = int(window), int(n_features)
        self.input_quant = None if input_spec is None else InputQuantizer(input_spec, fixed_range=input_range)
        self.float_statistics = WindowStatistics()

    @property
    def input_spec(self) -> QuantSpec | None:
        """QuantSpec of the window codes (None: float32 window)."""
        return None if self.input_quant is None else self.input_quant.spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.window * self.n_features:
            raise QuantError(f"the window statistics expect flattened windows of shape (batch, "
                             f"{self.window * self.n_features}), got {tuple(x.shape)}.")
        windows = x.reshape(len(x), self.window, self.n_features)
        if self.input_quant is None:
            return self.float_statistics(windows)
        codes, scale = self.input_quant.to_int(windows)
        if x.is_meta:
            return torch.empty((len(x), N_STATISTICS * self.n_features), device="meta")
        if x.device.type != "cpu":
            return _torch_code_statistics(codes.detach(), scale.detach())
        values = code_statistics(codes.detach().numpy().astype(np.int64), float(scale))
        return torch.from_numpy(values)

    def extra_repr(self) -> str:
        return f"window={self.window}, n_features={self.n_features}, input_spec={self.input_spec}"


class StatsStudent(nn.Module):
    """WindowStatsFront then an MLP whose input is the 4F statistics (float MLP or QuantMLP)."""

    def __init__(self, front: WindowStatsFront, mlp: nn.Module):
        super().__init__()
        self.front = front
        self.mlp = mlp

    @property
    def bits(self) -> tuple:
        """(weight_bits, act_bits) per layer of the MLP, () when it is float."""
        return getattr(self.mlp, "bits", ())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(1)
        return self.mlp(self.front(x))

    def export_integer(self) -> "IntegerStatsModel":
        """The integer model: the window's quantizer and the exported MLP (``quant.export_integer``)."""
        quantizer = self.front.input_quant
        if quantizer is None:
            raise QuantError("a float32 StatsStudent has no integer path; quantize it first.")
        if not bool(quantizer.observed):
            raise QuantError("the window quantizer has seen no data: train the model before exporting it.")
        return IntegerStatsModel(self.front.window, self.front.n_features, np.float32(quantizer.scale().item()),
                                 quantizer.spec, export_integer(self.mlp))


def stats_student(window: int, n_features: int, mlp: nn.Module) -> StatsStudent:
    """A StatsStudent around mlp: a QuantMLP quantizes the window at its first layer's input bits."""
    bits = getattr(mlp, "bits", ())
    spec = QuantSpec(bits[0][1]) if bits else None
    front = WindowStatsFront(window, n_features, spec)
    first = getattr(mlp, "sizes", (None,))[0]
    if first is not None and first != N_STATISTICS * n_features:
        raise QuantError(f"the MLP takes {first} inputs; the window statistics are {N_STATISTICS * n_features}.")
    return StatsStudent(front, mlp)


@dataclass(frozen=True)
class IntegerStatsModel:
    """Integer inference of a quantized StatsStudent: window codes, statistics, integer MLP."""

    window: int
    n_features: int
    input_scale: np.float32  #: scale of the window codes
    input_spec: QuantSpec
    mlp: IntegerModel

    @property
    def in_features(self) -> int:
        return self.window * self.n_features

    @property
    def out_features(self) -> int:
        return self.mlp.out_features

    def codes(self, x) -> np.ndarray:
        """Window codes (n, T, F) of float windows, as the fake-quant forward rounds them."""
        values = intinfer.as_float32(x)
        if values.ndim < 2 or values[0].size != self.in_features:
            raise QuantError(f"integer inference expects windows of {self.in_features} values, got {values.shape}.")
        flat = intinfer.quantize_values(values.reshape(len(values), -1), self.input_scale, self.input_spec)
        return np.reshape(flat, (len(values), self.window, self.n_features))

    def infer(self, x) -> np.ndarray:
        """Float32 outputs (batch, out) for float windows x (batch, T*F) or (batch, T, F)."""
        return intinfer.infer(self.mlp, code_statistics(self.codes(x), self.input_scale))
