"""Plain-text lines about a job's cluster (node types, units, retries, concurrency, mixed pool),
shared by the console and Markdown renderers."""

from __future__ import annotations

from typing import Any, Mapping


def _node_line(kind: str, node: Mapping[str, Any]) -> str:
    return (f"node type {kind}: {len(node['hosts'])} host(s), {node['workers']} worker(s), "
            f"{node['gpu_workers']} GPU worker(s); devices {', '.join(node['devices'])}")


def _objective_line(home: Mapping[str, Any], objective: str) -> str:
    answer = home[objective]
    if answer["status"] != "solved":
        return f"  {objective}, events arriving on {home['home']}: {answer['reason']}"
    where = ", ".join(f"{stage}→{home['devices'].get(device, device)} {device.split('@')[0].upper()}"
                      for stage, device in answer["placement"].items())
    figure = (f"{answer['events_per_s']['value']:.3g} events/s" if objective == "throughput"
              else f"{answer['value']['value']:.3g} J/event")
    return (f"  best {objective} with events arriving on {home['home']}: {figure}"
            f"{' (estimated)' if answer['estimated'] else ''}; {where}")


def _pool_lines(pool: Mapping[str, Any]) -> list[str]:
    lines = [f"mixed pool for {pool['chain']} {pool['parameters']}: one node of each of {len(pool['node_types'])} types"]
    for home in pool.get("homes", []):
        if home["status"] != "solved":
            lines.append(f"  events arriving on {home['home']}: {home['reason']}")
            continue
        lines += [_objective_line(home, objective) for objective in ("throughput", "energy")]
    if pool.get("network"):
        lines.append(f"  {pool['network']['note']}")
    return lines


def cluster_lines(report: Mapping[str, Any]) -> list[str]:
    cluster = report.get("cluster")
    if not cluster:
        return []
    lines = [f"scheduler {cluster['scheduler']}: {cluster['completed']} of {cluster['planned']} work units done on "
             f"{cluster['workers']} worker(s); {cluster['resumed']} resumed from saved results, "
             f"{len(cluster['retried'])} retried after a lost worker, {len(cluster['failed'])} failed"]
    lines += [_node_line(kind, node) for kind, node in cluster["node_types"].items()]
    lines += [f"unit {key} retried {count}× after its worker was lost" for key, count in cluster["retried"].items()]
    lines += [f"unit {key} failed: {reason}" for key, reason in cluster["failed"].items()]
    lines += [f"unit {key} was planned but never finished" for key in cluster.get("missing", [])]
    concurrent = sum(1 for unit in cluster["units"] if unit["concurrent_with"])
    if concurrent:
        lines.append(f"{concurrent} unit(s) ran beside others on one host or GPU: their timings are marked * and their "
                     "energy is not attributed to the stage")
    for pool in cluster.get("mixed_pool", []):
        lines += _pool_lines(pool)
    return lines


def chain_title(chain: Mapping[str, Any]) -> str:
    kind = chain.get("node_type")
    return f"{chain['name']} on {kind}" if kind else chain["name"]
