"""The DQM chain as ``hepaudit run`` sees it, registered through the public ``auditor`` API.

Stages: ``generation`` (synthetic runs -> standardised windows, numpy on the host), then on CPU
and GPU (torch devices): ``training_step`` (one Adam step of the LSTM teacher on the windows),
``teacher_inference`` (LSTM window losses), ``xlstm_inference`` (xLSTM window losses) and
``student_inference`` (the student's predicted log-loss). Models start from fixed-seed weights
(what a stage costs does not depend on the values of its weights). Device outputs are compared
window by window at traccc's relative tolerances.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from auditor import Agreement, Chain

TOLERANCES = {"0.01%": 1e-4, "0.1%": 1e-3, "1%": 1e-2, "5%": 5e-2}


def make_events(parameters):
    """Per event: the generation settings (seed, runs, windows); the runs themselves are made by
    the ``generation`` stage, so that their cost is measured."""
    for index in range(int(parameters["events"])):
        yield {"seed": np.array([int(parameters["seed"]) + index, int(parameters["runs"]), int(parameters["windows"])])}


def generation(seed):
    """Runs -> windows of 32 LBs, standardised on their good LBs, at most ``windows`` of them."""
    from reference.dqm.data import DatasetConfig, Standardiser, generate_dataset, make_windows

    runs = generate_dataset(DatasetConfig(n_runs=int(seed[1]), seed=int(seed[0])))
    windows = make_windows(runs, length=32)
    standardiser = Standardiser.fit_runs(runs)
    pick = np.random.default_rng(int(seed[0])).permutation(len(windows))[:int(seed[2])]
    return np.ascontiguousarray(standardiser.transform(windows.x[np.sort(pick)]))


@lru_cache(maxsize=None)
def _model(name: str, device: str):
    """The named model on ``device`` with fixed-seed initial weights (cost does not depend on
    the weights' values; trained weights come from ``hepaudit dqm experiment``)."""
    import torch

    from reference.dqm.models import build_model

    torch.manual_seed(0)
    return build_model(name, 16, 32).to(device).eval()


def _as_tensor(windows):
    import torch

    return torch.from_numpy(windows) if isinstance(windows, np.ndarray) else windows


def _device_of(windows) -> str:
    return "cpu" if isinstance(windows, np.ndarray) or not windows.is_cuda else "cuda"


def _inference(name: str, windows):
    import torch

    from reference.dqm.models import window_loss

    x = _as_tensor(windows)
    model = _model(name, _device_of(windows))
    with torch.inference_mode():
        return model(x) if name == "student" else window_loss(model, x)


def teacher_inference(windows):
    return _inference("lstm", windows)


def xlstm_inference(windows):
    return _inference("xlstm", windows)


def student_inference(windows):
    return _inference("student", windows)


def training_step(windows):
    """One Adam step of the LSTM teacher from its starting weights on all the windows; returns
    the loss before the step and the gradient norm (the same numbers on every device)."""
    import torch

    from reference.dqm.models import window_loss

    model = copy.deepcopy(_model("lstm", _device_of(windows))).train()
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
    return chain

