"""Command-line commands of the distillation chain, grouped under ``hepaudit distill``: ``run``.

Registered into the main ``hepaudit`` app through the ``hepaudit.commands`` entry point
(``register``). User errors print one sentence and exit with code 1.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Distillation: quantized students (W8A8 ... W2A4), bit operations, integer inference "
                       "and the accuracy-cost Pareto front.", no_args_is_help=True)

EXAMPLES = """
Examples:

  hepaudit distill run --quick --out reports/distill-quick

  hepaudit distill run --tasks dqm --device cuda --out reports/distill-dqm
"""


def _fail(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def parse_tasks(text: str) -> tuple:
    """Task names from a comma-separated list; DistillError for an empty list or an unknown name."""
    from reference.distill.tasks import TASKS, DistillError

    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in TASKS]
    if not names or unknown:
        raise DistillError(f"unknown task(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(TASKS)}.")
    return tuple(dict.fromkeys(names))


def check_device(device: str) -> str:
    """The torch device name; DistillError when it is not cpu/cuda or CUDA is absent."""
    import torch

    from reference.distill.tasks import DistillError

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise DistillError(f"--device must be cpu or cuda (or cuda:N), got {device!r}.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DistillError(f"--device {device} asks for CUDA, which is not available on this machine.")
    return device


def pareto_table(name: str, result: dict):
    """Rich table of one task: teacher and students, score lost, BOPs reduction, latency, front."""
    from rich.table import Table

    from reference.distill.experiment import pareto_rows

    table = Table(title=f"{name}: {result['metric']} against cost (teacher {result['teacher']['score']:.4f})")
    for column in ("student", result["metric"], "integer path", "lost", "BOPs", "BOPs reduction",
                   "CPU batch 1", "CPU batch large", "Pareto"):
        table.add_column(column, justify="left" if column == "student" else "right")
    for row in pareto_rows(result):
        integer = row.get("score_integer")
        table.add_row(row["student"], f"{row['score']:.4f}", "" if integer is None else f"{integer:.4f}",
                      f"{row['lost']:+.4f}", f"{row['bops']:.3g}", f"{row['bops_reduction']:,.0f}x",
                      f"{row['cpu_small_s'] * 1e6:,.1f} us", f"{row['cpu_large_s'] * 1e3:,.2f} ms",
                      "*" if row["front"] else "")
    return table


def _target_lines(result: dict) -> list[str]:
    lines = []
    for name, entry in result.get("targets", {}).items():
        need = entry["required"]
        lines.append(f"target {name}: AUC lost {entry['auc_lost']:+.4f} (<= {need['auc_lost_at_most']}), "
                     f"{entry['bops_reduction']:,.0f}x fewer BOPs (>= {need['bops_reduction_at_least']:,.0f}x): "
                     f"{'met' if entry['met'] else 'not met'}")
    return lines


def _errors():
    from reference.distill.quant import QuantError

    return (QuantError, ValueError, OSError)


@app.command("run", epilog=EXAMPLES)
def run(
    tasks: str = typer.Option("digits,seeds,dqm", "--tasks", help="Comma-separated tasks: digits, seeds, dqm."),
    quick: bool = typer.Option(False, "--quick", help="Tiny sizes: a smoke test of the whole pipeline."),
    out: Path = typer.Option(Path("reports/distill"), "--out", help="Folder for results.json and the plots."),
    device: str = typer.Option("cpu", "--device", help="torch device for training: cpu or cuda."),
) -> None:
    """Train every student of each task (float32, W8A8 ... W2A4, mixed), measure accuracy, BOPs and
    latency, and print the Pareto table per task; writes OUT/results.json and OUT/pareto_<task>.png."""
    from dataclasses import replace

    from rich.console import Console

    from reference.distill.experiment import ExperimentConfig, quick_config, run_experiment, with_device

    console = Console()
    try:
        base = quick_config() if quick else ExperimentConfig()
        config = with_device(replace(base, tasks=parse_tasks(tasks)), check_device(device))
        if out.exists() and not out.is_dir():
            raise OSError(f"--out {out} is a file, not a folder.")
        with console.status("starting") as status:
            document = run_experiment(config, out, step=status.update)
    except _errors() as exc:
        _fail(str(exc))
    for name, result in document["tasks"].items():
        console.print(pareto_table(name, result))
        for line in _target_lines(result):
            console.print(line, highlight=False)
    if not document["cuda_available"]:
        console.print("GPU latency skipped: CUDA is not available on this machine.")
    console.print(f"results and plots in {out}")


def register(root: typer.Typer) -> None:
    """Add the ``distill`` command group to a typer app."""
    root.add_typer(app, name="distill")
