"""Analytic multiply-accumulate (MAC) counter for the DQM models.

Convention: only the multiply-accumulates of matmul-like operations count, as in
``torch.utils.flop_counter.FlopCounterMode`` (FLOPs = 2 x MACs): dense layers, convolutions, the
gate matmuls of nn.LSTM and sLSTM, and the activation x activation products of the mLSTM.
Biases, norms, activations, gating products and other element-wise operations count 0.

Per-layer formulas (B batch, T time steps):

* Linear: positions x in x out; Conv1d: B x out_channels x out_length x in_channels/groups x k.
* The student's window statistics: their two sums of squares (of the values and of the
  deviations from the window mean), dot products of a series with itself: 2 x B x T x F.
  The maxima over channels are comparisons and count 0.
* nn.LSTM: B x T x 4H x (I_l + H) per layer and direction (I_l = H x directions above layer 0).
* sLSTM cell: B x T x heads x head x 4 head for the block-diagonal recurrent matmul R h_{t-1}
  (its input projections are Linear rows of their own).
* mLSTM cell, recurrent form: B x heads x T x (2 head^2 + head): the outer product v k^T, C q
  and n^T q per step. Parallel form: B x heads x 2 T^2 head: Q K^T and C~ V over the full T x T
  matrix (the causal mask is applied after the product). The form that the call used is counted.

The formulas get their shapes from one forward pass of a copy of the model on the meta device
(no data, no arithmetic), so a layer called twice is counted twice and an unused one 0 times.
A module with parameters of its own and no formula is refused rather than counted as 0.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
from torch import nn

from reference.dqm.models import ChannelMaxima, WindowStatistics
from reference.dqm.xlstm import DQMModelError, HeadNorm, MLSTMBlock, MLSTMCell, SLSTMCell

CONVENTION = ("multiply-accumulates of matmul-like operations only (Linear, Conv1d, LSTM/sLSTM gate matmuls, "
              "mLSTM activation products), as torch FlopCounterMode counts them (FLOPs = 2 x MACs), plus the "
              "two sums of squares of the student's window statistics (2 x T x F); biases, norms and other "
              "element-wise operations count 0")


@dataclass(frozen=True)
class MacRow:
    """One layer of a MacReport."""

    name: str  #: module path in the model ("" for the model itself)
    kind: str  #: formula used: linear, conv1d, lstm, slstm-recurrent, mlstm-parallel, ...
    macs: int  #: multiply-accumulates for the whole input batch
    parameters: int  #: parameters held by this module itself (not by its children)


@dataclass(frozen=True)
class MacReport:
    """MACs and parameters per layer for one input shape."""

    input_shape: tuple[int, ...]
    rows: tuple[MacRow, ...]

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def total_flops(self) -> int:
        """2 x MACs, the FlopCounterMode convention."""
        return 2 * self.total_macs

    @property
    def total_parameters(self) -> int:
        return sum(row.parameters for row in self.rows)

    @property
    def macs_per_window(self) -> int:
        """MACs for one window (every formula is proportional to the batch size)."""
        return self.total_macs // self.input_shape[0]

    def by_kind(self) -> dict[str, int]:
        """Total MACs per formula kind."""
        totals: dict[str, int] = {}
        for row in self.rows:
            totals[row.kind] = totals.get(row.kind, 0) + row.macs
        return totals

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"input_shape": list(self.input_shape), "total_macs": self.total_macs,
                "total_flops": self.total_flops, "macs_per_window": self.macs_per_window,
                "total_parameters": self.total_parameters, "by_kind": self.by_kind(),
                "convention": CONVENTION, "rows": [asdict(row) for row in self.rows]}


def lstm_macs(lstm: nn.LSTM, batch: int, steps: int) -> int:
    """Gate matmul MACs of nn.LSTM over steps: per layer and direction B T 4H (I_l + H)."""
    if lstm.proj_size:
        raise DQMModelError("MAC counting of nn.LSTM with proj_size > 0 is not supported.")
    directions = 2 if lstm.bidirectional else 1
    hidden = lstm.hidden_size
    total = 0
    for layer in range(lstm.num_layers):
        inputs = lstm.input_size if layer == 0 else hidden * directions
        total += directions * batch * steps * 4 * hidden * (inputs + hidden)
    return total


def slstm_macs(cell: SLSTMCell, batch: int, steps: int) -> int:
    """Recurrent (block-diagonal) matmul MACs of an sLSTM cell: B T heads head 4head."""
    head = cell.d_hidden // cell.n_heads
    return batch * steps * cell.n_heads * head * 4 * head


def mlstm_macs(cell: MLSTMCell, batch: int, steps: int, form: str) -> int:
    """Activation x activation MACs of an mLSTM cell in the given form (see module docstring)."""
    form = cell.resolve_form(form)
    head = cell.head
    if form == "parallel":
        return batch * cell.n_heads * 2 * steps * steps * head
    return batch * cell.n_heads * steps * (2 * head * head + head)


def _lstm_batch_steps(module: nn.LSTM, x) -> tuple[int, int]:
    if not isinstance(x, torch.Tensor):
        raise DQMModelError("MAC counting of nn.LSTM needs a padded tensor input, not a packed sequence.")
    if x.dim() == 2:
        return 1, x.shape[0]
    return (x.shape[0], x.shape[1]) if module.batch_first else (x.shape[1], x.shape[0])


class _Call(NamedTuple):
    """What a forward hook sees of one call."""

    args: tuple
    kwargs: dict
    output: torch.Tensor


def _linear(module: nn.Linear, call: _Call):
    return "linear", call.output.numel() * module.in_features


def _conv1d(module: nn.Conv1d, call: _Call):
    return "conv1d", call.output.numel() * (module.in_channels // module.groups) * module.kernel_size[0]


def _lstm(module: nn.LSTM, call: _Call):
    return "lstm", lstm_macs(module, *_lstm_batch_steps(module, call.args[0]))


def _slstm(module: SLSTMCell, call: _Call):
    return "slstm-recurrent", slstm_macs(module, call.output.shape[0], call.output.shape[1])


def _mlstm(module: MLSTMCell, call: _Call):
    form = module.resolve_form(call.kwargs.get("form"))
    return f"mlstm-{form}", mlstm_macs(module, call.output.shape[0], call.output.shape[1], form)


def _window_statistics(module, call: _Call):
    batch, steps, features = call.args[0].shape
    return "window-statistics", 2 * batch * steps * features


def _zero(kind):
    return lambda module, call: (kind, 0)


_FORMULAS = (
    (nn.Linear, _linear), (nn.Conv1d, _conv1d), (nn.LSTM, _lstm), (SLSTMCell, _slstm), (MLSTMCell, _mlstm),
    ((nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, HeadNorm), _zero("norm")),
    (MLSTMBlock, _zero("elementwise")), (WindowStatistics, _window_statistics), (ChannelMaxima, _zero("maxima")),
)


def _formula(module: nn.Module):
    for types, formula in _FORMULAS:
        if isinstance(module, types):
            return formula
    return None


def _own_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _plan(model: nn.Module) -> list[tuple[str, nn.Module, object]]:
    """(name, module, formula) of every module that gets a row; refuses uncountable layers."""
    plan = []
    for name, module in model.named_modules():
        formula = _formula(module)
        if formula is None and _own_parameters(module):
            raise DQMModelError(f"no MAC formula for layer {name or '<model>'!r} "
                                f"({type(module).__name__}), which holds parameters.")
        if formula is not None:
            plan.append((name, module, formula))
    return plan


def _check_shape(input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
        raise DQMModelError(f"input_shape must be a tuple of positive integers, got {input_shape!r}.")
    return shape


def count_macs(model: nn.Module, input_shape) -> MacReport:
    """MACs per layer of model for one forward call on a float32 input of input_shape.

    Runs a copy of the model on the meta device; the model itself is not touched.
    """
    shape = _check_shape(input_shape)
    meta_model = copy.deepcopy(model).to("meta")
    plan = _plan(meta_model)
    found = {name: ["", 0] for name, _, _ in plan}

    def hook_for(name, formula):
        def hook(module, args, kwargs, output):
            kind, macs = formula(module, _Call(args, kwargs, output))
            found[name][0] = kind
            found[name][1] += macs
        return hook

    handles = [module.register_forward_hook(hook_for(name, formula), with_kwargs=True)
               for name, module, formula in plan]
    try:
        with torch.no_grad():
            meta_model(torch.empty(shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    rows = tuple(MacRow(name, found[name][0] or "unused", found[name][1], _own_parameters(module))
                 for name, module, _ in plan)
    return MacReport(shape, rows)
