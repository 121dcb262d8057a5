"""Placement optimiser: exact against brute force on random chains and DAGs, and hand-built cases."""

from __future__ import annotations

import functools
import json
import random
import time

import pytest

from auditor.measurement import Measurement
from auditor.placement import (HOST, OBJECTIVES, Edge, Implementation, PlacementError, PlacementProblem,
                               Resources, Stage, TransferCost, TransferModel, brute_force, evaluate,
                               optimise, pareto_front, plan, summary)


def m(value: float, unit: str = "s", spread: float = 0.0, method: str = "perf-counter") -> Measurement:
    return Measurement(value, unit, method, samples=20, low=value * (1 - spread), high=value * (1 + spread),
                       interval="ci95")


def impl(time_s: float, energy_j: float | None = None, spread: float = 0.0, **kwargs) -> Implementation:
    energy = None if energy_j is None else m(energy_j, "J", spread)
    return Implementation(m(time_s, "s", spread), energy, **kwargs)


def cost(src: str, dst: str, product: str, time_s: float, energy_j: float = 0.0, spread: float = 0.0):
    return TransferCost(src, dst, product, m(time_s, "s", spread), m(energy_j, "J", spread))


# ------------------------------------------------------------------------------- random problems


def _random_implementations(rng: random.Random, name: str) -> Stage:
    impls = {"cpu": impl(rng.uniform(1, 10), rng.uniform(1, 10), rng.uniform(0, 0.2),
                         cpu_cores=rng.choice([1, 1, 2]))}
    if rng.random() < 0.85:
        impls["gpu"] = impl(rng.uniform(0.1, 6), rng.uniform(0.5, 12), rng.uniform(0, 0.2),
                            agreement=rng.choice([None, 1.0, 0.995, 0.97]))
    return Stage(name, impls)


def _random_edges(rng: random.Random, names: list[str], dag: bool) -> list[Edge]:
    """A chain host -> s0 -> ... -> host, and for a DAG skip edges, fan-out and extra outputs."""
    size = lambda: rng.choice([0.0, 1e3, 1e6, 4e6])  # noqa: E731
    sizes = {f"in{k}": size() for k in range(2)} | {f"p{i}": size() for i in range(len(names))}
    edges = [Edge(HOST, names[0], "in0", sizes["in0"])]
    edges += [Edge(a, b, f"p{i}", sizes[f"p{i}"]) for i, (a, b) in enumerate(zip(names, names[1:]))]
    edges.append(Edge(names[-1], HOST, f"p{len(names) - 1}", sizes[f"p{len(names) - 1}"]))
    return edges + _extra_edges(rng, names, sizes, edges) if dag else edges


def _extra_edges(rng: random.Random, names: list[str], sizes: dict[str, float], edges: list[Edge]) -> list[Edge]:
    """Skip edges, fan-out of a product to several consumers, extra inputs and outputs."""
    pairs = {(e.producer, e.consumer) for e in edges}
    extra = []
    for _ in range(rng.randint(1, len(names) + 1)):
        i, j = sorted(rng.sample(range(-1, len(names) + 1), 2))
        producer = HOST if i < 0 else names[i]
        consumer = HOST if j >= len(names) else names[j]
        product = "in1" if i < 0 else f"p{i}"
        if (producer, consumer) not in pairs and (producer, consumer) != (HOST, HOST):
            pairs.add((producer, consumer))
            extra.append(Edge(producer, consumer, product, sizes[product]))
    return extra


def random_problem(seed: int, dag: bool = False, stages: int | None = None) -> PlacementProblem:
    rng = random.Random(seed)
    names = [f"s{i}" for i in range(stages or rng.randint(1, 10))]
    edges = _random_edges(rng, names, dag)
    measured = [cost(src, dst, e.product, rng.uniform(0, 3), rng.uniform(0, 3), rng.uniform(0, 0.3))
                for e in edges for src, dst in (("cpu", "gpu"), ("gpu", "cpu")) if rng.random() < 0.5]
    unique = {(t.src, t.dst, t.product): t for t in measured}
    models = [TransferModel("cpu", "gpu", rng.uniform(0, 1), 2e6, 1e-6, 0.3),
              TransferModel("gpu", "cpu", rng.uniform(0, 1), 3e6, 1e-6, 0.3)]
    return PlacementProblem([_random_implementations(rng, n) for n in names], edges,
                            tuple(unique.values()), models, Resources(cpu_cores=rng.choice([1, 2, 8])))


def non_dominated(figures) -> set[tuple]:
    points = [(f.latency.value, f.energy.value) for f in figures]
    return {tuple(f.placement.values()) for f, p in zip(figures, points)
            if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)}


def tied_by_brute_force(every, objective: str) -> set[tuple]:
    best = every[0].objective(objective)
    low, high = best.bounds
    return {tuple(f.placement.values()) for f in every[1:]
            if f.objective(objective).bounds[0] <= high and f.objective(objective).bounds[1] >= low}


CASES = [(seed, dag) for dag in (False, True) for seed in range(40)]


@functools.cache
def solved(seed: int, dag: bool):
    """A random problem and every placement's figures (brute force), computed once per test run."""
    problem = random_problem(seed, dag)
    return problem, brute_force(problem, "latency")


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_optimum_runner_up_and_ties_equal_brute_force(objective: str) -> None:
    for seed, dag in CASES:
        problem, every = solved(seed, dag)
        every = sorted(every, key=lambda f: f.objective(objective).value)
        result = optimise(problem, objective)
        values = [f.objective(objective).value for f in every]
        assert result.exact and result.value.value == pytest.approx(values[0], rel=1e-12), (seed, dag)
        runner_up = result.runner_up and result.runner_up.objective(objective).value
        assert runner_up == (pytest.approx(values[1], rel=1e-12) if len(values) > 1 else None)
        check_ties(result, every, objective)


def check_ties(result, every, objective: str) -> None:
    expected = tied_by_brute_force(every, objective)
    shown = {tuple(f.placement.values()) for f in result.tied}
    if result.tied_truncated:
        assert shown < expected and len(shown) == 10
    else:
        assert shown == expected
    assert result.distinguishable == (not expected)
    if len(every) == 1:
        assert result.runner_up is None and result.verdict == "only one placement"


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_brute_force_ranks_every_placement_by_the_objective(objective: str) -> None:
    problem, every = solved(5, True)
    ranked = brute_force(problem, objective)
    assert sorted(tuple(f.placement.values()) for f in ranked) == sorted(tuple(f.placement.values()) for f in every)
    values = [f.objective(objective).value for f in ranked]
    assert values == sorted(values)
    with pytest.raises(PlacementError, match="brute-force limit of 2"):
        brute_force(problem, objective, limit=2)


def test_pareto_front_equals_brute_force_non_dominated_set() -> None:
    for seed, dag in CASES:
        problem, every = solved(seed, dag)
        front = pareto_front(problem)
        assert {tuple(f.placement.values()) for f in front} == non_dominated(every)
        latencies = [f.latency.value for f in front]
        assert latencies == sorted(latencies)
        energies = [f.energy.value for f in front]
        assert energies == sorted(energies, reverse=True)


def _viterbi_latency(problem: PlacementProblem) -> float:
    """Independent two-state shortest path for a pure chain host -> s0 -> ... -> host."""
    best = {"cpu": 0.0}
    links = {(t.src, t.dst, t.product): t.time_s.value for t in problem.transfers}
    for stage, edge in zip(problem.stages, problem.edges):
        best = {d: min(c + (links[s, d, edge.product] if s != d else 0.0) for s, c in best.items())
                + impl_.time_s.value for d, impl_ in stage.implementations.items()}
    out = problem.edges[-1].product
    return min(c + (links[d, "cpu", out] if d != "cpu" else 0.0) for d, c in best.items())


def long_chain(count: int, **problem_args) -> PlacementProblem:
    rng = random.Random(7)
    names = [f"s{i}" for i in range(count)]
    edges = [Edge(HOST, names[0], "p-1")] + [Edge(a, b, f"p{i}") for i, (a, b) in enumerate(zip(names, names[1:]))]
    edges.append(Edge(names[-1], HOST, f"p{count - 1}"))
    stages = [Stage(n, {"cpu": impl(rng.uniform(1, 10), rng.uniform(1, 10), 0.05),
                        "gpu": impl(rng.uniform(0.1, 6), rng.uniform(0.5, 12), 0.05)}) for n in names]
    transfers = [cost(s, d, e.product, rng.uniform(0, 3), rng.uniform(0, 3), 0.1)
                 for e in edges for s, d in (("cpu", "gpu"), ("gpu", "cpu"))]
    return PlacementProblem(stages, edges, transfers, resources=Resources(cpu_cores=4), **problem_args)


def test_long_linear_chain_is_exact_and_fast() -> None:
    problem = long_chain(300)
    start = time.perf_counter()
    latency, energy = optimise(problem, "latency"), optimise(problem, "energy")
    assert time.perf_counter() - start < 3
    assert latency.exact and energy.exact
    assert latency.value.value == pytest.approx(_viterbi_latency(problem), rel=1e-12)
    for result in (latency, energy):
        assert all(gain.ratio.value >= 1 for gain in result.gains)
        assert result.tied_truncated and len(result.tied) == 10  # 300 stages at +/-5 %: many ties


def test_edp_and_throughput_beyond_the_label_budget_return_the_best_found_with_its_gap() -> None:
    small = long_chain(40, max_labels=1)
    for objective in ("edp", "throughput"):
        result = optimise(small, objective)
        assert not result.exact and "not proven optimal" in result.notes[0]
        gap = float(result.notes[0].split("at most ")[1].split("%")[0]) / 100
        exact = optimise(long_chain(40), objective)
        assert exact.exact
        assert exact.value.value <= result.value.value <= exact.value.value * (1 + gap) * (1 + 1e-9)
        assert result.to_json()["exact"] is False
    with pytest.raises(PlacementError, match="max_labels=1"):
        pareto_front(small)
    assert "pareto" in plan(small, ("latency",)).unavailable


# ----------------------------------------------------------------------------- hand-built cases


def two_stage(gpu_time: float, transfer_s: float, **problem_args) -> PlacementProblem:
    stages = [Stage("a", {"cpu": impl(1.0, 1.0), "gpu": impl(gpu_time, 1.0)}),
              Stage("b", {"cpu": impl(1.0, 1.0), "gpu": impl(gpu_time, 1.0)})]
    edges = [Edge(HOST, "a", "raw", 1e6), Edge("a", "b", "mid", 1e6), Edge("b", HOST, "out", 1e6)]
    transfers = [cost(s, d, p, transfer_s, 0.1) for p in ("raw", "mid", "out")
                 for s, d in (("cpu", "gpu"), ("gpu", "cpu"))]
    return PlacementProblem(stages, edges, transfers, **problem_args)


def test_faster_gpu_dominated_by_transfers_stays_on_cpu() -> None:
    # GPU saves 0.6 s per stage, but getting there and back costs 2 x 0.8 s.
    result = optimise(two_stage(gpu_time=0.4, transfer_s=0.8), "latency")
    assert dict(result.placement) == {"a": "cpu", "b": "cpu"}
    assert result.value.value == pytest.approx(2.0)
    assert result.best.transfers == ()
    gains = {g.baseline: g for g in result.gains}
    assert gains["all-gpu"].ratio.value == pytest.approx((0.4 * 2 + 1.6) / 2.0)
    assert gains["all-cpu"].ratio.value == pytest.approx(1.0)


def test_cheap_transfers_move_everything_to_the_gpu() -> None:
    result = optimise(two_stage(gpu_time=0.4, transfer_s=0.1), "latency")
    assert dict(result.placement) == {"a": "gpu", "b": "gpu"}
    assert result.value.value == pytest.approx(0.8 + 0.2)
    moved = {(t.product, t.direction) for t in result.best.transfers}
    assert moved == {("raw", "cpu->gpu"), ("out", "gpu->cpu")}  # nothing at the a -> b boundary
    assert {g.baseline: g.ratio.value for g in result.gains}["all-cpu"] == pytest.approx(2.0)


def test_transfers_only_at_device_changes_including_host_source_and_sink() -> None:
    stages = [Stage(n, {"cpu": impl(1.0, 1.0), "gpu": impl(0.5, 1.0)}) for n in ("a", "b", "c")]
    edges = [Edge(HOST, "a", "raw", 100), Edge(HOST, "c", "raw", 100), Edge("a", "b", "x", 10),
             Edge("a", "c", "x", 10), Edge("b", "c", "y", 1), Edge("b", HOST, "y", 1), Edge("c", HOST, "z", 1)]
    problem = PlacementProblem(stages, edges, transfer_models=[TransferModel("cpu", "gpu", 0.01, 100.0),
                                                               TransferModel("gpu", "cpu", 0.02, 100.0)])
    moved = lambda placement: sorted((t.product, t.direction, t.consumers)  # noqa: E731
                                     for t in evaluate(problem, placement).transfers)
    assert moved({"a": "cpu", "b": "cpu", "c": "cpu"}) == []
    assert moved({"a": "gpu", "b": "gpu", "c": "gpu"}) == [  # raw once for a and c; y once back
        ("raw", "cpu->gpu", ("a", "c")), ("y", "gpu->cpu", ("host",)), ("z", "gpu->cpu", ("host",))]
    assert moved({"a": "cpu", "b": "gpu", "c": "cpu"}) == [("x", "cpu->gpu", ("b",)), ("y", "gpu->cpu", ("c", "host"))]
    figures = evaluate(problem, {"a": "gpu", "b": "gpu", "c": "gpu"})
    assert figures.latency.value == pytest.approx(1.5 + (0.01 + 1.0) + 2 * (0.02 + 0.01))
    assert figures.latency.estimated and all(t.modelled for t in figures.transfers)
    assert figures.energy is None and figures.edp is None  # models without energy: missing, not zero
    assert optimise(problem, "latency").value.value == pytest.approx(brute_force(problem, "latency")[0].latency.value)


def test_exclusion_by_agreement_is_explained() -> None:
    stages = [Stage("a", {"cpu": impl(1.0, 1.0), "gpu": impl(0.1, 0.1, agreement=0.999)}),
              Stage("b", {"cpu": impl(1.0, 1.0), "gpu": impl(0.1, 0.1, agreement=0.95)})]
    edges = [Edge(HOST, "a", "raw"), Edge("a", "b", "x"), Edge("b", HOST, "y")]
    models = [TransferModel("cpu", "gpu", 0.0, 1.0, 0.0), TransferModel("gpu", "cpu", 0.0, 1.0, 0.0)]
    result = optimise(PlacementProblem(stages, edges, transfer_models=models), "energy")
    assert dict(result.placement) == {"a": "gpu", "b": "cpu"}
    (excluded,) = result.excluded
    assert (excluded.stage, excluded.device) == ("b", "gpu")
    assert "95.00%" in excluded.reason and "99.00%" in excluded.reason
    gains = {g.baseline: g for g in result.gains}
    assert not gains["all-gpu"].available and "'b'" in gains["all-gpu"].reason
    assert gains["all-cpu"].ratio.value == pytest.approx(2.0 / 1.1)
    assert "95.00%" in summary(result)
    lenient = optimise(PlacementProblem(stages, edges, transfer_models=models, min_agreement=0.9), "energy")
    assert dict(lenient.placement) == {"a": "gpu", "b": "gpu"} and lenient.excluded == ()
    with pytest.raises(PlacementError, match="every implementation of 'b' is excluded"):
        optimise(PlacementProblem([stages[0], Stage("b", {"gpu": stages[1].implementations["gpu"]})],
                                  edges, transfer_models=models), "latency")


def test_gain_not_available_without_an_implementation() -> None:
    stages = [Stage("a", {"cpu": impl(1.0)}), Stage("b", {"cpu": impl(1.0), "gpu": impl(0.2)})]
    edges = [Edge(HOST, "a", "raw"), Edge("a", "b", "x"), Edge("b", HOST, "y")]
    result = optimise(PlacementProblem(stages, edges, [cost("cpu", "gpu", "x", 0.1), cost("gpu", "cpu", "y", 0.1)]))
    assert dict(result.placement) == {"a": "cpu", "b": "gpu"}
    gain = {g.baseline: g for g in result.gains}["all-gpu"]
    assert not gain.available and gain.reason == "not available: no gpu implementation of 'a'"
    assert result.to_json()["gains"]["all-gpu"] == {"baseline": "all-gpu", "available": False,
                                                     "reason": gain.reason}


def test_overlapping_intervals_are_not_distinguishable() -> None:
    wide = two_stage(gpu_time=0.95, transfer_s=0.0)  # GPU 5 % faster, intervals of +/- 0 %
    assert optimise(wide, "latency").distinguishable
    stages = [Stage(s.name, {d: impl(i.time_s.value, 1.0, spread=0.1) for d, i in s.implementations.items()})
              for s in wide.stages]
    noisy = PlacementProblem(stages, wide.edges, wide.transfers)
    result = optimise(noisy, "latency")
    assert dict(result.placement) == {"a": "gpu", "b": "gpu"}
    assert not result.distinguishable and result.verdict == "not distinguishable from 3 other placement(s)"
    assert not result.value.distinguishable_from(result.runner_up.latency)
    assert {tuple(f.placement.values()) for f in result.tied} == {("cpu", "cpu"), ("cpu", "gpu"), ("gpu", "cpu")}
    assert {g.baseline: g.distinguishable for g in result.gains}["all-cpu"] is False
    assert result.to_json()["verdict"].startswith("not distinguishable")
    capped = optimise(noisy, "latency", tie_limit=2)
    assert capped.tied_truncated and len(capped.tied) == 2 and "at least 2" in capped.verdict


def test_throughput_uses_cpu_cores_and_busiest_resource() -> None:
    # GPU 4x faster per event, but with 8 cores the CPU pipeline sustains 2x the GPU's rate.
    stages = [Stage("a", {"cpu": impl(4.0), "gpu": impl(1.0)})]
    edges = [Edge(HOST, "a", "raw"), Edge("a", HOST, "out")]
    transfers = [cost("cpu", "gpu", "raw", 0.3), cost("gpu", "cpu", "out", 0.2)]
    problem = PlacementProblem(stages, edges, transfers, resources=Resources(cpu_cores=8))
    assert dict(optimise(problem, "latency").placement) == {"a": "gpu"}
    result = optimise(problem, "throughput")
    assert dict(result.placement) == {"a": "cpu"}
    assert result.value.value == pytest.approx(0.5) and result.best.throughput.value == pytest.approx(2.0)
    gpu = evaluate(problem, {"a": "gpu"})
    assert gpu.bottleneck == "gpu" and gpu.load.value == pytest.approx(1.0)
    assert gpu.loads["copy:cpu->gpu"].value == pytest.approx(0.3)
    threaded = PlacementProblem([Stage("a", {"cpu": impl(4.0, cpu_cores=8), "gpu": impl(1.0)})], edges,
                                transfers, resources=Resources(cpu_cores=8))
    assert dict(optimise(threaded, "throughput").placement) == {"a": "gpu"}  # 8 threads: 4 core-s per event


def test_copy_engine_can_be_the_bottleneck() -> None:
    # GPU: 0.5 s compute + 2.1 s copies = 2.6 s latency (< 3 s on the CPU), but its input copy engine
    # is busy 2 s per event, while two CPU cores sustain one event per 1.5 s.
    stages = [Stage("a", {"cpu": impl(3.0), "gpu": impl(0.5)})]
    edges = [Edge(HOST, "a", "raw"), Edge("a", HOST, "out")]
    problem = PlacementProblem(stages, edges, [cost("cpu", "gpu", "raw", 2.0), cost("gpu", "cpu", "out", 0.1)],
                               resources=Resources(cpu_cores=2))
    figures = evaluate(problem, {"a": "gpu"})
    assert figures.bottleneck == "copy:cpu->gpu" and figures.load.value == pytest.approx(2.0)
    latency = optimise(problem, "latency")
    assert dict(latency.placement) == {"a": "gpu"} and latency.value.value == pytest.approx(2.6)
    throughput = optimise(problem, "throughput")
    assert dict(throughput.placement) == {"a": "cpu"} and throughput.value.value == pytest.approx(1.5)
    assert {g.baseline: g.ratio.value for g in throughput.gains}["all-gpu"] == pytest.approx(2.0 / 1.5)


def test_edp_is_optimised_exactly() -> None:
    # latency optimum (gpu: 1 s, 9 J -> 9), energy optimum (cpu: 4 s, 2 J -> 8) and a middle (2 s, 3 J -> 6).
    stages = [Stage("a", {"cpu": impl(4.0, 2.0), "gpu": impl(1.0, 9.0), "fpga": impl(2.0, 3.0)})]
    edges = [Edge(HOST, "a", "raw")]
    transfers = [cost("cpu", d, "raw", 0.0) for d in ("gpu", "fpga")]
    problem = PlacementProblem(stages, edges, transfers)
    assert dict(optimise(problem, "latency").placement) == {"a": "gpu"}
    assert dict(optimise(problem, "energy").placement) == {"a": "cpu"}
    result = optimise(problem, "edp")
    assert dict(result.placement) == {"a": "fpga"} and result.value.value == pytest.approx(6.0)
    assert [dict(f.placement)["a"] for f in pareto_front(problem)] == ["gpu", "fpga", "cpu"]
    assert {g.baseline for g in result.gains} == {"all-cpu", "all-fpga", "all-gpu"}


def test_missing_energy_is_an_error_never_zero() -> None:
    stages = [Stage("a", {"cpu": impl(1.0, 1.0), "gpu": impl(0.5, None)})]
    problem = PlacementProblem(stages, [Edge(HOST, "a", "raw")], [cost("cpu", "gpu", "raw", 0.1)])
    for objective in ("energy", "edp"):
        with pytest.raises(PlacementError, match="gpu implementation of 'a'.*never taken as zero"):
            optimise(problem, objective)
    with pytest.raises(PlacementError, match="Pareto front"):
        pareto_front(problem)
    with pytest.raises(PlacementError, match="never taken as zero"):
        brute_force(problem, "energy")
    result = plan(problem)
    assert set(result.results) == {"latency", "throughput"} and set(result.unavailable) == {"energy", "edp", "pareto"}
    assert "Pareto front" in result.unavailable["pareto"]
    assert result.pareto is None
    assert result.results["latency"].best.energy is None
    json.dumps(result.to_json(), allow_nan=False)


def test_estimated_energy_is_said_so() -> None:
    estimate = Measurement(2.0, "J", "codecarbon-estimate")
    stages = [Stage("a", {"cpu": Implementation(m(1.0), estimate), "gpu": impl(0.5, 5.0)})]
    problem = PlacementProblem(stages, [Edge(HOST, "a", "raw")], [cost("cpu", "gpu", "raw", 0.1, 0.1)])
    result = optimise(problem, "energy")
    assert dict(result.placement) == {"a": "cpu"} and result.estimated and result.value.estimated
    assert any("estimated" in note and "cpu implementation of 'a'" in note for note in result.notes)
    assert "(estimated)" in summary(result)
    assert not optimise(problem, "latency").estimated


def test_units_are_normalised() -> None:
    stages = [Stage("a", {"cpu": Implementation(m(3.0, "ms"), m(2.0, "mJ")),
                          "gpu": Implementation(m(1000.0, "us"), m(0.004, "J"))})]
    problem = PlacementProblem(stages, [Edge(HOST, "a", "raw")], [cost("cpu", "gpu", "raw", 0.001, 0.001)])
    assert optimise(problem, "latency").value.value == pytest.approx(0.002)
    assert optimise(problem, "energy").value.value == pytest.approx(0.002)
    bad = PlacementProblem([Stage("a", {"cpu": Implementation(m(1.0, "min"))})], [])
    with pytest.raises(PlacementError, match="'min'"):
        optimise(bad)


@pytest.mark.parametrize("problem, message", [
    (PlacementProblem([], []), "no stages"),
    (PlacementProblem([Stage("a", {"cpu": impl(1.0)})] * 2, []), "unique"),
    (PlacementProblem([Stage("a", {"cpu": impl(1.0)}), Stage("b", {"cpu": impl(1.0)})], [Edge("b", "a", "x")]),
     "topological order"),
    (PlacementProblem([Stage("a", {"cpu": impl(1.0)})], [Edge(HOST, "z", "x")]), "unknown stage 'z'"),
    (PlacementProblem([Stage("a", {"cpu": impl(1.0), "gpu": impl(1.0)})], [Edge(HOST, "a", "x")]),
     "no measured or modelled transfer of 'x' cpu->gpu"),
    (PlacementProblem([Stage("a", {"cpu": impl(1.0, agreement=1.5)})], []), r"\[0, 1\]"),
    (PlacementProblem([Stage("a", {"cpu": impl(0.0)})], []), "must be positive"),
])
def test_malformed_problems_give_one_clear_error(problem: PlacementProblem, message: str) -> None:
    with pytest.raises(PlacementError, match=message):
        optimise(problem)


def test_unknown_objective_and_bad_placement() -> None:
    problem = two_stage(0.5, 0.1)
    with pytest.raises(PlacementError, match="unknown objective"):
        optimise(problem, "cost")
    with pytest.raises(PlacementError, match="cannot run on 'tpu'"):
        evaluate(problem, {"a": "tpu", "b": "cpu"})


def test_wide_dag_beyond_the_state_limit_is_refused() -> None:
    # Every stage feeds the last one: all ten products stay open, 2^10 states.
    names = [f"s{i}" for i in range(11)]
    stages = [Stage(n, {"cpu": impl(1.0), "gpu": impl(0.5)}) for n in names]
    edges = [Edge(n, "s10", f"p{i}") for i, n in enumerate(names[:-1])]
    models = [TransferModel("cpu", "gpu", 0.1, 1.0), TransferModel("gpu", "cpu", 0.1, 1.0)]
    with pytest.raises(PlacementError, match="max_states=256"):
        optimise(PlacementProblem(stages, edges, transfer_models=models, max_states=256))
    result = optimise(PlacementProblem(stages, edges, transfer_models=models))
    assert result.value.value == pytest.approx(brute_force(PlacementProblem(stages, edges, transfer_models=models),
                                                           "latency")[0].latency.value)


def test_json_is_complete_and_strict() -> None:
    data = plan(random_problem(3, dag=True, stages=6)).to_json()
    text = json.dumps(data, allow_nan=False)
    assert "Infinity" not in text and "NaN" not in text
    assert set(data["results"]) == set(OBJECTIVES) and len(data["pareto"]) >= 1
    latency = data["results"]["latency"]
    assert {"placement", "value", "figures", "runner_up", "distinguishable", "verdict", "tied", "gains",
            "excluded", "unchecked", "notes", "estimated"} <= set(latency)
    assert latency["value"]["interval"] == "propagated" and latency["value"]["method"] == "derived"
    (transfer, _) = evaluate(two_stage(0.5, 0.1), {"a": "gpu", "b": "gpu"}).to_json()["transfers"]
    assert transfer == {"producer": "host", "product": "raw", "direction": "cpu->gpu", "consumers": ["a"],
                        "bytes_per_event": 1e6, "time_s": m(0.1).to_json(), "energy_j": m(0.1, "J").to_json(),
                        "modelled": False}
