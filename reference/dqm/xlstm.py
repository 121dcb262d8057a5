"""xLSTM cells, blocks and an xLSTM autoencoder (Beck et al., NeurIPS 2024, arXiv:2405.04517).

Written from the paper's equations: sLSTM eqs. (8)-(17) with the stabiliser state m, mLSTM
eqs. (19)-(27) in the recurrent form and the parallel form of App. A.3. Tensors are
batch-first, (batch, time, features).

Simplifications against the official code, kept on purpose for a small model:

* the gate input projections of both cells are full ``nn.Linear`` layers (the official code uses
  head-wise block-diagonal q/k/v and gate projections); the sLSTM recurrent matrices R_z, R_i,
  R_f, R_o are block-diagonal per head as in the paper;
* the mLSTM cell has no own output gate o_t: as in the official mLSTM block, the block's
  SiLU(z) branch gates the output;
* forget-gate biases start at linspace(3, 6) (over heads for mLSTM, over units for sLSTM;
  log sigma of it for the exp forget gate) instead of the official power-law initialisation; recurrent weights start uniform in
  +-1/sqrt(head size) instead of zero;
* the gated MLP width is round(ffn_factor * d_model), not rounded up to a multiple of 64;
* the stabiliser m is detached (the paper: m gets no gradient); the backward clipping of
  recurrent gradients (paper App. A.2) is not done.

Only multiply-accumulates of matrix products appear in ``reference.dqm.macs``; the matrix
products here are written so that each one is a real matmul (outer products included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

FORGET_GATES = ("sigmoid", "exp")
MLSTM_FORMS = ("parallel", "recurrent")
BLOCK_KINDS = {"m": "mLSTM", "s": "sLSTM"}


class DQMModelError(ValueError):
    """Invalid model configuration, input or model file; the message is one sentence."""


def check_positive(owner: str, **values) -> None:
    """Raise DQMModelError unless every value is an int >= 1."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DQMModelError(f"{owner}: {name} must be an integer >= 1, got {value!r}.")


def check_windows(x, n_features: int, window: int | None = None) -> None:
    """Raise DQMModelError unless x is a floating tensor (batch, time, n_features)."""
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise DQMModelError(f"expected a floating-point torch tensor of windows, got {type(x).__name__}.")
    if x.dim() != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise DQMModelError(f"expected windows of shape (batch, time, features), got {tuple(x.shape)}.")
    if x.shape[2] != n_features:
        raise DQMModelError(f"the model expects {n_features} features per lumiblock, got {x.shape[2]}.")
    if window is not None and x.shape[1] != window:
        raise DQMModelError(f"the model expects windows of {window} lumiblocks, got {x.shape[1]}.")


@dataclass(frozen=True)
class XLSTMOptions:
    """Options shared by the xLSTM cells and blocks."""

    n_heads: int = 4  #: heads per cell; every cell width must be divisible by it
    stabilized: bool = True  #: use the stabiliser state m (False: the plain exp recurrence)
    forget_gate: str = "sigmoid"  #: "sigmoid" or "exp" forget gate
    mlstm_form: str = "parallel"  #: "parallel" (App. A.3) or "recurrent" mLSTM computation
    proj_factor: float = 2.0  #: mLSTM block up-projection: inner width = proj_factor * d_model
    conv_kernel: int = 4  #: causal depthwise conv1d width, in time steps
    ffn_factor: float = 4.0 / 3.0  #: gated-MLP width after the sLSTM, as a multiple of d_model

    def __post_init__(self):
        check_positive("xLSTM options", n_heads=self.n_heads, conv_kernel=self.conv_kernel)
        if self.forget_gate not in FORGET_GATES:
            raise DQMModelError(f"forget_gate must be one of {FORGET_GATES}, got {self.forget_gate!r}.")
        if self.mlstm_form not in MLSTM_FORMS:
            raise DQMModelError(f"mlstm_form must be one of {MLSTM_FORMS}, got {self.mlstm_form!r}.")
        if not isinstance(self.stabilized, bool):
            raise DQMModelError(f"stabilized must be True or False, got {self.stabilized!r}.")
        if not self.proj_factor > 0 or not self.ffn_factor > 0:
            raise DQMModelError("proj_factor and ffn_factor must be positive numbers.")


def head_size(width: int, n_heads: int) -> int:
    """Width of one head; DQMModelError when n_heads does not divide width."""
    if width % n_heads:
        raise DQMModelError(f"width {width} is not divisible by n_heads={n_heads}.")
    return width // n_heads


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log sigma(x) = -softplus(-x), exact to rounding in float32 and float64 (softplus is linear
    only beyond 50, where the error exp(-50) is below float64 resolution).

    Used instead of F.logsigmoid, which on CPU with several threads can take milliseconds per
    call on tiny tensors (seen with torch 2.13 on a loaded 2-core machine).
    """
    return -F.softplus(-x, threshold=50.0)


def log_forget(f_pre: torch.Tensor, forget_gate: str) -> torch.Tensor:
    """log f_t from the forget-gate pre-activation: log sigma(f~) or f~ (exp gate)."""
    return log_sigmoid(f_pre) if forget_gate == "sigmoid" else f_pre


def forget_bias(size: int, forget_gate: str) -> torch.Tensor:
    """Initial forget-gate bias: linspace(3, 6) for the sigmoid gate; for the exp gate the value
    with the same initial f_t = sigma(linspace(3, 6)) (so f_t < 1 and memories do not grow)."""
    bias = torch.linspace(3.0, 6.0, size)
    return log_sigmoid(bias) if forget_gate == "exp" else bias


# ---------------------------------------------------------------------------------------------
# sLSTM recurrence (eqs. 8-17)
# ---------------------------------------------------------------------------------------------

def _slstm_gates(g: torch.Tensor, forget_gate: str):
    """z_t, i~_t, log f_t, o_t and f~_t from the pre-activations g (heads, batch, 4 head)."""
    z_pre, i_pre, f_pre, o_pre = g.unflatten(-1, (4, -1)).unbind(dim=-2)
    return torch.tanh(z_pre), i_pre, log_forget(f_pre, forget_gate), torch.sigmoid(o_pre), f_pre


def _slstm_step_stabilized(g, state, forget_gate):
    c, n, m = state
    z, i_pre, log_f, o, _ = _slstm_gates(g, forget_gate)
    m_new = torch.maximum(log_f + m, i_pre).detach()
    i_s = torch.exp(i_pre - m_new)
    f_s = torch.exp(log_f + m - m_new)
    c = f_s * c + i_s * z
    n = f_s * n + i_s
    return o * c / n, (c, n, m_new)


def _slstm_step_plain(g, state, forget_gate):
    c, n = state
    z, i_pre, log_f, o, f_pre = _slstm_gates(g, forget_gate)
    f = torch.sigmoid(f_pre) if forget_gate == "sigmoid" else torch.exp(log_f)
    i = torch.exp(i_pre)
    c = f * c + i * z
    n = f * n + i
    return o * c / n, (c, n)


def slstm_scan(pre: torch.Tensor, recurrent: torch.Tensor, forget_gate: str = "sigmoid",
               stabilized: bool = True) -> torch.Tensor:
    """Run the sLSTM over time.

    pre: input part of the pre-activations (batch, time, 4, d) in the order z, i, f, o
    (W x_t + b). recurrent: block-diagonal R as (n_heads, head, 4 * head), the last axis
    ordered z, i, f, o. Returns h (batch, time, d). The stabilised state starts at m = -inf,
    so the first step sets m_1 = i~_1 (the normaliser then never falls below 1).
    """
    batch, steps, _, width = pre.shape
    n_heads, head = recurrent.shape[0], recurrent.shape[1]
    # head-major layout (time, heads, batch, 4 * head): one batched matmul per step, no reshapes
    pre = pre.reshape(batch, steps, 4, n_heads, head).permute(1, 3, 0, 2, 4).reshape(steps, n_heads, batch, 4 * head)
    zeros = pre.new_zeros(n_heads, batch, head)
    if stabilized:
        state, step = (zeros, zeros, pre.new_full(zeros.shape, -math.inf)), _slstm_step_stabilized
    else:
        state, step = (zeros, zeros), _slstm_step_plain
    h = zeros
    outputs = []
    for pre_t in pre.unbind(dim=0):  # unbind: one backward for all steps, not one per step
        h, state = step(torch.baddbmm(pre_t, h, recurrent), state, forget_gate)
        outputs.append(h)
    return torch.stack(outputs, dim=2).permute(1, 2, 0, 3).reshape(batch, steps, width)


# ---------------------------------------------------------------------------------------------
# mLSTM (eqs. 19-27, parallel form App. A.3)
# ---------------------------------------------------------------------------------------------

class MLSTMInputs(NamedTuple):
    """Per-head mLSTM inputs; q, k, v are (batch, heads, time, head), gates (batch, heads, time)."""

    q: torch.Tensor
    k: torch.Tensor  #: already divided by sqrt(head)
    v: torch.Tensor
    i_pre: torch.Tensor  #: input-gate pre-activation i~_t (i_t = exp(i~_t))
    log_f: torch.Tensor  #: log f_t


def _mlstm_gate_factors(i_pre, log_f, m, stabilized):
    """(forget factor, input factor, normaliser floor, new m) of one recurrent step."""
    if not stabilized:
        return torch.exp(log_f), torch.exp(i_pre), torch.ones_like(i_pre), m
    m_new = torch.maximum(log_f + m, i_pre).detach()
    return torch.exp(log_f + m - m_new), torch.exp(i_pre - m_new), torch.exp(-m_new), m_new


def mlstm_recurrent(inp: MLSTMInputs, stabilized: bool = True) -> torch.Tensor:
    """Recurrent mLSTM: C_t = f C + i v k^T, n_t = f n + i k, h~_t = C q / max(|n^T q|, 1).

    The stabilised form scales C and n by exp(-m_t) and the floor 1 by exp(-m_t); m starts at
    -inf. Returns h~ (batch, heads, time, head).
    """
    batch, n_heads, _, head = inp.q.shape
    cell = inp.q.new_zeros(batch, n_heads, head, head)
    norm = inp.q.new_zeros(batch, n_heads, head, 1)
    m = inp.q.new_full((batch, n_heads, 1, 1), -math.inf)
    outputs = []
    per_step = zip(*(t.unbind(dim=2) for t in inp))  # unbind: one backward for all steps
    for q, k, v, i_pre, log_f in per_step:
        q, k_row, v = q[..., None], k[..., None, :], v[..., None]
        f_s, i_s, floor, m = _mlstm_gate_factors(i_pre[..., None, None], log_f[..., None, None], m, stabilized)
        cell = f_s * cell + i_s * (v @ k_row)
        norm = f_s * norm + i_s * k_row.transpose(-1, -2)
        denominator = torch.maximum((norm.transpose(-1, -2) @ q).abs(), floor)
        outputs.append((cell @ q).squeeze(-1) / denominator.squeeze(-1))
    return torch.stack(outputs, dim=2)


def mlstm_parallel(inp: MLSTMInputs, stabilized: bool = True) -> torch.Tensor:
    """Parallel mLSTM (App. A.3): D~_ij = sum_{j<l<=i} log f_l + i~_j (i >= j, else -inf),
    m_i = max_j D~_ij, C~ = (Q K^T) * exp(D~ - m), H~ = C~ V / max(|C~ 1|, exp(-m)).

    The unstabilised form uses m = 0. Returns h~ (batch, heads, time, head).
    """
    steps = inp.q.shape[2]
    cumulative = torch.cumsum(inp.log_f, dim=-1)
    log_d = cumulative.unsqueeze(-1) - cumulative.unsqueeze(-2) + inp.i_pre.unsqueeze(-2)
    causal = torch.ones(steps, steps, dtype=torch.bool, device=inp.q.device).tril()
    log_d = log_d.masked_fill(~causal, -math.inf)
    if stabilized:
        m = log_d.amax(dim=-1, keepdim=True).detach()
    else:
        m = torch.zeros_like(log_d[..., :1])
    weights = (inp.q @ inp.k.transpose(-1, -2)) * torch.exp(log_d - m)
    denominator = torch.maximum(weights.sum(dim=-1, keepdim=True).abs(), torch.exp(-m))
    return (weights / denominator) @ inp.v


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------

class SLSTMCell(nn.Module):
    """sLSTM cell: exponential input gate, sigmoid or exp forget gate, normaliser n, stabiliser m,
    block-diagonal recurrent matrices per head (memory mixing inside a head only)."""

    def __init__(self, d_in: int, d_hidden: int, options: XLSTMOptions = XLSTMOptions()):
        super().__init__()
        check_positive("SLSTMCell", d_in=d_in, d_hidden=d_hidden)
        head = head_size(d_hidden, options.n_heads)
        self.options = options
        self.d_hidden = d_hidden
        self.zo = nn.Linear(d_in, 2 * d_hidden)  # z and o gates see x
        self.gates_if = nn.Linear(d_in, 2 * d_hidden)  # i and f gates see x_gates
        bound = 1.0 / math.sqrt(head)
        self.recurrent = nn.Parameter(torch.empty(options.n_heads, head, 4 * head).uniform_(-bound, bound))
        with torch.no_grad():
            self.gates_if.bias[d_hidden:] = forget_bias(d_hidden, options.forget_gate)

    @property
    def n_heads(self) -> int:
        return self.options.n_heads

    def forward(self, x: torch.Tensor, x_gates: torch.Tensor | None = None, *,
                stabilized: bool | None = None) -> torch.Tensor:
        """h (batch, time, d_hidden) from x (batch, time, d_in); x_gates (default x) feeds i, f."""
        z, o = self.zo(x).chunk(2, dim=-1)
        i, f = self.gates_if(x if x_gates is None else x_gates).chunk(2, dim=-1)
        pre = torch.stack((z, i, f, o), dim=2)
        stable = self.options.stabilized if stabilized is None else stabilized
        return slstm_scan(pre, self.recurrent, self.options.forget_gate, stable)


class MLSTMCell(nn.Module):
    """mLSTM cell: matrix memory C (head x head per head), normaliser n, stabiliser m, scalar
    exponential input and forget gates per head computed from (q, k, v)."""

    def __init__(self, d_in: int, d_hidden: int, options: XLSTMOptions = XLSTMOptions()):
        super().__init__()
        check_positive("MLSTMCell", d_in=d_in, d_hidden=d_hidden)
        self.head = head_size(d_hidden, options.n_heads)
        self.options = options
        self.d_hidden = d_hidden
        self.q = nn.Linear(d_in, d_hidden)
        self.k = nn.Linear(d_in, d_hidden)
        self.v = nn.Linear(d_in, d_hidden)
        self.gates = nn.Linear(3 * d_hidden, 2 * options.n_heads)  # i~ then f~, one per head
        with torch.no_grad():
            self.gates.weight.zero_()
            self.gates.bias[:options.n_heads].normal_(0.0, 0.1)
            self.gates.bias[options.n_heads:] = forget_bias(options.n_heads, options.forget_gate)

    @property
    def n_heads(self) -> int:
        return self.options.n_heads

    def resolve_form(self, form: str | None) -> str:
        """The mLSTM form a call computes: the given one, or the options' default."""
        form = self.options.mlstm_form if form is None else form
        if form not in MLSTM_FORMS:
            raise DQMModelError(f"mLSTM form must be one of {MLSTM_FORMS}, got {form!r}.")
        return form

    def inputs(self, x: torch.Tensor, x_v: torch.Tensor | None = None) -> MLSTMInputs:
        """Per-head q, k/sqrt(head), v and gate pre-activations; x feeds q, k and x_v (default x) v."""
        batch, steps, _ = x.shape
        q, k = self.q(x), self.k(x) / math.sqrt(self.head)
        v = self.v(x if x_v is None else x_v)
        i_pre, f_pre = self.gates(torch.cat((q, k, v), dim=-1)).transpose(1, 2).chunk(2, dim=1)

        def heads(t):
            return t.reshape(batch, steps, self.n_heads, self.head).transpose(1, 2)

        return MLSTMInputs(heads(q), heads(k), heads(v), i_pre, log_forget(f_pre, self.options.forget_gate))

    def forward(self, x: torch.Tensor, x_v: torch.Tensor | None = None, *,
                form: str | None = None, stabilized: bool | None = None) -> torch.Tensor:
        """h~ (batch, time, d_hidden); form "parallel" or "recurrent" (default from options)."""
        form = self.resolve_form(form)
        stable = self.options.stabilized if stabilized is None else stabilized
        inp = self.inputs(x, x_v)
        h = mlstm_parallel(inp, stable) if form == "parallel" else mlstm_recurrent(inp, stable)
        return h.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.d_hidden)


# ---------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------

class HeadNorm(nn.Module):
    """Layer norm inside each head (the official multi-head group norm), one scale per channel."""

    def __init__(self, width: int, n_heads: int):
        super().__init__()
        self.head = head_size(width, n_heads)
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = x.reshape(*x.shape[:-1], -1, self.head)
        return F.layer_norm(split, (self.head,)).reshape(x.shape) * self.weight


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time on (batch, time, channels): output t sees t-k+1..t."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x.transpose(1, 2), (self.kernel - 1, 0))
        return self.conv(padded).transpose(1, 2)


class GatedMLP(nn.Module):
    """Gated feed-forward: down(GELU(gate) * up), with gate, up = split(Linear(x))."""

    def __init__(self, d_model: int, width: int):
        super().__init__()
        self.up = nn.Linear(d_model, 2 * width)
        self.down = nn.Linear(width, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.up(x).chunk(2, dim=-1)
        return self.down(F.gelu(gate) * up)


class MLSTMBlock(nn.Module):
    """Pre-LayerNorm residual mLSTM block with pre up-projection: x + down(((norm(mLSTM(q, k from
    SiLU(conv(x_m)), v from x_m)) + skip * conv_act) * SiLU(z)), with x_m, z = up(LN(x))."""

    def __init__(self, d_model: int, options: XLSTMOptions = XLSTMOptions()):
        super().__init__()
        check_positive("MLSTMBlock", d_model=d_model)
        inner = max(1, round(options.proj_factor * d_model))
        self.norm = nn.LayerNorm(d_model)
        self.up = nn.Linear(d_model, 2 * inner)
        self.conv = CausalConv1d(inner, options.conv_kernel)
        self.cell = MLSTMCell(inner, inner, options)
        self.head_norm = HeadNorm(inner, options.n_heads)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_m, z = self.up(self.norm(x)).chunk(2, dim=-1)
        conv_act = F.silu(self.conv(x_m))
        h = self.head_norm(self.cell(conv_act, x_m)) + self.skip * conv_act
        return x + self.down(h * F.silu(z))


class SLSTMBlock(nn.Module):
    """Pre-LayerNorm residual sLSTM block followed by a gated MLP: the causal conv + SiLU feeds only
    the i and f gates; x + norm(sLSTM(LN(x))), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, options: XLSTMOptions = XLSTMOptions()):
        super().__init__()
        check_positive("SLSTMBlock", d_model=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.conv = CausalConv1d(d_model, options.conv_kernel)
        self.cell = SLSTMCell(d_model, d_model, options)
        self.head_norm = HeadNorm(d_model, options.n_heads)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.mlp = GatedMLP(d_model, max(1, round(options.ffn_factor * d_model)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)
        x = x + self.head_norm(self.cell(normed, F.silu(self.conv(normed))))
        return x + self.mlp(self.mlp_norm(x))


def check_blocks(blocks) -> None:
    """Raise DQMModelError unless blocks is a non-empty pattern of 'm' and 's'."""
    if not isinstance(blocks, str) or not blocks or set(blocks) - set(BLOCK_KINDS):
        raise DQMModelError(f"blocks must be a non-empty string of 'm' (mLSTM) and 's' (sLSTM), got {blocks!r}.")


def block_stack(blocks: str, d_model: int, options: XLSTMOptions) -> nn.Sequential:
    """nn.Sequential of blocks from a pattern such as "ms" (m: mLSTM block, s: sLSTM block)."""
    check_blocks(blocks)
    kinds = {"m": MLSTMBlock, "s": SLSTMBlock}
    return nn.Sequential(*(kinds[kind](d_model, options) for kind in blocks))


# ---------------------------------------------------------------------------------------------
# Autoencoder
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class XLSTMConfig:
    """Shape of an XLSTMAutoencoder; cell and block options live in XLSTMOptions."""

    n_features: int = 16  #: features per lumiblock
    d_model: int = 24  #: width of the residual stream (24: fewer parameters than the LSTM AE)
    latent: int = 16  #: size of the window code
    blocks: str = "ms"  #: block pattern of the encoder and of the decoder ("m": mLSTM, "s": sLSTM)

    def __post_init__(self):
        check_positive("XLSTMAutoencoder", n_features=self.n_features, d_model=self.d_model,
                       latent=self.latent)
        check_blocks(self.blocks)


def _options(options: dict) -> XLSTMOptions:
    unknown = sorted(set(options) - {field.name for field in fields(XLSTMOptions)})
    if unknown:
        raise DQMModelError(f"unknown xLSTM option(s): {', '.join(unknown)}.")
    return XLSTMOptions(**options)


class XLSTMAutoencoder(nn.Module):
    """xLSTM autoencoder: Linear(F -> d_model) -> encoder blocks -> LayerNorm -> last step ->
    Linear(-> latent); Linear(latent -> d_model) repeated over time -> decoder blocks ->
    LayerNorm -> Linear(-> F). Keyword options: ``blocks`` and the XLSTMOptions fields."""

    name = "xlstm"

    def __init__(self, n_features: int = 16, d_model: int = 24, latent: int = 16, **options):
        super().__init__()
        self.config = XLSTMConfig(n_features, d_model, latent, options.pop("blocks", "ms"))
        self.options = _options(options)
        self.embed = nn.Linear(n_features, d_model)
        self.encoder = block_stack(self.config.blocks, d_model, self.options)
        self.encoder_norm = nn.LayerNorm(d_model)
        self.to_latent = nn.Linear(d_model, latent)
        self.from_latent = nn.Linear(latent, d_model)
        self.decoder = block_stack(self.config.blocks, d_model, self.options)
        self.decoder_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Window code (batch, latent) from windows (batch, time, F)."""
        check_windows(x, self.config.n_features)
        h = self.encoder_norm(self.encoder(self.embed(x)))
        return self.to_latent(h[:, -1])

    def decode(self, code: torch.Tensor, steps: int) -> torch.Tensor:
        """Reconstruction (batch, steps, F) from codes (batch, latent)."""
        start = self.from_latent(code).unsqueeze(1).expand(-1, steps, -1)
        return self.out(self.decoder_norm(self.decoder(start)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[1])
