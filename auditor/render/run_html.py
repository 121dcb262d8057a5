"""A self-contained HTML page of a run report: tables and inline SVG plots (matplotlib)."""

from __future__ import annotations

import html
import io
from typing import Any

from auditor.render import run_tables
from auditor.render.cluster_text import chain_title, cluster_lines

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right}
th:first-child,td:first-child,td:nth-child(2){text-align:left}
th{background:#f3f5f7}
.note{color:#666;font-style:italic}
figure{display:inline-block;margin:0 1em 1em 0}
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _series(chain: dict[str, Any], key: str) -> dict[str, list[tuple[int, float, float, float, bool]]]:
    """Per device: (stage index, value, lower error, upper error, estimated) of ``key``."""
    series: dict[str, list[tuple[int, float, float, float, bool]]] = {}
    for index, stage in enumerate(chain["stages"]):
        for device, data in stage["devices"].items():
            value = _value(data, key)
            if value is None:
                continue
            centre = value["value"]
            low, high = value.get("low", centre), value.get("high", centre)
            series.setdefault(device, []).append((index, centre, centre - low, high - centre,
                                                  bool(value.get("estimated"))))
    return series


def _bars(chain: dict[str, Any], key: str, ylabel: str) -> str | None:
    """Grouped bars per stage and device of ``key`` (``time`` or energy per event) with intervals;
    estimated values are hatched."""
    series = _series(chain, key)
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(series)
    for offset, (device, points) in enumerate(sorted(series.items())):
        estimated = any(p[4] for p in points)
        axis.bar([p[0] + offset * width for p in points], [p[1] for p in points], width,
                 yerr=[[p[2] for p in points], [p[3] for p in points]], capsize=2,
                 label=device.upper() + (" (estimated)" if estimated else ""), hatch="//" if estimated else None)
    names = [stage["name"] for stage in chain["stages"]]
    axis.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(names))], names, rotation=20)
    axis.set_yscale("log")
    axis.set_ylabel(ylabel)
    axis.legend()
    return _svg(figure)


def _value(device: dict[str, Any], key: str) -> dict[str, Any] | None:
    if device.get("status") != "measured":
        return None
    if key == "time":
        return device["time"]
    energy = device.get("energy") or {}
    return energy.get("net_per_event") or energy.get("gross_per_event")


def _pareto(placement: dict[str, Any]) -> str | None:
    front = placement.get("pareto_front") or []
    if not front:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.2))
    others = placement.get("placements") or []
    if others:
        axis.scatter([p["latency_s"] for p in others], [p["energy_j"] for p in others], s=12, color="0.7",
                     label="every placement")
    xs = [p["latency_s"] for p in front]
    ys = [p["energy_j"] for p in front]
    axis.plot(xs, ys, "o-", label="not dominated")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.legend(fontsize=7)
    for point in front:
        axis.annotate(point.get("label", ""), (point["latency_s"], point["energy_j"]), fontsize=7)
    axis.set_xlabel("time per event (s)")
    axis.set_ylabel("energy per event (J)")
    axis.set_title("Placements not dominated in time and energy")
    return _svg(figure)


def _placement(placement: dict[str, Any]) -> str:
    from auditor.render.placement_text import OBJECTIVE_NAMES, chain_drawing, devices_text, gain_text, value_text

    if placement.get("status") != "solved":
        return f"<h3>Placement</h3><p>Not available: {html.escape(str(placement.get('reason')))}.</p>"
    rows = []
    for objective, result in placement["results"].items():
        chosen = result["placement"]
        gains = result["gains"]
        rows.append([OBJECTIVE_NAMES[objective], devices_text(chosen),
                     value_text(objective, result["value"]) + (" (estimated)" if result["estimated"] else ""),
                     gain_text(gains.get("all-cpu", {}), chosen), gain_text(gains.get("all-gpu", {}), chosen),
                     result["verdict"]])
    rows += [[OBJECTIVE_NAMES.get(o, o), "–", "–", "–", "–", reason] for o, reason in placement.get("unavailable", {}).items()]
    parts = ["<h3>Placement</h3>",
             _table(["Objective", "Placement", "Value", "vs all-CPU", "vs all-GPU", "Verdict"], rows)]
    latency = placement["results"].get("latency")
    if latency:
        parts.append(f"<p>Fastest: <code>{html.escape(chain_drawing(latency['figures'], placement['stages']))}</code></p>")
        parts += [f"<p class='note'>Excluded: {html.escape(e['reason'])}</p>" for e in latency["excluded"]]
    return "\n".join(parts)


def _job_parts(report: dict[str, Any]) -> list[str]:
    """Work units of a scale-out job, and a sweep's scaling tables and plots (files beside the page)."""
    lines = cluster_lines(report)
    parts = ["<h2>Work units</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"] \
        if lines else []
    sweep = report.get("sweep")
    if sweep:
        from auditor.render.sweep import markdown_lines

        rows = [line for line in markdown_lines(sweep) if line.startswith("|") and "---" not in line]
        parts.append("<h2>Sweep: time per event versus the grid parameters</h2>")
        parts.append("<table>" + "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>"
                                                           for c in row.strip("|").split("|")) + "</tr>"
                                         for row in rows) + "</table>")
        parts += [f"<figure><img src='{html.escape(name)}' alt='scaling plot'></figure>" for name in sweep.get("plots", [])]
    return parts


def render(report: dict[str, Any]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>hepaudit run {html.escape(report['created'])}</title>",
             f"<style>{STYLE}</style></head><body><h1>hepaudit run</h1><ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in run_tables.environment_lines(report)]
    parts.append("</ul>")
    for chain in report["chains"]:
        parts.append(f"<h2>Chain {html.escape(chain_title(chain))}</h2><p>{html.escape(chain['description'])}. "
                     f"{chain['events']} events, parameters {html.escape(str(chain['parameters']))}; "
                     f"GPU: {html.escape(str(chain['devices']['gpu']))}.</p>")
        parts.append(_table(run_tables.STAGE_HEADER, run_tables.stage_rows(chain)))
        for key, label in (("time", "time per event (s)"), ("energy", "energy per event (J)")):
            svg = _bars(chain, key, label)
            if svg:
                parts.append(f"<figure>{svg}</figure>")
        if chain.get("transfers"):
            parts.append("<h3>Transfers</h3>" + _table(run_tables.TRANSFER_HEADER, run_tables.transfer_rows(chain)))
        if chain["ranking"]["act_first"]:
            parts.append(f"<h3>Where to act first</h3><p class='note'>{html.escape(chain['ranking']['method'])}</p>")
            parts.append(_table(run_tables.ACT_HEADER, run_tables.act_rows(chain)))
        placement = chain.get("placement")
        if placement:
            parts.append(_placement(placement))
            svg = _pareto(placement)
            if svg:
                parts.append(f"<figure>{svg}</figure>")
        if chain["ranking"].get("energy_estimated"):
            parts.append("<p class='note'>Energy marked ~ is estimated (codecarbon model), not measured.</p>")
    parts += _job_parts(report)
    if report.get("interrupted"):
        parts.append("<p><strong>Interrupted</strong>: the report holds what was measured until then.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
