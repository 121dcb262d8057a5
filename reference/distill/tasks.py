"""The three distillation tasks: data splits, a float32 teacher, student targets and an evaluation.

* ``digits``: scikit-learn's shipped 8x8 digits (1797 images, 10 classes, no download); teacher an MLP
  64-256-256-10; judged by accuracy (and one-vs-rest macro ROC-AUC).
* ``seeds``: real versus fake triplet seeds of simulated low-pile-up tracking events (``reference.tracking``). A seed is real
  when its three spacepoints come from one particle (the purity rule of ``tracking.performance``).
  Features: the spacepoints' radii, z and azimuth differences, the r-z straight-line residual of the
  middle point, the estimated pT, eta, transverse impact parameter, seed weight and z at the beam line.
  Teacher an MLP 14-128-128-2; judged by ROC-AUC.
* ``dqm``: windows of synthetic LAr data-quality runs (``reference.dqm``); teacher the LSTM autoencoder
  scored by its worst feature. Student targets: (a) log(teacher score), the distillation target, and
  (b) a cheap metric computed from the inputs alone (:func:`window_metric`), the "is knowledge needed?"
  target. Judged by macro ROC-AUC over anomaly types (``dqm.evaluate.auc_per_type``). Its students
  read the window statistics (``frontend.StatsStudent``: the window quantized at the first
  layer's input bits, then per feature log variance, log peak, log mean square and mean) rather
  than the 1,536 flattened values of a 64-lumiblock window.

Classification students learn the teacher's softened logits and the labels; regression students a
standardised target. Every input is flattened to (n, features) float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from reference.distill.quant import QuantError

TASKS = ("digits", "seeds", "dqm")
SPLITS = ("train", "val", "test")
Step = Callable[[str], None]


class DistillError(QuantError):
    """Invalid task, configuration or input of the distillation experiment (one sentence for the user)."""


@dataclass(frozen=True)
class TeacherConfig:
    """Training of the float32 MLP teachers (digits, seeds)."""

    hidden: tuple = (256, 256)  #: hidden layer widths
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


@dataclass(frozen=True)
class SeedsConfig:
    """Event simulation for the seeds task: pile-up 50, a quarter of the nominal 200, keeps events small."""

    events: int = 8  #: simulated events (split 60/20/20 by event)
    pileup: int = 50  #: pp vertices per event (about 7000 seeds, a third of them fake)
    seed: int = 7  #: first event seed
    cache_dir: str | None = None  #: folder for the feature arrays (None: regenerate every time)


@dataclass(frozen=True)
class DqmConfig:
    """Data and teacher of the DQM task (passed on to ``reference.dqm.experiment``)."""

    runs: int = 150  #: proton-proton runs, split 60/20/20 by run (as the DQM experiment)
    teacher_epochs: int = 30
    teacher_hidden: int = 64  #: LSTM hidden units (latent 16)
    window: int = 64  #: lumiblocks per window (the DQM experiment's)
    max_windows: int = 20000  #: training windows per teacher epoch
    seed: int = 0
    student_runs: int = 300  #: extra runs scored by the teacher for the students' training split
    quick: bool = False  #: tiny sizes from ``dqm.experiment.quick_config`` (tests, smoke runs)


@dataclass(frozen=True)
class TaskConfig:
    """Configuration of all three tasks; ``device`` is the torch device that trains the teachers."""

    digits_teacher: TeacherConfig = TeacherConfig()
    seeds_teacher: TeacherConfig = TeacherConfig(hidden=(128, 128), epochs=40)
    seeds: SeedsConfig = SeedsConfig()
    dqm: DqmConfig = DqmConfig()
    device: str = "cpu"


def quick_task_config(**changes) -> TaskConfig:
    """Tiny sizes: every task builds in seconds (tests and smoke runs)."""
    small = TeacherConfig(hidden=(64, 64), epochs=8)
    base = TaskConfig(digits_teacher=small, seeds_teacher=small, seeds=SeedsConfig(events=3, pileup=10),
                      dqm=DqmConfig(quick=True))
    return replace(base, **changes)


@dataclass(frozen=True)
class Split:
    """Inputs (n, features) float32 and labels (n,): class indices, or DQM anomaly codes."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class Target:
    """What a student learns: ``classes`` (teacher logits + labels) or ``regression`` (one value)."""

    name: str  #: "teacher" or "metric"
    kind: str  #: "classes" or "regression"
    values: dict  #: per split, teacher logits (n, classes) or target values (n,)


@dataclass(frozen=True)
class Task:
    """A task: splits, its float32 teacher, the student targets and the test evaluation."""

    name: str
    metric: str  #: name of the headline figure of merit (larger is better)
    splits: dict  #: train/val/test -> Split
    teacher: nn.Module  #: float32, eval mode, on the CPU
    teacher_input_shape: tuple  #: shape of one teacher input (batch 1), for BOPs
    teacher_test_scores: np.ndarray  #: the teacher's output on the test split (what evaluate() judges)
    targets: tuple  #: Target objects
    n_outputs: int  #: student outputs
    student_hidden: tuple  #: student hidden layer widths
    evaluator: Callable = field(repr=False)  #: test outputs -> dict with "score" and details
    info: dict = field(default_factory=dict)
    #: (window, features) when the students read the window statistics (``frontend.StatsStudent``)
    #: rather than the flattened window; None: plain MLP students
    front: tuple | None = None

    @property
    def n_features(self) -> int:
        return int(self.splits["train"].x.shape[1])

    def evaluate(self, outputs) -> dict:
        """Figures of merit of outputs on the test split; "score" is the headline."""
        outputs = np.asarray(outputs, dtype=np.float64)
        if len(outputs) != len(self.splits["test"].x):
            raise DistillError(f"{self.name}: {len(outputs)} outputs for {len(self.splits['test'].x)} test samples.")
        return self.evaluator(outputs)

    def teacher_input(self, x: np.ndarray) -> torch.Tensor:
        """Student-shaped inputs (n, features) as the teacher reads them."""
        return torch.as_tensor(x, dtype=torch.float32).reshape((-1,) + tuple(self.teacher_input_shape[1:]))


# --- evaluation -------------------------------------------------------------------------------

def _class_score(outputs: np.ndarray) -> np.ndarray:
    """Score of class 1 for two-class outputs: the logit difference (or the value itself)."""
    return outputs[:, 1] - outputs[:, 0] if outputs.ndim == 2 and outputs.shape[1] == 2 else outputs.reshape(-1)


def evaluate_classes(labels: np.ndarray, outputs: np.ndarray) -> dict:
    """Accuracy and one-vs-rest macro ROC-AUC of logits (n, classes)."""
    from scipy.special import softmax  # pylint: disable=import-outside-toplevel
    from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel

    accuracy = float(np.mean(outputs.argmax(axis=1) == labels))
    auc = float(roc_auc_score(labels, softmax(outputs, axis=1), multi_class="ovr", average="macro"))
    return {"score": accuracy, "accuracy": accuracy, "roc_auc_ovr": auc}


def evaluate_binary(labels: np.ndarray, outputs: np.ndarray) -> dict:
    """ROC-AUC of class 1 (real seeds) from logits (n, 2) or scores (n,), and accuracy."""
    from sklearn.metrics import roc_auc_score  # pylint: disable=import-outside-toplevel

    score = _class_score(outputs)
    auc = float(roc_auc_score(labels, score)) if 0 < labels.sum() < len(labels) else float("nan")
    return {"score": auc, "roc_auc": auc, "accuracy": float(np.mean((score > 0) == (labels == 1)))}


def evaluate_anomalies(windows, outputs: np.ndarray) -> dict:
    """Macro ROC-AUC over anomaly types (good windows as negatives) of one score per window."""
    from reference.dqm.evaluate import auc_per_type  # pylint: disable=import-outside-toplevel

    auc = auc_per_type(outputs.reshape(-1), windows)
    return {"score": auc["macro"], "auc": auc}


# --- float MLP teachers -----------------------------------------------------------------------

def float_mlp(sizes) -> nn.Module:
    """Linear-ReLU-...-Linear float32 MLP; its layers sit in ``.layers`` as in QuantMLP."""
    return _FloatMLP(tuple(sizes))


class _FloatMLP(nn.Module):
    """Float32 MLP with the parameter names of QuantMLP (layers.<k>.weight / bias)."""

    def __init__(self, sizes: tuple):
        super().__init__()
        self.sizes = sizes
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1) if x.dim() > 2 else x
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = torch.relu(x)
        return x


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    return (order[start:start + batch_size] for start in range(0, n, batch_size))


def train_classifier(splits: dict, n_classes: int, config: TeacherConfig, device: str = "cpu") -> nn.Module:
    """A float32 MLP teacher trained with cross-entropy; keeps the epoch of best validation loss."""
    torch.manual_seed(config.seed)
    x = {s: torch.as_tensor(splits[s].x, device=device) for s in ("train", "val")}
    y = {s: torch.as_tensor(splits[s].y, dtype=torch.long, device=device) for s in ("train", "val")}
    model = float_mlp((x["train"].shape[1], *config.hidden, n_classes)).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    best = (float("inf"), None)
    for _ in range(config.epochs):
        model.train()
        for index in _batches(len(y["train"]), config.batch_size, rng):
            loss = nn.functional.cross_entropy(model(x["train"][index]), y["train"][index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            val = float(nn.functional.cross_entropy(model(x["val"]), y["val"]))
        if val < best[0]:
            best = (val, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    return model.cpu().eval()


def teacher_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Float32 teacher outputs for inputs (n, features), on the CPU."""
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).numpy()


def _classification_task(name: str, splits: dict, n_classes: int, config: TeacherConfig, device: str) -> Task:
    teacher = train_classifier(splits, n_classes, config, device)
    logits = {s: teacher_logits(teacher, splits[s].x) for s in SPLITS}
    evaluator = evaluate_classes if n_classes > 2 else evaluate_binary
    return Task(name=name, metric="accuracy" if n_classes > 2 else "roc_auc", splits=splits, teacher=teacher,
                teacher_input_shape=(1, splits["train"].x.shape[1]), teacher_test_scores=logits["test"],
                targets=(Target("teacher", "classes", logits),), n_outputs=n_classes,
                student_hidden=(32,) if n_classes > 2 else (16,),
                evaluator=partial(evaluator, splits["test"].y), info={"teacher_hidden": list(config.hidden)})


def _split_indices(groups: np.ndarray, seed: int) -> dict:
    """Train/val/test masks 60/20/20 over distinct group ids (samples, or events)."""
    ids = np.random.default_rng(seed).permutation(np.unique(groups))
    n_val = max(1, int(round(0.2 * len(ids))))
    n_train = min(max(1, int(round(0.6 * len(ids)))), len(ids) - n_val - 1)
    parts = (ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:])
    if any(len(part) == 0 for part in parts):
        raise DistillError(f"splitting needs at least 3 groups (samples or events), got {len(ids)}.")
    return {s: np.isin(groups, part) for s, part in zip(SPLITS, parts)}


# --- digits -----------------------------------------------------------------------------------

def digits_task(config: TaskConfig = TaskConfig()) -> Task:
    """scikit-learn's 8x8 digits, pixel values scaled to [0, 1]; split 60/20/20 at random."""
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    masks = _split_indices(np.arange(len(x)), config.digits_teacher.seed)
    splits = {s: Split(x[m], digits.target[m].astype(np.int64)) for s, m in masks.items()}
    return _classification_task("digits", splits, 10, config.digits_teacher, config.device)


# --- tracking seeds ---------------------------------------------------------------------------

SEED_FEATURES = ("r_bottom", "r_middle", "r_top", "z_bottom", "dz_middle", "dz_top", "dphi_middle", "dphi_top",
                 "rz_residual", "log_pt", "eta", "impact", "weight", "z_vertex")


def _impact(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Transverse distance of closest approach to the beam line of the circle through three points."""
    (x1, x2, x3), (y1, y2, y3) = x, y
    d = 2 * (x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2))
    d = np.where(np.abs(d) < 1e-9, 1e-9, d)
    s1, s2, s3 = x1 ** 2 + y1 ** 2, x2 ** 2 + y2 ** 2, x3 ** 2 + y3 ** 2
    cx = (s1 * (y2 - y3) + s2 * (y3 - y1) + s3 * (y1 - y2)) / d
    cy = (s1 * (x3 - x2) + s2 * (x1 - x3) + s3 * (x2 - x1)) / d
    radius = np.hypot(x1 - cx, y1 - cy)
    return np.minimum(np.abs(np.hypot(cx, cy) - radius), 1e3)


def seed_features(seeds, sp, parameters) -> np.ndarray:
    """(n_seeds, len(SEED_FEATURES)) float32 features of valid seeds (lengths in mm, angles in rad)."""
    index = (seeds.bottom, seeds.middle, seeds.top)
    x = np.stack([sp.x[i] for i in index]).astype(np.float64)
    y = np.stack([sp.y[i] for i in index]).astype(np.float64)
    z = np.stack([sp.z[i] for i in index]).astype(np.float64)
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    dphi = np.angle(np.exp(1j * (phi[1:] - phi[0])))
    z_line = z[0] + (z[2] - z[0]) * (r[1] - r[0]) / np.maximum(r[2] - r[0], 1e-9)
    theta, qop = parameters[:, 3], parameters[:, 4]
    pt = np.abs(np.sin(theta) / np.where(qop == 0, 1e-12, qop))
    eta = -np.log(np.tan(np.clip(theta, 1e-6, np.pi - 1e-6) / 2))
    columns = (r[0], r[1], r[2], z[0], z[1] - z[0], z[2] - z[1], dphi[0], dphi[1], z[1] - z_line,
               np.log(np.clip(pt, 1e-3, 1e3)), eta, _impact(x, y), seeds.weight, seeds.z_vertex)
    return np.column_stack(columns).astype(np.float32)


def _seed_truth(event, measurements, sp, seeds) -> np.ndarray:
    """1 where the three spacepoints' measurements come from one particle (not noise), else 0."""
    truth = event.truth
    order = np.argsort(truth.hit_id)
    row = order[np.clip(np.searchsorted(truth.hit_id[order], measurements.hit_id), 0, len(order) - 1)]
    particle = np.where(truth.hit_id[row] == measurements.hit_id, truth.particle_id[row], 0)
    p = [particle[sp.measurement[i]] for i in (seeds.bottom, seeds.middle, seeds.top)]
    return ((p[0] == p[1]) & (p[1] == p[2]) & (p[0] != 0)).astype(np.int64)


def _event_seeds(detector, planes, config: SeedsConfig, index: int) -> tuple:
    """Features and labels of the valid seeds of one simulated event."""
    # pylint: disable=import-outside-toplevel
    from reference.tracking.chain import ChainConfig, _Clock, _measurements_from_event
    from reference.tracking.estimation import estimate_track_parameters
    from reference.tracking.seeding import find_seeds
    from reference.tracking.simulation import SimulationConfig, simulate_event
    from reference.tracking.spacepoints import form_spacepoints

    chain = ChainConfig()
    event = simulate_event(detector, SimulationConfig(pileup=config.pileup), seed=config.seed + index, planes=planes)
    measurements, _ = _measurements_from_event(event, detector, {}, _Clock({}, {}))
    sp = form_spacepoints(measurements)
    seeds = find_seeds(sp, chain.seeding)
    parameters, valid = estimate_track_parameters(seeds, sp, measurements, chain.estimation)
    labels = _seed_truth(event, measurements, sp, seeds)[valid]
    kept = type(seeds)(*(getattr(seeds, f)[valid] for f in ("bottom", "middle", "top", "weight", "z_vertex")))
    return seed_features(kept, sp, parameters.params), labels


def simulate_seeds(config: SeedsConfig) -> tuple:
    """(features, labels, event index) of the valid seeds of ``config.events`` simulated events."""
    from reference.tracking.geometry import build_generic_detector  # pylint: disable=import-outside-toplevel
    from reference.tracking.simulation import module_planes  # pylint: disable=import-outside-toplevel

    if config.events < 3:
        raise DistillError(f"the seeds task needs at least 3 events (train, validation, test), got {config.events}.")
    detector = build_generic_detector()
    planes = module_planes(detector)
    parts = [_event_seeds(detector, planes, config, index) for index in range(config.events)]
    event = np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), event


def _cached_seeds(config: SeedsConfig) -> tuple:
    """simulate_seeds, read from / written to ``config.cache_dir`` when it is set."""
    if config.cache_dir is None:
        return simulate_seeds(config)
    path = Path(config.cache_dir) / f"seeds_e{config.events}_pu{config.pileup}_s{config.seed}.npz"
    if path.exists():
        with np.load(path) as cached:
            return cached["x"], cached["y"], cached["event"]
    x, y, event = simulate_seeds(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=x, y=y, event=event)
    return x, y, event


def seeds_task(config: TaskConfig = TaskConfig()) -> Task:
    """Real versus fake seeds, split by event; features standardised on the training seeds."""
    x, y, event = _cached_seeds(config.seeds)
    masks = _split_indices(event, config.seeds.seed)
    mean, std = x[masks["train"]].mean(axis=0), x[masks["train"]].std(axis=0) + 1e-6
    x = ((x - mean) / std).astype(np.float32)
    splits = {s: Split(x[m], y[m]) for s, m in masks.items()}
    task = _classification_task("seeds", splits, 2, config.seeds_teacher, config.device)
    task.info.update({"features": list(SEED_FEATURES), "events": config.seeds.events, "pileup": config.seeds.pileup,
                      "real_fraction": float(y.mean()), "seeds": int(len(y))})
    return task


# --- DQM --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WindowMetric:
    """The cheap metric of a standardised window (T, F), fitted on good training windows.

    Per lumiblock the squared Mahalanobis distance d2_t = (x_t - mu)^T S^-1 (x_t - mu), and the
    Hotelling T^2 of the window mean, T (xbar - mu)^T S^-1 (xbar - mu). Each is divided by its 99th
    percentile on good training windows; the metric is log of the larger of max_t d2_t and T^2.
    """

    mean: np.ndarray  #: (F,) mean of good training lumiblocks
    precision: np.ndarray  #: (F, F) inverse covariance of good training lumiblocks
    scale: np.ndarray  #: (2,) 99th percentiles of (max_t d2_t, T^2) on good training windows

    @classmethod
    def fit(cls, good_windows: np.ndarray) -> "WindowMetric":
        if good_windows.ndim != 3 or len(good_windows) < 2:
            raise DistillError("the window metric needs at least two good windows of shape (n, T, F).")
        rows = good_windows.reshape(-1, good_windows.shape[2]).astype(np.float64)
        precision = np.linalg.pinv(np.cov(rows, rowvar=False))
        mean = rows.mean(axis=0)
        raw = cls(mean, precision, np.ones(2))._channels(good_windows)
        return cls(mean, precision, np.maximum(np.quantile(raw, 0.99, axis=0), 1e-12))

    def _channels(self, windows: np.ndarray) -> np.ndarray:
        centred = windows.astype(np.float64) - self.mean
        d2 = np.einsum("ntf,fg,ntg->nt", centred, self.precision, centred)
        mean = centred.mean(axis=1)
        t2 = windows.shape[1] * np.einsum("nf,fg,ng->n", mean, self.precision, mean)
        return np.column_stack([d2.max(axis=1), t2]) / self.scale

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        """log of the larger normalised channel, (n,) float32."""
        return np.log(np.maximum(self._channels(windows).max(axis=1), 1e-8)).astype(np.float32)


def _dqm_config(config: DqmConfig):
    """A reference.dqm experiment configuration that trains the LSTM teacher only."""
    # pylint: disable=import-outside-toplevel
    from reference.dqm.experiment import ExperimentConfig, quick_config
    from reference.dqm.train import TrainConfig

    options = {"models": ("lstm",), "student": False, "heavy_ion_runs": 0, "seed": config.seed,
               "student_runs": config.student_runs}
    if config.quick:
        return quick_config(**options)
    return ExperimentConfig(runs=config.runs, window=config.window,
                            train=TrainConfig(epochs=config.teacher_epochs, patience=5, max_windows=config.max_windows),
                            model_options={"lstm": {"hidden": config.teacher_hidden, "latent": 16}}, **options)


def dqm_task(config: TaskConfig = TaskConfig(), step: Step = lambda message: None) -> Task:
    """LSTM teacher on generated runs; student targets log(teacher score) and the window metric."""
    # pylint: disable=import-outside-toplevel
    from reference.dqm.experiment import prepare_data, student_windows, train_teacher
    from reference.dqm.train import log_loss

    dqm_config = _dqm_config(config.dqm)
    dqm_config = replace(dqm_config, train=replace(dqm_config.train, device=config.device))
    step("dqm: generating runs")
    data, _ = prepare_data(dqm_config)
    teacher, result, scored = train_teacher("lstm", data, dqm_config, step)
    windows = {s: getattr(data, s).x for s in SPLITS}
    labels = {s: getattr(data, s).windows.label for s in SPLITS}
    metric = WindowMetric.fit(windows["train"][labels["train"] == 0])
    raw = scored.worst()
    worst = {s: log_loss(v) for s, v in raw.items()}
    step("dqm: scoring the students' extra runs with the teacher")
    windows["train"], worst["train"], labels["train"] = student_windows(teacher, scored, data, dqm_config)
    targets = (Target("teacher", "regression", {s: worst[s] for s in SPLITS}),
               Target("metric", "regression", {s: metric(windows[s]) for s in SPLITS}))
    splits = {s: Split(windows[s].reshape(len(windows[s]), -1), labels[s].astype(np.int64)) for s in SPLITS}
    return Task(name="dqm", metric="macro_auc", splits=splits, teacher=teacher.cpu().eval(),
                teacher_input_shape=(1,) + windows["train"].shape[1:], teacher_test_scores=raw["test"],
                targets=targets, n_outputs=1, student_hidden=(32,),
                evaluator=partial(evaluate_anomalies, data.test.windows),
                info={"teacher_evaluation_auc": result["evaluation"]["auc"], "window": dqm_config.window,
                      "teacher_epochs_run": result["history"]["epochs_run"], "student_inputs": "window statistics"},
                front=windows["train"].shape[1:])


def build_task(name: str, config: TaskConfig = TaskConfig(), step: Step = lambda message: None) -> Task:
    """The task called name (one of TASKS)."""
    if name not in TASKS:
        raise DistillError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}.")
    step(f"{name}: building the task and training its teacher")
    if name == "dqm":
        return dqm_task(config, step)
    return digits_task(config) if name == "digits" else seeds_task(config)
