"""Command-line commands of the DQM chain, grouped under ``hepaudit dqm``: ``generate``, ``train``,
``evaluate`` and ``experiment``.

Registered into the main ``hepaudit`` app through the ``hepaudit.commands`` entry point
(``register``). User errors print one sentence and exit with code 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Data-quality monitoring: synthetic LAr data, LSTM/xLSTM autoencoders and a "
                       "student that predicts the teacher's loss.", no_args_is_help=True)

EXAMPLES = """
Examples:

  hepaudit dqm generate --runs 60 --out runs.h5

  hepaudit dqm train --data runs.h5 --model lstm --out lstm.pt

  hepaudit dqm train --data runs.h5 --model student --teacher lstm.pt --out student.pt

  hepaudit dqm evaluate --data runs.h5 --model lstm.pt

  hepaudit dqm experiment --out reports/dqm        (everything, with plots and results.json)
"""


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def _errors():
    from reference.dqm.errors import DQMDataError
    from reference.dqm.xlstm import DQMModelError

    return (DQMDataError, DQMModelError, ValueError, OSError)


@app.command("generate", epilog=EXAMPLES)
def generate(
    out: Path = typer.Option(..., "--out", help="HDF5 file to write the runs into."),
    runs: int = typer.Option(60, "--runs", min=1, help="Number of runs (300-1000 lumiblocks each)."),
    mode: str = typer.Option("pp", "--mode", help="pp (proton-proton) or heavy_ion."),
    severity: float = typer.Option(1.0, "--severity", min=0.01, help="Anomaly size; 1.0 = the documented default."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed; the same seed gives the same runs."),
) -> None:
    """Generate synthetic LAr data-quality runs with labelled anomalies and benign controls."""
    from reference.dqm.data import DatasetConfig, GeneratorConfig, generate_dataset
    from reference.dqm.io import write_runs

    try:
        config = DatasetConfig(n_runs=runs, severity=severity, seed=seed, generator=GeneratorConfig(mode=mode))
        data = generate_dataset(config)
        write_runs(out, data, config)
    except _errors() as exc:
        _fail(str(exc))
    n_lb = sum(run.n_lb for run in data)
    n_anomalous = sum(int((run.labels > 0).sum()) for run in data)
    typer.echo(f"wrote {runs} {mode} run(s), {n_lb} lumiblocks ({n_anomalous} anomalous) to {out}")


def _prepared(data: Path, window: int, seed: int, inputs=None):
    """Runs from ``data`` split by run, as {split: (windows, model inputs)}; the input transform
    (``reference.dqm.inputs``) is fitted on good training LBs unless ``inputs`` is given."""
    from reference.dqm.data import split_runs
    from reference.dqm.inputs import fit_inputs
    from reference.dqm.io import read_runs

    runs = read_runs(data)
    if len(runs) < 3:
        raise ValueError(f"{data} holds {len(runs)} run(s); training and evaluation need at least 3.")
    splits = dict(zip(("train", "val", "test"), split_runs(runs, seed=seed)))
    inputs = fit_inputs(splits["train"]) if inputs is None else inputs
    return inputs, {name: inputs.windows(part, window, 1) for name, part in splits.items()}


def _sidecar(model_path: Path) -> Path:
    return model_path.with_name(model_path.name + ".json")


def _read_sidecar(model_path: Path) -> dict:
    path = _sidecar(model_path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ValueError(f"{path} is missing: it holds the input transform of {model_path}; train the model "
                         "with 'hepaudit dqm train'.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg}).") from exc


def _progress_bar(label: str, epochs: int):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[losses]}"),
                        TimeElapsedColumn(), transient=True)
    task = progress.add_task(label, total=epochs, losses="")

    def advance(epoch, total, train_loss, val_loss):
        progress.update(task, completed=epoch, losses=f"loss {train_loss:.4f} / val {val_loss:.4f}")

    return progress, advance


def _teacher(path: Path, device: str):
    """A trained autoencoder and its feature scale (from its side file)."""
    import numpy as np

    from reference.dqm.models import load_model

    meta = _read_sidecar(path)
    if "feature_scale" not in meta:
        raise ValueError(f"{path} is not an autoencoder trained by 'hepaudit dqm train' (no feature scale).")
    return load_model(path, device), np.asarray(meta["feature_scale"])


def _teacher_scores(model, scale, x):
    from reference.dqm.evaluate import worst_feature
    from reference.dqm.train import error_summary

    return worst_feature(error_summary(model, x), scale)


def _teacher_targets(teacher: Path, x_by_split: dict, device: str) -> dict:
    from reference.dqm.train import log_loss

    model, scale = _teacher(teacher, device)
    return {name: log_loss(_teacher_scores(model, scale, x)) for name, x in x_by_split.items()}


def _train(spec: dict, windows: dict):
    """Build and train the model described by ``spec`` on {split: (windows, inputs)}; returns
    (model, history)."""
    from reference.dqm.experiment import ExperimentConfig
    from reference.dqm.models import build_model
    from reference.dqm.train import TrainConfig, train_autoencoder, train_student

    config = TrainConfig(epochs=spec["epochs"], device=spec["device"], seed=spec["seed"])
    x = {name: pair[1] for name, pair in windows.items() if name != "test"}
    options = ExperimentConfig().model_options.get(spec["model"], {})  # the experiment's student ("stats")
    model = build_model(spec["model"], x["train"].shape[-1], spec["window"], **options)
    progress, advance = _progress_bar(f"training {spec['model']}", spec["epochs"])
    with progress:
        if spec["model"] == "student":
            y = _teacher_targets(spec["teacher"], x, spec["device"])
            history = train_student(model, (x["train"], y["train"]), (x["val"], y["val"]), config, advance)
        else:
            good = {name: x[name][windows[name][0].label == 0] for name in x}
            history = train_autoencoder(model, good["train"], good["val"], config, advance)
    return model, history


def _scale_of(model, windows: dict) -> list:
    """Feature scale of a trained autoencoder: its mean error per feature on good training windows."""
    from reference.dqm.evaluate import feature_scale
    from reference.dqm.train import error_summary

    train_windows, x = windows["train"]
    return feature_scale(error_summary(model, x[train_windows.label == 0])).tolist()


@app.command("train", epilog=EXAMPLES)
def train(
    data: Path = typer.Option(..., "--data", help="HDF5 runs written by 'hepaudit dqm generate'."),
    model: str = typer.Option("lstm", "--model", help="lstm, xlstm or student."),
    out: Path = typer.Option(..., "--out", help="Model file to write (weights; OUT.json holds the input transform)."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="The teacher's model file (student only)."),
    epochs: int = typer.Option(40, "--epochs", min=1, help="Most epochs (early stopping on the validation loss)."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1 ..."),
) -> None:
    """Train one model on the training runs of a data file (split 60/20/20 by run)."""
    spec = {"model": model, "epochs": epochs, "device": device, "seed": 0, "window": 64, "teacher": teacher}
    if model == "student" and teacher is None:
        _fail("--teacher is needed to train a student (it regresses the teacher's log-loss).")
    try:
        inputs, windows = _prepared(data, spec["window"], spec["seed"])
        trained, history = _train(spec, windows)
        from reference.dqm.models import save_model

        save_model(out, trained)
        sidecar = {"inputs": inputs.to_dict(), "window": spec["window"], "split_seed": spec["seed"],
                   "data": str(data), "teacher": None if teacher is None else str(teacher),
                   "history": history.to_dict()}
        if model != "student":
            sidecar["feature_scale"] = _scale_of(trained, windows)
        _sidecar(out).write_text(json.dumps(sidecar, indent=1))
    except _errors() as exc:
        _fail(str(exc))
    typer.echo(f"trained {model} for {len(history.train_loss)} epoch(s) in {history.seconds:.1f} s "
               f"(best validation loss {min(history.val_loss):.4g}); wrote {out}")


def _evaluation(model_path: Path, data: Path, device: str) -> dict:
    from reference.dqm import evaluate as ev
    from reference.dqm.inputs import inputs_from_dict
    from reference.dqm.models import load_model
    from reference.dqm.train import predict

    meta = _read_sidecar(model_path)
    inputs = inputs_from_dict(meta.get("inputs", meta.get("standardiser")))
    _, prepared = _prepared(data, meta["window"], meta["split_seed"], inputs)
    windows = {name: pair[0] for name, pair in prepared.items()}
    x = {name: prepared[name][1] for name in ("val", "test")}
    if "feature_scale" in meta:
        model, scale = _teacher(model_path, device)
        scores = {name: _teacher_scores(model, scale, x[name]) for name in x}
    else:
        model = load_model(model_path, device)
        scores = {name: predict(model, x[name]) for name in x}
    threshold = ev.threshold_at(scores["val"][ev.good_mask(windows["val"])])
    result = ev.evaluate_scores(scores["test"], windows["test"], threshold)
    if meta.get("teacher"):
        targets = _teacher_targets(Path(meta["teacher"]), {"test": x["test"]}, device)
        teacher_auc = ev.auc_per_type(targets["test"], windows["test"])
        result["agreement"] = ev.student_agreement(scores["test"], targets["test"], windows["test"], teacher_auc)
    return result


def results_table(title: str, evaluation: dict):
    """Rich table: AUC, efficiency at the 1 % threshold and with persistence, per anomaly type."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("type", "ROC-AUC", "efficiency @1% FAR", f"with {evaluation['persistence_k']}-window persistence"):
        table.add_column(column, justify="right" if column != "type" else "left")

    def pct(entry):
        return "n/a" if entry["rate"] is None else f"{100 * entry['rate']:.1f} % ({entry['n']})"

    for kind, auc in evaluation["auc"].items():
        if kind == "macro":
            continue
        table.add_row(kind, "n/a" if auc is None else f"{auc:.4f}", pct(evaluation["at_threshold"][kind]),
                      pct(evaluation["with_persistence"][kind]))
    table.add_row("macro", "n/a" if evaluation["auc"]["macro"] is None else f"{evaluation['auc']['macro']:.4f}", "", "")
    for key, label in (("false_alarm", "good windows (false alarms)"), ("benign_all", "benign controls")):
        table.add_row(label, "", pct(evaluation["at_threshold"][key]), pct(evaluation["with_persistence"][key]))
    return table


@app.command("evaluate", epilog=EXAMPLES)
def evaluate(
    data: Path = typer.Option(..., "--data", help="HDF5 runs (the file the model was trained on, or another)."),
    model: Path = typer.Option(..., "--model", help="Model file written by 'hepaudit dqm train'."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the evaluation as JSON."),
    device: str = typer.Option("cpu", "--device", help="torch device."),
) -> None:
    """Evaluate a trained model on the test runs: ROC-AUC per anomaly type, efficiencies at a 1 %
    false-alarm threshold (set on validation runs), benign-control alarms; for a student, its
    agreement with the teacher."""
    from rich.console import Console

    try:
        result = _evaluation(model, data, device)
        if json_out is not None:
            json_out.write_text(json.dumps(result, indent=1))
    except _errors() as exc:
        _fail(str(exc))
    console = Console()
    console.print(results_table(f"{model.name} on the test runs of {data.name}", result))
    if "agreement" in result:
        agreement = result["agreement"]
        console.print(f"student vs teacher log-loss: Pearson {agreement['pearson']:.4f}, "
                      f"Spearman {agreement['spearman']:.4f}, EMD {agreement['emd']:.4f}")


@app.command("experiment", epilog=EXAMPLES)
def experiment(
    out: Path = typer.Option(Path("reports/dqm"), "--out", help="Folder for results.json, plots, weights and data."),
    runs: int = typer.Option(60, "--runs", min=5, help="Proton-proton runs (split 60/20/20 by run)."),
    epochs: int = typer.Option(40, "--epochs", min=1, help="Most autoencoder epochs (student: 1.5x)."),
    device: str = typer.Option("cpu", "--device", help="torch device for training."),
    quick: bool = typer.Option(False, "--quick", help="Tiny sizes: a smoke test of the whole pipeline in seconds."),
) -> None:
    """Everything: data, LSTM and xLSTM teachers, the distilled student, evaluation, cost (MACs,
    latency) and continual learning (pp then heavy-ion); writes OUT/results.json and plots."""
    from dataclasses import replace

    from rich.console import Console

    from reference.dqm.experiment import ExperimentConfig, quick_config, run_experiment

    console = Console()
    try:
        config = quick_config() if quick else ExperimentConfig(runs=runs)
        config = replace(config, train=replace(config.train, device=device, epochs=epochs if not quick else config.train.epochs),
                         student_train=replace(config.student_train, device=device))
        with console.status("starting") as status:
            document = run_experiment(config, out, step=lambda message: status.update(message))
    except _errors() as exc:
        _fail(str(exc))
    for name, result in document["results"].items():
        console.print(results_table(f"{name}: test runs", result["evaluation"]))
    console.print(f"results, plots and weights in {out}")


def register(root: typer.Typer) -> None:
    """Add the ``dqm`` command group to a typer app."""
    root.add_typer(app, name="dqm")
