"""The distillation experiment: for each task, students at float32 and at every quantization setting,
their accuracy, bit operations and measured latency, and the Pareto front against the float32 teacher.

Per task and student target: a float32 student MLP is trained first (classification: soft teacher
logits at temperature T plus the labels; regression: Huber loss on the standardised target), then each
quantized student (SETTINGS and a mixed per-layer setting) starts from its weights and is fine-tuned
with quantization-aware training. Every student is judged on the test split through its fake-quant
forward and through integer inference (``intinfer``); both scores are kept.

Cost per student and for the teacher: BOPs in the full Ps-and-Qs form and the simplified MACs b_w b_a
(``bops``), MACs and parameters for one sample; CPU latency at batch 1 (one thread) and batch 4096 (all
threads) of the float torch forward (teacher, float32 student) or of integer inference (quantized
students, numba, one thread); GPU latency of the torch forwards when CUDA is present.

The Pareto front is over (score lost relative to the teacher, BOPs reduction relative to the teacher):
a point is on it when no other point loses no more and saves at least as much, one of them strictly.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reference.distill.bops import CONVENTION, model_bops
from reference.distill.frontend import N_STATISTICS, stats_student
from reference.distill.intinfer import infer, latency_int
from reference.distill.quant import SETTINGS, build_student, export_integer, mixed_setting
from reference.distill.tasks import (TASKS, DistillError, Step, Target, Task, TaskConfig, build_task, float_mlp,
                                     quick_task_config)

RESULT_FORMAT = "hepaudit.distill.experiment"
RESULT_VERSION = 1
FLOAT = "float32"
MIXED = "mixed"
ALL_SETTINGS = (FLOAT, *SETTINGS, MIXED)
DQM_TARGETS = {"W8A8": (0.005, 1000.0), "W4A4": (0.02, 2500.0)}  #: setting -> (most AUC lost, least BOPs reduction)


@dataclass(frozen=True)
class StudentTrainConfig:
    """Student training: Adam, early stopping on the validation loss (best epoch kept)."""

    epochs: int = 80  #: float32 students
    qat_epochs: int = 40  #: quantization-aware fine-tuning from the float32 student
    batch_size: int = 256
    learning_rate: float = 3e-3
    qat_learning_rate: float = 1e-3
    patience: int = 10  #: epochs without a better validation loss before stopping
    temperature: float = 4.0  #: softening of teacher logits (classification)
    alpha: float = 0.7  #: weight of the teacher term against the label term (classification)
    seed: int = 0
    device: str = "cpu"  #: torch device for training

    def __post_init__(self):
        for name in ("epochs", "qat_epochs", "batch_size", "patience"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise DistillError(f"StudentTrainConfig.{name} must be a positive integer, got {getattr(self, name)!r}.")
        if not 0.0 <= self.alpha <= 1.0 or self.temperature <= 0:
            raise DistillError("StudentTrainConfig needs alpha in [0, 1] and a positive temperature.")


@dataclass(frozen=True)
class LatencyConfig:
    """Latency measurement: batch sizes and timed calls (after warm-up calls)."""

    small_batch: int = 1
    large_batch: int = 4096
    repeats: int = 100  #: timed calls at the small batch
    large_repeats: int = 10  #: timed calls at the large batch
    gpu: bool = True  #: measure torch on CUDA when it is present


@dataclass(frozen=True)
class ExperimentConfig:
    """What the experiment runs; settings are names in ALL_SETTINGS."""

    tasks: tuple = TASKS
    settings: tuple = ALL_SETTINGS
    targets: tuple | None = None  #: student targets to train ("teacher", "metric"); None: all of each task's
    train: StudentTrainConfig = StudentTrainConfig()
    latency: LatencyConfig = LatencyConfig()
    task_config: TaskConfig = TaskConfig()

    def __post_init__(self):
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown or not self.tasks:
            raise DistillError(f"unknown or no task(s) {unknown}; known tasks: {', '.join(TASKS)}.")
        _check_targets(self.targets)
        bad = [s for s in self.settings if s not in ALL_SETTINGS]
        if bad or FLOAT not in self.settings:
            raise DistillError(f"settings must include {FLOAT} and come from {', '.join(ALL_SETTINGS)}; got {bad}.")


def _check_targets(targets) -> None:
    if targets is not None and (not targets or set(targets) - {"teacher", "metric"}):
        raise DistillError(f"targets must be among 'teacher' and 'metric', got {list(targets)}.")


def quick_config(**changes) -> ExperimentConfig:
    """Tiny sizes: the whole experiment in well under a minute (tests, smoke runs)."""
    base = ExperimentConfig(train=StudentTrainConfig(epochs=4, qat_epochs=2, patience=2),
                            latency=LatencyConfig(large_batch=256, repeats=5, large_repeats=2),
                            task_config=quick_task_config())
    return replace(base, **changes)


def with_device(config: ExperimentConfig, device: str) -> ExperimentConfig:
    """config with training (teachers and students) on the torch device."""
    return replace(config, train=replace(config.train, device=device),
                   task_config=replace(config.task_config, device=device))


# --- training ---------------------------------------------------------------------------------

def _target_arrays(task: Task, target: Target, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(target, labels) arrays of a split; regression targets standardised on the training split."""
    values = target.values[split]
    if target.kind == "regression":
        train = target.values["train"]
        values = (values - train.mean()) / (train.std() + 1e-8)
    return values.astype(np.float32), task.splits[split].y


def _criterion(target: Target, config: StudentTrainConfig):
    """Per-batch loss (outputs, target, labels) -> scalar."""
    if target.kind == "regression":
        huber = nn.HuberLoss(delta=1.0)
        return lambda out, y, labels: huber(out[:, 0], y)
    t = config.temperature

    def distill(out, teacher, labels):
        soft = nn.functional.kl_div(nn.functional.log_softmax(out / t, dim=1),
                                    nn.functional.log_softmax(teacher / t, dim=1), log_target=True,
                                    reduction="batchmean") * t * t
        return config.alpha * soft + (1 - config.alpha) * nn.functional.cross_entropy(out, labels)

    return distill


def _tensors(task: Task, target: Target, split: str, device) -> tuple:
    y, labels = _target_arrays(task, target, split)
    return (torch.as_tensor(task.splits[split].x, device=device), torch.as_tensor(y, device=device),
            torch.as_tensor(labels, dtype=torch.long, device=device))


def _epoch(model, data: tuple, loss_of, optimiser, batches: list) -> float:
    model.train()
    total = 0.0
    for index in batches:
        index = torch.as_tensor(index, device=data[0].device)
        loss = loss_of(model(data[0][index]), data[1][index], data[2][index])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total += loss.item() * len(index)
    return total / len(data[0])


def fit_student(model: nn.Module, task: Task, target: Target, config: StudentTrainConfig, quantized: bool) -> dict:
    """Train model on target (early stopping, best epoch kept); returns the history. Ends on the CPU."""
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    model.to(device)
    train, val = (_tensors(task, target, s, device) for s in ("train", "val"))
    loss_of = _criterion(target, config)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.qat_learning_rate if quantized else config.learning_rate)
    rng = np.random.default_rng(config.seed)
    history = {"train_loss": [], "val_loss": [], "best_epoch": -1}
    best, start = (float("inf"), None), time.perf_counter()
    for epoch in range(config.qat_epochs if quantized else config.epochs):
        order = rng.permutation(len(train[0]))
        batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        history["train_loss"].append(_epoch(model, train, loss_of, optimiser, batches))
        model.eval()
        with torch.no_grad():
            history["val_loss"].append(float(loss_of(model(val[0]), val[1], val[2])))
        if history["val_loss"][-1] < best[0]:
            best = (history["val_loss"][-1], copy.deepcopy(model.state_dict()))
            history["best_epoch"] = epoch
        elif epoch - history["best_epoch"] >= config.patience:
            break
    model.load_state_dict(best[1])
    model.cpu().eval()
    history["seconds"] = time.perf_counter() - start
    return history


def student_setting(setting: str, n_layers: int):
    """build_student setting of a name in ALL_SETTINGS other than float32."""
    return mixed_setting(n_layers) if setting == MIXED else setting


def make_student(task: Task, setting: str, start: nn.Module | None = None) -> nn.Module:
    """A float32 MLP or a QuantMLP of the task's student sizes, optionally with start's weights; for
    a task with a ``front``, that MLP behind the window statistics (``frontend.StatsStudent``)."""
    inputs = task.n_features if task.front is None else N_STATISTICS * task.front[1]
    sizes = (inputs, *task.student_hidden, task.n_outputs)
    model = float_mlp(sizes) if setting == FLOAT else build_student(sizes, student_setting(setting, len(sizes) - 1))
    if task.front is not None:
        model = stats_student(task.front[0], task.front[1], model)
    if start is not None:
        model.load_state_dict(start.state_dict(), strict=False)
    return model


# --- measurement ------------------------------------------------------------------------------

def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def torch_latency(model: nn.Module, shape: tuple, batch: int, repeats: int, device: str = "cpu") -> dict:
    """Seconds per forward call of a copy of model (eval, no grad) on random inputs (batch, *shape[1:])."""
    target = torch.device(device)
    model = copy.deepcopy(model).to(target).eval()
    x = torch.randn((batch,) + tuple(shape[1:]), generator=torch.Generator().manual_seed(0)).to(target)
    warmup = max(3, repeats // 10)
    times = []
    with torch.inference_mode():
        for call in range(warmup + repeats):
            _synchronize(target)
            start = time.perf_counter()
            model(x)
            _synchronize(target)
            if call >= warmup:
                times.append(time.perf_counter() - start)
    q25, _, q75 = statistics.quantiles(times, n=4) if repeats > 1 else (times[0],) * 3
    return {"median_s": statistics.median(times), "q25_s": q25, "q75_s": q75, "min_s": min(times),
            "repeats": repeats, "warmup": warmup, "batch": batch, "device": str(target), "method": "perf-counter"}


def _one_thread(function, *args, **kwargs):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return function(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


def cpu_latency(model: nn.Module, shape: tuple, config: LatencyConfig, integer=None) -> dict:
    """Batch-small latency on one thread and batch-large on all threads; integer inference if given."""
    if integer is not None:
        return {"path": "integer (numba, one thread)",
                "small": latency_int(integer, batch=config.small_batch, repeats=config.repeats),
                "large": latency_int(integer, batch=config.large_batch, repeats=config.large_repeats)}
    return {"path": "float torch", "threads_large": torch.get_num_threads(),
            "small": _one_thread(torch_latency, model, shape, config.small_batch, config.repeats),
            "large": torch_latency(model, shape, config.large_batch, config.large_repeats)}


def gpu_latency(model: nn.Module, shape: tuple, config: LatencyConfig) -> dict:
    """Torch latency on CUDA at both batch sizes, or a note saying why it was skipped."""
    if not config.gpu:
        return {"skipped": "GPU latency switched off in the configuration."}
    if not torch.cuda.is_available():
        return {"skipped": "CUDA is not available on this machine."}
    return {"path": "torch on cuda", "small": torch_latency(model, shape, config.small_batch, config.repeats, "cuda"),
            "large": torch_latency(model, shape, config.large_batch, config.large_repeats, "cuda")}


def cost(model: nn.Module, shape: tuple) -> dict:
    """BOPs (full and simplified), MACs and parameters for one sample of shape (1, ...)."""
    report = model_bops(model, shape)
    return {"bops": report.total_bops, "bops_simplified": report.total_bops_simplified, "macs": report.total_macs,
            "parameters": report.total_parameters}


def _outputs(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


def _integer_check(model: nn.Module, task: Task, fake: np.ndarray) -> tuple:
    """Integer model, its test outputs' evaluation and its agreement with the fake-quant outputs."""
    integer = export_integer(model)
    outputs = infer(integer, task.splits["test"].x)
    diff = np.abs(outputs - fake)
    agreement = {"max_abs_difference": float(diff.max()),
                 "max_relative_difference": float((diff / np.maximum(np.abs(fake), 1e-12)).max()),
                 "equal_fraction": float(np.mean(outputs == fake))}
    return integer, task.evaluate(outputs), agreement


# --- one student ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Context:
    """What every student of one task is measured against."""

    task: Task
    teacher: dict  #: the teacher's score, cost and latency
    config: ExperimentConfig


def measure_student(model: nn.Module, setting: str, context: _Context) -> dict:
    """Score (fake quant and integer path), cost, latency and reductions relative to the teacher."""
    task, teacher = context.task, context.teacher
    shape = (1, task.n_features)
    fake = _outputs(model, task.splits["test"].x)
    point = {"setting": setting, "evaluation": task.evaluate(fake), **cost(model, shape)}
    integer = None
    if setting != FLOAT:
        integer, point["evaluation_integer"], point["integer_agreement"] = _integer_check(model, task, fake)
    point["score"] = point["evaluation"]["score"]
    point["score_lost"] = teacher["score"] - point["score"]
    point["cpu_latency"] = cpu_latency(model, shape, context.config.latency, integer)
    point["gpu_latency"] = gpu_latency(model, shape, context.config.latency)
    for key in ("bops", "bops_simplified", "macs", "parameters"):
        point[f"{key}_reduction"] = teacher[key] / point[key]
    for size in ("small", "large"):
        point[f"cpu_speedup_{size}"] = teacher["cpu_latency"][size]["median_s"] / point["cpu_latency"][size]["median_s"]
    return point


def _teacher_record(task: Task, config: ExperimentConfig) -> dict:
    record = {"score": task.evaluate(task.teacher_test_scores)["score"],
              "evaluation": task.evaluate(task.teacher_test_scores), **cost(task.teacher, task.teacher_input_shape)}
    record["cpu_latency"] = cpu_latency(task.teacher, task.teacher_input_shape, config.latency)
    record["gpu_latency"] = gpu_latency(task.teacher, task.teacher_input_shape, config.latency)
    return record


def run_target(context: _Context, target: Target, step: Step) -> list[dict]:
    """Every setting's student for one target: float32 first, then QAT from its weights."""
    config = context.config
    base = make_student(context.task, FLOAT)
    step(f"{context.task.name}/{target.name}: training the float32 student")
    history = fit_student(base, context.task, target, config.train, quantized=False)
    points = []
    for setting in config.settings:
        model = base
        if setting != FLOAT:
            step(f"{context.task.name}/{target.name}: quantization-aware training at {setting}")
            model = make_student(context.task, setting, start=base)
            history = fit_student(model, context.task, target, config.train, quantized=True)
        step(f"{context.task.name}/{target.name}: measuring {setting}")
        point = measure_student(model, setting, context)
        point.update({"target": target.name, "history": history,
                      "bits": [list(pair) for pair in getattr(model, "bits", ())] or "float32"})
        points.append(point)
    return points


# --- Pareto front and targets -----------------------------------------------------------------

def pareto_front(points: list[dict], x: str = "bops_reduction", y: str = "score_lost") -> list[int]:
    """Indices of the points that no other point dominates (larger x and smaller y are better)."""
    front = []
    for i, p in enumerate(points):
        dominated = any(q[x] >= p[x] and q[y] <= p[y] and (q[x] > p[x] or q[y] < p[y])
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][x])


def dqm_targets(points: list[dict]) -> dict:
    """The issue's DQM targets per student target and setting: AUC lost and BOPs reduction, met or not."""
    out = {}
    for point in points:
        if point["setting"] in DQM_TARGETS:
            most_lost, least_reduction = DQM_TARGETS[point["setting"]]
            out[f"{point['target']}/{point['setting']}"] = {
                "auc_lost": point["score_lost"], "bops_reduction": point["bops_reduction"],
                "required": {"auc_lost_at_most": most_lost, "bops_reduction_at_least": least_reduction},
                "met": bool(point["score_lost"] <= most_lost and point["bops_reduction"] >= least_reduction)}
    return out


def run_task(task: Task, config: ExperimentConfig, step: Step) -> dict:
    """Teacher record, every student point, the Pareto front (and the DQM targets)."""
    step(f"{task.name}: measuring the teacher")
    context = _Context(task, _teacher_record(task, config), config)
    targets = [t for t in task.targets if config.targets is None or t.name in config.targets]
    points = [point for target in targets for point in run_target(context, target, step)]
    result = {"metric": task.metric, "teacher": context.teacher, "points": points, "front": pareto_front(points),
              "n_features": task.n_features, "student_hidden": list(task.student_hidden),
              "samples": {s: int(len(task.splits[s].x)) for s in task.splits}, "info": task.info}
    if task.name == "dqm":
        result["targets"] = dqm_targets(points)
    return result


# --- plots and the document -------------------------------------------------------------------

def _plot_axis(ax, result: dict, x: str, label: str) -> None:
    markers = {"teacher": "o", "metric": "s"}
    for point in result["points"]:
        ax.scatter(point[x], point["score_lost"], marker=markers.get(point["target"], "^"), s=36,
                   label=f"{point['target']}" if point["setting"] == FLOAT else None)
        ax.annotate(point["setting"], (point[x], point["score_lost"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    front = [result["points"][i] for i in result["front"]]
    if x == "bops_reduction":
        ax.plot([p[x] for p in front], [p["score_lost"] for p in front], "k--", lw=1, label="Pareto front")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel=label, ylabel=f"{result['metric']} lost vs float32 teacher")
    ax.legend(fontsize=8)


def plot_task(name: str, result: dict, path: Path) -> None:
    """Score lost against BOPs reduction (with the front) and against measured CPU speedup."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    _plot_axis(left, result, "bops_reduction", "BOPs reduction vs teacher (full form)")
    _plot_axis(right, result, "cpu_speedup_small", "measured CPU speedup vs teacher (batch 1)")
    fig.suptitle(f"{name}: accuracy-cost trade-off of quantized students")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _config_dict(config: ExperimentConfig) -> dict:
    return json.loads(json.dumps(asdict(config), default=str))


def run_experiment(config: ExperimentConfig, out: Path, step: Step = lambda message: None) -> dict:
    """Run every task; write ``results.json`` and one ``pareto_<task>.png`` per task into out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, plots = {}, []
    for name in config.tasks:
        task = build_task(name, config.task_config, step)
        results[name] = run_task(task, config, step)
        plot_task(name, results[name], out / f"pareto_{name}.png")
        plots.append(f"pareto_{name}.png")
        document = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "config": _config_dict(config),
                    "bops_convention": CONVENTION, "cuda_available": torch.cuda.is_available(),
                    "tasks": results, "plots": plots}
        # written after every task, so that an interrupted run keeps the tasks it finished
        (out / "results.json").write_text(json.dumps(document, indent=1, default=_json_default))
    return document


def pareto_rows(result: dict) -> list[dict]:
    """Table rows of one task: the teacher, then every student point, with front membership."""
    teacher = result["teacher"]
    rows = [{"student": "teacher (float32)", "score": teacher["score"], "lost": 0.0, "bops": teacher["bops"],
             "bops_reduction": 1.0, "cpu_small_s": teacher["cpu_latency"]["small"]["median_s"],
             "cpu_large_s": teacher["cpu_latency"]["large"]["median_s"], "front": False}]
    for index, point in enumerate(result["points"]):
        rows.append({"student": f"{point['target']} {point['setting']}", "score": point["score"],
                     "score_integer": point.get("evaluation_integer", {}).get("score"), "lost": point["score_lost"],
                     "bops": point["bops"], "bops_reduction": point["bops_reduction"],
                     "cpu_small_s": point["cpu_latency"]["small"]["median_s"],
                     "cpu_large_s": point["cpu_latency"]["large"]["median_s"],
                     "cpu_speedup_small": point["cpu_speedup_small"], "front": index in result["front"]})
    return rows
