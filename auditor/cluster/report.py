"""The run report of a job: one chain result per chain, configuration and node type, the cluster's
description, and what happened to every unit (where it ran, retried, resumed, concurrent, failed)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from auditor.cluster.execute import JobOutcome
from auditor.cluster.merge import concurrency, grouped, merge_group, unit_summary
from auditor.errors import UserError


def _node_entry(node: Mapping[str, Any]) -> dict[str, Any]:
    description = node["description"]
    return {"cpu": description["cpu"], "gpu": description.get("gpu"), "hosts": list(node["hosts"]),
            "workers": len(node["workers"]), "gpu_workers": len(node["gpu_workers"]), "devices": list(node["devices"])}


def cluster_section(job: JobOutcome, cluster: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    outcomes = [job.outcomes[k] for k in cluster["units"] if k in job.outcomes]
    return {
        "scheduler": cluster["scheduler"], "workers": cluster["workers"],
        "node_types": {kind: _node_entry(node) for kind, node in cluster["node_types"].items()},
        "units": [unit_summary(o, flags, job.retried, job.resumed) for o in outcomes],
        "planned": len(cluster["units"]), "completed": len(outcomes), "failed": dict(job.failed),
        "retried": dict(job.retried), "resumed": len(job.resumed),
        "missing": [k for k in cluster["units"] if k not in job.outcomes and k not in job.failed],
        "concurrency": "units overlapping in time on one host (or one GPU) are flagged; their energy is not "
                       "attributed to the stage",
    }


def add_chain_results(report: dict[str, Any], job: JobOutcome, cluster: Mapping[str, Any],
                      placement: Callable[[Any, dict[str, Any]], dict[str, Any]] | None) -> dict[str, Any]:
    """Merge the outcomes into chain results (with quality, ranking, placement) in ``report``."""
    from auditor.registry import load_chains
    from auditor.run import finish_chain
    from auditor.stage_quality import _FileMetrics

    flags = concurrency(job.outcomes[k] for k in cluster["units"] if k in job.outcomes)
    files = _FileMetrics()
    loaded: dict[str, Any] = {}
    for (name, _, kind), outcomes in grouped(job.outcomes[k] for k in cluster["units"] if k in job.outcomes).items():
        if name not in loaded:
            chains, problems = load_chains([name])
            if not chains:
                raise UserError(f"Chain '{name}' cannot be loaded here: {'; '.join(problems)}.")
            loaded[name] = chains[0]
        result = merge_group(outcomes, flags)
        result["node_type"] = kind
        description = cluster["node_types"][kind]["description"]
        result["node"] = {"cpu": description["cpu"], "gpu": description.get("gpu")}
        report["chains"].append(finish_chain(loaded[name], result, files, placement))
    report["cluster"] = cluster_section(job, cluster, flags)
    report["cluster"]["mixed_pool"] = mixed_pools(report["chains"], loaded, report["options"]["min_agreement"])
    report["interrupted"] = job.interrupted or any(c["interrupted"] for c in report["chains"])
    return loaded


def mixed_pools(chains: list[dict[str, Any]], loaded: Mapping[str, Any], min_agreement: float) -> list[dict[str, Any]]:
    """For each chain and configuration measured on several node types, the mixed-pool placement."""
    from auditor.cluster.pool import mixed_pool

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in chains:
        groups.setdefault((result["name"], repr(sorted(result["parameters"].items()))), []).append(result)
    return [{"chain": name, "parameters": members[0]["parameters"], **mixed_pool(loaded[name], members, min_agreement)}
            for (name, _), members in groups.items() if len(members) > 1]
