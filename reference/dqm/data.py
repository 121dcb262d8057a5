"""Synthetic per-lumiblock (LB) monitoring data of the ATLAS LAr EM calorimeter.

Sixteen features per LB: {mean, std} of the topo-cluster pulse-shape quality factor Q
(dimensionless) and of the cluster time tau (ns), in the four EM partitions. Column ``f`` of
``Run.values`` is ``FEATURES[f]`` with ``f = 4 * partition + 2 * quantity + stat``, where
``partition`` indexes ``PARTITIONS`` (EMBA, EMBC, EMECA, EMECC), ``quantity`` is 0 for Q and 1
for tau, and ``stat`` is 0 for the mean and 1 for the standard deviation::

    q_mean_EMBA, q_std_EMBA, tau_mean_EMBA, tau_std_EMBA, q_mean_EMBC, ..., tau_std_EMECC

Good data (one run) follows

    x[t, f] = b_f + o_f + r_f * L[t] + s_f * z[t, f]

with ``b`` the mode's baseline, ``o`` a per-run offset (shared by the A and C side of a
detector, plus a small side-specific part), ``L`` the instantaneous luminosity (exponential
burn-off within the fill, in 1e30 cm^-2 s^-1), ``r`` the luminosity response (all partitions
drift together: std-Q and mean-tau grow with pile-up), ``s`` the LB-to-LB noise sigma and ``z``
unit-variance AR(1) noise whose A and C components are mostly shared (A/C symmetry).

Anomaly injectors follow the signatures of the LAr research notes (noise burst, HV trip,
FEB desynchronisation, noisy channel, trigger misconfiguration); two benign controls (a real
luminosity step, a change of run offsets) must not be flagged. Effect sizes are given in units
of the feature's noise sigma ``Run.noise_sigma`` (the stationary standard deviation of the
AR(1) noise); ``severity`` multiplies them, 1.0 being the documented default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from reference.dqm.errors import DQMDataError

PARTITIONS = ("EMBA", "EMBC", "EMECA", "EMECC")
QUANTITIES = ("q", "tau")
STATS = ("mean", "std")
FEATURES = tuple(f"{q}_{s}_{p}" for p in PARTITIONS for q in QUANTITIES for s in STATS)
N_FEATURES = len(FEATURES)
MODES = ("pp", "heavy_ion")

ANOMALY_TYPES = ("noise_burst", "hv_trip", "desync", "noisy_channel", "trigger")
ANOMALY_CODES = {kind: code for code, kind in enumerate(ANOMALY_TYPES, start=1)}
BENIGN_TYPES = ("lumi_step", "run_change")
BENIGN_CODES = {"lumi_step": 101, "run_change": 102}
CODE_NAMES = {0: "good", **{c: k for k, c in ANOMALY_CODES.items()}, **{c: k for k, c in BENIGN_CODES.items()}}

_ANOMALY_CODE_LIST = (0, *ANOMALY_CODES.values())
_BENIGN_CODE_LIST = (0, *BENIGN_CODES.values())
_N_PART_CLASSES = len(PARTITIONS) + 1  # partition -1 (none/global) .. 3
# Per feature: detector (0 barrel, 1 endcap), quantity-stat index 0..3, A/C pair index 0..7.
_FEATURE_DETECTOR = np.repeat(np.arange(len(PARTITIONS)) // 2, 4)
_FEATURE_QS = np.tile(np.arange(4), len(PARTITIONS))
_FEATURE_PAIR = _FEATURE_DETECTOR * 4 + _FEATURE_QS


def feature_index(quantity, stat, partition) -> int:
    """Column of (quantity 'q'|'tau', stat 'mean'|'std', partition name or index 0..3)."""
    if quantity not in QUANTITIES:
        raise DQMDataError(f"Unknown quantity {quantity!r}; expected one of {QUANTITIES}.")
    if stat not in STATS:
        raise DQMDataError(f"Unknown statistic {stat!r}; expected one of {STATS}.")
    p = partition_index(partition)
    return 4 * p + 2 * QUANTITIES.index(quantity) + STATS.index(stat)


def partition_index(partition) -> int:
    """Index 0..3 of a partition given by name ('EMECA') or index."""
    if isinstance(partition, str):
        if partition not in PARTITIONS:
            raise DQMDataError(f"Unknown partition {partition!r}; expected one of {PARTITIONS}.")
        return PARTITIONS.index(partition)
    if isinstance(partition, (int, np.integer)) and 0 <= int(partition) < len(PARTITIONS):
        return int(partition)
    raise DQMDataError(f"Partition {partition!r} is neither a name in {PARTITIONS} nor an index 0..3.")


def partition_columns(partition) -> np.ndarray:
    """The four feature columns of one partition (q_mean, q_std, tau_mean, tau_std)."""
    p = partition_index(partition)
    return np.arange(4 * p, 4 * p + 4)


def mirror_partition(partition) -> int:
    """The other side of the same detector (EMBA <-> EMBC, EMECA <-> EMECC)."""
    return partition_index(partition) ^ 1


def _require(checks) -> None:
    """Raise DQMDataError with the message of the first failed (condition, message) pair."""
    for ok, message in checks:
        if not ok:
            raise DQMDataError(message)


def _is_range(pair, low) -> bool:
    return len(pair) == 2 and low <= pair[0] <= pair[1]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeProfile:
    """Beam-mode dependent distributions. Four-tuples are ordered (q_mean, q_std, tau_mean, tau_std).

    barrel_baseline / endcap_baseline: feature values at zero luminosity (Q dimensionless, tau ns).
    barrel_noise_sigma: LB-to-LB noise sigma of the barrel features (same units);
    endcap_noise_factor multiplies it for the endcaps.
    lumi_drift_sigma: drift of each feature from zero to the nominal peak luminosity, in noise sigmas.
    peak_luminosity_e30: nominal peak instantaneous luminosity (1e30 cm^-2 s^-1);
    peak_luminosity_spread: fill-to-fill log-normal spread of the peak (relative).
    levelling_h: hours at constant (levelled) luminosity at the start of the fill;
    lumi_lifetime_h: exponential burn-off time constant after levelling (hours).
    fill_age_max_h: a run starts uniformly between 0 and this many hours into its fill.
    """

    barrel_baseline: tuple = (35.0, 20.0, 0.10, 1.20)
    endcap_baseline: tuple = (45.0, 28.0, -0.05, 1.45)
    barrel_noise_sigma: tuple = (0.50, 0.40, 0.010, 0.015)
    endcap_noise_factor: float = 1.3
    lumi_drift_sigma: tuple = (4.0, 8.0, 6.0, 4.0)
    peak_luminosity_e30: float = 2.0e4
    peak_luminosity_spread: float = 0.15
    levelling_h: float = 0.0
    lumi_lifetime_h: float = 12.0
    fill_age_max_h: float = 4.0

    def __post_init__(self):
        four = (self.barrel_baseline, self.endcap_baseline, self.barrel_noise_sigma, self.lumi_drift_sigma)
        _require([
            (all(len(t) == 4 for t in four), "ModeProfile four-tuples must have 4 entries (q_mean, q_std, tau_mean, tau_std)."),
            (min(self.barrel_noise_sigma) > 0 and self.endcap_noise_factor > 0, "ModeProfile noise sigmas must be positive."),
            (self.peak_luminosity_e30 > 0 and self.lumi_lifetime_h > 0, "ModeProfile peak luminosity and lifetime must be positive."),
            (min(self.peak_luminosity_spread, self.levelling_h, self.fill_age_max_h) >= 0,
             "ModeProfile spread, levelling and fill age must not be negative."),
        ])


HEAVY_ION_PROFILE = ModeProfile(
    barrel_baseline=(55.0, 40.0, 0.30, 1.80),
    endcap_baseline=(65.0, 50.0, 0.20, 2.10),
    barrel_noise_sigma=(1.0, 0.8, 0.020, 0.030),
    endcap_noise_factor=1.4,
    lumi_drift_sigma=(6.0, 10.0, 3.0, 5.0),
    peak_luminosity_e30=6.0e-3,
    peak_luminosity_spread=0.20,
    levelling_h=0.5,
    lumi_lifetime_h=3.0,
    fill_age_max_h=1.5,
)


@dataclass(frozen=True)
class AnomalyConfig:
    """Anomaly and benign-control shapes at severity 1.0. Sizes are in units of the feature's noise sigma.

    Ranges (low, high) in LBs are inclusive and drawn uniformly when no length is given.
    noise burst: +q_mean, +q_std, +tau_std spike over burst_lb LBs (each LB scaled by U(0.6, 1));
      an endcap with probability burst_endcap_probability, both sides with
      burst_both_sides_probability (the second side at a fraction burst_other_side_fraction).
    hv_trip: step trip_step_sigma on (q_mean, q_std, tau_mean, tau_std) of one partition,
      recovering as exp(-t / (recovery / 3)) over trip_recovery_lb LBs. The labels cover the LBs
      where the largest shift is still at least trip_visible_sigma (at least the first LB): the
      rest of the recovery is injected but, lying within the noise, is good data.
    desync: +desync_tau_mean_sigma on mean-tau and +desync_tau_std_sigma on std-tau of one
      partition; frozen (all four features of the partition constant) with
      desync_frozen_probability; until the end of the run unless a length is given.
    noisy_channel: +noisy_q_std_sigma on std-Q of one partition; until the end of the run by default.
    trigger: shift of all 16 features, trigger_shift_sigma * sign * U(0.6, 1) per (quantity, stat),
      the same in all partitions, over trigger_length_lb LBs.
    lumi_step: luminosity multiplied by 1 -/+ U(lumi_step_fraction) (up with
      lumi_step_up_probability); features follow the normal luminosity response.
    run_change: new run offsets, run_change_offset_sigma per A/C pair plus
      run_change_asymmetry_sigma per side, from the change to the end of the run.
    dataset_*_lb: lengths generate_dataset draws for the persistent kinds.
    """

    burst_lb: tuple = (1, 2)
    burst_q_mean_sigma: float = 8.0
    burst_q_std_sigma: float = 10.0
    burst_tau_std_sigma: float = 5.0
    burst_endcap_probability: float = 0.8
    burst_both_sides_probability: float = 0.4
    burst_other_side_fraction: tuple = (0.3, 1.0)
    trip_step_sigma: tuple = (-6.0, 4.0, 5.0, 4.0)
    trip_recovery_lb: tuple = (10, 20)
    trip_visible_sigma: float = 1.0
    desync_tau_mean_sigma: float = 6.0
    desync_tau_std_sigma: float = 3.0
    desync_frozen_probability: float = 0.25
    noisy_q_std_sigma: float = 1.5
    trigger_shift_sigma: float = 3.0
    trigger_length_lb: tuple = (30, 120)
    lumi_step_fraction: tuple = (0.15, 0.35)
    lumi_step_up_probability: float = 0.3
    run_change_offset_sigma: float = 2.0
    run_change_asymmetry_sigma: float = 0.3
    dataset_desync_lb: tuple = (40, 200)
    dataset_noisy_lb: tuple = (80, 300)

    def __post_init__(self):
        ranges = (self.burst_lb, self.trip_recovery_lb, self.trigger_length_lb, self.dataset_desync_lb,
                  self.dataset_noisy_lb)
        probabilities = (self.burst_endcap_probability, self.burst_both_sides_probability,
                         self.desync_frozen_probability, self.lumi_step_up_probability)
        _require([
            (all(_is_range(r, 1) for r in ranges), "AnomalyConfig LB ranges must be (low, high) with 1 <= low <= high."),
            (all(0.0 <= p <= 1.0 for p in probabilities), "AnomalyConfig probabilities must lie in [0, 1]."),
            (_is_range(self.lumi_step_fraction, 0.0) and self.lumi_step_fraction[1] < 1.0,
             "AnomalyConfig lumi_step_fraction must be (low, high) with 0 <= low <= high < 1."),
            (_is_range(self.burst_other_side_fraction, 0.0), "AnomalyConfig burst_other_side_fraction must be (low, high)."),
            (len(self.trip_step_sigma) == 4, "AnomalyConfig trip_step_sigma must have 4 entries."),
        ])


@dataclass(frozen=True)
class GeneratorConfig:
    """Good-data generator settings.

    mode: 'pp' or 'heavy_ion' (selects ``pp`` or ``heavy_ion`` profile).
    min_lb / max_lb: run length range in LBs (inclusive); lb_duration_s: seconds per LB.
    ar1_coefficient: lag-1 coefficient of the AR(1) noise; noise_scale multiplies every noise sigma.
    side_noise_fraction: fraction of the noise variance that is independent between the A and C side.
    run_offset_sigma: run-to-run offset sigma of each A/C pair, in profile noise sigmas;
    ac_asymmetry_sigma: extra per-side run offset sigma (A/C asymmetry), in profile noise sigmas.
    luminosity_jitter: relative LB-to-LB Gaussian jitter of the luminosity.
    anomaly: injector shapes at severity 1.0 (used by generate_dataset).
    """

    mode: str = "pp"
    min_lb: int = 300
    max_lb: int = 1000
    lb_duration_s: float = 60.0
    ar1_coefficient: float = 0.6
    noise_scale: float = 1.0
    side_noise_fraction: float = 0.05
    run_offset_sigma: float = 2.0
    ac_asymmetry_sigma: float = 0.3
    luminosity_jitter: float = 0.005
    pp: ModeProfile = ModeProfile()
    heavy_ion: ModeProfile = HEAVY_ION_PROFILE
    anomaly: AnomalyConfig = AnomalyConfig()

    def __post_init__(self):
        _require([
            (self.mode in MODES, f"Unknown mode {self.mode!r}; expected one of {MODES}."),
            (1 <= self.min_lb <= self.max_lb, "GeneratorConfig needs 1 <= min_lb <= max_lb."),
            (self.lb_duration_s > 0, "GeneratorConfig lb_duration_s must be positive."),
            (0.0 <= self.ar1_coefficient < 1.0, "GeneratorConfig ar1_coefficient must lie in [0, 1)."),
            (self.noise_scale > 0, "GeneratorConfig noise_scale must be positive."),
            (0.0 <= self.side_noise_fraction <= 1.0, "GeneratorConfig side_noise_fraction must lie in [0, 1]."),
            (min(self.run_offset_sigma, self.ac_asymmetry_sigma, self.luminosity_jitter) >= 0,
             "GeneratorConfig offset, asymmetry and jitter scales must not be negative."),
        ])

    @property
    def profile(self) -> ModeProfile:
        """The profile of the configured mode."""
        return self.pp if self.mode == "pp" else self.heavy_ion


@dataclass(frozen=True)
class DatasetConfig:
    """Settings of generate_dataset.

    n_runs runs numbered from first_run_number; each gets anomalies_per_run = (low, high)
    anomalies (uniform, inclusive) of the given kinds at ``severity`` and benign_per_run
    benign controls of benign_kinds, at non-overlapping positions at least min_gap_lb LBs apart
    (events that do not fit are dropped). Deterministic for ``seed``.
    """

    n_runs: int = 20
    first_run_number: int = 430000
    anomalies_per_run: tuple = (0, 3)
    kinds: tuple = ANOMALY_TYPES
    severity: float = 1.0
    benign_per_run: int = 1
    benign_kinds: tuple = BENIGN_TYPES
    min_gap_lb: int = 32
    seed: int = 0
    generator: GeneratorConfig = GeneratorConfig()

    def __post_init__(self):
        _require([
            (self.n_runs >= 0 and self.first_run_number >= 0 and self.seed >= 0,
             "DatasetConfig n_runs, first_run_number and seed must not be negative."),
            (_is_range(self.anomalies_per_run, 0), "DatasetConfig anomalies_per_run must be (low, high) with 0 <= low <= high."),
            (all(k in ANOMALY_TYPES for k in self.kinds), f"DatasetConfig kinds must be taken from {ANOMALY_TYPES}."),
            (all(k in BENIGN_TYPES for k in self.benign_kinds), f"DatasetConfig benign_kinds must be taken from {BENIGN_TYPES}."),
            (self.kinds or self.anomalies_per_run[1] == 0, "DatasetConfig asks for anomalies but lists no kinds."),
            (self.benign_kinds or self.benign_per_run == 0, "DatasetConfig asks for benign controls but lists no kinds."),
            (self.severity > 0 and self.benign_per_run >= 0 and self.min_gap_lb >= 0,
             "DatasetConfig severity must be positive and benign_per_run, min_gap_lb not negative."),
        ])


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Run:
    """One run: per-LB features, luminosity and labels.

    values (n_lb, 16) float32 in FEATURES order; luminosity (n_lb,) float32 in 1e30 cm^-2 s^-1;
    labels (n_lb,) int8 anomaly code (0 good, 1..5 = ANOMALY_TYPES); benign (n_lb,) int16
    benign-control code (0 none, 101 lumi_step, 102 run_change; marks the LBs where the control
    changes the data); partition (n_lb,) int8 affected partition 0..3 of a local anomaly, -1 for
    none or global. noise_sigma (16,) and lumi_response (16,) float32 are the generator's noise
    sigma and luminosity response (feature units per 1e30 cm^-2 s^-1); the injectors need them.
    """

    run_number: int
    mode: str
    values: np.ndarray
    luminosity: np.ndarray
    labels: np.ndarray
    benign: np.ndarray
    partition: np.ndarray
    noise_sigma: np.ndarray | None = None
    lumi_response: np.ndarray | None = None

    def __post_init__(self):
        self.values = np.asarray(self.values, dtype=np.float32)
        self.luminosity = np.asarray(self.luminosity, dtype=np.float32)
        _require([
            (self.mode in MODES, f"Run {self.run_number}: unknown mode {self.mode!r}; expected one of {MODES}."),
            (self.values.ndim == 2 and self.values.shape[1] == N_FEATURES and self.values.shape[0] >= 1,
             f"Run {self.run_number}: values must have shape (n_lb >= 1, {N_FEATURES}), not {self.values.shape}."),
        ])
        n = self.values.shape[0]
        self.labels = _as_codes(self.labels, np.int8, _ANOMALY_CODE_LIST, f"Run {self.run_number} labels", n)
        self.benign = _as_codes(self.benign, np.int16, _BENIGN_CODE_LIST, f"Run {self.run_number} benign", n)
        self.partition = _as_codes(self.partition, np.int8, (-1, 0, 1, 2, 3), f"Run {self.run_number} partition", n)
        self.noise_sigma = _optional_feature_vector(self.noise_sigma, f"Run {self.run_number} noise_sigma")
        self.lumi_response = _optional_feature_vector(self.lumi_response, f"Run {self.run_number} lumi_response")
        _require([
            (self.luminosity.shape == (n,), f"Run {self.run_number}: luminosity must have shape ({n},), not {self.luminosity.shape}."),
            (bool(np.isfinite(self.values).all() and np.isfinite(self.luminosity).all()),
             f"Run {self.run_number}: values and luminosity must be finite."),
        ])

    @property
    def n_lb(self) -> int:
        """Number of lumiblocks."""
        return self.values.shape[0]

    def copy(self) -> Run:
        """A deep copy (new arrays)."""
        return dataclasses.replace(self, **{f.name: _copy_or_none(getattr(self, f.name))
                                            for f in dataclasses.fields(self) if f.name not in ("run_number", "mode")})


def _copy_or_none(array):
    return None if array is None else np.array(array, copy=True)


def _as_codes(array, dtype, allowed, name, n) -> np.ndarray:
    """Integer label array of shape (n,) whose entries all lie in ``allowed``."""
    raw = np.asarray(array)
    _require([
        (raw.shape == (n,), f"{name} must have shape ({n},), not {raw.shape}."),
        (raw.size == 0 or np.issubdtype(raw.dtype, np.integer), f"{name} must be integers, not {raw.dtype}."),
    ])
    bad = ~np.isin(raw, allowed)
    if bad.any():
        raise DQMDataError(f"{name} holds the unknown code {raw[bad][0]} (allowed: {allowed}).")
    return raw.astype(dtype)


def _optional_feature_vector(array, name):
    if array is None:
        return None
    vector = np.asarray(array, dtype=np.float32)
    _require([(vector.shape == (N_FEATURES,) and bool(np.isfinite(vector).all()),
               f"{name} must be {N_FEATURES} finite numbers.")])
    return vector


def _profile_vectors(profile: ModeProfile) -> tuple:
    """(baseline, noise sigma, luminosity drift in sigmas) per feature, each (16,) float64."""
    endcap = _FEATURE_DETECTOR == 1
    qs = _FEATURE_QS
    baseline = np.where(endcap, np.asarray(profile.endcap_baseline)[qs], np.asarray(profile.barrel_baseline)[qs])
    sigma = np.asarray(profile.barrel_noise_sigma)[qs] * np.where(endcap, profile.endcap_noise_factor, 1.0)
    return baseline, sigma, np.asarray(profile.lumi_drift_sigma, dtype=float)[qs]


def _luminosity(config: GeneratorConfig, n_lb: int, rng) -> np.ndarray:
    """Instantaneous luminosity per LB (1e30 cm^-2 s^-1): levelling, then exponential burn-off."""
    profile = config.profile
    peak = profile.peak_luminosity_e30 * np.exp(profile.peak_luminosity_spread * rng.standard_normal())
    age_h = rng.uniform(0.0, profile.fill_age_max_h) + np.arange(n_lb) * config.lb_duration_s / 3600.0
    decay = np.exp(-np.maximum(age_h - profile.levelling_h, 0.0) / profile.lumi_lifetime_h)
    jitter = 1.0 + config.luminosity_jitter * rng.standard_normal(n_lb)
    return peak * decay * jitter


def ar1_noise(n_lb: int, n_series: int, coefficient: float, rng) -> np.ndarray:
    """(n_lb, n_series) stationary AR(1) series with unit variance and lag-1 correlation ``coefficient``."""
    innovations = rng.standard_normal((n_lb, n_series))
    innovations[1:] *= np.sqrt(1.0 - coefficient ** 2)
    return lfilter([1.0], [1.0, -coefficient], innovations, axis=0)


def _feature_noise(config: GeneratorConfig, n_lb: int, rng) -> np.ndarray:
    """Unit-variance (n_lb, 16) noise: A/C-shared AR(1) part plus an independent per-side part."""
    series = ar1_noise(n_lb, 8 + N_FEATURES, config.ar1_coefficient, rng)
    share = config.side_noise_fraction
    return np.sqrt(1.0 - share) * series[:, _FEATURE_PAIR] + np.sqrt(share) * series[:, 8:]


def _run_offsets(config: GeneratorConfig, rng) -> np.ndarray:
    """Per-feature run offset in profile noise sigmas: shared by A and C plus a side-specific part."""
    shared = config.run_offset_sigma * rng.standard_normal(8)
    return shared[_FEATURE_PAIR] + config.ac_asymmetry_sigma * rng.standard_normal(N_FEATURES)


def run_rng(seed: int, run_number: int, stream: int = 0) -> np.random.Generator:
    """Random generator derived from (seed, run_number, stream); all must be non-negative integers."""
    if min(int(seed), int(run_number), int(stream)) < 0:
        raise DQMDataError(f"Seed {seed}, run number {run_number} and stream {stream} must not be negative.")
    return np.random.default_rng([int(seed), int(run_number), int(stream)])


def generate_run(config: GeneratorConfig, run_number: int, seed: int) -> Run:
    """Good data of one run; deterministic for (config, run_number, seed)."""
    rng = run_rng(seed, run_number)
    n_lb = int(rng.integers(config.min_lb, config.max_lb + 1))
    luminosity = _luminosity(config, n_lb, rng)
    baseline, sigma, drift = _profile_vectors(config.profile)
    offsets = _run_offsets(config, rng) * sigma
    response = drift * sigma / config.profile.peak_luminosity_e30
    noise_sigma = sigma * config.noise_scale
    noise = _feature_noise(config, n_lb, rng) * noise_sigma
    values = baseline + offsets + response * luminosity[:, None] + noise
    return Run(run_number=int(run_number), mode=config.mode, values=values, luminosity=luminosity,
               labels=np.zeros(n_lb, np.int8), benign=np.zeros(n_lb, np.int16),
               partition=np.full(n_lb, -1, np.int8), noise_sigma=noise_sigma, lumi_response=response)


# --------------------------------------------------------------------------------------------
# Injectors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    """One injected anomaly or benign control.

    kind: a name in ANOMALY_TYPES or BENIGN_TYPES; start: first LB (0-based); severity: size
    multiplier (1.0 = AnomalyConfig defaults); partition: 0..3 for local anomalies (None = drawn;
    must be None for trigger and benign kinds); length: LBs affected (None = the kind's default:
    drawn burst / recovery / trigger length, until the end of the run for desync, noisy_channel,
    lumi_step; run_change always lasts to the end); frozen: desync only (None = drawn).
    """

    kind: str
    start: int
    severity: float = 1.0
    partition: int | None = None
    length: int | None = None
    frozen: bool | None = None


@dataclass
class _Work:
    """Mutable state of one injection: copies of the run's arrays plus the inputs."""

    run: Run
    spec: Injection
    shapes: AnomalyConfig
    rng: np.random.Generator
    values: np.ndarray = field(init=False)
    luminosity: np.ndarray = field(init=False)
    marks: list = field(init=False, default_factory=list)

    def __post_init__(self):
        self.values = self.run.values.astype(np.float64)
        self.luminosity = self.run.luminosity.astype(np.float64)

    def length(self, drawn_range=None) -> int:
        """LBs to affect: the spec length, else one drawn from ``drawn_range``, else the rest of the run."""
        drawn = None if drawn_range is None else int(self.rng.integers(drawn_range[0], drawn_range[1] + 1))
        if self.spec.length is not None:
            return self.spec.length
        return self.run.n_lb - self.spec.start if drawn is None else drawn

    def stop(self, length: int) -> int:
        """End (exclusive) of ``length`` LBs from the start, cut at the end of the run."""
        return min(self.spec.start + length, self.run.n_lb)

    def local_partition(self) -> int:
        """The spec's partition, or one drawn uniformly."""
        drawn = int(self.rng.integers(len(PARTITIONS)))
        return drawn if self.spec.partition is None else self.spec.partition


def _noise_burst(work: _Work) -> tuple:
    shapes, rng, start = work.shapes, work.rng, work.spec.start
    stop = work.stop(work.length(shapes.burst_lb))
    endcap = rng.random() < shapes.burst_endcap_probability
    both = rng.random() < shapes.burst_both_sides_probability
    main = 2 * int(endcap) + int(rng.integers(2))
    other_fraction = rng.uniform(*shapes.burst_other_side_fraction)
    per_lb = rng.uniform(0.6, 1.0, stop - start)
    if work.spec.partition is not None:
        main, both = work.spec.partition, False
    hits = [(main, 1.0)] + ([(mirror_partition(main), other_fraction)] if both else [])
    size = work.spec.severity * np.array([shapes.burst_q_mean_sigma, shapes.burst_q_std_sigma, shapes.burst_tau_std_sigma])
    for p, weight in hits:
        cols = [feature_index(q, s, p) for q, s in (("q", "mean"), ("q", "std"), ("tau", "std"))]
        work.values[start:stop, cols] += np.outer(per_lb, weight * size * work.run.noise_sigma[cols])
    return stop, main


def _hv_trip(work: _Work) -> tuple:
    partition = work.local_partition()
    recovery_lb = work.length(work.shapes.trip_recovery_lb)
    start, stop = work.spec.start, work.stop(recovery_lb)
    decay = np.exp(-np.arange(stop - start) / (recovery_lb / 3.0))
    cols = partition_columns(partition)
    step_sigma = work.spec.severity * np.asarray(work.shapes.trip_step_sigma)
    work.values[start:stop, cols] += np.outer(decay, step_sigma * work.run.noise_sigma[cols])
    visible = int(np.count_nonzero(decay * np.abs(step_sigma).max() >= work.shapes.trip_visible_sigma))
    return start + max(visible, 1), partition


def _desync(work: _Work) -> tuple:
    partition = work.local_partition()
    frozen_draw = work.rng.random() < work.shapes.desync_frozen_probability
    frozen = frozen_draw if work.spec.frozen is None else work.spec.frozen
    start, stop = work.spec.start, work.stop(work.length())
    cols = partition_columns(partition)
    shift = work.spec.severity * np.array([0.0, 0.0, work.shapes.desync_tau_mean_sigma, work.shapes.desync_tau_std_sigma])
    work.values[start:stop, cols] += shift * work.run.noise_sigma[cols]
    if frozen:
        work.values[start:stop, cols] = work.values[start, cols]
    return stop, partition


def _noisy_channel(work: _Work) -> tuple:
    partition = work.local_partition()
    start, stop = work.spec.start, work.stop(work.length())
    col = feature_index("q", "std", partition)
    work.values[start:stop, col] += work.spec.severity * work.shapes.noisy_q_std_sigma * work.run.noise_sigma[col]
    return stop, partition


def _trigger(work: _Work) -> tuple:
    start, stop = work.spec.start, work.stop(work.length(work.shapes.trigger_length_lb))
    pattern = work.rng.choice([-1.0, 1.0], 4) * work.rng.uniform(0.6, 1.0, 4)
    shift = work.spec.severity * work.shapes.trigger_shift_sigma * pattern[_FEATURE_QS] * work.run.noise_sigma
    work.values[start:stop] += shift
    return stop, -1


def _lumi_step(work: _Work) -> tuple:
    up = work.rng.random() < work.shapes.lumi_step_up_probability
    fraction = min(work.spec.severity * work.rng.uniform(*work.shapes.lumi_step_fraction), 0.95)
    factor = 1.0 + fraction if up else 1.0 - fraction
    start, stop = work.spec.start, work.stop(work.length())
    change = work.luminosity[start:stop] * (factor - 1.0)
    work.luminosity[start:stop] += change
    work.values[start:stop] += np.outer(change, work.run.lumi_response)
    work.marks = [start] + ([stop] if stop < work.run.n_lb else [])
    return stop, -1


def _run_change(work: _Work) -> tuple:
    shapes, start = work.shapes, work.spec.start
    shared = shapes.run_change_offset_sigma * work.rng.standard_normal(8)
    offset = shared[_FEATURE_PAIR] + shapes.run_change_asymmetry_sigma * work.rng.standard_normal(N_FEATURES)
    work.values[start:] += work.spec.severity * offset * work.run.noise_sigma
    work.marks = [start]
    return work.run.n_lb, -1


_INJECTORS = {"noise_burst": _noise_burst, "hv_trip": _hv_trip, "desync": _desync, "noisy_channel": _noisy_channel,
              "trigger": _trigger, "lumi_step": _lumi_step, "run_change": _run_change}
_LOCAL_KINDS = ("noise_burst", "hv_trip", "desync", "noisy_channel")


def _check_injection(run: Run, spec: Injection) -> None:
    _require([
        (spec.kind in _INJECTORS, f"Unknown kind {spec.kind!r}; expected one of {ANOMALY_TYPES + BENIGN_TYPES}."),
        (0 <= spec.start < run.n_lb, f"Start LB {spec.start} lies outside run {run.run_number} (0..{run.n_lb - 1})."),
        (spec.severity > 0, f"Severity must be positive, not {spec.severity}."),
        (spec.length is None or spec.length >= 1, f"Length must be at least 1 LB, not {spec.length}."),
        (spec.partition is None or spec.kind in _LOCAL_KINDS, f"Kind {spec.kind!r} is not local; leave partition unset."),
        (spec.partition is None or spec.partition in range(len(PARTITIONS)), f"Partition {spec.partition} is not an index 0..3."),
        (run.noise_sigma is not None, f"Run {run.run_number} has no noise_sigma; the injectors need it."),
        (run.lumi_response is not None or spec.kind != "lumi_step", f"Run {run.run_number} has no lumi_response; lumi_step needs it."),
    ])


def apply_injection(run: Run, spec: Injection, rng: np.random.Generator, shapes: AnomalyConfig = AnomalyConfig()) -> Run:
    """A new Run with ``spec`` injected (see Injection, AnomalyConfig); ``run`` is not changed.

    Anomalies set labels and partition on the affected LBs and refuse LBs that already carry an
    anomaly; benign controls set ``benign`` on the LBs where they change the data and leave labels alone.
    """
    _check_injection(run, spec)
    work = _Work(run, spec, shapes, rng)
    stop, partition = _INJECTORS[spec.kind](work)
    out = run.copy()
    out.values = work.values.astype(np.float32)
    out.luminosity = work.luminosity.astype(np.float32)
    if spec.kind in BENIGN_CODES:
        out.benign[work.marks] = BENIGN_CODES[spec.kind]
        return out
    taken = np.flatnonzero(run.labels[spec.start:stop])
    if taken.size:
        lb = spec.start + int(taken[0])
        raise DQMDataError(f"LB {lb} of run {run.run_number} already carries anomaly {CODE_NAMES[int(run.labels[lb])]!r}.")
    out.labels[spec.start:stop] = ANOMALY_CODES[spec.kind]
    out.partition[spec.start:stop] = partition
    return out


def inject(run: Run, kind: str, start: int, severity: float | None = None, **options) -> Run:
    """A new Run with one anomaly or benign control of ``kind`` starting at LB ``start``.

    severity: size multiplier, None = 1.0 (the AnomalyConfig sizes in noise sigmas).
    Keyword options: partition (0..3, local anomalies only; None = drawn), rng (a numpy
    Generator; None = derived from run number, kind and start), length (LBs), frozen (desync),
    shapes (an AnomalyConfig; default AnomalyConfig()). See Injection for the defaults.
    """
    unknown = set(options) - {"partition", "rng", "length", "frozen", "shapes"}
    if unknown:
        raise TypeError(f"inject() got unknown option(s) {sorted(unknown)}.")
    rng = options.get("rng")
    if rng is None:
        code = ANOMALY_CODES.get(kind, BENIGN_CODES.get(kind, 0))
        rng = run_rng(max(int(start), 0), run.run_number, 1000 + code)
    spec = Injection(kind=kind, start=int(start), severity=1.0 if severity is None else float(severity),
                     partition=options.get("partition"), length=options.get("length"), frozen=options.get("frozen"))
    return apply_injection(run, spec, rng, options.get("shapes") or AnomalyConfig())


# --------------------------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------------------------


def _event_length(kind: str, shapes: AnomalyConfig, rng) -> int:
    """LBs an event occupies in generate_dataset (benign controls: the single LB where they start)."""
    ranges = {"noise_burst": shapes.burst_lb, "hv_trip": shapes.trip_recovery_lb, "desync": shapes.dataset_desync_lb,
              "noisy_channel": shapes.dataset_noisy_lb, "trigger": shapes.trigger_length_lb}
    if kind not in ranges:
        return 1
    low, high = ranges[kind]
    return int(rng.integers(low, high + 1))


def place_intervals(lengths, n_lb: int, gap: int, rng) -> np.ndarray:
    """Random non-overlapping starts for intervals of ``lengths`` (in the given order) at least ``gap`` apart.

    The free LBs are split uniformly at random; the caller must make sure they fit.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    free = n_lb - int(lengths.sum()) - gap * max(len(lengths) - 1, 0)
    if free < 0:
        raise DQMDataError(f"Intervals of total length {int(lengths.sum())} with gap {gap} do not fit into {n_lb} LBs.")
    offsets = np.sort(rng.integers(0, free + 1, len(lengths)))
    before = np.concatenate([[0], np.cumsum(lengths[:-1] + gap)]) if len(lengths) else lengths
    return offsets + before


def _plan_events(run: Run, config: DatasetConfig, rng) -> list:
    """Injections for one run: shuffled anomalies and controls, dropped from the end until they fit."""
    shapes = config.generator.anomaly
    n_anomalies = int(rng.integers(config.anomalies_per_run[0], config.anomalies_per_run[1] + 1))
    kinds = list(rng.choice(config.kinds, n_anomalies)) if n_anomalies else []
    kinds += list(rng.choice(config.benign_kinds, config.benign_per_run)) if config.benign_per_run else []
    kinds = [str(k) for k in rng.permutation(np.array(kinds, dtype=object))]
    lengths = [_event_length(k, shapes, rng) for k in kinds]
    while kinds and sum(lengths) + config.min_gap_lb * (len(kinds) - 1) > run.n_lb:
        kinds.pop()
        lengths.pop()
    starts = place_intervals(lengths, run.n_lb, config.min_gap_lb, rng)
    return [Injection(kind=k, start=int(s), severity=config.severity,
                      length=None if k in BENIGN_CODES else n)
            for k, s, n in zip(kinds, starts, lengths)]


def generate_dataset(config: DatasetConfig) -> list:
    """config.n_runs runs of good data with anomalies and benign controls injected; deterministic."""
    runs = []
    for i in range(config.n_runs):
        run_number = config.first_run_number + i
        run = generate_run(config.generator, run_number, config.seed)
        rng = run_rng(config.seed, run_number, 1)
        for spec in _plan_events(run, config, rng):
            run = apply_injection(run, spec, rng, config.generator.anomaly)
        runs.append(run)
    return runs


def split_runs(runs, fractions=(0.6, 0.2, 0.2), seed: int = 0) -> tuple:
    """(train, validation, test) lists of runs, split by run at random; no run is in two splits.

    Counts are rounded from ``fractions`` (which must sum to 1); test takes the remainder.
    Each split keeps the input order.
    """
    numbers = [run.run_number for run in runs]
    _require([
        (len(fractions) == 3 and min(fractions) >= 0 and abs(sum(fractions) - 1.0) < 1e-9,
         f"Split fractions must be three non-negative numbers summing to 1, not {tuple(fractions)}."),
        (len(set(numbers)) == len(numbers), "Run numbers must be unique to split by run."),
    ])
    order = np.random.default_rng(seed).permutation(len(runs))
    n_train = int(round(fractions[0] * len(runs)))
    n_val = min(int(round(fractions[1] * len(runs))), len(runs) - n_train)
    parts = (order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:])
    return tuple([runs[i] for i in sorted(part)] for part in parts)


# --------------------------------------------------------------------------------------------
# Windows and standardisation
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Windows:
    """Sliding windows over runs.

    x (n, length, 16) float32; label (n,) int8: the most frequent anomaly code among the window's
    LBs (0 if none; ties go to the lower code); benign (n,) int16: likewise for benign codes;
    partition (n,) int8: the most frequent partition among the LBs carrying ``label`` (-1 for
    good or global); run_number (n,) int32; start (n,) int32: first LB of the window.
    """

    x: np.ndarray
    label: np.ndarray
    benign: np.ndarray
    partition: np.ndarray
    run_number: np.ndarray
    start: np.ndarray

    def __post_init__(self):
        n = self.x.shape[0]
        _require([
            (self.x.ndim == 3 and self.x.shape[2] == N_FEATURES, f"Windows x must have shape (n, length, {N_FEATURES}), not {self.x.shape}."),
            (all(a.shape == (n,) for a in (self.label, self.benign, self.partition, self.run_number, self.start)),
             f"Windows label, benign, partition, run_number and start must all have shape ({n},)."),
        ])

    def __len__(self) -> int:
        return self.x.shape[0]

    def select(self, mask) -> Windows:
        """The windows where the boolean ``mask`` (or index array) selects."""
        return Windows(*(np.asarray(getattr(self, f.name))[mask] for f in dataclasses.fields(self)))


def _window_counts(classes: np.ndarray, n_classes: int, starts: np.ndarray, length: int) -> np.ndarray:
    """(n_windows, n_classes) count of each class index among the LBs of each window."""
    onehot = np.zeros((classes.size + 1, n_classes), dtype=np.int32)
    onehot[np.arange(1, classes.size + 1), classes] = 1
    cumulative = np.cumsum(onehot, axis=0)
    return cumulative[starts + length] - cumulative[starts]


def _code_classes(codes: np.ndarray, code_list) -> np.ndarray:
    return np.searchsorted(np.asarray(code_list), codes)


def _window_labels(run: Run, starts: np.ndarray, length: int) -> tuple:
    """(label, benign, partition) per window, vectorised over windows."""
    n_codes = len(_ANOMALY_CODE_LIST)
    joint = _code_classes(run.labels, _ANOMALY_CODE_LIST) * _N_PART_CLASSES + run.partition.astype(np.int64) + 1
    counts = _window_counts(joint, n_codes * _N_PART_CLASSES, starts, length).reshape(-1, n_codes, _N_PART_CLASSES)
    per_code = counts.sum(axis=2)[:, 1:]
    code_class = np.where(per_code.any(axis=1), per_code.argmax(axis=1) + 1, 0)
    partition = counts[np.arange(starts.size), code_class].argmax(axis=1) - 1
    partition = np.where(code_class > 0, partition, -1)
    benign_counts = _window_counts(_code_classes(run.benign, _BENIGN_CODE_LIST), len(_BENIGN_CODE_LIST), starts, length)[:, 1:]
    benign_class = np.where(benign_counts.any(axis=1), benign_counts.argmax(axis=1) + 1, 0)
    return (np.asarray(_ANOMALY_CODE_LIST)[code_class], np.asarray(_BENIGN_CODE_LIST)[benign_class], partition)


def _run_change_starts(run: Run, starts: np.ndarray, length: int) -> tuple:
    """A monitor restarts at a run change, as at any new run: windows never span one. The
    windows of the first ``length`` LBs after a change (new offsets from their first LB on) carry
    the run_change benign code. Returns (kept starts, mask of run-change windows among them)."""
    cuts = np.flatnonzero(run.benign == BENIGN_CODES["run_change"])
    if cuts.size == 0:
        return starts, np.zeros(starts.size, bool)
    offset = starts[:, None] - cuts[None, :]
    starts = starts[~((offset < 0) & (offset + length > 0)).any(axis=1)]
    offset = starts[:, None] - cuts[None, :]
    return starts, ((offset >= 0) & (offset < length)).any(axis=1)


def _run_windows(run: Run, length: int, stride: int) -> tuple:
    starts, after_change = _run_change_starts(run, np.arange(0, run.n_lb - length + 1, stride), length)
    x = sliding_window_view(run.values, length, axis=0)[starts].transpose(0, 2, 1)
    label, benign, partition = _window_labels(run, starts, length)
    benign = np.where(after_change, BENIGN_CODES["run_change"], benign)
    return x, label, benign, partition, np.full(starts.size, run.run_number), starts


def make_windows(runs, length: int = 32, stride: int = 1) -> Windows:
    """All windows of ``length`` LBs every ``stride`` LBs in each run (runs shorter than ``length``
    give none); windows do not span a run change (the monitor restarts there, as at a new run)."""
    _require([(int(length) >= 1 and int(stride) >= 1, f"Window length and stride must be at least 1, not {length} and {stride}.")])
    parts = [_run_windows(run, int(length), int(stride)) for run in runs if run.n_lb >= length]
    if not parts:
        return Windows(np.zeros((0, int(length), N_FEATURES), np.float32), np.zeros(0, np.int8), np.zeros(0, np.int16),
                       np.zeros(0, np.int8), np.zeros(0, np.int32), np.zeros(0, np.int32))
    dtypes = (np.float32, np.int8, np.int16, np.int8, np.int32, np.int32)
    columns = [np.concatenate([p[i] for p in parts]).astype(dtype) for i, dtype in enumerate(dtypes)]
    return Windows(*columns)


@dataclass(frozen=True, eq=False)
class Standardiser:
    """Per-feature standardisation z = (x - mean) / std, fitted on good data."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self):
        _require([
            (np.shape(self.mean) == (N_FEATURES,) and np.shape(self.std) == (N_FEATURES,),
             f"Standardiser mean and std must each have {N_FEATURES} entries."),
            (bool(np.isfinite(self.mean).all() and np.isfinite(self.std).all() and (np.asarray(self.std) > 0).all()),
             "Standardiser mean and std must be finite and std positive."),
        ])

    @classmethod
    def fit(cls, x) -> Standardiser:
        """Fit on an array of shape (..., 16) (LBs or windows), all rows taken as good."""
        rows = np.asarray(x, dtype=np.float64).reshape(-1, N_FEATURES) if np.size(x) else np.zeros((0, N_FEATURES))
        if rows.shape[0] < 2:
            raise DQMDataError("Standardiser needs at least two good rows to fit.")
        std = rows.std(axis=0)
        flat = np.flatnonzero(std <= 0)
        if flat.size:
            raise DQMDataError(f"Feature {FEATURES[flat[0]]} is constant in the fit data; it cannot be standardised.")
        return cls(mean=rows.mean(axis=0), std=std)

    @classmethod
    def fit_runs(cls, runs) -> Standardiser:
        """Fit on the good LBs (label 0) of ``runs``."""
        good = [run.values[run.labels == 0] for run in runs]
        return cls.fit(np.concatenate(good) if good else np.zeros((0, N_FEATURES)))

    @classmethod
    def fit_windows(cls, windows: Windows) -> Standardiser:
        """Fit on the windows labelled good (label 0)."""
        return cls.fit(windows.x[windows.label == 0])

    def transform(self, x) -> np.ndarray:
        """Standardised float32 copy of ``x`` (..., 16)."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, z) -> np.ndarray:
        """Back to feature units (float32)."""
        return (np.asarray(z, dtype=np.float64) * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-ready {'features', 'mean', 'std'}."""
        return {"features": list(FEATURES), "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, data: dict) -> Standardiser:
        """Inverse of to_dict; the feature list must match FEATURES."""
        if not isinstance(data, dict) or not {"features", "mean", "std"} <= set(data):
            raise DQMDataError("Standardiser data must be a dict with 'features', 'mean' and 'std'.")
        if tuple(data["features"]) != FEATURES:
            raise DQMDataError("Standardiser data lists other features than FEATURES (order matters).")
        return cls(mean=np.asarray(data["mean"], dtype=np.float64), std=np.asarray(data["std"], dtype=np.float64))
