"""DQM students that read the window statistics: the statistics of integer codes, the quantized
window, integer inference bit for bit, BOPs of the front, and the experiment's student factory."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from reference.distill.bops import model_bops
from reference.distill.experiment import FLOAT, make_student
from reference.distill.frontend import (N_STATISTICS, WINDOW_RANGE, StatsStudent, WindowStatsFront,
                                        _torch_code_statistics, code_statistics, stats_student)
from reference.distill.intinfer import infer
from reference.distill.quant import InputQuantizer, QuantError, QuantMLP, QuantSpec, build_student, export_integer
from reference.distill.tasks import Split, Target, Task, float_mlp
from reference.dqm.models import STATS_FLOOR, WindowStatistics

T, NF = 16, 5


def _windows(n=64, seed=0):
    x = 1.5 * torch.randn(n, T, NF, generator=torch.Generator().manual_seed(seed))
    x[0, :, 1] = 0.3  # a frozen feature: variance and peak floored
    x[1, 4, 2] = 80.0  # a spike far beyond the range: saturates
    return x.reshape(n, T * NF)


def _trained(setting, seed=0) -> StatsStudent:
    torch.manual_seed(seed)
    model = stats_student(T, NF, build_student((N_STATISTICS * NF, 8, 1), setting))
    x = _windows(seed=seed + 1)
    y = x.reshape(-1, T, NF).square().mean(1)[:, :1].log()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_code_statistics_equal_the_float_statistics_of_the_dequantized_window():
    codes = torch.randint(-127, 128, (6, T, NF))
    codes[0, :, 3] = 5  # constant series
    scale = 0.047
    got = code_statistics(codes.numpy(), scale)
    expected = WindowStatistics()((codes.double() * scale).reshape(6, T, NF)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert got[0, 3] == pytest.approx(np.log(STATS_FLOOR))
    on_gpu_path = _torch_code_statistics(codes, torch.tensor(scale, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(on_gpu_path, code_statistics(codes.numpy(), np.float32(scale)), rtol=1e-6, atol=1e-6)


def test_window_is_quantized_over_the_fixed_range_and_saturates_beyond_it():
    front = WindowStatsFront(T, NF, QuantSpec(4)).train()
    x = _windows()
    front(x)
    assert front.input_quant.running_max.item() == WINDOW_RANGE  # a training pass does not move it
    codes, scale = front.input_quant.to_int(x.reshape(-1, T, NF))
    assert scale.item() == pytest.approx(WINDOW_RANGE / 7)
    assert codes[1, 4, 2].item() == 7  # the spike saturates at the largest code
    with pytest.raises(QuantError, match="positive finite"):
        InputQuantizer(QuantSpec(4), fixed_range=-1.0)


@pytest.mark.parametrize("setting", ["W8A8", "W4A4", "W2A4"])
def test_integer_inference_equals_the_fake_quant_forward_bit_for_bit(setting):
    model = _trained(setting)
    x = _windows(n=200, seed=5)
    with torch.no_grad():
        fake = model(x).numpy()
    integer = export_integer(model)
    assert integer.in_features == T * NF and integer.out_features == 1
    out = infer(integer, x.numpy())
    assert np.array_equal(out, fake)
    assert np.array_equal(infer(integer, x.numpy().reshape(-1, T, NF)), fake)


def test_front_bops_count_a_sum_of_squares_per_feature():
    model = _trained("W8A8")
    report = model_bops(model, (1, T * NF))
    front = next(row for row in report.rows if row.kind == "window-statistics")
    assert (front.fan_in, front.fan_out, front.evaluations, front.b_w, front.b_a) == (T, 1, NF, 8, 8)
    assert front.bops == pytest.approx(NF * T * (8 * 8 + 8 + 8 + np.log2(T)))
    assert front.macs == T * NF
    float_front = model_bops(stats_student(T, NF, float_mlp((N_STATISTICS * NF, 8, 1))), (1, T * NF))
    assert next(r for r in float_front.rows if r.kind == "window-statistics").b_a == 32


def test_bad_inputs_and_exports_are_refused():
    model = _trained("W4A4")
    with pytest.raises(QuantError, match="flattened windows"):
        model.front(torch.zeros(2, T * NF + 1))
    with pytest.raises(QuantError, match="windows of"):
        export_integer(model).infer(np.zeros((2, 3), np.float32))
    with pytest.raises(QuantError, match="no integer path"):
        export_integer(stats_student(T, NF, float_mlp((N_STATISTICS * NF, 8, 1))))
    with pytest.raises(QuantError, match="takes 7 inputs"):
        stats_student(T, NF, QuantMLP((7, 4, 1)))
    fresh = stats_student(T, NF, build_student((N_STATISTICS * NF, 8, 1), "W8A8"))
    fresh.front.input_quant = InputQuantizer(QuantSpec(8))  # a running-max window quantizer, never trained
    with pytest.raises(QuantError, match="seen no data"):
        export_integer(fresh)


def test_make_student_puts_the_mlp_behind_the_statistics_and_starts_qat_from_float_weights():
    x = _windows(n=12).numpy()
    splits = {s: Split(x, np.zeros(len(x), np.int64)) for s in ("train", "val", "test")}
    task = Task(name="dqm", metric="macro_auc", splits=splits, teacher=torch.nn.Identity(),
                teacher_input_shape=(1, T, NF), teacher_test_scores=np.zeros(len(x)),
                targets=(Target("teacher", "regression", {s: np.zeros(len(x)) for s in splits}),), n_outputs=1,
                student_hidden=(8,), evaluator=lambda outputs: {"score": 0.0}, front=(T, NF))
    base = make_student(task, FLOAT)
    assert isinstance(base, StatsStudent) and base.front.input_spec is None
    assert base.mlp.sizes == (N_STATISTICS * NF, 8, 1)
    quantized = make_student(task, "W4A4", start=base)
    assert quantized.front.input_spec == QuantSpec(4) and quantized.bits == ((4, 4), (4, 4))
    assert torch.equal(quantized.mlp.layers[0].weight, base.mlp.layers[0].weight)
