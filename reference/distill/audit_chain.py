"""The distillation chain as ``hepaudit run`` sees it, registered through the public ``auditor`` API.

Stages on digit images (scikit-learn's 8x8 digits, tiled to ``samples`` rows per event):
``preprocessing`` (scale the pixels, host numpy), then on CPU and GPU (torch) ``training_step`` (one
quantization-aware Adam step of a W4A4 student), ``float_inference`` (the float32 student) and
``fake_quant_inference`` (the W8A8 student in eval mode), and on the CPU only ``integer_inference``
(the same W8A8 student exported to int8 codes, numba int32 accumulation). Students start from
fixed-seed weights; the input scales are calibrated on a fixed batch (what a stage costs does not
depend on the values of its weights). Device outputs are compared at traccc's relative tolerances.
"""

from __future__ import annotations

import copy
from functools import lru_cache

import numpy as np

from auditor import Chain
from reference.dqm.audit_chain import relative_agreement

SIZES = (64, 32, 10)  #: student sizes: 8x8 pixels -> hidden -> 10 digits
FLOAT_SETTING = "float32"


def make_events(parameters):
    """Per event: ``samples`` raw digit images (pixel values 0..16), drawn with the event's seed."""
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

    images = load_digits().data.astype(np.float32)
    for index in range(int(parameters["events"])):
        rng = np.random.default_rng(int(parameters["seed"]) + index)
        yield {"images": np.ascontiguousarray(images[rng.integers(0, len(images), int(parameters["samples"]))])}


def preprocessing(images):
    """Pixel values 0..16 -> [0, 1] float32 (what the students were trained on)."""
    return np.ascontiguousarray(np.asarray(images, dtype=np.float32) / np.float32(16.0))


def _calibration() -> np.ndarray:
    return np.random.default_rng(0).random((256, SIZES[0]), dtype=np.float32)


@lru_cache(maxsize=None)
def student(setting: str, device: str):
    """The student at setting (float32 or a SETTINGS name) on device, fixed-seed weights, eval mode;
    quantized students have their input scales set by training-mode passes on a fixed batch."""
    import torch  # pylint: disable=import-outside-toplevel

    from reference.distill.quant import build_student  # pylint: disable=import-outside-toplevel
    from reference.distill.tasks import float_mlp  # pylint: disable=import-outside-toplevel

    torch.manual_seed(0)
    if setting == FLOAT_SETTING:
        return float_mlp(SIZES).to(device).eval()
    model = build_student(SIZES, setting)
    with torch.no_grad():
        model.train()(torch.from_numpy(_calibration()))
    return model.to(device).eval()


@lru_cache(maxsize=None)
def integer_student():
    """The W8A8 student exported for integer inference."""
    from reference.distill.quant import export_integer  # pylint: disable=import-outside-toplevel

    return export_integer(student("W8A8", "cpu"))


def _as_tensor(samples):
    import torch  # pylint: disable=import-outside-toplevel

    return torch.from_numpy(samples) if isinstance(samples, np.ndarray) else samples


def _device_of(samples) -> str:
    return "cpu" if isinstance(samples, np.ndarray) or not samples.is_cuda else "cuda"


def _inference(setting: str, samples):
    import torch  # pylint: disable=import-outside-toplevel

    model = student(setting, _device_of(samples))
    with torch.inference_mode():
        return model(_as_tensor(samples))


def float_inference(samples):
    """Logits of the float32 student."""
    return _inference(FLOAT_SETTING, samples)


def fake_quant_inference(samples):
    """Logits of the W8A8 student through its fake-quant forward."""
    return _inference("W8A8", samples)


def integer_inference(samples):
    """Logits of the W8A8 student through integer inference (numba, CPU)."""
    from reference.distill.intinfer import infer  # pylint: disable=import-outside-toplevel
    from auditor.products import to_host  # pylint: disable=import-outside-toplevel

    return infer(integer_student(), np.asarray(to_host(samples), dtype=np.float32))


def training_step(samples):
    """One QAT Adam step of the W4A4 student from its starting weights, labels = sample index mod 10;
    returns the loss before the step and the gradient norm (the same numbers on every device)."""
    import torch  # pylint: disable=import-outside-toplevel

    x = _as_tensor(samples)
    model = copy.deepcopy(student("W4A4", _device_of(samples))).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    labels = torch.arange(len(x), device=x.device) % SIZES[-1]
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    optimiser.zero_grad()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
    optimiser.step()
    return torch.stack([loss.detach(), norm.detach()])


def _compare(product: str):
    def compare(cpu, gpu):
        return relative_agreement(cpu[product], gpu[product])

    return compare


TORCH_STAGES = (("training_step", training_step, "step"), ("float_inference", float_inference, "float_logits"),
                ("fake_quant_inference", fake_quant_inference, "fake_quant_logits"))


def build_chain() -> Chain:
    """The distillation chain for ``hepaudit run`` (entry point ``hepaudit.chains: distill``)."""
    chain = Chain("distill", inputs=make_events, package="reference",
                  description="distillation: quantization-aware student training, float, fake-quant and "
                              "integer inference of quantized students",
                  parameters={"samples": 65536, "events": 3, "seed": 1}, quick={"samples": 4096, "events": 2})
    chain.add_stage("preprocessing", preprocessing, inputs=["images"], outputs=["samples"])
    for name, function, output in TORCH_STAGES:
        chain.add_stage(name, function, inputs=["samples"], outputs=[output])
        chain.add_stage(name, function, device="gpu", backend="torch")
        chain.comparator(name)(_compare(output))
    chain.add_stage("integer_inference", integer_inference, inputs=["samples"], outputs=["integer_logits"])
    return chain
