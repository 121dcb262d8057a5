"""Markdown rendering of a run report."""

from __future__ import annotations

from typing import Any

from auditor.render import run_tables
from auditor.render.cluster_text import chain_title, cluster_lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def clean(cell: str) -> str:
        return str(cell).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _job_lines(report: dict[str, Any]) -> list[str]:
    """The work units of a scale-out job and a sweep's scaling, when the report has them."""
    from auditor.render.sweep import markdown_lines

    cluster = cluster_lines(report)
    lines = ["### Work units", ""] + [f"- {line}" for line in cluster] + [""] if cluster else []
    return lines + (markdown_lines(report["sweep"]) if report.get("sweep") else [])


def render(report: dict[str, Any]) -> str:
    lines = ["## hepaudit run", ""] + [f"- {line}" for line in run_tables.environment_lines(report)] + [""]
    for chain in report["chains"]:
        lines += [f"### Chain `{chain_title(chain)}`", "",
                  f"{chain['description']}. {chain['events']} events, parameters {chain['parameters']}; "
                  f"GPU: {chain['devices']['gpu']}.", ""]
        lines += _table(run_tables.STAGE_HEADER, run_tables.stage_rows(chain))
        agreement = run_tables.agreement_rows(chain)
        if agreement:
            lines += ["#### Matching rates against the reference device", "",
                      "Share of reference objects that some object of the device matches within each relative "
                      "uncertainty, over the larger collection; the lowest over the events.", ""]
            lines += _table(run_tables.agreement_header(chain), agreement)
        carbon = run_tables.carbon_line(chain)
        if carbon:
            lines += [carbon, ""]
        if chain.get("transfers"):
            lines += ["#### Transfers", ""] + _table(run_tables.TRANSFER_HEADER, run_tables.transfer_rows(chain))
        if chain["ranking"]["act_first"]:
            lines += ["#### Where to act first", "", chain["ranking"]["method"] + ".", ""]
            lines += _table(run_tables.ACT_HEADER, run_tables.act_rows(chain))
        placement = chain.get("placement")
        if placement:
            from auditor.render.placement_text import placement_markdown

            lines += placement_markdown(placement)
        if chain["ranking"].get("energy_estimated"):
            lines += ["Energy values marked `~` are estimated (codecarbon model), not measured.", ""]
    lines += _job_lines(report)
    if report.get("interrupted"):
        lines += ["**Interrupted**: the report holds what was measured until then.", ""]
    return "\n".join(lines) + "\n"
