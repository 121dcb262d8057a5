"""The DQM experiment end to end: generate runs, train the LSTM and xLSTM autoencoders on good
windows, distil a student that predicts the LSTM teacher's log-loss, evaluate every score on
held-out runs, measure cost (parameters, MACs, batch-1 and batch-1024 CPU latency), test
continual learning (proton–proton, then heavy-ion), and write JSON, plots and weights.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from reference.dqm import evaluate
from reference.dqm.data import DatasetConfig, GeneratorConfig, Windows, generate_dataset, split_runs
from reference.dqm.inputs import check_input_settings, fit_inputs
from reference.dqm.io import write_runs
from reference.dqm.macs import count_macs
from reference.dqm.fastinfer import compile_student, kernel_latency
from reference.dqm.models import build_model, latency, save_model
from reference.dqm.train import TrainConfig, error_summary, log_loss, predict, train_autoencoder, train_student

RESULT_FORMAT = "hepaudit.dqm.experiment"
RESULT_VERSION = 1
Step = Callable[[str], None]


@dataclass(frozen=True)
class ExperimentConfig:
    """What the experiment generates and trains. Sizes in runs and lumiblocks (LBs)."""

    runs: int = 150  #: proton–proton runs of 300–1000 LBs, split 60/20/20 by run
    heavy_ion_runs: int = 24  #: heavy-ion runs for the continual-learning step (0: skip it)
    #: LBs per window; 64 was chosen on the validation runs over 32, 48 and 96 (a longer window
    #: holds the onset of more of the windows that overlap an HV-trip recovery)
    window: int = 64
    train_stride: int = 2  #: LBs between training windows (test and validation use 1)
    severity: float = 1.0  #: anomaly severity (1.0 = the documented default sizes)
    seed: int = 0
    models: tuple = ("lstm", "xlstm")  #: autoencoders to train; the first is the student's teacher
    student: bool = True
    student_runs: int = 300  #: extra runs (labels unused) that the teacher scores for the student
    train: TrainConfig = TrainConfig(epochs=30, patience=5)
    student_train: TrainConfig = TrainConfig(epochs=60, patience=8, max_windows=100000, weight_decay=1e-4)
    persistence: int = 3  #: consecutive windows for the persistent alarm
    #: autoencoder inputs (``inputs.fit_inputs``): "run_reference" (luminosity-corrected, relative
    #: to the median of the first ``reference_lb`` LBs of the run, plus the A-C differences
    #: ``ac_differences``: "run", "global" or "none") or "global" (one standardisation over all
    #: runs, the former inputs). "run" differences were chosen on the validation runs over
    #: "global" ones, which a run change (new A/C asymmetry) sets off.
    inputs: str = "run_reference"
    reference_lb: int = 16
    ac_differences: str = "run"
    latency_repeats: int = 200
    #: per model name, options for build_model; the student reads the window statistics that the
    #: teacher's worst-channel score is made of ("stats": 6,179 MACs per window of 64 LBs and 24
    #: features). The former 1-D CNN student over pairs of lumiblocks (41k MACs) predicted the
    #: teacher's score on good windows no better than chance (Spearman 0.10 there, 0.75 overall).
    model_options: dict = field(default_factory=lambda: {"student": {"arch": "stats"}})

    def __post_init__(self):
        if self.runs < 5:
            raise ValueError(f"the experiment needs at least 5 runs (train, validation and test), not {self.runs}.")
        if not self.models:
            raise ValueError("the experiment needs at least one autoencoder model.")
        check_input_settings(self.inputs, self.reference_lb, self.window)


@dataclass
class _Split:
    windows: Windows
    x: np.ndarray


@dataclass
class _Data:
    inputs: object  #: the fitted input transform (``inputs.RunReferenceInputs`` or ``GlobalInputs``)
    train: _Split
    val: _Split
    test: _Split


def _windows(runs, inputs, window: int, stride: int) -> _Split:
    return _Split(*inputs.windows(runs, window, stride))


def prepare_data(config: ExperimentConfig, mode: str = "pp", n_runs: int | None = None) -> tuple[_Data, list]:
    """Generate runs, split them by run, fit the input transform on good training LBs, cut windows."""
    generator = GeneratorConfig(mode=mode)
    runs = generate_dataset(DatasetConfig(n_runs=n_runs or config.runs, severity=config.severity,
                                          seed=config.seed + (0 if mode == "pp" else 1000), generator=generator))
    train, val, test = split_runs(runs, seed=config.seed)
    inputs = fit_inputs(train, config.inputs, config.reference_lb, config.ac_differences)
    data = _Data(inputs, _windows(train, inputs, config.window, config.train_stride),
                 _windows(val, inputs, config.window, 1), _windows(test, inputs, config.window, 1))
    return data, runs


def _good(split: _Split) -> np.ndarray:
    return split.x[split.windows.label == 0]


@dataclass
class TeacherScores:
    """An autoencoder's error summaries per split (``train.error_summary``), their scale (99th
    percentile on good training windows) and the window scores derived from them."""

    errors: dict
    scale: np.ndarray

    @classmethod
    def of(cls, model, data: _Data) -> "TeacherScores":
        errors = {split: error_summary(model, getattr(data, split).x) for split in ("train", "val", "test")}
        return cls(errors, evaluate.feature_scale(errors["train"][data.train.windows.label == 0]))

    def worst(self) -> dict:
        return {split: evaluate.worst_feature(e, self.scale) for split, e in self.errors.items()}

    def mse(self) -> dict:
        return {split: e[:, 0].mean(axis=1) for split, e in self.errors.items()}


def _score_report(scores: dict, data: _Data, persistence: int) -> dict:
    """Threshold from good validation windows, then every test figure of merit."""
    threshold = evaluate.threshold_at(scores["val"][evaluate.good_mask(data.val.windows)])
    return evaluate.evaluate_scores(scores["test"], data.test.windows, threshold, persistence)


def _cost(model, window: int, repeats: int) -> dict:
    """Parameters, MACs per window and CPU latency (batch 1 on one thread, as an online monitor
    would run it; batch 1024 on all threads). A "stats" student is also timed through its
    compiled kernel (``fastinfer``), one thread, batch 1."""
    import torch  # pylint: disable=import-outside-toplevel

    macs = count_macs(model, (1, window, model.config.n_features))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = latency(model, batch=1, repeats=repeats, device="cpu", window=window)
    finally:
        torch.set_num_threads(threads)
    cost = {"parameters": int(sum(p.numel() for p in model.parameters())), "macs_per_window": macs.to_dict(),
            "cpu_latency_batch1_1thread": single,
            "cpu_latency_batch1024": {**latency(model, batch=1024, repeats=max(5, repeats // 20), device="cpu",
                                                window=window), "threads": threads}}
    if getattr(model.config, "arch", None) == "stats":
        cost["cpu_latency_batch1_kernel"] = kernel_latency(compile_student(model.cpu()), batch=1, repeats=repeats)
    return cost


def train_teacher(name: str, data: _Data, config: ExperimentConfig, step: Step) -> tuple:
    """Train one autoencoder; returns (model, its result dict, its TeacherScores)."""
    model = build_model(name, data.train.x.shape[-1], config.window, **config.model_options.get(name, {}))
    history = train_autoencoder(model, _good(data.train), _good(data.val), config.train,
                                progress=lambda e, n, tr, va: step(f"{name}: epoch {e}/{n}, loss {tr:.4f} / {va:.4f}"))
    scored = TeacherScores.of(model, data)
    result = {"history": history.to_dict(), "score": "worst feature", "feature_scale": scored.scale.tolist(),
              "evaluation": _score_report(scored.worst(), data, config.persistence),
              "evaluation_window_mse": _score_report(scored.mse(), data, config.persistence)}
    alarm = scored.worst()["test"] > result["evaluation"]["threshold"]
    result["attribution"] = evaluate.attribution(evaluate.per_feature(scored.errors["test"], scored.scale),
                                                 data.test.windows, alarm)
    return model, result, scored


def student_windows(teacher, scored: TeacherScores, data: _Data, config: ExperimentConfig) -> tuple:
    """Training windows for a student: the training split plus ``student_runs`` extra runs (their
    labels are returned but a student regressing the teacher does not need them), with
    log(teacher score) as the target. Returns (windows, target, labels)."""
    x, labels = [data.train.x], [data.train.windows.label]
    if config.student_runs > 0:
        extra = generate_dataset(DatasetConfig(n_runs=config.student_runs, severity=config.severity,
                                               seed=config.seed + 500))
        split = _windows(extra, data.inputs, config.window, config.train_stride)
        x.append(split.x)
        labels.append(split.windows.label)
    x = np.concatenate(x)
    target = log_loss(evaluate.worst_feature(error_summary(teacher, x), scored.scale))
    return x, target, np.concatenate(labels)


def train_distilled_student(teacher, scored: TeacherScores, data: _Data, config: ExperimentConfig,
                            step: Step) -> tuple:
    """Student regressing log(teacher score) (outlier exposure: the runs carry anomalies)."""
    student = build_model("student", data.train.x.shape[-1], config.window, **config.model_options.get("student", {}))
    targets = {split: log_loss(score) for split, score in scored.worst().items()}
    train_x, train_y, _ = student_windows(teacher, scored, data, config)
    history = train_student(student, (train_x, train_y), (data.val.x, targets["val"]), config.student_train,
                            progress=lambda e, n, tr, va: step(f"student: epoch {e}/{n}, loss {tr:.4f} / {va:.4f}"))
    scores = {split: predict(student, getattr(data, split).x) for split in ("val", "test")}
    result = {"history": history.to_dict(), "training_windows": int(len(train_x)),
              "evaluation": _score_report(scores, data, config.persistence)}
    return student, result, scores, targets


def continual(model, name: str, pp: _Data, config: ExperimentConfig, step: Step) -> dict:
    """Fine-tune a pp-trained autoencoder on heavy-ion good windows; the pp AUC it loses is the
    catastrophic forgetting. Heavy-ion windows use their own input transform."""
    hi, _ = prepare_data(config, mode="heavy_ion", n_runs=config.heavy_ion_runs)
    before = _score_report(TeacherScores.of(model, pp).worst(), pp, config.persistence)
    tuned = copy.deepcopy(model)
    history = train_autoencoder(tuned, _good(hi.train), _good(hi.val), config.train,
                                progress=lambda e, n, tr, va: step(f"{name} heavy-ion: epoch {e}/{n}"))
    after_pp = _score_report(TeacherScores.of(tuned, pp).worst(), pp, config.persistence)
    after_hi = _score_report(TeacherScores.of(tuned, hi).worst(), hi, config.persistence)
    return {"pp_macro_auc_before": before["auc"]["macro"], "pp_macro_auc_after": after_pp["auc"]["macro"],
            "pp_auc_lost": before["auc"]["macro"] - after_pp["auc"]["macro"],
            "heavy_ion_auc_after": after_hi["auc"], "history": history.to_dict()}


def _plot_roc(ax, name: str, by_kind: dict, auc: dict) -> None:
    for kind, (fpr, tpr) in by_kind.items():
        ax.plot(fpr, tpr, label=f"{kind} (AUC {auc[kind]:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xscale="log", xlim=(1e-4, 1), xlabel="false-alarm rate (good windows)", ylabel="detection efficiency",
           title=f"{name}: ROC per anomaly type")
    ax.legend(fontsize=8)


def _plot_scores(ax, name: str, scored: tuple, threshold: float) -> None:
    """Score histograms of good, anomalous and benign-control windows; autoencoder losses on a
    log10 axis (the student already predicts a log)."""
    s, w = scored
    log_axis = name != "student"
    values = np.log10(np.maximum(s, 1e-12)) if log_axis else s
    for label, mask in (("good", evaluate.good_mask(w)), ("anomalous", w.label > 0),
                        ("benign controls", (w.benign > 0) & (w.label == 0))):
        if mask.any():
            ax.hist(values[mask], bins=60, histtype="step", density=True, label=label)
    ax.axvline(np.log10(threshold) if log_axis else threshold, color="red", ls="--", label="1% threshold")
    ax.set(xlabel="log10 score (worst feature)" if log_axis else "predicted log score", ylabel="density",
           title=f"{name}: score distributions (test runs)")
    ax.legend(fontsize=8)


def _plots(out: Path, results: dict, curves: dict, scores: dict) -> list[str]:
    """ROC curves and score distributions, one PNG per model."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    written = []
    for name, by_kind in curves.items():
        fig, (roc, hist) = plt.subplots(1, 2, figsize=(11, 4.5))
        _plot_roc(roc, name, by_kind, results[name]["evaluation"]["auc"])
        _plot_scores(hist, name, scores[name], results[name]["evaluation"]["threshold"])
        fig.tight_layout()
        path = out / f"{name}_roc_scores.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path.name)
    return written


def _config_dict(config: ExperimentConfig) -> dict:
    data = asdict(config)
    data["models"] = list(config.models)
    return data


def run_experiment(config: ExperimentConfig, out: Path, step: Step = lambda message: None) -> dict:
    """Run everything and write ``results.json``, model weights, the input transform, the runs
    (HDF5) and the plots into ``out``; returns the results."""
    out.mkdir(parents=True, exist_ok=True)
    step("generating runs")
    data, runs = prepare_data(config)
    write_runs(out / "runs.h5", runs)
    (out / "inputs.json").write_text(json.dumps(data.inputs.to_dict(), indent=1))
    results, curves, scores, models = {}, {}, {}, {}
    for name in config.models:
        model, results[name], scored = train_teacher(name, data, config, step)
        save_model(out / f"{name}.pt", model)
        results[name]["cost"] = _cost(model, config.window, config.latency_repeats)
        test_scores = scored.worst()["test"]
        curves[name] = evaluate.roc_points(test_scores, data.test.windows)
        scores[name] = (test_scores, data.test.windows)
        models[name] = (model, scored)
    if config.student:
        teacher = config.models[0]
        student, results["student"], student_scores, targets = train_distilled_student(*models[teacher], data,
                                                                                       config, step)
        save_model(out / "student.pt", student)
        results["student"]["teacher"] = teacher
        results["student"]["cost"] = _cost(student, config.window, config.latency_repeats)
        results["student"]["agreement"] = evaluate.student_agreement(
            student_scores["test"], targets["test"], data.test.windows, results[teacher]["evaluation"]["auc"])
        curves["student"] = evaluate.roc_points(student_scores["test"], data.test.windows)
        scores["student"] = (student_scores["test"], data.test.windows)
    if config.heavy_ion_runs > 0:
        for name in config.models:
            results[name]["continual"] = continual(models[name][0], name, data, config, step)
    document = {"format": RESULT_FORMAT, "version": RESULT_VERSION, "config": _config_dict(config),
                "windows": {s: int(len(getattr(data, s).windows)) for s in ("train", "val", "test")},
                "results": results}
    document["plots"] = _plots(out, results, curves, scores)
    (out / "results.json").write_text(json.dumps(document, indent=1, default=_json_default))
    return document


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def quick_config(**changes) -> ExperimentConfig:
    """A configuration small enough for tests and smoke runs (seconds, not minutes)."""
    tiny = TrainConfig(epochs=2, batch_size=64, max_windows=512, patience=2)
    base = ExperimentConfig(runs=6, heavy_ion_runs=5, student_runs=4, window=16, train_stride=4, train=tiny,
                            student_train=replace(tiny, epochs=3), latency_repeats=5,
                            model_options={"lstm": {"hidden": 16, "latent": 8}, "student": {"arch": "stats"}})
    return replace(base, **changes)
