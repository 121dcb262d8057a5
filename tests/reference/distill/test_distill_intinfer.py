"""Integer inference (numba, int8 x int8 -> int32) against the fake-quant model in eval mode:
identical codes in every layer, independent accumulator check, outputs to float rounding."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from reference.distill.intinfer import infer, infer_one, latency_int, quantize_input, trace
from reference.distill.quant import QuantError, QuantMLP, build_student, export_integer, mixed_setting

SIZES = (24, 16, 8, 1)
SETTINGS = ["W8A8", "W4A4", "W2A4", mixed_setting(3)]
IDS = ["W8A8", "W4A4", "W2A4", "mixed-W8A8-W4A4"]


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _trained(setting, seed=0) -> QuantMLP:
    """A few QAT steps so that scales, biases and running maxima are not at their initial values."""
    torch.manual_seed(seed)
    model = build_student(SIZES, setting)
    x = _randn(128, SIZES[0], seed=seed + 1) * 1.5
    y = torch.tanh(x[:, :1] * x[:, 1:2]) + x[:, 2:3]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _fake_quant_codes(model: QuantMLP, x: torch.Tensor):
    """Input codes of every layer as the fake-quant forward computes them, and its output."""
    codes = []
    hooks = [layer.register_forward_pre_hook(
        lambda module, args: codes.append(module.input_quant.to_int(args[0])[0].numpy())) for layer in model.layers]
    try:
        with torch.no_grad():
            out = model(x).numpy()
    finally:
        for hook in hooks:
            hook.remove()
    return codes, out


def _ties(model: QuantMLP, count=64) -> torch.Tensor:
    """Inputs whose first-layer x / s is exactly k + 1/2 in float32: rounding mode decides their codes."""
    scale = np.float32(model.layers[0].input_quant.scale().item())
    half = np.arange(-8, 8, dtype=np.float32) + np.float32(0.5)
    candidates = (half * scale).astype(np.float32)
    exact = candidates[(candidates / scale).astype(np.float32) == half]
    rows = np.resize(exact, (count, SIZES[0]))
    return torch.from_numpy(np.ascontiguousarray(rows))


@pytest.mark.parametrize("setting", SETTINGS, ids=IDS)
def test_integer_path_is_bit_exact_against_fake_quant_eval(setting):
    model = _trained(setting)
    exported = export_integer(model)
    x = torch.cat([_randn(2000, SIZES[0], seed=7) * 1.5, _ties(model)])
    fake_codes, fake_out = _fake_quant_codes(model, x)
    result = trace(exported, x)
    assert len(result.codes) == len(fake_codes) == 3
    for layer, ours, theirs in zip(exported.layers, result.codes, fake_codes):
        assert ours.dtype == layer.input_dtype
        np.testing.assert_array_equal(ours.astype(np.int64), theirs.astype(np.int64))
    tie_codes = result.codes[0][-64:].astype(np.int64)  # half to even, or clipped at q_max
    assert np.all((tie_codes % 2 == 0) | (np.abs(tie_codes) == model.layers[0].input_spec.q_max))
    assert len(np.unique(result.codes[1])) > 2  # the hidden layers are not degenerate
    # the contract is "to float rounding"; both paths do the same IEEE float32 steps, so it is exact
    np.testing.assert_array_equal(result.output, fake_out)
    for layer, codes, acc in zip(exported.layers, result.codes, result.accumulators):
        expected = codes.astype(np.int64) @ layer.weight.astype(np.int64).T + layer.bias
        assert acc.dtype == np.int32
        np.testing.assert_array_equal(acc, expected)


def test_huge_bias_is_clipped_to_the_accumulator_headroom_and_stays_exact():
    model = _trained("W8A8")
    with torch.no_grad():
        model.layers[1].bias[:4] = 1e6  # far beyond 2^24 x s_x s_w
    exported = export_integer(model)
    limit = model.layers[1].bias_limit
    assert limit == 2 ** 24 - 1 - 16 * 255 * 127
    assert np.all(exported.layers[1].bias[:4] == limit)
    x = _randn(500, SIZES[0], seed=9) * 1.5
    fake_codes, fake_out = _fake_quant_codes(model, x)
    result = trace(exported, x)
    assert np.abs(result.accumulators[1]).max() < 2 ** 24
    for ours, theirs in zip(result.codes, fake_codes):
        np.testing.assert_array_equal(ours.astype(np.int64), theirs.astype(np.int64))
    np.testing.assert_array_equal(result.output, fake_out)


def test_tie_inputs_round_half_to_even():
    model = _trained("W8A8")
    x = _ties(model)
    codes = quantize_input(export_integer(model), x).astype(np.int64)
    ratio = x.numpy() / np.float32(model.layers[0].input_quant.scale().item())
    assert ratio.dtype == np.float32 and np.all(ratio % 1 == 0.5)  # the helper really made ties
    assert np.all(codes % 2 == 0) and np.all(np.abs(codes - ratio) == 0.5)


def test_single_sample_and_windows_match_the_batch_path():
    model = _trained("W4A4")
    exported = export_integer(model)
    x = _randn(5, SIZES[0], seed=3)
    batch = infer(exported, x)
    assert batch.shape == (5, 1) and batch.dtype == np.float32
    for row in range(5):
        np.testing.assert_array_equal(infer_one(exported, x[row].numpy()), batch[row])
    windows = x.reshape(5, 3, 8)  # (batch, T, F) flattens to 24 features on both paths
    with torch.no_grad():
        np.testing.assert_allclose(infer(exported, windows), model(windows).numpy(), rtol=1e-6, atol=1e-7)


def test_unsigned_8_bit_hidden_inputs_use_uint8_containers():
    model = _trained("W8A8")
    exported = export_integer(model)
    assert [layer.input_dtype.name for layer in exported.layers] == ["int8", "uint8", "uint8"]
    codes = trace(exported, _randn(300, SIZES[0], seed=4) * 3).codes
    assert codes[0].min() >= -127 and codes[1].max() <= 255


def test_latency_helper_reports_median_and_iqr():
    timing = latency_int(export_integer(_trained("W4A4")), batch=8, repeats=20)
    assert 0 < timing["min_s"] <= timing["q25_s"] <= timing["median_s"] <= timing["q75_s"] <= timing["max_s"]
    assert timing["iqr_s"] == pytest.approx(timing["q75_s"] - timing["q25_s"])
    assert (timing["batch"], timing["repeats"], timing["device"]) == (8, 20, "cpu")


@pytest.mark.parametrize("call", [
    lambda model: infer(model, np.zeros((2, SIZES[0] + 1), np.float32)),
    lambda model: infer_one(model, np.zeros(3)),
    lambda model: infer(object(), np.zeros((2, SIZES[0]))),
    lambda model: latency_int(model, batch=0),
], ids=["features", "single-features", "not-exported", "batch"])
def test_bad_input_raises_one_clear_error(call):
    exported = export_integer(_trained("W2A4"))
    with pytest.raises(QuantError):
        call(exported)
