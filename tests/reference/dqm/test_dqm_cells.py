"""xLSTM cells: stabilised == unstabilised, parallel == recurrent, the equations themselves,
no overflow for extreme gates on long sequences, causality of the blocks."""

import math

import pytest
import torch

from reference.dqm.xlstm import (FORGET_GATES, MLSTMBlock, MLSTMCell, SLSTMBlock, SLSTMCell, XLSTMOptions,
                                 mlstm_parallel, mlstm_recurrent)

D_IN, D_HIDDEN, HEADS, STEPS = 6, 8, 2, 16


def _cells(forget_gate, seed, dtype=torch.float32):
    torch.manual_seed(seed)
    options = XLSTMOptions(n_heads=HEADS, forget_gate=forget_gate)
    return (SLSTMCell(D_IN, D_HIDDEN, options).to(dtype), MLSTMCell(D_IN, D_HIDDEN, options).to(dtype))


def _spread_gates(slstm, mlstm, weight_std, input_bias_std):
    """Random gate weights and input-gate biases (forget biases keep their initial values)."""
    with torch.no_grad():
        slstm.gates_if.weight.normal_(0.0, weight_std)
        slstm.gates_if.bias[:D_HIDDEN].normal_(0.0, input_bias_std)
        mlstm.gates.weight.normal_(0.0, weight_std)
        mlstm.gates.bias[:HEADS].normal_(0.0, input_bias_std)


def _mlstm_forms(cell, x):
    return {(form, stable): cell(x, form=form, stabilized=stable)
            for form in ("recurrent", "parallel") for stable in (True, False)}


@pytest.mark.parametrize("forget_gate", FORGET_GATES)
def test_slstm_stabilized_equals_plain_float32(forget_gate):
    slstm, mlstm = _cells(forget_gate, seed=1)
    _spread_gates(slstm, mlstm, weight_std=1.0, input_bias_std=3.0)
    x = torch.randn(3, STEPS, D_IN)
    stable, plain = slstm(x, stabilized=True), slstm(x, stabilized=False)
    assert stable.std() > 0.05  # a real signal, not a constant
    assert (stable - plain).abs().max() <= 1e-5


@pytest.mark.parametrize("forget_gate", FORGET_GATES)
def test_mlstm_recurrent_parallel_stabilized_plain_agree_float32(forget_gate):
    slstm, mlstm = _cells(forget_gate, seed=2)
    _spread_gates(slstm, mlstm, weight_std=0.1, input_bias_std=0.5)
    x = 0.5 * torch.randn(3, STEPS, D_IN)
    outs = _mlstm_forms(mlstm, x)
    reference = outs[("recurrent", True)]
    assert reference.std() > 0.05
    for key, out in outs.items():
        assert (out - reference).abs().max() <= 1e-5, key


@pytest.mark.parametrize("forget_gate", FORGET_GATES)
def test_mlstm_forms_agree_float64_wide_gates(forget_gate):
    """Pre-activations of +-15: in float32 the cancellations in C q and n^T q amplify rounding,
    so the algebraic identity of the four computations is checked in float64."""
    slstm, mlstm = _cells(forget_gate, seed=3, dtype=torch.float64)
    _spread_gates(slstm, mlstm, weight_std=2.0, input_bias_std=3.0)
    with torch.no_grad():
        mlstm.gates.bias[HEADS:].normal_(0.0, 3.0)
        slstm.gates_if.bias[D_HIDDEN:].normal_(0.0, 3.0)
    x = torch.randn(3, STEPS, D_IN, dtype=torch.float64)
    inp = mlstm.inputs(x)
    assert inp.i_pre.abs().max() > 10.0 and inp.log_f.min() < -5.0
    outs = _mlstm_forms(mlstm, x)
    reference = outs[("recurrent", True)]
    for key, out in outs.items():
        assert (out - reference).abs().max() <= 1e-9, key
    assert (slstm(x, stabilized=True) - slstm(x, stabilized=False)).abs().max() <= 1e-12


def _naive_mlstm(inp):
    """h~_t = sum_j w_tj v_j (k_j . q_t) / max(|sum_j w_tj k_j . q_t|, 1), w_tj = i_j prod f."""
    batch, heads, steps, _ = inp.q.shape
    out = torch.zeros_like(inp.q)
    for b in range(batch):
        for h in range(heads):
            for t in range(steps):
                num, den = torch.zeros_like(inp.q[b, h, t]), 0.0
                for j in range(t + 1):
                    w = math.exp(inp.i_pre[b, h, j] + inp.log_f[b, h, j + 1:t + 1].sum())
                    score = float(inp.k[b, h, j] @ inp.q[b, h, t])
                    num, den = num + w * score * inp.v[b, h, j], den + w * score
                out[b, h, t] = num / max(abs(den), 1.0)
    return out


@pytest.mark.parametrize("forget_gate", FORGET_GATES)
def test_mlstm_matches_written_out_equations(forget_gate):
    slstm, mlstm = _cells(forget_gate, seed=4, dtype=torch.float64)
    _spread_gates(slstm, mlstm, weight_std=0.5, input_bias_std=1.0)
    with torch.no_grad():
        inp = mlstm.inputs(torch.randn(2, 5, D_IN, dtype=torch.float64))
    expected = _naive_mlstm(inp)
    assert torch.allclose(mlstm_recurrent(inp), expected, atol=1e-10)
    assert torch.allclose(mlstm_parallel(inp), expected, atol=1e-10)


def _naive_slstm(cell, x):
    """Plain eqs. (8)-(17) with the full (block-diagonal) recurrent matrix R (d, 4, d)."""
    d, head = cell.d_hidden, cell.d_hidden // cell.n_heads
    full = torch.zeros(d, 4, d, dtype=x.dtype)
    for h in range(cell.n_heads):
        block = cell.recurrent[h].reshape(head, 4, head)
        full[h * head:(h + 1) * head, :, h * head:(h + 1) * head] = block
    z_x, o_x = cell.zo(x).chunk(2, dim=-1)
    i_x, f_x = cell.gates_if(x).chunk(2, dim=-1)
    hidden, c, n, outputs = torch.zeros(x.shape[0], d, dtype=x.dtype), 0.0, 0.0, []
    for t in range(x.shape[1]):
        rec = torch.einsum("ba,agc->bgc", hidden, full)
        z, i = torch.tanh(z_x[:, t] + rec[:, 0]), torch.exp(i_x[:, t] + rec[:, 1])
        f_pre = f_x[:, t] + rec[:, 2]
        f = torch.sigmoid(f_pre) if cell.options.forget_gate == "sigmoid" else torch.exp(f_pre)
        c, n = f * c + i * z, f * n + i
        hidden = torch.sigmoid(o_x[:, t] + rec[:, 3]) * c / n
        outputs.append(hidden)
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("forget_gate", FORGET_GATES)
def test_slstm_matches_written_out_equations(forget_gate):
    slstm, _ = _cells(forget_gate, seed=5, dtype=torch.float64)
    x = torch.randn(2, 6, D_IN, dtype=torch.float64)
    with torch.no_grad():
        expected = _naive_slstm(slstm, x)
        assert torch.allclose(slstm(x), expected, atol=1e-12)
        assert torch.allclose(slstm(x, stabilized=False), expected, atol=1e-12)


def _extreme_gates(slstm, mlstm):
    """Gate biases of +-50 plus input-dependent spread: pre-activations beyond +-50."""
    with torch.no_grad():
        slstm.gates_if.bias.copy_(torch.tensor([50.0, -50.0]).repeat(D_HIDDEN))
        slstm.gates_if.weight.normal_(0.0, 3.0)
        mlstm.gates.bias.copy_(torch.tensor([50.0, -50.0]).repeat(HEADS))
        mlstm.gates.weight.normal_(0.0, 3.0)


def _reaches_50(pre):
    return pre.max() >= 50.0 and pre.min() <= -50.0


@pytest.mark.parametrize("forget_gate", FORGET_GATES)
def test_stabilized_cells_stay_finite_for_extreme_gates_and_1024_steps(forget_gate):
    slstm, mlstm = _cells(forget_gate, seed=6)
    _extreme_gates(slstm, mlstm)
    x = torch.randn(2, 1024, D_IN, requires_grad=True)
    i_pre, f_pre = slstm.gates_if(x).chunk(2, dim=-1)
    inp = mlstm.inputs(x)
    assert _reaches_50(i_pre) and _reaches_50(f_pre) and _reaches_50(inp.i_pre)
    assert _reaches_50(inp.log_f) if forget_gate == "exp" else inp.log_f.min() <= -50.0
    runs = {"slstm": lambda: slstm(x), "mlstm-recurrent": lambda: mlstm(x, form="recurrent"),
            "mlstm-parallel": lambda: mlstm(x, form="parallel")}
    for name, run in runs.items():
        x.grad = None
        out = run()
        out.square().sum().backward()
        assert torch.isfinite(out).all(), name
        assert torch.isfinite(x.grad).all() and x.grad.abs().max() > 0, name


def test_plain_recurrence_overflows_where_the_stabilized_one_does_not():
    """The regime above is a real test: without the stabiliser exp(f~ = 50) overflows float32."""
    slstm, mlstm = _cells("exp", seed=7)
    _extreme_gates(slstm, mlstm)
    x = torch.randn(2, 64, D_IN)
    with torch.no_grad():
        assert not torch.isfinite(slstm(x, stabilized=False)).all()
        assert not torch.isfinite(mlstm(x, form="recurrent", stabilized=False)).all()
        assert torch.isfinite(slstm(x)).all() and torch.isfinite(mlstm(x, form="recurrent")).all()


@pytest.mark.parametrize("block_type", [MLSTMBlock, SLSTMBlock])
def test_blocks_are_causal_and_keep_the_shape(block_type):
    torch.manual_seed(8)
    block = block_type(8, XLSTMOptions(n_heads=2))
    x = torch.randn(2, 12, 8)
    changed = x.clone()
    changed[:, 7] += 1.0
    with torch.no_grad():
        before, after = block(x), block(changed)
    assert before.shape == x.shape
    assert torch.equal(before[:, :7], after[:, :7])
    assert (before[:, 7:] - after[:, 7:]).abs().max() > 1e-4


def test_heads_do_not_mix_in_slstm_memory():
    """Block-diagonal recurrence: head 1's outputs do not depend on head 0's past."""
    torch.manual_seed(9)
    cell = SLSTMCell(D_HIDDEN, D_HIDDEN, XLSTMOptions(n_heads=HEADS))
    with torch.no_grad():
        cell.zo.weight.copy_(torch.eye(D_HIDDEN).repeat(2, 1))
        cell.gates_if.weight.copy_(torch.eye(D_HIDDEN).repeat(2, 1))
    x = torch.randn(1, 6, D_HIDDEN)
    changed = x.clone()
    changed[:, 0, :D_HIDDEN // 2] += 1.0  # head 0 inputs only
    with torch.no_grad():
        before, after = cell(x), cell(changed)
    assert torch.equal(before[..., D_HIDDEN // 2:], after[..., D_HIDDEN // 2:])
    assert (before[:, 1:, :D_HIDDEN // 2] - after[:, 1:, :D_HIDDEN // 2]).abs().max() > 1e-4


@pytest.mark.parametrize("make", [
    lambda: SLSTMCell(6, 7, XLSTMOptions(n_heads=2)),
    lambda: MLSTMCell(6, 8, XLSTMOptions(n_heads=3)),
    lambda: XLSTMOptions(forget_gate="tanh"),
    lambda: XLSTMOptions(mlstm_form="chunkwise"),
    lambda: XLSTMOptions(n_heads=0),
    lambda: MLSTMCell(6, 8)(torch.zeros(1, 3, 6), form="chunkwise"),
])
def test_bad_cell_options_raise_value_error(make):
    with pytest.raises(ValueError):
        make()
