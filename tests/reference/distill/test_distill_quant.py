"""Fake quantization: grid, level counts, per-channel scales, the clipped STE, running-max input
scales, quantized layers against a plain fake-quant computation, QAT, export and bad input."""

import pytest
import torch
from torch.nn import functional as F

from reference.distill.quant import (EXACT_SUM, SETTINGS, ConvShape, InputQuantizer, QuantConv1d, QuantError,
                                     QuantLinear, QuantMLP, QuantSpec, build_student, export_integer, fake_quantize,
                                     mixed_setting, quantize_int, range_scale)


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("signed", [True, False])
def test_values_lie_on_the_grid_with_at_most_2_to_the_b_levels(bits, signed):
    spec = QuantSpec(bits, signed=signed)
    x = torch.linspace(-3, 3, 10001)
    scale = range_scale(x, spec)
    xq = fake_quantize(x, spec)
    steps = xq / scale
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    levels = torch.unique(steps.round())
    assert len(levels) <= spec.levels <= 2 ** bits
    assert len(levels) == spec.levels  # the dense ramp reaches every level
    assert steps.round().min() >= spec.q_min and steps.round().max() <= spec.q_max
    inside = (x >= spec.q_min * scale) & (x <= spec.q_max * scale)
    assert torch.all((xq - x)[inside].abs() <= scale / 2 * (1 + 1e-5))


def test_scale_is_max_abs_over_q_max():
    x = torch.tensor([0.5, -2.54, 1.0])
    assert range_scale(x, QuantSpec(8)).item() == pytest.approx(2.54 / 127)
    assert range_scale(x, QuantSpec(4)).item() == pytest.approx(2.54 / 7)
    assert range_scale(x, QuantSpec(4, signed=False)).item() == pytest.approx(1.0 / 15)


def test_per_channel_scales_differ_per_channel_and_per_tensor_does_not():
    weight = _randn(3, 20) * torch.tensor([[0.01], [1.0], [100.0]])
    per_channel = QuantSpec(4, per_channel=True)
    scales = range_scale(weight, per_channel).flatten()
    assert torch.allclose(scales, weight.abs().amax(dim=1) / 7)
    assert scales[0] < scales[1] < scales[2]
    codes, _ = quantize_int(weight, per_channel)
    assert torch.all(codes.abs().amax(dim=1) == 7)  # every channel uses its full range
    per_tensor_codes, per_tensor_scale = quantize_int(weight, QuantSpec(4))
    assert per_tensor_scale.numel() == 1
    assert torch.all(per_tensor_codes[0] == 0)  # the small channel vanishes with one shared scale


def test_hand_made_values_and_clipped_ste_gradient():
    """4-bit signed, scale 0.5: codes -7..7, range [-3.5, 3.5]."""
    x = torch.tensor([-5.0, -3.5, -1.2, 0.0, 0.25, 0.74, 0.75, 3.5, 3.6, 3.8, 9.0], requires_grad=True)
    xq = fake_quantize(x, QuantSpec(4), scale=0.5)
    # -1.2/0.5 = -2.4 -> -2; 0.25/0.5 = 0.5 -> 0 and 0.75/0.5 = 1.5 -> 2 (half to even); clipped at +-7
    assert xq.tolist() == [-3.5, -3.5, -1.0, 0.0, 0.0, 0.5, 1.0, 3.5, 3.5, 3.5, 3.5]
    xq.sum().backward()
    # 3.6/0.5 = 7.2 rounds to 7 (not clipped: gradient 1); 3.8/0.5 = 7.6 rounds to 8 (clipped: 0)
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_ste_gradient_unsigned_and_per_channel():
    x = torch.tensor([[-1.0, 0.0, 2.0, 3.1], [-1.0, 0.0, 2.0, 3.1]], requires_grad=True)
    spec = QuantSpec(2, per_channel=True, signed=False)  # codes 0..3
    xq = fake_quantize(x, spec, scale=torch.tensor([1.0, 0.5]))
    assert xq.tolist() == [[0.0, 0.0, 2.0, 3.0], [0.0, 0.0, 1.5, 1.5]]
    (xq * torch.tensor([[1.0, 2.0, 3.0, 4.0]])).sum().backward()
    # row 0 (scale 1): -1 -> -1 clipped, 3.1 -> 3 kept; row 1 (scale 0.5): 2.0 -> 4 and 3.1 -> 6 clipped
    assert x.grad.tolist() == [[0.0, 2.0, 3.0, 4.0], [0.0, 2.0, 0.0, 0.0]]


def test_input_quantizer_running_max_and_frozen_eval():
    quantizer = InputQuantizer(QuantSpec(8), momentum=0.1)
    quantizer(torch.tensor([1.0, -2.0]))
    assert quantizer.running_max.item() == pytest.approx(2.0)  # the first batch sets it
    quantizer(torch.tensor([4.0]))
    assert quantizer.running_max.item() == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
    quantizer.eval()
    out = quantizer(torch.tensor([10.0, 1.0]))
    assert quantizer.running_max.item() == pytest.approx(2.2)  # frozen
    assert out[0].item() == pytest.approx(2.2)  # clipped to the frozen range
    fresh = InputQuantizer(QuantSpec(4)).eval()
    with pytest.raises(QuantError, match="seen no data"):
        fresh(torch.ones(3))


def _observed_linear(weight_spec, input_spec, seed=0):
    torch.manual_seed(seed)
    layer = QuantLinear(12, 5, weight_spec, input_spec)
    layer(_randn(64, 12, seed=seed + 1))  # training mode: sets the input range
    return layer.eval()


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quant_linear_equals_plain_fake_quant_and_has_ste_gradients(bits):
    layer = _observed_linear(QuantSpec(bits, per_channel=True), QuantSpec(bits))
    x = (_randn(7, 12, seed=5) * 2).requires_grad_()  # partly outside the observed range
    s_x = layer.input_quant.scale()
    x_hat = fake_quantize(x, layer.input_spec, s_x)
    w_hat = fake_quantize(layer.weight, layer.weight_spec)
    multiplier = s_x * range_scale(layer.weight, layer.weight_spec).flatten()
    b_hat = torch.round(layer.bias / multiplier) * multiplier
    expected = F.linear(x_hat, w_hat, b_hat)
    out = layer(x)
    assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    inside = (torch.round(x / s_x).abs() <= layer.input_spec.q_max).float()
    assert 0 < inside.mean() < 1
    assert torch.allclose(x.grad, inside * w_hat.sum(dim=0).detach(), atol=1e-6)
    assert torch.allclose(layer.weight.grad, x_hat.detach().sum(dim=0).expand(5, 12), atol=1e-5)


def test_quant_conv1d_equals_plain_fake_quant():
    torch.manual_seed(0)
    conv = QuantConv1d(ConvShape(4, 6, 3, stride=2, padding=1, groups=2), QuantSpec(4, per_channel=True),
                       QuantSpec(6))
    conv(_randn(3, 4, 20, seed=1))
    conv.eval()
    x = _randn(2, 4, 20, seed=2)
    s_x = conv.input_quant.scale()
    multiplier = s_x * range_scale(conv.weight, conv.weight_spec).flatten()
    b_hat = torch.round(conv.bias / multiplier) * multiplier
    expected = F.conv1d(fake_quantize(x, conv.input_spec, s_x), fake_quantize(conv.weight, conv.weight_spec), b_hat,
                        stride=2, padding=1, groups=2)
    assert torch.allclose(conv(x), expected, atol=1e-5, rtol=1e-5)
    assert conv(x).shape == (2, 6, 10)


def test_quant_mlp_trains_at_w4a4():
    torch.manual_seed(0)
    x = _randn(256, 8, seed=1)
    y = x @ _randn(8, 1, seed=2) + 0.5 * torch.relu(x[:, :1])
    model = QuantMLP([8, 16, 1], *SETTINGS["W4A4"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    model.eval()
    with torch.no_grad():
        assert F.mse_loss(model(x), y).item() < 0.1 * y.var().item()


def test_mlp_specs_settings_and_mixed_precision():
    assert mixed_setting(3) == ((8, 8), (4, 4), (4, 4))
    model = build_student([16, 8, 4, 1], mixed_setting(3), device="cpu")
    assert [(layer.weight_spec.bits, layer.input_spec.bits) for layer in model.layers] == [(8, 8), (4, 4), (4, 4)]
    assert [layer.input_spec.signed for layer in model.layers] == [True, False, False]  # post-ReLU unsigned
    assert all(layer.weight_spec.per_channel and layer.weight_spec.signed for layer in model.layers)
    named = build_student([16, 8, 1], "W2A4")
    assert [(layer.weight_spec.bits, layer.input_spec.bits) for layer in named.layers] == [(2, 4), (2, 4)]
    assert QuantMLP([16, 8, 1], per_layer=["W8A8", (6, 6)]).bits == ((8, 8), (6, 6))
    assert model(_randn(3, 4, 4)).shape == (3, 1)  # (batch, 4, 4) flattens to 16 features


def _exported_pair():
    torch.manual_seed(0)
    model = QuantMLP([12, 6, 2], per_layer=[(4, 8), (2, 4)])
    model(_randn(32, 12))
    return model, export_integer(model)


def test_export_types_and_code_ranges():
    _, exported = _exported_pair()
    first, last = exported.layers
    assert (first.weight.dtype.name, first.bias.dtype.name, first.multiplier.dtype.name) == ("int8", "int32", "float32")
    assert first.weight_scale.shape == (6,) and first.input_dtype.name == "int8"
    assert QuantSpec(8, signed=False).container.name == "uint8"
    assert first.weight.min() >= -7 and first.weight.max() <= 7
    assert set(last.weight.ravel()) <= {-1, 0, 1}
    assert (first.relu, last.relu) == (True, False) and last.input_spec == QuantSpec(4, signed=False)


def test_export_values_reproduce_the_fake_quant_layer():
    model, exported = _exported_pair()
    first = exported.layers[0]
    w_hat = fake_quantize(model.layers[0].weight, model.layers[0].weight_spec).detach().numpy()
    assert abs(first.weight * first.weight_scale[:, None] - w_hat).max() < 1e-6
    bias_error = abs(first.bias * first.multiplier - model.layers[0].bias.detach().numpy())
    assert (bias_error <= first.multiplier / 2 * (1 + 1e-5)).all()  # int32 bias codes at scale s_x s_w
    assert first.input_scale == model.layers[0].input_quant.scale().item()
    assert exported.in_features == 12 and exported.out_features == 2
    assert model.layers[0].bias_limit == EXACT_SUM - 1 - 12 * 127 * 7


@pytest.mark.parametrize("make", [
    lambda: QuantSpec(1), lambda: QuantSpec(9), lambda: QuantSpec(4.0), lambda: QuantSpec(True),
    lambda: QuantLinear(1100, 1, QuantSpec(8), QuantSpec(8)),  # 1100 x 127 x 127 >= 2^24
    lambda: QuantLinear(4, 2, QuantSpec(4, signed=False), QuantSpec(4)),
    lambda: QuantLinear(4, 2, QuantSpec(4), QuantSpec(4, per_channel=True)),
    lambda: QuantMLP([16]), lambda: QuantMLP([16, 0, 1]), lambda: QuantMLP([16, 8, 1], per_layer=[(8, 8)]),
    lambda: build_student([16, 1], "W3A3"), lambda: mixed_setting(0),
    lambda: export_integer(torch.nn.Linear(3, 2)), lambda: export_integer(QuantMLP([3, 2])),
    lambda: QuantMLP([16, 1])(torch.zeros(2, 15)),
    lambda: fake_quantize(torch.ones(3), QuantSpec(4), scale=0.0),
    lambda: fake_quantize(torch.ones(3, 2), QuantSpec(4, per_channel=True), scale=[1.0, 2.0]),
], ids=["bits-1", "bits-9", "bits-float", "bits-bool", "accumulator", "unsigned-weights", "per-channel-input",
        "one-size", "zero-size", "per-layer-length", "unknown-setting", "mixed-zero", "float-export",
        "unobserved-export", "wrong-features", "zero-scale", "scale-count"])
def test_bad_input_raises_one_clear_error(make):
    with pytest.raises(QuantError) as caught:
        make()
    assert isinstance(caught.value, ValueError) and str(caught.value).endswith(".")
