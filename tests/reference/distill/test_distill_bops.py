"""BOPs: hand-computed values (arithmetic written out), the research note's worked example, LSTM
convention, MACs against FlopCounterMode on meta tensors, pruning by zero codes, report and errors."""

import copy
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reference.distill.bops import CONVENTION, layer_bops, model_bops, simplified_bops
from reference.distill.quant import ConvShape, QuantConv1d, QuantError, QuantLinear, QuantMLP, QuantSpec


def _quant_linear(bits):
    return QuantLinear(16, 8, QuantSpec(bits, per_channel=True), QuantSpec(bits))


def test_linear_16_to_8_at_w8a8_and_w4a4_by_hand():
    # m = 8, n = 16, log2 16 = 4
    # W8A8: 8 * 16 * (8*8 + 8 + 8 + 4) = 128 * 84 = 10,752; simplified 128 MACs * 8 * 8 = 8,192
    # W4A4: 8 * 16 * (4*4 + 4 + 4 + 4) = 128 * 28 = 3,584;  simplified 128 * 4 * 4 = 2,048
    assert layer_bops(8, 16, 8, 8) == 10_752 and layer_bops(8, 16, 4, 4) == 3_584
    for bits, full, simple in ((8, 10_752, 8_192), (4, 3_584, 2_048)):
        report = model_bops(_quant_linear(bits), (1, 16))
        (row,) = report.rows
        assert (row.kind, row.macs, row.parameters, row.b_w, row.b_a) == ("quant-linear", 128, 16 * 8 + 8, bits, bits)
        assert row.bops == full and row.bops_simplified == simple == simplified_bops(128, bits, bits)
        assert report.total_bops == full


def test_float_linear_counts_32_bits_and_scales_with_positions():
    # 8 * 16 * (32*32 + 32 + 32 + 4) = 128 * 1,092 = 139,776 per row; (5, 3, 16) input = 15 rows
    report = model_bops(nn.Linear(16, 8), (5, 3, 16))
    (row,) = report.rows
    assert (row.kind, row.b_w, row.b_a, row.evaluations) == ("linear", 32, 32, 15)
    assert row.bops == 15 * 139_776 and row.macs == 15 * 128


def test_lstm_16_to_64_over_32_steps_float():
    # per step: n = I + H = 80, m = 4H = 256; MACs = 32 * 256 * 80 = 655,360
    # BOPs = 655,360 * (32*32 + 32 + 32 + log2 80) = 655,360 * 1,094.3219... = 7.1717e8
    report = model_bops(nn.LSTM(16, 64, batch_first=True), (1, 32, 16))
    (row,) = report.rows
    assert (row.name, row.kind, row.fan_in, row.fan_out, row.evaluations) == ("l0", "lstm", 80, 256, 32)
    assert row.macs == 655_360 and row.parameters == 4 * 64 * (16 + 64) + 2 * 4 * 64
    assert row.bops == pytest.approx(655_360 * (1024 + 64 + math.log2(80)), rel=1e-12)
    assert round(row.bops) == 717_174_819
    assert row.bops_simplified == 655_360 * 1024 == 671_088_640


def test_stacked_bidirectional_lstm_uses_each_layers_fan_in():
    lstm = nn.LSTM(16, 32, num_layers=2, bidirectional=True)  # sequence-first: (T, B, I)
    report = model_bops(lstm, (10, 3, 16))
    assert [(row.name, row.fan_in, row.evaluations) for row in report.rows] == [("l0", 48, 60), ("l1", 96, 60)]
    assert report.total_parameters == sum(p.numel() for p in lstm.parameters())


def test_research_note_worked_example_is_the_full_form():
    """MLP 512 -> 32 -> 1, W8A8: ml.md section 4.4 quotes 1.46e6 BOPs.

    full:       32 * 512 * (64 + 8 + 8 + 9) + 1 * 32 * (64 + 8 + 8 + 5) = 1,458,176 + 2,720 = 1,460,896 -> 1.46e6
    simplified: (16,384 + 32) MACs * 64 = 1,050,624 -> 1.05e6, so the note's number is the full form.
    """
    report = model_bops(QuantMLP([512, 32, 1], 8, 8), (1, 512))
    assert report.total_macs == 16_416 and report.total_bops == 1_460_896
    assert report.total_bops_simplified == 1_050_624
    assert f"{report.total_bops:.2e}" == "1.46e+06" and f"{report.total_bops_simplified:.2e}" != "1.46e+06"
    quoted = {(4, 6): "7.1e+05", (4, 4): "5.4e+05", (2, 4): "3.8e+05"}  # the note's other settings
    for (w_bits, a_bits), text in quoted.items():
        assert f"{model_bops(QuantMLP([512, 32, 1], w_bits, a_bits), (1, 512)).total_bops:.1e}" == text
    float_mlp = nn.Sequential(nn.Linear(512, 32), nn.ReLU(), nn.Linear(32, 1))
    assert f"{model_bops(float_mlp, (1, 512)).total_bops:.1e}" == "1.8e+07"


def _meta_flops(model, shape):
    model = copy.deepcopy(model).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape, device="meta"))
    return counter.get_total_flops()


@pytest.mark.parametrize("model,shape", [
    (nn.Sequential(nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), nn.ReLU(), nn.Flatten(), nn.Linear(60, 3)),
     (2, 4, 20)),
    (nn.LSTM(16, 24, num_layers=2, batch_first=True), (3, 12, 16)),
], ids=["conv-linear", "lstm"])
def test_macs_match_flop_counter_on_meta(model, shape):
    assert 2 * model_bops(model, shape).total_macs == _meta_flops(model, shape)


def test_quant_conv1d_fan_in_and_positions():
    conv = QuantConv1d(ConvShape(4, 6, 3, stride=2, padding=1, groups=2), QuantSpec(4, per_channel=True),
                       QuantSpec(6))
    (row,) = model_bops(conv, (2, 4, 20)).rows
    # n = 4/2 * 3 = 6, m = 6, L_out = (20 + 2 - 3) // 2 + 1 = 10, two samples -> 20 positions
    assert (row.kind, row.fan_in, row.fan_out, row.evaluations, row.macs) == ("quant-conv1d", 6, 6, 20, 720)
    assert row.bops == pytest.approx(20 * 6 * 6 * (4 * 6 + 4 + 6 + math.log2(6)))


def test_pruned_fraction_from_zero_codes():
    # 50 % pruned: 8 * 16 * (0.5*16 + 4 + 4 + 4) = 128 * 20 = 2,560
    assert layer_bops(8, 16, 4, 4, pruned=0.5) == 2_560
    torch.manual_seed(0)
    layer = QuantLinear(16, 8, QuantSpec(2, per_channel=True), QuantSpec(4))
    zeros = (layer.weight_int()[0] == 0).float().mean().item()
    assert 0 < zeros < 1
    (row,) = model_bops(layer, (1, 16), prune_zeros=True).rows
    assert row.pruned == pytest.approx(zeros)
    assert row.bops == pytest.approx(128 * ((1 - zeros) * 8 + 2 + 4 + 4))
    assert model_bops(layer, (1, 16)).rows[0].pruned == 0.0


def test_report_totals_and_json():
    report = model_bops(QuantMLP([16, 8, 4, 1], per_layer=["W8A8", "W4A4", "W2A4"]), (2, 16))
    assert [row.name for row in report.rows] == ["layers.0", "layers.1", "layers.2"]
    assert [(row.b_w, row.b_a) for row in report.rows] == [(8, 8), (4, 4), (2, 4)]
    assert report.total_bops == sum(row.bops for row in report.rows)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["convention"] == CONVENTION and data["total_macs"] == 2 * (16 * 8 + 8 * 4 + 4)
    assert data["rows"][2]["bops"] == pytest.approx(2 * layer_bops(1, 4, 2, 4))


@pytest.mark.parametrize("call", [
    lambda: layer_bops(0, 16, 8, 8), lambda: layer_bops(8, 16, -1, 8), lambda: layer_bops(8, 16, 8, 8, pruned=1.5),
    lambda: simplified_bops(-3, 8, 8), lambda: model_bops(nn.GRU(4, 4), (1, 3, 4)),
    lambda: model_bops(nn.Linear(4, 2), (0, 4)), lambda: model_bops(nn.LSTM(4, 4, proj_size=2), (1, 3, 4)),
], ids=["m", "bits", "pruned", "macs", "no-formula", "shape", "proj"])
def test_bad_input_raises_one_clear_error(call):
    with pytest.raises(QuantError):
        call()
