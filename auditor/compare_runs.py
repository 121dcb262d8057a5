"""``hepaudit compare OLD.json NEW.json``: runtime and energy regressions between two run reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from auditor.errors import UserError
from auditor.perf_gate import PerfFinding, PerfLimits, compare_runs

_STYLE = {"regression": "bold red", "warning": "yellow", "improvement": "green", "unchanged": ""}


def _load(path: Path) -> dict[str, Any]:
    from auditor.render.json_report import load

    data = load(path)
    if data["schema"] != "hepaudit.run":
        kind = "an audit" if data["schema"] == "hepaudit.audit" else "a history"
        raise UserError(f"{path} is {kind} report; compare takes two `hepaudit run` reports.")
    return data


def compare_files(old: Path, new: Path, limits: PerfLimits) -> list[PerfFinding]:
    findings = compare_runs(_load(old), _load(new), limits)
    if not findings:
        raise UserError(f"{old} and {new} have no measured stage in common (or no samples: reports before "
                        "samples were kept cannot be compared).")
    return findings


def render(findings: list[PerfFinding], limits: PerfLimits, console: Console) -> None:
    table = Table(title=f"Runtime and energy against the baseline (regression: over x{limits.ratio:g} and "
                        f"Mann-Whitney p < {limits.alpha:g}, >= {limits.min_samples} samples a side)",
                  box=box.SIMPLE_HEAVY, title_justify="left")
    for name in ("Chain / stage", "Device", "Quantity", "Old median", "New median", "Ratio", "p", "Verdict"):
        table.add_column(name, justify="left" if name in ("Chain / stage", "Device", "Quantity", "Verdict") else "right")
    for f in sorted(findings, key=lambda f: (-(f.verdict == "regression"), -(f.verdict == "warning"), -f.ratio)):
        table.add_row(f"{f.chain} / {f.stage}", f.device, f.quantity, f"{f.old:.4g}", f"{f.new:.4g}", f"{f.ratio:.3f}",
                      "–" if f.p_value is None else f"{f.p_value:.2g}", Text(f"{f.verdict}: {f.reason}", style=_STYLE[f.verdict]))
    console.print(table)
