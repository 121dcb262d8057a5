"""Accounting of energy windows with a fake clock, a fake device and a quantised, wrapping counter."""

from __future__ import annotations

import contextlib
import json

import pytest

from auditor.energy.windows import PRECISE, WindowConfig, energy_delta, measure_energy
from auditor.errors import UserError
from tests.auditor.energy_fakes import FakeClock, FakeCounter, FakeDevice, FakeWorkload

IDLE_W = 120.0
ACTIVE_W = 500.0  # above idle while an event runs


def setup(idle_w: float = IDLE_W, **counter_kwargs):
    clock = FakeClock()
    device = FakeDevice(clock, idle_w)
    counter = FakeCounter(device, **counter_kwargs)
    return clock, device, counter


def run(workload, counters, clock, config=WindowConfig(), **kwargs):
    return measure_energy(workload, counters, config, clock=clock, sleep=clock.sleep, **kwargs)


def contains(measurement, value):
    low, high = measurement.bounds
    return low <= value <= high


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_net_energy_per_event_recovers_the_true_energy(seed):
    clock, device, counter = setup()
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W, noise=0.2, seed=seed)
    result = run(work, [counter], clock, WindowConfig(seed=seed))
    energy = result.counter("fake:0")
    assert energy.windows == 5
    assert energy.net_per_event.method == "nvml-energy" and not energy.net_per_event.estimated
    assert contains(energy.net_per_event, work.true_net_per_event)
    assert contains(energy.gross_per_event, (IDLE_W + ACTIVE_W) * 0.005)
    assert contains(energy.baseline_power, IDLE_W)
    assert contains(energy.net_power, ACTIVE_W)
    # The interval is informative, not a blanket: narrower than 5 % of the value.
    low, high = energy.net_per_event.bounds
    assert high - low < 0.05 * energy.net_per_event.value
    assert result.notes == ()


def test_short_stage_is_repeated_back_to_back_until_the_window_is_long_enough():
    clock, device, counter = setup()
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    result = run(work, [counter], clock, WindowConfig(min_window_s=2.0, min_windows=5))
    assert result.calls_per_window == 400
    assert result.seconds_per_call == pytest.approx(0.005)
    work_windows = [w for w in result.windows if w.kind == "work"]
    idle_windows = [w for w in result.windows if w.kind == "idle"]
    assert len(work_windows) == len(idle_windows) == 5
    assert [w.kind for w in result.windows[:4]] == ["idle", "work", "idle", "work"]  # interleaved
    assert all(w.work_s >= 2.0 and w.events >= 400 for w in work_windows)
    assert all(w.span_s >= 2.0 for w in idle_windows)  # baseline windows as long as work ones


def test_precise_mode_uses_ten_second_windows():
    clock, device, counter = setup()
    work = FakeWorkload(device, seconds=0.02, extra_w=ACTIVE_W)
    result = run(work, [counter], clock, PRECISE)
    assert PRECISE.min_window_s == 10.0
    assert all(w.work_s >= 10.0 for w in result.windows if w.kind == "work")
    assert contains(result.counter("fake:0").net_per_event, work.true_net_per_event)


def test_window_edges_sit_on_counter_updates():
    period, phase = 0.1, 0.037
    clock, device, counter = setup(period_s=period, phase_s=phase, read_cost_s=0.004)
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    result = run(work, [counter], clock)
    assert all(w.aligned for w in result.windows)
    for w in result.windows:
        # Both edges are placed within one poll step (read + sleep = 6 ms) after an update, so
        # the span is a whole number of update periods, up to that step.
        cycles = w.span_s / period
        assert abs(cycles - round(cycles)) * period <= 0.006


def test_alignment_removes_quantisation_error_of_short_windows():
    """0.3 s windows on a 100 ms counter: unaligned reads are off by up to a third; aligned ones
    recover the true energy to about one per cent."""
    truth = 0.005 * ACTIVE_W
    errors = {}
    for align in (True, False):
        clock, device, counter = setup(period_s=0.1, phase_s=0.011)
        work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
        config = WindowConfig(min_window_s=0.3, min_windows=8, align=align, phase_jitter=False)
        result = run(work, [counter], clock, config)
        errors[align] = abs(result.counter("fake:0").net_per_event.value - truth) / truth
    assert errors[True] < 0.015
    assert errors[False] > errors[True]


def test_baseline_subtraction_separates_idle_from_work():
    for idle_w in (75.0, 124.0):  # cold vs live-context idle of an H100
        clock, device, counter = setup(idle_w=idle_w)
        work = FakeWorkload(device, seconds=0.01, extra_w=300.0, noise=0.1)
        energy = run(work, [counter], clock).counter("fake:0")
        assert contains(energy.baseline_power, idle_w)
        assert contains(energy.net_per_event, 3.0)  # independent of the idle level
        assert contains(energy.gross_per_event, (idle_w + 300.0) * 0.01)


def test_without_baseline_only_gross_energy_is_reported():
    clock, device, counter = setup()
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    result = run(work, [counter], clock, WindowConfig(baseline=False))
    energy = result.counter("fake:0")
    assert energy.net_per_event is None and energy.baseline_power is None
    assert all(w.kind == "work" for w in result.windows)
    true_gross = (IDLE_W + ACTIVE_W) * 0.005
    # Gross without a baseline contains the idle edges of the window: a little above the truth.
    assert true_gross < energy.gross_per_event.value < true_gross * 1.05
    assert "no baseline" in energy.gross_per_event.note


def test_window_too_short_for_the_counter_is_reported_not_zero():
    clock, device, counter = setup(period_s=1.0, read_cost_s=0.0)
    work = FakeWorkload(device, seconds=0.001, extra_w=ACTIVE_W)
    config = WindowConfig(min_window_s=0.01, min_windows=3, align=False, phase_jitter=False,
                          calibration_s=0.005)
    result = run(work, [counter], clock, config)
    silent = [w for w in result.windows if w.joules["fake:0"] == 0.0]
    unmeasured = [w for w in result.windows if w.joules["fake:0"] is None]
    assert not silent and unmeasured
    assert any("did not advance" in note and "too short to measure" in note
               for note in result.notes)
    assert any("shorter than 10 update periods" in note for note in result.notes)
    energy = result.counter("fake:0")
    assert energy.net_per_event is None and energy.gross_per_event is None
    assert any("no energy per event" in note for note in result.notes)


def test_energy_delta_handles_wrap_around_and_reset():
    assert energy_delta(10.0, 25.0, None) == 15.0
    assert energy_delta(90.0, 5.0, 100.0) == pytest.approx(15.0)
    assert energy_delta(90.0, 5.0, None) is None  # no wrap: the counter was reset
    assert energy_delta(5.0, 5.0, 100.0) == 0.0


def test_wrapping_counter_is_read_often_enough_inside_long_windows():
    """A RAPL-like counter wrapping at 50 J: a 1 s window at 500 W wraps ten times, an idle one
    twice; reads every 20 ms (between calls, and in steps of the idle wait) see each wrap."""
    clock, device, counter = setup(idle_w=100.0, period_s=0.001, phase_s=0.0, wrap_joules=50.0,
                                   offset_joules=45.0, resolution_j=1e-6, read_cost_s=1e-5,
                                   name="rapl:package-0", method="rapl")
    work = FakeWorkload(device, seconds=0.002, extra_w=400.0, noise=0.1)
    config = WindowConfig(min_window_s=1.0, wrap_check_s=0.02)
    result = run(work, [counter], clock, config)
    energy = result.counter("rapl:package-0")
    assert energy.net_per_event.method == "rapl"
    assert contains(energy.net_per_event, 0.8)
    assert contains(energy.baseline_power, 100.0)
    assert result.overhead.in_window_read_s > 0
    assert not any("wrap-around" in note for note in result.notes)


def test_stated_maximum_power_paces_the_wrap_checks():
    clock, device, counter = setup(idle_w=100.0, period_s=0.001, phase_s=0.0, wrap_joules=50.0,
                                   resolution_j=1e-6, read_cost_s=1e-5, name="rapl:package-0",
                                   method="rapl", max_power_w=600.0)
    work = FakeWorkload(device, seconds=0.002, extra_w=400.0)
    result = run(work, [counter], clock, WindowConfig(min_window_s=1.0, min_windows=2))
    assert contains(result.counter("rapl:package-0").net_per_event, 0.8)
    assert not any("wrap-around" in note for note in result.notes)


def test_sparse_reads_of_a_wrapping_counter_are_flagged():
    """One call of 0.2 s at 500 W is 100 J: two wraps of a 50 J counter that no read can split."""
    clock, device, counter = setup(idle_w=100.0, period_s=0.001, phase_s=0.0, wrap_joules=50.0,
                                   resolution_j=1e-6, read_cost_s=1e-5, name="rapl:package-0",
                                   method="rapl", max_power_w=600.0)
    work = FakeWorkload(device, seconds=0.2, extra_w=400.0)
    config = WindowConfig(min_window_s=0.5, min_windows=2)
    result = run(work, [counter], clock, config)
    assert any("more than one wrap-around" in note for note in result.notes)


def test_counter_going_backwards_drops_the_window():
    clock, device, counter = setup(period_s=0.001, phase_s=0.0, read_cost_s=1e-5)
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    original = counter.read_joules
    state = {"reads": 0}

    def read_with_reset():
        state["reads"] += 1
        value = original()
        return value - 1e6 if state["reads"] > 8 else value  # driver reload after 8 reads

    counter.read_joules = read_with_reset
    result = run(work, [counter], clock, WindowConfig(min_window_s=0.5, min_windows=4))
    assert any("went backwards" in note for note in result.notes)
    assert any(w.joules["fake:0"] is None for w in result.windows)
    assert result.counter("fake:0").net_per_event is not None  # the other windows still count


def test_two_counters_are_aligned_to_the_slowest_and_summed():
    clock, device, _ = setup()
    gpu = FakeCounter(device, name="nvml:0", period_s=0.1, phase_s=0.05)
    cpu = FakeCounter(device, name="rapl:package-0", method="rapl", period_s=0.001, phase_s=0.0,
                      wrap_joules=262144.0, read_cost_s=1e-5)
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W, noise=0.1)
    result = run(work, [cpu, gpu], clock)
    assert result.reference == "nvml:0"
    for name in ("nvml:0", "rapl:package-0"):
        assert contains(result.counter(name).net_per_event, 2.5)
    total = result.total_net_per_event
    assert total.method == "derived" and total.estimated is False
    assert contains(total, 5.0)


def test_overhead_is_accounted():
    clock, device, counter = setup(read_cost_s=0.004)
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    result = run(work, [counter], clock)
    overhead = result.overhead
    assert overhead.reads == counter.reads
    assert overhead.mean_read_s == pytest.approx(0.004)
    assert overhead.work_s == pytest.approx(sum(w.work_s for w in result.windows))
    assert overhead.total_s == pytest.approx(clock.now, abs=1e-9)
    assert 0.4 < overhead.share < 0.7  # half the time is the idle baseline
    assert overhead.in_window_share == 0.0  # NVML is never read inside a window
    assert 0 < overhead.setup_s < 0.5


def test_around_window_hook_wraps_every_window_outside_the_reads():
    clock, device, counter = setup()
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    seen = []

    @contextlib.contextmanager
    def around(kind, index):
        reads = counter.reads
        yield
        seen.append((kind, index, counter.reads > reads))

    result = run(work, [counter], clock, WindowConfig(min_window_s=0.5, min_windows=2),
                 around_window=around)
    assert [(k, i) for k, i, _ in seen] == [(w.kind, w.index) for w in result.windows]
    assert all(read for _, _, read in seen)


def test_sync_is_called_at_the_end_of_every_window_and_batches_count_events():
    clock, device, counter = setup()
    work = FakeWorkload(device, seconds=0.001, extra_w=ACTIVE_W, events=10)
    syncs = []
    result = run(work, [counter], clock, WindowConfig(min_window_s=0.5, min_windows=2),
                 sync=lambda: syncs.append(clock.now))
    work_windows = [w for w in result.windows if w.kind == "work"]
    assert all(w.events % 10 == 0 for w in work_windows)
    assert len(syncs) >= 2 + 1  # calibration calls + one per work window
    assert contains(result.counter("fake:0").net_per_event, 0.5)


def test_result_serialises_to_json():
    clock, device, counter = setup()
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    data = json.loads(json.dumps(run(work, [counter], clock).to_json()))
    entry = data["counters"][0]
    assert entry["net_per_event"]["unit"] == "J" and entry["net_per_event"]["interval"] == "ci95"
    assert data["overhead"]["reads"] > 0 and len(data["windows"]) == 10


def test_user_errors_are_clear():
    clock, _, counter = setup()
    with pytest.raises(UserError, match="no energy counter"):
        run(lambda: None, [], clock)
    with pytest.raises(UserError, match="at least 2"):
        WindowConfig(min_windows=1)
    with pytest.raises(UserError, match="positive"):
        WindowConfig(min_window_s=0)
    with pytest.raises(UserError, match="number of events"):
        run(lambda: -1, [counter], clock)
    with pytest.raises(UserError, match="unique"):
        run(lambda: None, [counter, counter], clock)
    with pytest.raises(UserError, match="no measurable time"):
        run(lambda: None, [counter], clock, WindowConfig(calibration_s=0.0))


def test_interval_covers_the_staleness_of_a_counter_that_is_not_aligned():
    """A second counter updating every 50 ms is read up to 50 ms stale at each edge; its
    windows scatter little, so only the edge bound makes the interval cover the truth."""
    clock, device, _ = setup()
    gpu = FakeCounter(device, name="nvml:0", period_s=0.1, phase_s=0.0)
    slow = FakeCounter(device, name="other:0", period_s=0.05, phase_s=0.031, read_cost_s=0.0)
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    result = run(work, [gpu, slow], clock, WindowConfig(phase_jitter=False))
    other = result.counter("other:0")
    assert contains(other.net_per_event, work.true_net_per_event)
    assert contains(other.baseline_power, IDLE_W)
    low, high = other.net_per_event.bounds
    assert high - low < 0.1 * other.net_per_event.value  # still a useful interval


def test_net_interval_carries_the_baseline_uncertainty():
    """Idle power that scatters from window to window makes the baseline uncertain; every net
    value subtracts it, so the net interval must be at least that uncertainty x span / events."""
    import random

    clock, device, counter = setup()
    rng = random.Random(5)
    work = FakeWorkload(device, seconds=0.005, extra_w=ACTIVE_W)
    result = run(work, [counter], clock,
                 idle=lambda seconds: device.run(seconds, rng.gauss(0.0, 20.0)))
    energy = result.counter("fake:0")
    base_low, base_high = energy.baseline_power.bounds
    works = [w for w in result.windows if w.kind == "work"]
    span_per_event = sum(w.span_s / w.events for w in works) / len(works)
    low, high = energy.net_per_event.bounds
    assert (high - low) >= 0.99 * (base_high - base_low) * span_per_event
    assert contains(energy.net_per_event, work.true_net_per_event)
