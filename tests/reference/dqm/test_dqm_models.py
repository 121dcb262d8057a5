"""DQM models: shapes, parameter budgets, losses, factory, save/load, gradients, latency."""

import pytest
import torch

from reference.dqm.models import (LSTMAutoencoder, Student, XLSTMAutoencoder, build_model, latency, load_model,
                                  model_config, per_feature_error, save_model, window_loss)
from reference.dqm.xlstm import XLSTMOptions

F, T = 16, 8
VARIANTS = [("lstm", {}), ("xlstm", {}), ("xlstm", {"mlstm_form": "recurrent", "forget_gate": "exp"}),
            ("xlstm", {"blocks": "sm", "stabilized": False}), ("student", {}), ("student", {"arch": "cnn"}),
            ("student", {"arch": "stats"})]
IDS = ["lstm", "xlstm", "xlstm-recurrent-exp", "xlstm-sm-plain", "student", "student-cnn", "student-stats"]


def _model(name, kwargs, seed=0):
    torch.manual_seed(seed)
    return build_model(name, F, T, **kwargs)


def _windows(batch=3, steps=T, seed=1):
    return torch.randn(batch, steps, F, generator=torch.Generator().manual_seed(seed))


def _n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_output_shapes(name, kwargs):
    out = _model(name, kwargs)(_windows())
    assert out.shape == ((3,) if name == "student" else (3, T, F))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_windows_of_a_batch_do_not_mix(name, kwargs):
    model, x = _model(name, kwargs), _windows(batch=4)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_gradients_reach_every_parameter_and_are_finite(name, kwargs):
    model = _model(name, kwargs)
    out = model(_windows())
    (out.mean() if name == "student" else window_loss(model, _windows()).mean() + out.square().mean()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().max() > 0, pname


def test_default_sizes_and_parameter_budget():
    lstm, xlstm, student = LSTMAutoencoder(), XLSTMAutoencoder(), Student()
    lstm_params = 2 * (4 * 64 * (16 + 64) + 8 * 64) + 2 * (64 * 16 + 16)
    assert _n_params(lstm) == lstm_params == 44064
    assert _n_params(xlstm) <= _n_params(lstm)  # the issue: no more parameters than the LSTM
    assert _n_params(student) == 512 * 32 + 32 + 32 + 1
    assert _n_params(lstm) / _n_params(student) >= 2.5


def test_xlstm_parallel_and_recurrent_models_agree():
    parallel = _model("xlstm", {"mlstm_form": "parallel"})
    recurrent = _model("xlstm", {"mlstm_form": "recurrent"})
    recurrent.load_state_dict(parallel.state_dict())
    x = _windows()
    with torch.no_grad():
        assert (parallel(x) - recurrent(x)).abs().max() <= 1e-5


def test_autoencoders_accept_other_window_lengths():
    for name in ("lstm", "xlstm"):
        assert _model(name, {})(_windows(steps=3)).shape == (3, 3, F)


def test_window_loss_and_per_feature_error():
    model, x = _model("lstm", {}), _windows()
    with torch.no_grad():
        recon = model(x)
        loss, per_feature = window_loss(model, x), per_feature_error(model, x)
    assert loss.shape == (3,) and per_feature.shape == (3, F)
    assert torch.allclose(loss, ((recon - x) ** 2).mean(dim=(1, 2)))
    assert torch.allclose(per_feature, ((recon - x) ** 2).mean(dim=1))
    spiked = x.clone()
    spiked[0, :, 5] += 50.0  # a huge offset in one feature dominates that window's error
    with torch.no_grad():
        errors = per_feature_error(model, spiked)
    assert errors[0].argmax() == 5 and window_loss(model, spiked)[0] > loss[0]


def test_window_loss_refuses_a_student():
    with pytest.raises(ValueError, match="not an autoencoder"):
        window_loss(_model("student", {}), _windows())


@pytest.mark.parametrize("name,x", [
    ("lstm", torch.zeros(T, F)), ("lstm", torch.zeros(2, T, F + 1)), ("xlstm", torch.zeros(2, T, 3)),
    ("student", torch.zeros(2, T + 1, F)), ("lstm", torch.zeros(2, T, F, dtype=torch.long)),
    ("xlstm", torch.zeros(0, T, F)),
])
def test_bad_windows_raise_value_error(name, x):
    with pytest.raises(ValueError, match="expect"):
        _model(name, {})(x)


@pytest.mark.parametrize("name,kwargs", [
    ("gru", {}), ("lstm", {"hidden": 0}), ("lstm", {"dropout": 0.1}), ("xlstm", {"blocks": "mx"}),
    ("xlstm", {"n_heads": 5}), ("xlstm", {"forget_gate": "relu"}), ("student", {"arch": "rnn"}),
    ("student", {"hidden": 2.5}), ("student", {"arch": "cnn", "kernel": T + 1}),
])
def test_bad_model_options_raise_value_error(name, kwargs):
    with pytest.raises(ValueError):
        build_model(name, F, T, **kwargs)


@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_save_and_load_round_trip(tmp_path, name, kwargs):
    model = _model(name, kwargs, seed=3)
    path = save_model(tmp_path / "model.pt", model)
    loaded = load_model(path, "cpu")
    assert model_config(loaded) == model_config(model)
    assert type(loaded) is type(model) and not loaded.training
    x = _windows()
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def _torch_file(tmp_path, blob, name="file.pt"):
    path = tmp_path / name
    torch.save(blob, path)
    return path


def test_loading_files_that_are_not_models_raises_one_sentence(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model\n")
    good = {"format": "hepaudit.dqm.model", "version": 1, "config": model_config(_model("lstm", {})),
            "state_dict": _model("lstm", {}).state_dict()}
    cases = {
        "missing": (tmp_path / "absent.pt", "no model file"),
        "text": (text, "not a DQM model file"),
        "tensor": (_torch_file(tmp_path, torch.zeros(3), "tensor.pt"), "not a DQM model file"),
        "untagged": (_torch_file(tmp_path, {"state_dict": good["state_dict"]}, "untagged.pt"), "not a DQM model file"),
        "pickled object": (_torch_file(tmp_path, {**good, "options": XLSTMOptions()}, "object.pt"),
                           "not a DQM model file"),
        "version": (_torch_file(tmp_path, {**good, "version": 99}, "version.pt"), "version 99"),
    }
    for case, (path, message) in cases.items():
        with pytest.raises(ValueError, match=message) as info:
            load_model(path, "cpu")
        assert "\n" not in str(info.value) and str(info.value).endswith("."), case


@pytest.mark.parametrize("config_change,message", [
    ({"hidden": 32}, "do not match"), ({"name": "gru"}, "unknown model"), ({"layers": -1}, "integer >= 1"),
    ({"colour": "red"}, "unknown option"),
])
def test_loading_a_model_with_a_wrong_config_raises(tmp_path, config_change, message):
    model = _model("lstm", {})
    blob = {"format": "hepaudit.dqm.model", "version": 1, "config": {**model_config(model), **config_change},
            "state_dict": model.state_dict()}
    with pytest.raises(ValueError, match=message):
        load_model(_torch_file(tmp_path, blob), "cpu")


@pytest.mark.parametrize("device", ["gpu", "cuda:99"])
def test_loading_onto_a_device_that_does_not_exist_raises(tmp_path, device):
    path = save_model(tmp_path / "model.pt", _model("student", {}))
    with pytest.raises(ValueError, match="device"):
        load_model(path, device)


def test_model_config_refuses_other_modules():
    with pytest.raises(ValueError):
        model_config(torch.nn.Linear(2, 2))


def test_latency_reports_spread_and_leaves_the_model_alone():
    teacher, student = _model("lstm", {}), build_model("student", F, 32)
    teacher.train()
    result = latency(teacher, 1, 20, "cpu")
    assert teacher.training and next(teacher.parameters()).device.type == "cpu"
    assert result["window"] == 32 and result["batch"] == 1 and result["repeats"] == 20
    assert 0 < result["min_s"] <= result["q25_s"] <= result["median_s"] <= result["q75_s"] <= result["max_s"]
    assert latency(student, 1, 20, "cpu")["median_s"] < result["median_s"]
    with pytest.raises(ValueError):
        latency(teacher, 0, 5, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name,kwargs", VARIANTS, ids=IDS)
def test_models_run_on_cuda_like_on_cpu(name, kwargs):
    model, x = _model(name, kwargs), _windows()
    with torch.no_grad():
        expected = model(x)
        got = model.to("cuda")(x.to("cuda")).cpu()
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert latency(model, 2, 5, "cuda")["device"].startswith("cuda")
