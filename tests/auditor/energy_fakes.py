"""A fake clock, a fake device drawing known power, and a fake quantised, wrapping counter.

The device integrates piecewise-constant power over fake time. The counter reports the device's
energy as of its last update instant (updates every ``period_s``, offset by ``phase_s``), rounded
to its resolution and wrapped at ``wrap_joules``; each read costs ``read_cost_s`` of fake time.
"""

from __future__ import annotations

import bisect
import math
import random


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.device: "FakeDevice | None" = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Idle for ``seconds``: the device draws its idle power."""
        assert self.device is not None
        self.device.run(max(seconds, 0.0), 0.0)


class FakeDevice:
    """Power = ``idle_w`` + extra power of whatever runs; energy E(t) kept as breakpoints."""

    def __init__(self, clock: FakeClock, idle_w: float) -> None:
        self.clock = clock
        self.idle_w = idle_w
        self.times = [0.0]
        self.energies = [0.0]
        clock.device = self

    def run(self, seconds: float, extra_w: float) -> None:
        start = self.clock.now
        self.clock.now = start + seconds
        self.times.append(self.clock.now)
        self.energies.append(self.energies[-1] + (self.idle_w + extra_w) * seconds)

    def energy_at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t) - 1
        if i >= len(self.times) - 1:
            return self.energies[-1]
        t0, t1 = self.times[i], self.times[i + 1]
        e0, e1 = self.energies[i], self.energies[i + 1]
        return e0 + (e1 - e0) * (t - t0) / (t1 - t0) if t1 > t0 else e1


class FakeCounter:
    """Implements the EnergyCounter protocol over a FakeDevice."""

    def __init__(self, device: FakeDevice, *, name: str = "fake:0", method: str = "nvml-energy",
                 period_s: float = 0.1, phase_s: float = 0.037, wrap_joules: float | None = None,
                 offset_joules: float = 0.0, resolution_j: float = 0.001,
                 read_cost_s: float = 0.004, max_power_w: float | None = None) -> None:
        self.source = device
        self.name = name
        self.method = method
        self.device = f"fake device {name}"
        self.wrap_joules = wrap_joules
        self.update_period_s = period_s
        self.phase_s = phase_s
        self.offset_joules = offset_joules
        self.resolution_j = resolution_j
        self.read_cost_s = read_cost_s
        self.max_power_w = max_power_w
        self.reads = 0

    def read_joules(self) -> float:
        self.reads += 1
        if self.read_cost_s:
            self.source.run(self.read_cost_s, 0.0)
        now = self.source.clock.now
        k = math.floor((now - self.phase_s) / self.update_period_s)
        last_update = max(self.phase_s + k * self.update_period_s, 0.0)
        value = self.offset_joules + self.source.energy_at(last_update)
        value = math.floor(value / self.resolution_j) * self.resolution_j
        if self.wrap_joules is not None:
            value = math.fmod(value, self.wrap_joules)
        return value


class FakeWorkload:
    """Each call runs ``events`` events of ``seconds`` at ``extra_w`` above idle, with noise."""

    def __init__(self, device: FakeDevice, *, seconds: float, extra_w: float, events: int = 1,
                 noise: float = 0.0, seed: int = 1) -> None:
        self.device = device
        self.seconds = seconds
        self.extra_w = extra_w
        self.events = events
        self.noise = noise
        self.rng = random.Random(seed)
        self.calls = 0

    @property
    def true_net_per_event(self) -> float:
        return self.seconds * self.extra_w

    def __call__(self) -> int:
        self.calls += 1
        for _ in range(self.events):
            factor = 1 + self.noise * self.rng.gauss(0.0, 1.0) if self.noise else 1.0
            self.device.run(self.seconds, self.extra_w * factor)
        return self.events
