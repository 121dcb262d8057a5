"""The DQM chain as ``hepaudit run`` sees it, registered through the public ``auditor`` API.

Stages: ``generation`` (synthetic runs -> windows of the DQM experiment's inputs: 64 lumiblocks,
relative to each run's reference with the A-C differences, numpy on the host), then on CPU and GPU
(torch devices): ``training_step`` (one Adam step of the LSTM teacher on the windows),
``teacher_inference`` (LSTM window losses), ``xlstm_inference`` (xLSTM window losses) and
``student_inference`` (the "stats" student's predicted log-loss); on the CPU only
``student_kernel`` (the same student through its compiled kernel, ``fastinfer``). Models have the
DQM experiment's shapes and start from fixed-seed weights (what a stage costs does not depend on
the values of its weights). Device outputs are compared window by window at traccc's relative
tolerances.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from auditor import Agreement, Chain

TOLERANCES = {"0.01%": 1e-4, "0.1%": 1e-3, "1%": 1e-2, "5%": 5e-2}
WINDOW = 64  #: lumiblocks per window, as the DQM experiment


def make_events(parameters):
    """Per event: the generation settings (seed, runs, windows); the runs themselves are made by
    the ``generation`` stage, so that their cost is measured."""
    for index in range(int(parameters["events"])):
        yield {"seed": np.array([int(parameters["seed"]) + index, int(parameters["runs"]), int(parameters["windows"])])}


def generation(seed):
    """Runs -> windows of WINDOW LBs of the experiment's inputs (fitted on the runs' good LBs), at
    most ``windows`` of them."""
    from reference.dqm.data import DatasetConfig, generate_dataset
    from reference.dqm.experiment import ExperimentConfig
    from reference.dqm.inputs import fit_inputs

    runs = generate_dataset(DatasetConfig(n_runs=int(seed[1]), seed=int(seed[0])))
    config = ExperimentConfig()
    _, x = fit_inputs(runs, config.inputs, config.reference_lb, config.ac_differences).windows(runs, WINDOW, 1)
    pick = np.random.default_rng(int(seed[0])).permutation(len(x))[:int(seed[2])]
    return np.ascontiguousarray(x[np.sort(pick)])


@lru_cache(maxsize=None)
def _model(name: str, device: str, n_features: int):
    """The named model on ``device`` with the experiment's options and fixed-seed initial weights
    (cost does not depend on the weights' values; trained weights come from ``hepaudit dqm
    experiment``)."""
    import torch

    from reference.dqm.experiment import ExperimentConfig
    from reference.dqm.models import build_model

    torch.manual_seed(0)
    options = ExperimentConfig().model_options.get(name, {})
    return build_model(name, n_features, WINDOW, **options).to(device).eval()


def _as_tensor(windows):
    import torch

    return torch.from_numpy(windows) if isinstance(windows, np.ndarray) else windows


def _device_of(windows) -> str:
    return "cpu" if isinstance(windows, np.ndarray) or not windows.is_cuda else "cuda"


def _inference(name: str, windows):
    import torch

    from reference.dqm.models import window_loss

    x = _as_tensor(windows)
    model = _model(name, _device_of(windows), int(x.shape[-1]))
    with torch.inference_mode():
        return model(x) if name == "student" else window_loss(model, x)


def teacher_inference(windows):
    return _inference("lstm", windows)


def xlstm_inference(windows):
    return _inference("xlstm", windows)


def student_inference(windows):
    return _inference("student", windows)


def student_kernel(windows):
    """The student's predicted log-loss through its compiled CPU kernel (``fastinfer``)."""
    from reference.dqm.fastinfer import compile_student

    x = np.asarray(windows, dtype=np.float32)
    return compile_student(_model("student", "cpu", int(x.shape[-1])))(x)


def training_step(windows):
    """One Adam step of the LSTM teacher from its starting weights on all the windows; returns
    the loss before the step and the gradient norm (the same numbers on every device)."""
    import torch

    from reference.dqm.models import window_loss

    model = copy.deepcopy(_model("lstm", _device_of(windows), int(windows.shape[-1]))).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = window_loss(model, _as_tensor(windows)).mean()
    optimiser.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    optimiser.step()
    return torch.stack([loss.detach(), norm.detach()])


def relative_agreement(cpu, gpu) -> Agreement:
    """Share of values with |a - b| <= u (|a| + |b|) / 2 for each tolerance u (traccc's rule)."""
    from auditor.products import to_host

    a = np.asarray(to_host(cpu), dtype=np.float64).ravel()
    b = np.asarray(to_host(gpu), dtype=np.float64).ravel()
    if a.shape != b.shape:
        return Agreement.from_rates({label: 0.0 for label in TOLERANCES}, headline="0.1%",
                                    note=f"{a.size} CPU values against {b.size} GPU values")
    diff = np.abs(a - b)
    scale = (np.abs(a) + np.abs(b)) / 2
    rates = {label: float(np.mean(diff <= u * scale)) if a.size else 1.0 for label, u in TOLERANCES.items()}
    return Agreement.from_rates(rates, headline="0.1%", n=int(a.size),
                                max_relative_difference=float(np.max(diff / np.maximum(scale, 1e-30))) if a.size else 0.0)


def _compare(product: str):
    def compare(cpu, gpu):
        return relative_agreement(cpu[product], gpu[product])

    return compare


STAGES = (("training_step", training_step, "step"), ("teacher_inference", teacher_inference, "teacher_loss"),
          ("xlstm_inference", xlstm_inference, "xlstm_loss"), ("student_inference", student_inference, "student_score"))


def build_chain() -> Chain:
    """The DQM chain for ``hepaudit run`` (entry point ``hepaudit.chains: dqm``)."""
    chain = Chain("dqm", inputs=make_events, package="reference",
                  description="data-quality monitoring: synthetic LAr runs, LSTM/xLSTM autoencoders, distilled student",
                  parameters={"runs": 12, "windows": 4096, "events": 3, "seed": 1},
                  quick={"runs": 4, "windows": 512, "events": 2})
    chain.add_stage("generation", generation, inputs=["seed"], outputs=["windows"])
    for name, function, output in STAGES:
        chain.add_stage(name, function, inputs=["windows"], outputs=[output])
        chain.add_stage(name, function, device="gpu", backend="torch")
        chain.comparator(name)(_compare(output))
    chain.add_stage("student_kernel", student_kernel, inputs=["windows"], outputs=["student_kernel_score"])
    return chain

