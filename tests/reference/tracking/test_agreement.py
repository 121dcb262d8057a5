"""traccc's CPU-GPU comparator: matching rates per tolerance for every tracking product."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from auditor.products import to_host
from reference.tracking import agreement as agreement_module
from reference.tracking.agreement import (TOLERANCES, AgreementInputError, EfficiencyCheck, Objects,
                                          compare_efficiency, compare_measurements, compare_parameters,
                                          compare_seeds, compare_spacepoints, compare_tracks, matching_rates,
                                          stage_comparators, track_efficiency, wrap_angle)
from reference.tracking.audit_chain import build_chain
from reference.tracking.ckf import Tracks
from reference.tracking.estimation import TrackParameters
from reference.tracking.performance import Selection, evaluate
from reference.tracking.seeding import Seeds
from reference.tracking.spacepoints import Measurements, Spacepoints

ALL = {label: 1.0 for label, _ in TOLERANCES}


def take_measurements(meas: Measurements, rows) -> Measurements:
    """The measurements ``rows`` (a permutation, subset or repetition) of ``meas``."""
    return replace(meas, planes=meas.planes[rows], local0=meas.local0[rows], local1=meas.local1[rows],
                   var0=meas.var0[rows], var1=meas.var1[rows], layer_index=meas.layer_index[rows],
                   hit_id=meas.hit_id[rows])


def take_tracks(tracks: Tracks, rows) -> Tracks:
    return tracks.subset(np.asarray(rows, np.int64))


def random_measurements(rng: np.random.Generator, n: int, n_modules: int = 20_000) -> Measurements:
    """``n`` measurements on random modules of 48 layers (several per module)."""
    module = rng.integers(0, n_modules, n)
    centres = rng.uniform(-1000, 1000, (n_modules, 3))
    planes = np.concatenate([centres[module], np.tile(np.eye(3).reshape(1, 9), (n, 1))], axis=1)
    return Measurements(planes, rng.uniform(-8, 8, n), rng.uniform(-30, 30, n), rng.uniform(1e-4, 3e-4, n),
                        rng.uniform(1e-4, 1e-1, n), module % 48, np.arange(1, n + 1), np.arange(n), None)


def brute_force_rates(reference: Objects, device: Objects) -> dict[str, float]:
    """The definition, object by object (for checking the windowed search)."""
    rates = {}
    for label, u in TOLERANCES:
        matched = 0
        for i in range(len(reference)):
            same_ids = np.all(device.ids == reference.ids[i], axis=1)
            a, b = reference.values[i], device.values
            difference = a - b
            difference[:, list(reference.angles)] = wrap_angle(difference[:, list(reference.angles)])
            close = np.all(np.abs(difference) <= u * (np.abs(a) + np.abs(b)) / 2, axis=1)
            matched += bool(np.any(same_ids & close))
        rates[label] = matched / max(len(reference), len(device))
    return rates


# --- the comparator itself ------------------------------------------------------------------------


def test_identical_and_permuted_collections_match_at_every_tolerance(small_result) -> None:
    meas = small_result.measurements
    assert compare_measurements(meas, meas).rates == ALL
    permutation = np.random.default_rng(3).permutation(len(meas))
    agreement = compare_measurements(meas, take_measurements(meas, permutation))
    assert agreement.rates == ALL and agreement.headline == "0.01%" and agreement.rate == 1.0
    assert agreement.details == {"n_cpu": len(meas), "n_gpu": len(meas)}


def test_relative_perturbation_of_one_field_matches_only_at_the_looser_tolerances(small_result) -> None:
    sp = small_result.spacepoints
    shifted = replace(sp, z=np.where(sp.z != 0, sp.z * (1 + 3e-3), 1e-3))  # 3e-3 relative (zero z: far off)
    rates = compare_spacepoints(sp, shifted).rates
    # (a neighbouring spacepoint may by chance lie within 0.1 % of a shifted one in x, y and z)
    assert rates["0.01%"] == 0.0 and rates["0.1%"] < 1e-3 and rates["1%"] == rates["5%"] == 1.0


def test_a_missing_or_extra_object_counts_against_the_larger_collection(small_result) -> None:
    sp = small_result.spacepoints
    n = len(sp)
    extra = Spacepoints(np.append(sp.x, 1.0), np.append(sp.y, 2.0), np.append(sp.z, 3.0),
                        np.append(sp.measurement, -1), np.append(sp.var_r, 0.0), np.append(sp.var_z, 0.0))
    assert compare_spacepoints(sp, extra).rates == {label: n / (n + 1) for label in ALL}
    assert compare_spacepoints(extra, sp).rates == {label: n / (n + 1) for label in ALL}
    agreement = compare_spacepoints(extra, sp)
    assert agreement.details == {"n_cpu": n + 1, "n_gpu": n}


def test_duplicates_on_the_device_do_not_raise_the_rate_above_one() -> None:
    reference = Objects.of(values=[[1.0], [2.0]])
    device = Objects.of(values=[[1.0], [1.0], [1.0], [1.0]])
    assert matching_rates(reference, device) == {label: 0.25 for label in ALL}


def test_angles_are_wrapped_before_differencing() -> None:
    phi = np.pi - 1e-7
    cpu = TrackParameters(np.array([[1.0, 2.0, phi, 1.0, 0.5]]), np.zeros((1, 25)), np.array([4]))
    across = replace(cpu, params=np.array([[1.0, 2.0, -phi, 1.0, 0.5]]))  # 2e-7 rad away, across the +-pi seam
    assert compare_parameters(cpu, across).rates == ALL
    full_turn = replace(cpu, params=np.array([[1.0, 2.0, phi - 2 * np.pi, 1.0, 0.5]]))
    assert compare_parameters(cpu, full_turn).rates == ALL
    off = replace(cpu, params=np.array([[1.0, 2.0, -phi + 0.01, 1.0, 0.5]]))  # 0.01 rad: 0.3 % of pi
    assert compare_parameters(cpu, off).rates == {"0.01%": 0.0, "0.1%": 0.0, "1%": 1.0, "5%": 1.0}
    other_surface = replace(cpu, surface=np.array([5]))
    assert compare_parameters(cpu, other_surface).rates == {label: 0.0 for label in ALL}


def _awkward_pair() -> tuple[Objects, np.ndarray, np.ndarray]:
    """Zeros of both signs, tiny and repeated values, NaNs, differences at the edge of a tolerance,
    angles off by full turns, four ids."""
    rng = np.random.default_rng(11)
    n = 300
    values = np.column_stack([rng.choice([0.0, -0.0, 1.0, -2.5, 1e-30], n), rng.normal(size=n) * 10,
                              rng.uniform(-np.pi, np.pi, n), rng.choice([1.0, 1.0005, 1.003, 1.02], n)])
    ids = rng.integers(0, 4, (n, 2))
    edges = [0.01004, -0.00996, 0.051, -0.049]  # just inside 1 % and 5 %: u (|a| + |b|) / 2 exceeds u |a|
    noisy = values * (1 + rng.choice([0.0, 5e-5, -5e-4, 8e-3, 3e-2, 0.2, *edges], (n, 4)))
    noisy[rng.random(n) < 0.05, 1] = np.nan
    noisy[:, 2] += rng.choice([0.0, 2 * np.pi, -2 * np.pi], n)
    return Objects.of(ids, values, angles=(2,)), ids, noisy


@pytest.mark.parametrize("column", ["best", None, 0, 1, 3])
def test_windowed_search_equals_the_definition_on_awkward_values(column, monkeypatch) -> None:
    if column != "best":  # every sort column (None: identity alone) must find the same matches
        monkeypatch.setattr(agreement_module, "_best_column", lambda *args: column)
    reference, ids, noisy = _awkward_pair()
    for device in (Objects.of(ids, noisy, angles=(2,)), Objects.of(ids[::-1], noisy[::-1], angles=(2,)),
                   Objects.of(ids[:200], noisy[50:250], angles=(2,)),
                   Objects.of(ids[100:], noisy[100:] * 1.00002, angles=(2,))):
        expected = brute_force_rates(reference, device)
        assert 0 < expected["5%"] and matching_rates(reference, device) == expected


def test_seeds_are_compared_by_the_positions_of_their_spacepoints(small_result) -> None:
    sp, seeds = small_result.spacepoints, small_result.seeds
    permutation = np.random.default_rng(5).permutation(len(sp))  # the device orders its spacepoints differently
    gpu_sp = Spacepoints(sp.x[permutation], sp.y[permutation], sp.z[permutation], sp.measurement[permutation],
                         sp.var_r[permutation], sp.var_z[permutation])
    new_index = np.argsort(permutation)
    order = np.random.default_rng(6).permutation(len(seeds))
    gpu_seeds = Seeds(new_index[seeds.bottom][order], new_index[seeds.middle][order], new_index[seeds.top][order],
                      seeds.weight[order], seeds.z_vertex[order])
    agreement = compare_seeds(seeds, gpu_seeds, (sp, gpu_sp))
    assert agreement.rates == ALL and agreement.headline == "1%"
    assert compare_seeds(seeds, gpu_seeds).rate < 0.05  # the raw indices no longer agree
    swapped = replace(gpu_seeds, bottom=gpu_seeds.top, top=gpu_seeds.bottom)  # same points, wrong roles
    assert compare_seeds(seeds, swapped, (sp, gpu_sp)).rates == {label: 0.0 for label in ALL}


def test_float32_round_trip_of_real_measurements_matches_at_the_tightest_tolerance(small_result) -> None:
    meas = small_result.measurements

    def f32(array):
        return np.asarray(array, np.float32).astype(np.float64)

    gpu = replace(meas, planes=f32(meas.planes), local0=f32(meas.local0), local1=f32(meas.local1),
                  var0=f32(meas.var0), var1=f32(meas.var1))
    assert len(meas) > 1000
    assert compare_measurements(meas, gpu).rates["0.01%"] >= 0.999


def test_one_hundred_thousand_measurements_compare_within_a_second() -> None:
    rng = np.random.default_rng(2)
    cpu = random_measurements(rng, 100_000)
    gpu = take_measurements(cpu, rng.permutation(len(cpu)))
    gpu = replace(gpu, local0=gpu.local0 * (1 + 3e-3))
    elapsed = []
    for _ in range(2):
        started = time.perf_counter()
        rates = compare_measurements(cpu, gpu).rates
        elapsed.append(time.perf_counter() - started)
    assert rates == {"0.01%": 0.0, "0.1%": 0.0, "1%": 1.0, "5%": 1.0}
    assert min(elapsed) < 1.0


def test_parameters_on_differently_ordered_measurements(small_result) -> None:
    meas, params = small_result.measurements, small_result.parameters
    assert compare_parameters(params, params).rates == ALL
    permutation = np.random.default_rng(8).permutation(len(meas))
    gpu_meas = take_measurements(meas, permutation)
    moved = replace(params, surface=np.argsort(permutation)[params.surface])
    assert compare_parameters(params, moved, (meas, gpu_meas)).rates == ALL
    assert compare_parameters(params, moved).rate < 0.05


def test_tracks_are_compared_by_measurement_set_and_fitted_parameters(small_result) -> None:
    tracks, meas = small_result.tracks, small_result.measurements
    assert len(tracks) > 50
    order = np.random.default_rng(9).permutation(len(tracks))
    reordered = take_tracks(tracks, order)
    reversed_meas = replace(reordered, meas=np.concatenate(  # the same sets, listed in another order
        [reordered.meas[a:b][::-1] for a, b in zip(reordered.offsets[:-1], reordered.offsets[1:])]))
    assert compare_tracks(tracks, reversed_meas).rates == ALL
    one_changed = tracks.meas.copy()
    one_changed[tracks.offsets[0]] = (one_changed[tracks.offsets[0]] + 1) % len(meas)  # first track: another hit
    rates = compare_tracks(tracks, replace(tracks, meas=one_changed)).rates
    assert rates == {label: (len(tracks) - 1) / len(tracks) for label in ALL}
    chi2 = compare_tracks(tracks, replace(tracks, chi2=tracks.chi2 * 1.003)).rates
    assert chi2 == {"0.01%": 0.0, "0.1%": 0.0, "1%": 1.0, "5%": 1.0}
    permutation = np.random.default_rng(10).permutation(len(meas))
    gpu_meas = take_measurements(meas, permutation)
    moved = replace(tracks, meas=np.argsort(permutation)[tracks.meas])
    assert compare_tracks(tracks, moved, (meas, gpu_meas)).rates == ALL


def test_bad_input_is_refused_with_one_sentence(small_result) -> None:
    with pytest.raises(AgreementInputError, match="must be Spacepoints"):
        compare_spacepoints(small_result.spacepoints, small_result.measurements)
    with pytest.raises(AgreementInputError, match="different fields"):
        matching_rates(Objects.of(values=[[1.0, 2.0]]), Objects.of(values=[[1.0]]))
    with pytest.raises(AgreementInputError, match="same objects"):
        Objects.of(ids=[1, 2], values=[[1.0]])
    with pytest.raises(AgreementInputError, match="integers"):
        Objects.of(ids=[1.5])
    with pytest.raises(AgreementInputError, match="tolerances"):
        matching_rates(Objects.of(values=[[1.0]]), Objects.of(values=[[1.0]]), [("x", 2.0)])
    seeds = small_result.seeds
    with pytest.raises(AgreementInputError, match="outside"):
        compare_seeds(seeds, seeds, (small_result.spacepoints, replace(small_result.spacepoints, x=np.zeros(3))))
    assert matching_rates(Objects.of(values=np.zeros((0, 2))), Objects.of(values=np.zeros((0, 2)))) == ALL


# --- hepaudit run: the comparators of the tracking stages ----------------------------------------------


def test_every_tracking_stage_has_a_comparator_with_traccc_tolerances(small_result) -> None:
    chain = build_chain()
    assert all(stage.comparator is not None for stage in chain.stages.values())
    outputs = {"clusterization": {"measurements": small_result.measurements},
               "spacepoints": {"spacepoints": small_result.spacepoints},
               "seeding": {"seeds": small_result.seeds},
               "estimation": {"parameters": small_result.parameters, "seed_valid": small_result.seed_valid},
               "ckf": {"candidates": small_result.tracks_all},
               "ambiguity": {"tracks": small_result.tracks}}
    headlines = {}
    for name, stage in chain.stages.items():
        agreement = stage.comparator(outputs[name], to_host(outputs[name]))
        assert agreement.rates == ALL, name
        headlines[name] = agreement.headline
    assert headlines == {"clusterization": "0.01%", "spacepoints": "0.01%", "seeding": "1%", "estimation": "1%",
                         "ckf": "1%", "ambiguity": "1%"}
    fewer = {"tracks": take_tracks(small_result.tracks, np.arange(len(small_result.tracks) // 2))}
    assert chain.stages["ambiguity"].comparator(outputs["ambiguity"], fewer).rate == pytest.approx(0.5, abs=0.01)
    assert set(stage_comparators()) == set(chain.stages)


# --- physics: track efficiency of both devices ---------------------------------------------------------


def test_efficiency_comparison_uses_the_performance_definition(small_event, small_result) -> None:
    tracks, meas = small_result.tracks, small_result.measurements
    selection = Selection(min_pt_gev=0.3)  # softer particles too, so that some are missed
    expected = evaluate(small_event, small_result, selection)["after_ambiguity"]["efficiency"]
    efficiency, selected = track_efficiency(small_event, tracks, meas, selection)
    assert efficiency == pytest.approx(expected) and 0.2 < efficiency < 0.95 and selected > 100
    check = EfficiencyCheck(selection=selection)
    permutation = np.random.default_rng(12).permutation(len(meas))  # the device's own measurement order
    moved = replace(tracks, meas=np.argsort(permutation)[tracks.meas])
    same = compare_efficiency(small_event, (tracks, meas), (moved, take_measurements(meas, permutation)), check)
    assert same.cpu == same.gpu == pytest.approx(expected) and same.difference_points == 0 and same.within
    half = take_tracks(tracks, np.arange(0, len(tracks), 2))
    worse = compare_efficiency(small_event, (tracks, meas), (half, meas), check)
    assert worse.gpu < worse.cpu and worse.difference_points < -0.5 and not worse.within
    one_fewer = take_tracks(tracks, np.arange(1, len(tracks)))  # at most one particle lost: < 0.5 points of 200+
    close = compare_efficiency(small_event, (tracks, meas), (one_fewer, meas), check)
    assert -0.5 <= close.difference_points <= 0 and close.within
    with pytest.raises(AgreementInputError, match="max_difference_points"):
        EfficiencyCheck(max_difference_points=-1)
    with pytest.raises(AgreementInputError, match="must be Measurements"):
        compare_efficiency(small_event, (tracks, meas), (tracks, small_result.spacepoints))
    no_truth = replace(small_event, truth=None)
    with pytest.raises(ValueError, match="truth"):
        compare_efficiency(no_truth, (tracks, meas), (tracks, meas))


def test_the_profiler_reports_every_tolerance_of_a_tracking_stage(small_result) -> None:
    from auditor.profiler import _agreement  # pylint: disable=import-outside-toplevel

    stage = build_chain().stages["spacepoints"]
    stage.reference_device = "gpu"  # compare the CPU implementation against outputs given as the reference
    meas, sp = small_result.measurements, small_result.spacepoints
    inputs = [{"measurements": meas}, {"measurements": meas}]
    reference = [{"spacepoints": sp}, {"spacepoints": replace(sp, x=sp.x * (1 + 3e-3))}]
    result = _agreement(stage, "cpu", inputs, reference)
    rates = result["rates"]  # the lowest over the events: the second one's
    assert rates["0.01%"] == 0.0 and rates["0.1%"] < 1e-3 and rates["1%"] == rates["5%"] == 1.0
    assert result["headline"] == "0.01%" and result["events"] == 2
    assert result["details"][0] == {"n_cpu": len(sp), "n_gpu": len(sp)}
