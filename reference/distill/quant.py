"""Quantization-aware training by fake quantization, and export of the integer weights.

Quantization is uniform and symmetric (zero point 0): code q = clamp(round(x / s), q_min, q_max),
value q s, rounding half to even (torch.round). Signed: q in [-(2^(b-1) - 1), 2^(b-1) - 1] with
s = max|x| / (2^(b-1) - 1). Unsigned (inputs that follow a ReLU): q in [0, 2^b - 1] with
s = max(x) / (2^b - 1). Gradients use the clipped straight-through estimator (STE):
d(q s)/dx = 1 where round(x / s) lies in [q_min, q_max] (clipping leaves the value alone) and 0 where
clipping changes it, the mask of torch.fake_quantize_per_tensor_affine. Testing the rounded value keeps
the gradient of the largest weight, which sits at q_max up to float rounding.

Scales are not learned. Weight scales are recomputed from the weights at every call, per tensor or per
output channel (dim 0). A layer's input (activation) scale comes from a running max: an exponential
moving average of the batch max|x| (weight ``momentum`` = 0.1 for the new batch; the first batch sets
it), updated in training mode and frozen in eval mode.

Quantized layers compute in the integer domain and scale once: y = (q_x q_w^T + q_b) s_x s_w with the
bias code q_b = round(b / (s_x s_w)) (int32 in the export). This equals x_hat w_hat^T + b_hat, and the
float accumulator stays exact: integer-valued float32 sums are exact below 2^24. A layer refuses
fan-in x q_max(input) x q_max(weight) >= 2^24 and clips q_b to the headroom left. Integer inference
(``intinfer``) repeats the same float32 steps after its int32 accumulation, so both agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SETTINGS = {"W8A8": (8, 8), "W6A6": (6, 6), "W4A6": (4, 6), "W4A4": (4, 4), "W2A4": (2, 4)}
MIN_RANGE = 1e-8  #: floor of max|x| before it becomes a scale, so an all-zero tensor gets a finite scale
EXACT_SUM = 2 ** 24  #: integer sums below this are exact in float32: the accumulator bound
DEFAULT_MOMENTUM = 0.1  #: weight of the new batch max in the running max of an input quantizer


class QuantError(ValueError):
    """Invalid quantization setting, model or input; the message is one sentence for the user."""


@dataclass(frozen=True)
class QuantSpec:
    """How one tensor is quantized: bit width (2..8), per output channel (dim 0) or per tensor, sign."""

    bits: int  #: bit width b of the integer codes, 2 to 8
    per_channel: bool = False  #: one scale per slice along dim 0 (weights) instead of one per tensor
    signed: bool = True  #: codes in [-(2^(b-1) - 1), 2^(b-1) - 1]; False: [0, 2^b - 1] (post-ReLU inputs)

    def __post_init__(self):
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise QuantError(f"quantization bits must be an integer from 2 to 8, got {self.bits!r}.")
        if not isinstance(self.per_channel, bool) or not isinstance(self.signed, bool):
            raise QuantError("QuantSpec per_channel and signed must be True or False.")

    @property
    def q_max(self) -> int:
        """Largest code."""
        return 2 ** (self.bits - 1) - 1 if self.signed else 2 ** self.bits - 1

    @property
    def q_min(self) -> int:
        """Smallest code (symmetric when signed)."""
        return -self.q_max if self.signed else 0

    @property
    def levels(self) -> int:
        """Number of distinct codes (2^b - 1 signed, 2^b unsigned)."""
        return self.q_max - self.q_min + 1

    @property
    def container(self) -> np.dtype:
        """8-bit numpy type that holds the codes: int8, or uint8 for 8-bit unsigned codes."""
        return np.dtype(np.int8 if self.q_max <= 127 else np.uint8)


class _RoundClip(torch.autograd.Function):  # pylint: disable=abstract-method
    """clamp(round(v), q_min, q_max) with the clipped STE: gradient 1 where round(v) is in range, else 0."""

    @staticmethod
    def forward(ctx, values, q_min, q_max):  # pylint: disable=arguments-differ
        rounded = torch.round(values)
        ctx.save_for_backward((rounded >= q_min) & (rounded <= q_max))
        return torch.clamp(rounded, q_min, q_max)

    @staticmethod
    def backward(ctx, grad):  # pylint: disable=arguments-differ
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


def _check_spec(spec) -> QuantSpec:
    if not isinstance(spec, QuantSpec):
        raise QuantError(f"expected a QuantSpec, got {type(spec).__name__}.")
    return spec


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    return (x.shape[0],) + (1,) * (x.dim() - 1)


def range_scale(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Detached scale max|x| / q_max (max(x) when unsigned), per tensor or per channel (dim 0).

    Per channel the result has shape (C, 1, ..., 1) so that it broadcasts against x.
    """
    _check_spec(spec)
    if x.numel() == 0:
        raise QuantError("cannot quantize an empty tensor.")
    values = x.detach().abs() if spec.signed else x.detach().clamp_min(0)
    if spec.per_channel and x.dim() > 0:
        top = values.reshape(x.shape[0], -1).amax(dim=1).reshape(_channel_shape(x))
    else:
        top = values.amax()
    return top.clamp_min(MIN_RANGE) / spec.q_max


def _given_scale(x: torch.Tensor, spec: QuantSpec, scale) -> torch.Tensor:
    scale = torch.as_tensor(scale, dtype=x.dtype, device=x.device).detach()
    expected = x.shape[0] if spec.per_channel and x.dim() > 0 else 1
    if scale.numel() != expected:
        raise QuantError(f"scale has {scale.numel()} values, expected {expected} for a tensor of shape "
                         f"{tuple(x.shape)} (per_channel={spec.per_channel}).")
    if not scale.is_meta and not bool(torch.all(torch.isfinite(scale) & (scale > 0))):
        raise QuantError("quantization scales must be finite and positive.")
    return scale.reshape(_channel_shape(x)) if spec.per_channel and x.dim() > 0 else scale.reshape(())


def quantize_int(x: torch.Tensor, spec: QuantSpec, scale=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes of x (integer-valued, x's dtype, clipped STE gradient) and the scale used.

    scale defaults to range_scale(x, spec); a given scale is a number or a tensor with one value,
    or one value per channel when spec.per_channel.
    """
    _check_spec(spec)
    scale = range_scale(x, spec) if scale is None else _given_scale(x, spec, scale)
    return _RoundClip.apply(x / scale, spec.q_min, spec.q_max), scale


def fake_quantize(x: torch.Tensor, spec: QuantSpec, scale=None) -> torch.Tensor:
    """x rounded to the grid q s of spec, with the clipped straight-through gradient (see quantize_int)."""
    codes, scale = quantize_int(x, spec, scale)
    return codes * scale


class InputQuantizer(nn.Module):
    """Per-tensor input (activation) quantizer with a running-max scale (see the module docstring).

    Buffers: ``running_max`` (the moving average of the batch max) and ``observed`` (whether any
    training batch has been seen). In eval mode the scale is frozen; using it before any training
    forward pass is refused.
    """

    def __init__(self, spec: QuantSpec, momentum: float = DEFAULT_MOMENTUM, fixed_range: float | None = None):
        super().__init__()
        _check_spec(spec)
        if spec.per_channel:
            raise QuantError("input (activation) quantization is per tensor; use per_channel=False.")
        if not 0.0 < momentum <= 1.0:
            raise QuantError(f"running-max momentum must lie in (0, 1], got {momentum!r}.")
        if fixed_range is not None and not (isinstance(fixed_range, (int, float)) and 0.0 < fixed_range < float("inf")):
            raise QuantError(f"a fixed input range must be a positive finite number, got {fixed_range!r}.")
        self.spec = spec
        self.momentum = float(momentum)
        #: a range set in advance (values beyond it saturate) instead of the running max
        self.fixed_range = None if fixed_range is None else float(fixed_range)
        self.register_buffer("running_max", torch.tensor(self.fixed_range or 0.0))
        self.register_buffer("observed", torch.tensor(self.fixed_range is not None))

    def scale(self) -> torch.Tensor:
        """Current scale: running_max / q_max (running_max floored at MIN_RANGE)."""
        return self.running_max.clamp_min(MIN_RANGE) / self.spec.q_max

    def _observe(self, x: torch.Tensor) -> None:
        if x.numel() == 0:
            raise QuantError("cannot quantize an empty tensor.")
        if self.fixed_range is not None:
            return
        with torch.no_grad():
            values = x.abs() if self.spec.signed else x.clamp_min(0)
            top = values.amax().to(self.running_max.dtype)
            blended = torch.lerp(self.running_max, top, self.momentum)
            self.running_max.copy_(torch.where(self.observed, blended, top))
            self.observed.fill_(True)

    def to_int(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer codes of x and the scale (updates the running max first in training mode)."""
        if self.training:
            self._observe(x)
        elif not x.is_meta and not bool(self.observed):
            raise QuantError("the input quantizer has seen no data: run forward passes in training mode "
                             "before evaluating or exporting the model.")
        return quantize_int(x, self.spec, self.scale().to(x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes, scale = self.to_int(x)
        return codes * scale

    def extra_repr(self) -> str:
        fixed = "" if self.fixed_range is None else f", fixed_range={self.fixed_range}"
        return f"spec={self.spec}, momentum={self.momentum}{fixed}"


def _default(spec, fallback: QuantSpec) -> QuantSpec:
    return fallback if spec is None else _check_spec(spec)


def _layer_limits(weight_spec: QuantSpec, input_spec: QuantSpec, fan_in: int) -> int:
    """Largest |bias code| that keeps |accumulator| < 2^24; refuses layers that cannot."""
    if not weight_spec.signed:
        raise QuantError("weights are quantized symmetrically: the weight QuantSpec must be signed.")
    peak = fan_in * input_spec.q_max * weight_spec.q_max
    if peak >= EXACT_SUM:
        raise QuantError(f"fan-in {fan_in} x {input_spec.q_max} x {weight_spec.q_max} = {peak} reaches 2^24, "
                         "where the float32 accumulator of the fake-quant forward stops being exact; "
                         "use fewer bits or a smaller fan-in.")
    return EXACT_SUM - 1 - peak


class _QuantLayer:
    """Shared part of QuantLinear and QuantConv1d: quantizers, accumulator bound, integer operands."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    weight_spec: QuantSpec
    input_quant: InputQuantizer
    bias_limit: int  #: largest |bias code|, so that |accumulator| < 2^24

    def weight_int(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight codes and their scale (shape () per tensor, (out, 1, ...) per channel)."""
        return quantize_int(self.weight, self.weight_spec)

    def bias_int(self, multiplier: torch.Tensor) -> torch.Tensor:
        """Bias codes at scale multiplier = s_x s_w, clipped to +-bias_limit, with the STE."""
        return _RoundClip.apply(self.bias / multiplier, -self.bias_limit, self.bias_limit)

    def integer_operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input codes, weight codes and the per-output-channel multiplier s_x s_w (shape (out,) or (1,))."""
        codes, input_scale = self.input_quant.to_int(x)
        weights, weight_scale = self.weight_int()
        return codes, weights, input_scale * weight_scale.reshape(-1)

    @property
    def input_spec(self) -> QuantSpec:
        """QuantSpec of the layer's input."""
        return self.input_quant.spec

    def _quant_repr(self) -> str:
        return f"weight_spec={self.weight_spec}"


class QuantLinear(_QuantLayer, nn.Linear):
    """nn.Linear whose weights and input are fake-quantized in forward (with bias).

    weight_spec defaults to QuantSpec(8, per_channel=True), input_spec to QuantSpec(8).
    """

    def __init__(self, in_features: int, out_features: int, weight_spec: QuantSpec | None = None,
                 input_spec: QuantSpec | None = None):
        nn.Linear.__init__(self, in_features, out_features)
        self.weight_spec = _default(weight_spec, QuantSpec(8, per_channel=True))
        self.input_quant = InputQuantizer(_default(input_spec, QuantSpec(8)))
        self.bias_limit = _layer_limits(self.weight_spec, self.input_spec, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pylint: disable=arguments-renamed
        codes, weights, multiplier = self.integer_operands(x)
        accumulator = F.linear(codes, weights) + self.bias_int(multiplier)
        return accumulator * multiplier

    def extra_repr(self) -> str:
        return f"{nn.Linear.extra_repr(self)}, {self._quant_repr()}"


@dataclass(frozen=True)
class ConvShape:
    """Geometry of a QuantConv1d (lengths in samples)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0  #: zero padding on both sides
    groups: int = 1
    bias: bool = True


class QuantConv1d(_QuantLayer, nn.Conv1d):
    """nn.Conv1d whose weights and input are fake-quantized in forward; fan-in (in/groups) x kernel.

    weight_spec defaults to QuantSpec(8, per_channel=True), input_spec to QuantSpec(8).
    """

    def __init__(self, shape: ConvShape, weight_spec: QuantSpec | None = None, input_spec: QuantSpec | None = None):
        if not isinstance(shape, ConvShape):
            raise QuantError(f"QuantConv1d expects a ConvShape, got {type(shape).__name__}.")
        nn.Conv1d.__init__(self, shape.in_channels, shape.out_channels, shape.kernel_size, stride=shape.stride,
                           padding=shape.padding, groups=shape.groups, bias=shape.bias)
        self.weight_spec = _default(weight_spec, QuantSpec(8, per_channel=True))
        self.input_quant = InputQuantizer(_default(input_spec, QuantSpec(8)))
        self.bias_limit = _layer_limits(self.weight_spec, self.input_spec,
                                        shape.in_channels // shape.groups * shape.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pylint: disable=arguments-renamed
        codes, weights, multiplier = self.integer_operands(x)
        accumulator = F.conv1d(codes, weights, None, self.stride, self.padding, self.dilation, self.groups)
        if self.bias is not None:
            accumulator = accumulator + self.bias_int(multiplier).unsqueeze(-1)
        return accumulator * multiplier.unsqueeze(-1)

    def extra_repr(self) -> str:
        return f"{nn.Conv1d.extra_repr(self)}, {self._quant_repr()}"


def setting_bits(name: str) -> tuple[int, int]:
    """(weight_bits, act_bits) of a named setting in SETTINGS."""
    if name not in SETTINGS:
        raise QuantError(f"unknown quantization setting {name!r}; known: {', '.join(SETTINGS)}.")
    return SETTINGS[name]


def mixed_setting(n_layers: int, first: str = "W8A8", rest: str = "W4A4") -> tuple[tuple[int, int], ...]:
    """Per-layer (weight_bits, act_bits): the first layer at setting first, the others at rest."""
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise QuantError(f"n_layers must be a positive integer, got {n_layers!r}.")
    return (setting_bits(first),) + (setting_bits(rest),) * (n_layers - 1)


def _bit_pair(item) -> tuple[int, int]:
    if isinstance(item, str):
        return setting_bits(item)
    if not isinstance(item, Sequence) or len(item) != 2:
        raise QuantError(f"a per-layer setting is a name or a (weight_bits, act_bits) pair, got {item!r}.")
    return int(item[0]), int(item[1])


def _check_sizes(sizes) -> tuple[int, ...]:
    sizes = tuple(sizes)
    if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
        raise QuantError(f"QuantMLP sizes must be at least two positive integers, got {sizes!r}.")
    return sizes


def _layer_bits(n_layers: int, default: tuple[int, int], per_layer) -> tuple[tuple[int, int], ...]:
    if per_layer is None:
        return (default,) * n_layers
    pairs = tuple(_bit_pair(item) for item in per_layer)
    if len(pairs) != n_layers:
        raise QuantError(f"per_layer has {len(pairs)} entries for {n_layers} layers.")
    return pairs


class QuantMLP(nn.Module):
    """Student MLP Linear-ReLU-...-Linear, every layer a QuantLinear.

    sizes = (inputs, hidden..., outputs). Weights: signed, per output channel, weight_bits. Inputs:
    act_bits, signed for layer 0 (features can be negative) and unsigned for later layers (they follow
    a ReLU). per_layer overrides both per layer: a sequence of SETTINGS names or (weight_bits,
    act_bits) pairs, e.g. mixed_setting(n_layers). Inputs with more than two dims are flattened from dim 1.
    """

    def __init__(self, sizes: Sequence[int], weight_bits: int = 8, act_bits: int = 8, per_layer=None):
        super().__init__()
        self.sizes = _check_sizes(sizes)
        self.bits = _layer_bits(len(self.sizes) - 1, (weight_bits, act_bits), per_layer)
        self.layers = nn.ModuleList(
            QuantLinear(n_in, n_out, QuantSpec(w_bits, per_channel=True), QuantSpec(a_bits, signed=index == 0))
            for index, (n_in, n_out, (w_bits, a_bits)) in enumerate(zip(self.sizes, self.sizes[1:], self.bits)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.flatten(1)
        if x.dim() != 2 or x.shape[1] != self.sizes[0]:
            raise QuantError(f"QuantMLP expects inputs of shape (batch, {self.sizes[0]}) or flattening to it, "
                             f"got {tuple(x.shape)}.")
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < last:
                x = torch.relu(x)
        return x


def build_student(sizes: Sequence[int], setting, device="cpu") -> QuantMLP:
    """QuantMLP on device for a SETTINGS name or a per-layer sequence of names / (w, a) pairs."""
    if isinstance(setting, str):
        return QuantMLP(sizes, *setting_bits(setting)).to(device)
    return QuantMLP(sizes, per_layer=setting).to(device)


@dataclass(frozen=True)
class IntegerLayer:
    """One dense layer for integer inference: y = float32(q_x W^T + b) * multiplier (arrays read-only)."""

    weight: np.ndarray  #: (out, in) int8 codes of weight_spec.bits bits
    weight_scale: np.ndarray  #: (out,) float32 s_w (repeated when quantized per tensor)
    bias: np.ndarray  #: (out,) int32 codes at scale s_x s_w
    input_scale: np.float32  #: s_x, the scale of this layer's input codes
    multiplier: np.ndarray  #: (out,) float32 s_x s_w, as the fake-quant forward computes it
    input_spec: QuantSpec
    weight_spec: QuantSpec
    relu: bool  #: whether a ReLU follows (every layer but the last)

    @property
    def input_dtype(self) -> np.dtype:
        """Container type of the input codes."""
        return self.input_spec.container


@dataclass(frozen=True)
class IntegerModel:
    """What integer inference needs of a QuantMLP: its layers in order."""

    layers: tuple[IntegerLayer, ...]

    @property
    def in_features(self) -> int:
        return int(self.layers[0].weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.layers[-1].weight.shape[0])


def _dense_layers(model: nn.Module) -> list[QuantLinear]:
    if isinstance(model, QuantMLP):
        return list(model.layers)
    if isinstance(model, QuantLinear):
        return [model]
    raise QuantError(f"export_integer supports QuantMLP and QuantLinear, got {type(model).__name__}.")


def _frozen(array: np.ndarray, dtype) -> np.ndarray:
    array = np.ascontiguousarray(array, dtype=dtype)
    array.setflags(write=False)
    return array


def _export_layer(layer: QuantLinear, relu: bool) -> IntegerLayer:
    if layer.weight.dtype != torch.float32:
        raise QuantError(f"export_integer needs a float32 model, got {layer.weight.dtype}.")
    if not bool(layer.input_quant.observed):
        raise QuantError("the input quantizer has seen no data: train the model (or run forward passes in "
                         "training mode) before exporting it.")
    input_scale = layer.input_quant.scale()
    codes, weight_scale = layer.weight_int()
    multiplier = (input_scale * weight_scale.reshape(-1)).expand(layer.out_features)
    bias = layer.bias_int(multiplier)
    return IntegerLayer(weight=_frozen(codes.cpu().numpy(), np.int8),
                        weight_scale=_frozen(weight_scale.reshape(-1).expand(layer.out_features).cpu().numpy(),
                                             np.float32),
                        bias=_frozen(bias.cpu().numpy(), np.int32), input_scale=np.float32(input_scale.item()),
                        multiplier=_frozen(multiplier.cpu().numpy(), np.float32), input_spec=layer.input_spec,
                        weight_spec=layer.weight_spec, relu=relu)


def export_integer(model: nn.Module) -> IntegerModel:
    """Integer weights, scales and int32 biases of a trained QuantMLP (or one QuantLinear).

    Uses the frozen input scales, i.e. what the model computes in eval mode; the model is not changed.
    A model with an ``export_integer`` method of its own (``frontend.StatsStudent``) exports itself.
    """
    if not isinstance(model, (QuantMLP, QuantLinear)) and hasattr(model, "export_integer"):
        return model.export_integer()
    layers = _dense_layers(model)
    with torch.no_grad():
        exported = tuple(_export_layer(layer, relu=index < len(layers) - 1) for index, layer in enumerate(layers))
    return IntegerModel(exported)
