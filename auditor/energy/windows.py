"""Energy per event from cumulative counters: repeat-to-window, aligned edges, idle baseline.

How one measurement works (``measure_energy``):

1. Warm-up, then calibration: the workload (one call = one event or a batch of events) runs
   until ``calibration_s`` has passed, giving the seconds per call. A window holds
   ``calls = ceil(min_window_s / seconds_per_call)`` back-to-back calls, and keeps running until
   ``min_window_s`` has passed, so a 5 ms stage is measured over >= 2 s, never over one call.
2. Alignment: a window starts right after the reference counter (the one with the slowest update,
   NVML on a GPU machine) is seen to change, and ends right after its first change once the work
   is done and synchronised. Both edges then sit on counter updates, so the energy covers exactly
   the span between them and the counter's ~100 ms quantisation drops out. An edge's time is
   placed midway between the last unchanged read and the first changed one (a poll step apart:
   one read, ~4 ms for NVML, plus period/50). A random delay of up to one update period before
   the work (``phase_jitter``) keeps periodic work from always meeting the counter at one phase.
3. Idle baseline: windows of the same length in which nothing runs, interleaved with the work
   windows (idle, work, idle, work, ...) so that the device is in the same state (live context,
   clocks just after work). ``baseline power`` = mean of their energy / span.
4. Per work window and counter: ``E`` (joules between the aligned reads, wrap-around corrected),
   ``span`` (seconds between them), ``work`` (seconds running the workload), ``events``.
   ``net = (E - P_idle * span) / events``: energy above idle, including the tail the work leaves
   after it ends. ``gross = net + P_idle * work / events``: what the device drew while the events
   ran, idle floor included. Without a baseline, ``gross = E / events`` (it then also contains the
   idle part of the span: alignment wait, phase jitter and at most one update period of tail).
5. Each value is the mean over windows with a Student-t 95 % interval, widened (in quadrature)
   by the baseline power's interval times the seconds of baseline in the value, and by an edge
   bound: highest window power x how stale a read can be (one poll step for the aligned
   reference counter, one update period for the others).

Counter reads happen only at window edges, except for counters that wrap (RAPL), which are also
read between calls at least every ``wrap_check_s`` so that no second wrap-around goes unseen.
A counter that did not advance over a window is reported as "too short to measure", never as 0.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Sequence

from auditor.energy.counters import EnergyCounter
from auditor.errors import UserError
from auditor.measurement import Measurement, mean_ci

@dataclass(frozen=True)
class WindowConfig:
    """How energy windows are formed. Defaults give <= ~5 % quantisation on a 100 ms counter
    even without alignment; :data:`PRECISE` uses 10 s windows (<= ~1 %)."""

    min_window_s: float = 2.0           # each work window runs the workload at least this long
    min_windows: int = 5                # work windows (and as many idle baseline windows)
    baseline: bool = True               # measure idle baseline windows and report net energy
    warmup_calls: int = 1               # workload calls before calibration, not measured
    calibration_s: float = 0.2          # time spent timing calls to size the windows
    align: bool = True                  # start and end windows on reference-counter updates
    align_timeout_periods: float = 5.0  # give up aligning after this many update periods
    phase_jitter: bool = True           # random delay (0..one update period) before the work
    wrap_check_s: float = 1.0           # read wrapping counters at least this often in a window
    seed: int = 0                       # seed of the phase-jitter generator

    def __post_init__(self) -> None:
        if not self.min_window_s > 0:
            raise UserError(f"min_window_s must be positive, not {self.min_window_s}")
        if self.min_windows < 2:
            raise UserError(f"min_windows must be at least 2 for an interval, not {self.min_windows}")
        if self.warmup_calls < 0:
            raise UserError(f"warmup_calls cannot be negative ({self.warmup_calls})")
        if self.calibration_s < 0:
            raise UserError(f"calibration_s cannot be negative ({self.calibration_s})")
        if not self.align_timeout_periods > 0:
            raise UserError(f"align_timeout_periods must be positive, not {self.align_timeout_periods}")
        if not self.wrap_check_s > 0:
            raise UserError(f"wrap_check_s must be positive, not {self.wrap_check_s}")


#: ``precise`` mode: 10 s windows.
PRECISE = WindowConfig(min_window_s=10.0)


@dataclass(frozen=True)
class WindowRecord:
    """One window as measured. ``joules[name]`` is None when that counter did not advance."""

    index: int
    kind: str                       # "work" or "idle"
    events: int
    work_s: float                   # seconds running the workload (0 for idle windows)
    span_s: float                   # seconds between the window's two counter reads
    aligned: bool                   # both edges sat on reference-counter updates
    joules: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "events": self.events,
                "work_s": self.work_s, "span_s": self.span_s, "aligned": self.aligned,
                "joules": dict(self.joules)}


@dataclass(frozen=True)
class CounterEnergy:
    """Energy of one counter's device per event. None where it could not be measured."""

    counter: str
    device: str
    method: str
    gross_per_event: Measurement | None     # J
    net_per_event: Measurement | None       # J, baseline subtracted
    gross_power: Measurement | None         # W while the workload ran
    net_power: Measurement | None           # W above idle while the workload ran
    baseline_power: Measurement | None      # W idle, same state
    windows: int                            # work windows that entered the statistics

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"counter": self.counter, "device": self.device,
                               "method": self.method, "windows": self.windows}
        for key in ("gross_per_event", "net_per_event", "gross_power", "net_power",
                    "baseline_power"):
            value = getattr(self, key)
            out[key] = value.to_json() if value is not None else None
        return out


@dataclass(frozen=True)
class Overhead:
    """Where the measurement's wall time went (seconds, host clock)."""

    total_s: float            # the whole measure_energy call
    work_s: float             # running the workload inside work windows
    baseline_s: float         # idle baseline windows (spans)
    setup_s: float            # warm-up and calibration
    read_s: float             # inside counter reads (all of them)
    reads: int                # number of counter reads
    in_window_read_s: float   # counter reads between workload calls (wrap checks)

    @property
    def share(self) -> float:
        """Share of the wall time not spent running the measured work."""
        return 1 - self.work_s / self.total_s if self.total_s > 0 else 0.0

    @property
    def in_window_share(self) -> float:
        """How much the reads inside work windows lengthened them (perturbation of the work)."""
        return self.in_window_read_s / self.work_s if self.work_s > 0 else 0.0

    @property
    def mean_read_s(self) -> float:
        return self.read_s / self.reads if self.reads else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"total_s": self.total_s, "work_s": self.work_s, "baseline_s": self.baseline_s,
                "setup_s": self.setup_s, "read_s": self.read_s, "reads": self.reads,
                "mean_read_s": self.mean_read_s, "in_window_read_s": self.in_window_read_s,
                "share": self.share, "in_window_share": self.in_window_share}


@dataclass(frozen=True)
class EnergyResult:
    """Energy per event of one workload, per counter, with the windows behind it."""

    counters: tuple[CounterEnergy, ...]
    total_net_per_event: Measurement | None   # sum over counters (only with several counters)
    windows: tuple[WindowRecord, ...]
    calls_per_window: int
    seconds_per_call: float
    reference: str                             # counter the windows were aligned to
    config: WindowConfig
    overhead: Overhead
    notes: tuple[str, ...] = field(default=())

    def counter(self, name: str) -> CounterEnergy:
        for entry in self.counters:
            if entry.counter == name:
                return entry
        raise KeyError(f"no counter named {name!r} in this result")

    def to_json(self) -> dict[str, Any]:
        return {
            "counters": [entry.to_json() for entry in self.counters],
            "total_net_per_event": (self.total_net_per_event.to_json()
                                    if self.total_net_per_event is not None else None),
            "windows": [window.to_json() for window in self.windows],
            "calls_per_window": self.calls_per_window,
            "seconds_per_call": self.seconds_per_call,
            "reference": self.reference,
            "min_window_s": self.config.min_window_s,
            "overhead": self.overhead.to_json(),
            "notes": list(self.notes),
        }


def measure_energy(workload: Callable[[], int | None], counters: Sequence[EnergyCounter],
                   config: WindowConfig = WindowConfig(), *,
                   sync: Callable[[], None] | None = None,
                   idle: Callable[[float], None] | None = None,
                   clock: Callable[[], float] = time.perf_counter,
                   sleep: Callable[[float], None] = time.sleep,
                   around_window: Callable[[str, int], ContextManager[Any]] | None = None,
                   ) -> EnergyResult:
    """Measure the energy per event of ``workload`` on every counter in ``counters``.

    ``workload()`` runs one event, or a batch and returns how many events it ran. ``sync`` waits
    for asynchronous device work (e.g. ``torch.cuda.synchronize``) and is called after every
    calibration call and at the end of every window. ``idle(seconds)`` keeps the process in the
    state it measures in without doing work (default: ``sleep``). ``around_window(kind, index)``
    returns a context manager entered just outside each window's counter reads (e.g. a codecarbon
    task, see ``CodecarbonTracker.window_hook``), so its own cost stays out of the window.
    ``clock`` and ``sleep`` are injectable for tests.
    """
    if not counters:
        raise UserError("no energy counter to measure with (see available_counters() for why)")
    names = [counter.name for counter in counters]
    if len(set(names)) != len(names):
        raise UserError(f"energy counter names must be unique, got {names}")
    sync = sync or (lambda: None)
    idle = idle or sleep
    notes: list[str] = []
    started = clock()
    seconds_per_call = _calibrate(workload, sync, clock, config)
    calls = max(1, math.ceil(config.min_window_s / seconds_per_call))
    setup_s = clock() - started
    # First reads after calibration: wrapping counters are not followed through it.
    reader = _Reader(list(counters), clock, sleep, config, notes)
    target_s = max(config.min_window_s, calls * seconds_per_call)
    reference = reader.reference
    if reference.update_period_s * 10 > target_s:
        notes.append(f"windows of {target_s:.3g} s are shorter than 10 update periods of "
                     f"{reference.name} ({reference.update_period_s:.3g} s)")

    rng = random.Random(config.seed)
    around = around_window or (lambda kind, index: contextlib.nullcontext())
    windows: list[WindowRecord] = []
    work_s = baseline_s = 0.0
    for _ in range(config.min_windows):
        if config.baseline:
            with around("idle", len(windows)):
                record = _idle_window(len(windows), reader, idle, target_s)
            windows.append(record)
            baseline_s += record.span_s
        with around("work", len(windows)):
            record = _work_window(len(windows), workload, sync, reader, clock, sleep, config,
                                  calls, rng)
        windows.append(record)
        work_s += record.work_s

    overhead = Overhead(total_s=clock() - started, work_s=work_s, baseline_s=baseline_s,
                        setup_s=setup_s, read_s=reader.read_s, reads=reader.reads,
                        in_window_read_s=reader.in_window_read_s)
    all_aligned = all(w.aligned for w in windows)
    results = tuple(
        _counter_energy(counter, windows, config, notes,
                        edge_seconds(counter, reference, all_aligned, overhead.mean_read_s))
        for counter in counters)
    total = _total_net(counters, windows, results) if len(counters) > 1 else None
    return EnergyResult(counters=results, total_net_per_event=total, windows=tuple(windows),
                        calls_per_window=calls, seconds_per_call=seconds_per_call,
                        reference=reference.name, config=config, overhead=overhead,
                        notes=tuple(notes))


def energy_delta(before: float, after: float, wrap_joules: float | None) -> float | None:
    """Energy between two reads of a cumulative counter, in J.

    A counter that wraps at ``wrap_joules`` and reads lower the second time wrapped once (more
    wraps between two reads cannot be seen: read often enough). A counter that does not wrap
    and reads lower was reset (driver reload): None.
    """
    delta = after - before
    if delta >= 0:
        return delta
    if wrap_joules is None:
        return None
    return delta + wrap_joules


def _events(returned: int | None) -> int:
    if returned is None:
        return 1
    if isinstance(returned, bool) or not isinstance(returned, numbers.Integral) or returned < 0:
        raise UserError(f"the workload must return None or a number of events >= 0, not {returned!r}")
    return int(returned)


def _calibrate(workload: Callable[[], int | None], sync: Callable[[], None],
               clock: Callable[[], float], config: WindowConfig) -> float:
    """Warm up, then time whole synchronised calls; seconds per call."""
    for _ in range(config.warmup_calls):
        _events(workload())
    sync()
    begin = clock()
    calls = 0
    while True:
        _events(workload())
        sync()
        calls += 1
        elapsed = clock() - begin
        if elapsed >= config.calibration_s:
            break
        if calls >= 10_000_000:
            break
    if elapsed <= 0:
        raise UserError("the workload takes no measurable time on this clock; give it more work "
                        "per call")
    return elapsed / calls


class _Reader:
    """Reads counters, keeps wrap-corrected running totals, and times its own reads."""

    def __init__(self, counters: list[EnergyCounter], clock: Callable[[], float],
                 sleep: Callable[[float], None], config: WindowConfig, notes: list[str]) -> None:
        self.counters = counters
        self.clock = clock
        self.sleep = sleep
        self.config = config
        self.notes = notes
        self.reference = max(counters, key=lambda counter: counter.update_period_s)
        self.align = config.align
        self.read_s = 0.0
        self.reads = 0
        self.in_window_read_s = 0.0
        self.wrapping = [c for c in counters if c.wrap_joules is not None]
        # Read wrapping counters at least every wrap_check_s, and three times per wrap period at
        # their maximum power when they state one (a warning comes at twice: calls add delay).
        self.wrap_check_s = config.wrap_check_s
        for counter in self.wrapping:
            max_power = getattr(counter, "max_power_w", None)
            if max_power:
                self.wrap_check_s = min(self.wrap_check_s, counter.wrap_joules / (3 * max_power))
        self._raw: dict[str, float] = {}
        self._total: dict[str, float] = {c.name: 0.0 for c in counters}
        self._time: dict[str, float] = {}
        self._power: dict[str, float] = {}
        self._reset: set[str] = set()
        self._warned_gap: set[str] = set()
        for counter in counters:
            self.read(counter)

    def _raw_read(self, counter: EnergyCounter) -> tuple[float, float]:
        before = self.clock()
        try:
            value = float(counter.read_joules())
        except Exception as error:  # hardware/driver failure mid-run: say which counter
            raise RuntimeError(f"reading energy counter {counter.name} failed: {error}") from error
        after = self.clock()
        self.read_s += after - before
        self.reads += 1
        return value, after

    def read(self, counter: EnergyCounter) -> float:
        """Read ``counter`` and return its running total (J), correcting wrap-around."""
        value, now = self._raw_read(counter)
        self._accumulate(counter, value, now)
        return self._total[counter.name]

    def _accumulate(self, counter: EnergyCounter, value: float, now: float) -> None:
        name = counter.name
        previous = self._raw.get(name)
        self._raw[name] = value
        if previous is None:
            self._time[name] = now
            return
        delta = energy_delta(previous, value, counter.wrap_joules)
        if delta is None:
            self._reset.add(name)
            self.notes.append(f"counter {name} went backwards (driver reload or reset); "
                              "the window it spans is not used")
            delta = 0.0
        gap = now - self._time[name]
        if gap >= 10 * counter.update_period_s and delta > 0:  # short gaps: quantisation noise
            self._power[name] = max(self._power.get(name, 0.0), delta / gap)
        if counter.wrap_joules is not None and name not in self._warned_gap:
            # With a known maximum power the bound is safe; otherwise the highest power seen so
            # far is used, which cannot see wraps that were already missed.
            power = getattr(counter, "max_power_w", None) or self._power.get(name, 0.0)
            if power * gap > counter.wrap_joules / 2:
                self._warned_gap.add(name)
                self.notes.append(
                    f"counter {name} was read {gap:.3g} s apart at up to {power:.3g} W: more than "
                    f"one wrap-around ({counter.wrap_joules:.6g} J) is possible; lower "
                    "wrap_check_s or shorten the workload's calls")
        self._time[name] = now
        self._total[name] += delta

    def check_wraps(self, in_work: bool = True, force: bool = False) -> None:
        """Read wrapping counters whose last read is older than ``wrap_check_s`` (inside a window)."""
        now = self.clock()
        for counter in self.wrapping:
            if force or now - self._time[counter.name] >= self.wrap_check_s:
                before = self.read_s
                self.read(counter)
                if in_work:
                    self.in_window_read_s += self.read_s - before

    def snapshot(self) -> tuple[float, dict[str, float], bool]:
        """(time, running totals, aligned): read every counter, first waiting for an update of
        the reference counter when aligning."""
        aligned = False
        if self.align:
            reference = self.reference
            first, previous = self._raw_read(reference)
            self._accumulate(reference, first, previous)
            deadline = previous + self.config.align_timeout_periods * reference.update_period_s
            poll_s = reference.update_period_s / 50
            while True:
                value, now = self._raw_read(reference)
                self._accumulate(reference, value, now)
                if value != first:
                    # The update fell between the last unchanged read and this one.
                    moment = (previous + now) / 2
                    aligned = True
                    break
                if now >= deadline:
                    moment = now
                    self.notes.append(f"counter {reference.name} did not change within "
                                      f"{self.config.align_timeout_periods * reference.update_period_s:.3g} s; "
                                      "window edge not aligned")
                    break
                previous = now
                self.sleep(poll_s)
            others = [c for c in self.counters if c is not reference]
        else:
            moment = None
            others = self.counters
        for counter in others:
            value, now = self._raw_read(counter)
            self._accumulate(counter, value, now)
            if moment is None:
                moment = now
        return moment, dict(self._total), aligned

    def take_resets(self) -> set[str]:
        """Counters that went backwards since the last call."""
        resets, self._reset = set(self._reset), set()
        return resets


def _window_joules(reader: _Reader, start: dict[str, float], end: dict[str, float],
                   kind: str, index: int, span_s: float) -> dict[str, float | None]:
    """Energy per counter over a window; None (with a note saying why) where it is unknown."""
    resets = reader.take_resets()
    joules: dict[str, float | None] = {}
    for counter in reader.counters:
        delta = end[counter.name] - start[counter.name]
        if counter.name in resets:
            joules[counter.name] = None  # the reader has noted the reset
        elif delta <= 0:
            joules[counter.name] = None
            reader.notes.append(f"counter {counter.name} did not advance in {kind} window {index} "
                                f"({span_s:.3g} s): too short to measure")
        else:
            joules[counter.name] = delta
    return joules


def _idle_window(index: int, reader: _Reader, idle: Callable[[float], None],
                 seconds: float) -> WindowRecord:
    reader.take_resets()
    t0, start, aligned0 = reader.snapshot()
    if reader.wrapping:  # idle in steps, so that wrapping counters are read often enough
        remaining = seconds
        while remaining > 0:
            step = min(remaining, reader.wrap_check_s)
            idle(step)
            remaining -= step
            reader.check_wraps(in_work=False, force=True)
    else:
        idle(seconds)
    t1, end, aligned1 = reader.snapshot()
    joules = _window_joules(reader, start, end, "idle", index, t1 - t0)
    return WindowRecord(index, "idle", 0, 0.0, t1 - t0, aligned0 and aligned1, joules)


def _work_window(index: int, workload: Callable[[], int | None], sync: Callable[[], None],
                 reader: _Reader, clock: Callable[[], float], sleep: Callable[[float], None],
                 config: WindowConfig, calls: int, rng: random.Random) -> WindowRecord:
    reader.take_resets()
    t0, start, aligned0 = reader.snapshot()
    if config.phase_jitter:
        sleep(rng.uniform(0.0, reader.reference.update_period_s))
    begin = clock()
    events = done = 0
    while done < calls or clock() - begin < config.min_window_s:
        events += _events(workload())
        done += 1
        if reader.wrapping:
            reader.check_wraps()
    sync()
    work_s = clock() - begin
    t1, end, aligned1 = reader.snapshot()
    if events == 0:
        raise UserError("the workload reported 0 events in a whole window; it must run at least one")
    joules = _window_joules(reader, start, end, "work", index, t1 - t0)
    return WindowRecord(index, "work", events, work_s, t1 - t0, aligned0 and aligned1, joules)


def _half_width(measurement: Measurement) -> float:
    low, high = measurement.bounds
    return (high - low) / 2


def _mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95 % half-width (``mean_ci``; a single value has no width)."""
    mean, _, high = mean_ci(values)
    return mean, high - mean


def edge_seconds(counter: EnergyCounter, reference: EnergyCounter, aligned: bool,
                 mean_read_s: float) -> float:
    """How far a window edge can sit from the instant the counter's value belongs to.

    The aligned reference is read within one poll step (a read plus update_period/50) after an
    update; any other counter can be up to one update period stale.
    """
    if aligned and counter is reference:
        return reference.update_period_s / 50 + mean_read_s
    return counter.update_period_s


def _counter_energy(counter: EnergyCounter, windows: list[WindowRecord], config: WindowConfig,
                    notes: list[str], edge_s: float) -> CounterEnergy:
    """Statistics of one counter. Intervals: Student-t 95 % over windows, combined in quadrature
    with the baseline power's interval and with the edge (quantisation) bound
    ``max power x edge_s`` per window."""
    name, method = counter.name, counter.method
    idle = [w for w in windows if w.kind == "idle" and w.joules[name] is not None and w.span_s > 0]
    work = [w for w in windows if w.kind == "work" and w.joules[name] is not None]
    powers_seen = [w.joules[name] / w.span_s for w in idle + work if w.span_s > 0]
    edge_j = max(powers_seen, default=0.0) * edge_s  # window energy error bound from its edges

    def measured(values: list[float], unit: str, extra: list[float], note: str) -> Measurement | None:
        """``extra``: per-window half-widths from baseline and edges, averaged over windows."""
        if not values:
            return None
        centre, half = _mean_interval(values)
        if extra:
            half = math.hypot(half, statistics.fmean(extra))
        return Measurement(centre, unit, method, samples=len(values), low=centre - half,
                           high=centre + half, interval="ci95", note=note)

    baseline: Measurement | None = None
    if config.baseline:
        if len(idle) >= 2:
            baseline = measured([w.joules[name] / w.span_s for w in idle], "W",
                                [edge_j / w.span_s for w in idle],
                                "idle baseline, same process state")
        else:
            notes.append(f"counter {name}: fewer than 2 idle windows could be measured; "
                         "no baseline, so no net energy")
    if len(work) < 2:
        notes.append(f"counter {name}: fewer than 2 work windows could be measured; "
                     "no energy per event (windows too short for this counter)")
        return CounterEnergy(name, counter.device, method, None, None, None, None, baseline,
                             len(work))

    if baseline is None:
        gross = [w.joules[name] / w.events for w in work]
        gross_w = [w.joules[name] / w.work_s for w in work if w.work_s > 0]
        gross_m = measured(gross, "J", [edge_j / w.events for w in work],
                           "per event; no baseline: includes the idle time at the window edges "
                           "(alignment, jitter, <= one update period)")
        gross_p = measured(gross_w, "W", [edge_j / w.work_s for w in work if w.work_s > 0],
                           "mean power while the workload ran, no baseline")
        return CounterEnergy(name, counter.device, method, gross_m, None, gross_p, None, None,
                             len(work))

    p_idle, h_idle = baseline.value, _half_width(baseline)
    gross, net, gross_w, net_w = [], [], [], []
    gross_x, net_x, gross_w_x, net_w_x = [], [], [], []
    for w in work:
        net_j = w.joules[name] - p_idle * w.span_s
        gross_j = net_j + p_idle * w.work_s
        # Uncertainty from the baseline (seconds of baseline power in the value) and the edges.
        net_h = math.hypot(h_idle * w.span_s, edge_j)
        gross_h = math.hypot(h_idle * (w.span_s - w.work_s), edge_j)
        net.append(net_j / w.events)
        gross.append(gross_j / w.events)
        net_x.append(net_h / w.events)
        gross_x.append(gross_h / w.events)
        if w.work_s > 0:
            net_w.append(net_j / w.work_s)
            gross_w.append(gross_j / w.work_s)
            net_w_x.append(net_h / w.work_s)
            gross_w_x.append(gross_h / w.work_s)
    return CounterEnergy(
        name, counter.device, method,
        gross_per_event=measured(gross, "J", gross_x, "per event, idle floor included"),
        net_per_event=measured(net, "J", net_x, "per event, idle baseline subtracted"),
        gross_power=measured(gross_w, "W", gross_w_x, "mean power while the workload ran"),
        net_power=measured(net_w, "W", net_w_x, "mean power above idle while the workload ran"),
        baseline_power=baseline, windows=len(work))


def _total_net(counters: Sequence[EnergyCounter], windows: list[WindowRecord],
               results: tuple[CounterEnergy, ...]) -> Measurement | None:
    """Sum of net energy per event over all counters, from windows where every counter advanced."""
    if any(result.baseline_power is None or result.net_per_event is None for result in results):
        return None
    powers = {result.counter: result.baseline_power.value for result in results}
    totals = []
    for w in windows:
        if w.kind != "work" or any(w.joules[c.name] is None for c in counters):
            continue
        totals.append(sum(w.joules[c.name] - powers[c.name] * w.span_s for c in counters) / w.events)
    if len(totals) < 2:
        return None
    # Devices are independent: their intervals add in quadrature; the spread of the per-window
    # totals also covers what varies together. The wider of the two is reported.
    centre, half = _mean_interval(totals)
    half = max(half, math.hypot(*(_half_width(r.net_per_event) for r in results)))
    methods = ", ".join(sorted({c.method for c in counters}))
    return Measurement(centre, "J", "derived", samples=len(totals), low=centre - half,
                       high=centre + half, interval="ci95",
                       note=f"net energy per event summed over {len(counters)} counters ({methods})")
