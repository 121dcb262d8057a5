"""Bit operations (BOPs) per layer and per model, in the full and the simplified form.

Full form (UNIQ, Baskin et al., arXiv:1804.10969; Ps and Qs, Hawks et al., Front. AI 4 (2021)
676564, Eq. 8) for one dense operation with fan-in n, fan-out m, weight bits b_w, input bits b_a and
pruned weight fraction f_p:

    BOPs = m n [(1 - f_p) b_a b_w + b_a + b_w + log2 n]

(a b_a x b_w multiply per kept weight, and an accumulator add of b_a + b_w + log2 n bits per weight).
Simplified form (HAWQ-V3, arXiv:2011.10680; Bayesian Bits, arXiv:2005.07093): BOPs = MACs b_w b_a,
with no accumulator term.

The dense operation of each layer type, counted once per evaluation:

* Linear / QuantLinear: n = in_features, m = out_features, once per output row.
* Conv1d / QuantConv1d: n = in_channels / groups x kernel, m = out_channels, once per output position.
* nn.LSTM, per layer and direction: one dense operation per time step with n = I_l + H and m = 4H
  (the four gates; I_l = H x directions above layer 0). Sigmoid, tanh, element-wise products and
  biases are not multiplications by weights and are left out.
* WindowStatsFront (``frontend``): per feature the sum of squares of its T window values, a dot
  product of the series with itself: n = T, m = 1, b_w = b_a = the window's bits. Sums, minima,
  maxima and logarithms are element-wise and left out.

Float layers count 32 bits for weights and inputs; quantized layers the bits of their QuantSpecs.
Totals are for one forward call on the whole input_shape (use batch 1 for per-sample numbers).
Shapes come from a forward pass of a copy of the model on the meta device (no data, no arithmetic).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from reference.distill.frontend import WindowStatsFront
from reference.distill.quant import QuantConv1d, QuantError, QuantLinear

FLOAT_BITS = 32  #: bit width of float32 weights and inputs
CONVENTION = ("full: BOPs = m n [(1 - f_p) b_a b_w + b_a + b_w + log2 n] per dense operation with fan-in n and "
              "fan-out m (Ps and Qs Eq. 8, UNIQ); simplified: MACs b_w b_a; LSTM: per step and layer a dense "
              "operation with n = I + H, m = 4H; window statistics: per feature a sum of squares with n = T, m = 1 and "
              "b_w = b_a = the window's bits; element-wise operations and biases not counted; float = 32 bits")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise QuantError(f"{name} must be a positive number, got {value!r}.")


def layer_bops(m: int, n: int, b_w: float, b_a: float, pruned: float = 0.0) -> float:
    """Full-form BOPs of one dense operation: m n [(1 - pruned) b_a b_w + b_a + b_w + log2 n]."""
    for name, value in (("fan-out m", m), ("fan-in n", n), ("b_w", b_w), ("b_a", b_a)):
        _check_positive(name, value)
    if isinstance(pruned, bool) or not isinstance(pruned, (int, float)) or not 0.0 <= pruned <= 1.0:
        raise QuantError(f"pruned fraction must lie in [0, 1], got {pruned!r}.")
    return m * n * ((1.0 - pruned) * b_a * b_w + b_a + b_w + math.log2(n))


def simplified_bops(macs: int, b_w: float, b_a: float) -> float:
    """Simplified BOPs: MACs x b_w x b_a."""
    if isinstance(macs, bool) or not isinstance(macs, int) or macs < 0:
        raise QuantError(f"MACs must be a non-negative integer, got {macs!r}.")
    _check_positive("b_w", b_w)
    _check_positive("b_a", b_a)
    return macs * b_w * b_a


@dataclass(frozen=True)
class BopsRow:
    """One dense operation of a model (a layer, or one layer of an nn.LSTM)."""

    name: str  #: module path ("" for the model itself); LSTM layers add ".l<k>" ("l<k>" alone)
    kind: str  #: linear, quant-linear, conv1d, quant-conv1d or lstm
    macs: int  #: multiply-accumulates for the whole input
    parameters: int  #: parameters of this layer (weights and biases)
    b_w: int  #: weight bits
    b_a: int  #: input bits
    fan_in: int  #: n
    fan_out: int  #: m
    evaluations: int  #: how many times the dense operation runs for the input (rows, positions, steps)
    pruned: float  #: f_p used in the full form
    bops: float  #: full form
    bops_simplified: float  #: MACs b_w b_a


@dataclass(frozen=True)
class BopsReport:
    """BOPs, MACs and parameters per dense operation for one input shape, and their totals."""

    input_shape: tuple[int, ...]
    rows: tuple[BopsRow, ...]

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def total_parameters(self) -> int:
        return sum(row.parameters for row in self.rows)

    @property
    def total_bops(self) -> float:
        return sum(row.bops for row in self.rows)

    @property
    def total_bops_simplified(self) -> float:
        return sum(row.bops_simplified for row in self.rows)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"input_shape": list(self.input_shape), "convention": CONVENTION, "total_macs": self.total_macs,
                "total_parameters": self.total_parameters, "total_bops": self.total_bops,
                "total_bops_simplified": self.total_bops_simplified, "rows": [asdict(row) for row in self.rows]}


@dataclass(frozen=True)
class _Op:
    """A dense operation found in one forward call of a layer."""

    suffix: str
    fan_in: int
    fan_out: int
    evaluations: int
    weights: tuple[str, ...]  #: names of the layer's weight matrices (for the pruned fraction)
    parameters: int


def _own_parameters(module: nn.Module, names=None) -> int:
    return sum(p.numel() for name, p in module.named_parameters(recurse=False) if names is None or name in names)


def _linear_ops(module: nn.Linear, args: tuple, output: torch.Tensor) -> list[_Op]:
    del args
    return [_Op("", module.in_features, module.out_features, output.numel() // module.out_features, ("weight",),
                _own_parameters(module))]


def _conv1d_ops(module: nn.Conv1d, args: tuple, output: torch.Tensor) -> list[_Op]:
    del args
    fan_in = module.in_channels // module.groups * module.kernel_size[0]
    return [_Op("", fan_in, module.out_channels, output.numel() // module.out_channels, ("weight",),
                _own_parameters(module))]


def _lstm_batch_steps(module: nn.LSTM, x) -> tuple[int, int]:
    if not isinstance(x, torch.Tensor):
        raise QuantError("BOPs counting of nn.LSTM needs a padded tensor input, not a packed sequence.")
    if x.dim() == 2:
        return 1, x.shape[0]
    return (x.shape[0], x.shape[1]) if module.batch_first else (x.shape[1], x.shape[0])


def _lstm_ops(module: nn.LSTM, args: tuple, output) -> list[_Op]:
    del output
    if module.proj_size:
        raise QuantError("BOPs counting of nn.LSTM with proj_size > 0 is not supported.")
    batch, steps = _lstm_batch_steps(module, args[0])
    directions = ("", "_reverse") if module.bidirectional else ("",)
    hidden = module.hidden_size
    ops = []
    for layer in range(module.num_layers):
        fan_in = (module.input_size if layer == 0 else hidden * len(directions)) + hidden
        names = [f"{kind}_{part}_l{layer}{sfx}" for sfx in directions for kind in ("weight", "bias")
                 for part in ("ih", "hh")]
        weights = tuple(name for name in names if name.startswith("weight"))
        ops.append(_Op(f".l{layer}", fan_in, 4 * hidden, batch * steps * len(directions), weights,
                       _own_parameters(module, set(names))))
    return ops


def _statistics_ops(module: WindowStatsFront, args: tuple, output: torch.Tensor) -> list[_Op]:
    del args
    return [_Op("", module.window, 1, output.shape[0] * module.n_features, (), 0)]


_FORMULAS = (  # the quantized classes first: they subclass the float ones
    (WindowStatsFront, "window-statistics", _statistics_ops),
    (QuantLinear, "quant-linear", _linear_ops), (QuantConv1d, "quant-conv1d", _conv1d_ops),
    (nn.Linear, "linear", _linear_ops), (nn.Conv1d, "conv1d", _conv1d_ops), (nn.LSTM, "lstm", _lstm_ops),
)


def _formula(module: nn.Module):
    for types, kind, ops in _FORMULAS:
        if isinstance(module, types):
            return kind, ops
    return None


def _bits(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, (QuantLinear, QuantConv1d)):
        return module.weight_spec.bits, module.input_spec.bits
    if isinstance(module, WindowStatsFront) and module.input_spec is not None:
        return module.input_spec.bits, module.input_spec.bits  # each code multiplies itself
    return FLOAT_BITS, FLOAT_BITS


def _zero_fraction(module: nn.Module, weights: tuple[str, ...]) -> float:
    """Fraction of weights that are exactly 0 (quantized layers: whose integer code is 0)."""
    if not weights and not isinstance(module, (QuantLinear, QuantConv1d)):
        return 0.0
    with torch.no_grad():
        if isinstance(module, (QuantLinear, QuantConv1d)):
            tensors = [module.weight_int()[0]]
        else:
            tensors = [getattr(module, name) for name in weights]
        zeros = sum(int((tensor == 0).sum()) for tensor in tensors)
        return zeros / sum(tensor.numel() for tensor in tensors)


def _plan(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer with a formula; refuses layers with parameters and no formula."""
    plan = []
    for name, module in model.named_modules():
        if _formula(module) is not None:
            plan.append((name, module))
        elif _own_parameters(module):
            raise QuantError(f"no BOPs formula for layer {name or '<model>'!r} ({type(module).__name__}), "
                             "which holds parameters.")
    return plan


def _check_shape(input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
        raise QuantError(f"input_shape must be a tuple of positive integers, got {input_shape!r}.")
    return shape


def _trace_ops(model: nn.Module, shape: tuple[int, ...]) -> dict[str, list[_Op]]:
    """Dense operations per layer name from one eval-mode forward of a meta-device copy."""
    meta_model = copy.deepcopy(model).to("meta").eval()
    found: dict[str, list[_Op]] = {}

    def hook_for(name, ops):
        def hook(module, args, output):
            found.setdefault(name, []).extend(ops(module, args, output))
        return hook

    meta_modules = dict(meta_model.named_modules())
    handles = [meta_modules[name].register_forward_hook(hook_for(name, _formula(module)[1]))
               for name, module in _plan(model)]
    try:
        with torch.no_grad():
            meta_model(torch.empty(shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return found


def _row(name: str, module: nn.Module, op: _Op, prune_zeros: bool) -> BopsRow:
    b_w, b_a = _bits(module)
    pruned = _zero_fraction(module, op.weights) if prune_zeros else 0.0
    macs = op.evaluations * op.fan_in * op.fan_out
    return BopsRow(name=(name + op.suffix).lstrip("."), kind=_formula(module)[0], macs=macs,
                   parameters=op.parameters, b_w=b_w, b_a=b_a, fan_in=op.fan_in, fan_out=op.fan_out,
                   evaluations=op.evaluations, pruned=pruned,
                   bops=op.evaluations * layer_bops(op.fan_out, op.fan_in, b_w, b_a, pruned),
                   bops_simplified=simplified_bops(macs, b_w, b_a))


def model_bops(model: nn.Module, input_shape, prune_zeros: bool = False) -> BopsReport:
    """BOPs per dense operation of model for one forward call on a float32 input of input_shape.

    prune_zeros: take f_p of each layer as its fraction of zero weights (zero integer codes for
    quantized layers), as if those weights were pruned; otherwise f_p = 0. A layer called twice is
    counted twice; a layer that the forward call does not use gets no row.
    """
    shape = _check_shape(input_shape)
    found = _trace_ops(model, shape)
    return BopsReport(shape, tuple(_row(name, module, op, prune_zeros)
                                   for name, module in _plan(model) for op in found.get(name, [])))
