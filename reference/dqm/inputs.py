"""Autoencoder inputs relative to each run's own reference, with A/C differences.

Why: with one global standardisation (``data.Standardiser``) a feature's unit is its spread over
all runs, which is dominated by the run-to-run offsets (2 noise sigma per A/C pair) and by the
luminosity drift (up to 8 noise sigma from zero to peak luminosity). A persistent shift of a few
noise sigma that fills the whole window (a noisy channel, +1.5 sigma of std-Q; a trigger
misconfiguration, +-1.8..3 sigma of every feature; the plateau of a desynchronisation) then looks
like one more run offset, and an autoencoder trained on good windows reproduces it.

The monitor knows what a run looked like when it started and knows the luminosity of each LB, so
each input channel here is, per LB::

    r[t, f] = (x[t, f] - slope_f * L[t] - reference_f - centre_f) / scale_f

with ``slope`` the luminosity response fitted on good training LBs (within runs), ``reference``
the median of ``slope``-corrected values over the first ``reference_lb`` LBs of the run (a monitor
restarts at a run change, so a new reference is taken there) and ``centre``, ``scale`` the mean
and spread on good training LBs. Optionally eight more channels, the A-C difference of each (quantity, stat,
detector) pair: the detector is A/C symmetric (shared offsets and mostly shared noise), so a
difference cancels the common noise and shows a one-sided anomaly (noisy channel, HV trip,
desynchronisation) about three times more clearly than the feature itself.

The reference needs ``reference_lb`` LBs, which the monitor has by the time it emits its first
window when ``reference_lb`` <= the window length (causal for every window).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from reference.dqm.data import BENIGN_CODES, N_FEATURES, PARTITIONS, Run, Standardiser, Windows, make_windows
from reference.dqm.errors import DQMDataError

#: A-side feature columns and their C-side partners (EMBA-EMBC, EMECA-EMECC)
A_COLUMNS = np.concatenate([np.arange(4 * p, 4 * p + 4) for p in range(0, len(PARTITIONS), 2)])
C_COLUMNS = A_COLUMNS + 4
DIFFERENCE_KINDS = ("run", "global", "none")


def run_segments(run: Run) -> list:
    """(start, stop) LB ranges of a run between run changes (a monitor restarts at each)."""
    cuts = np.flatnonzero(run.benign == BENIGN_CODES["run_change"])
    edges = [0, *[int(c) for c in cuts if 0 < c < run.n_lb], run.n_lb]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def lumi_slope(runs) -> np.ndarray:
    """(16,) luminosity response per feature (units per 1e30 cm^-2 s^-1), least squares on the
    good LBs of ``runs`` after removing each segment's mean (the run offsets drop out)."""
    num, den = np.zeros(N_FEATURES), 0.0
    for run in runs:
        for a, b in run_segments(run):
            good = run.labels[a:b] == 0
            if good.sum() < 2:
                continue
            lumi = run.luminosity[a:b][good].astype(np.float64)
            values = run.values[a:b][good].astype(np.float64)
            lumi -= lumi.mean()
            num += lumi @ (values - values.mean(axis=0))
            den += float(lumi @ lumi)
    if den <= 0:
        raise DQMDataError("The luminosity response needs good LBs with varying luminosity.")
    return num / den


def _channels(run: Run, slope: np.ndarray, reference_lb: int, differences: str) -> np.ndarray:
    """(n_lb, 16 or 24) unscaled channels: the features relative to the run reference, then the
    A-C differences relative to the run reference ("run") or of the luminosity-corrected values
    ("global", centred later on the training mean; no run reference needed), or none ("none")."""
    corrected = run.values.astype(np.float64) - np.outer(run.luminosity, slope)
    relative = corrected.copy()
    for a, b in run_segments(run):
        relative[a:b] -= np.median(corrected[a:min(b, a + reference_lb)], axis=0)
    if differences == "none":
        return relative
    source = relative if differences == "run" else corrected
    return np.concatenate([relative, source[:, A_COLUMNS] - source[:, C_COLUMNS]], axis=1)


@dataclass(frozen=True, eq=False)
class RunReferenceInputs:
    """Fitted transform from runs to autoencoder input windows (see the module docstring).

    slope (16,): luminosity response; centre, scale (16 or 24,): mean and spread of each channel
    on good training LBs; reference_lb: LBs at the start of a run (segment) whose median is the
    reference; differences: the eight A-C difference channels, "run" (relative to the run
    reference), "global" (of the luminosity-corrected values, centred on the training mean: an
    anomaly inside the run reference cannot hide in them, but a run whose A/C asymmetry changes,
    as at the run-change control, sets them off) or "none".
    """

    slope: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    reference_lb: int = 16
    differences: str = "run"

    @property
    def n_channels(self) -> int:
        """Input channels per LB (16, or 24 with the A-C differences)."""
        return N_FEATURES + (0 if self.differences == "none" else len(A_COLUMNS))

    @classmethod
    def fit_runs(cls, runs, reference_lb: int = 16, differences: str = "run") -> RunReferenceInputs:
        """Fit slope, centre and scale on the good LBs (label 0) of ``runs``."""
        if reference_lb < 1 or differences not in DIFFERENCE_KINDS:
            raise DQMDataError(f"reference_lb must be at least 1 LB (not {reference_lb}) and differences one of "
                               f"{DIFFERENCE_KINDS} (not {differences!r}).")
        slope = lumi_slope(runs)
        rows = [_channels(run, slope, reference_lb, differences)[run.labels == 0] for run in runs]
        rows = np.concatenate(rows) if rows else np.zeros((0, N_FEATURES))
        if len(rows) < 2:
            raise DQMDataError("RunReferenceInputs needs at least two good LBs to fit.")
        return cls(slope=slope, centre=rows.mean(axis=0), scale=np.maximum(rows.std(axis=0), 1e-12),
                   reference_lb=int(reference_lb), differences=differences)

    def transform_run(self, run: Run) -> np.ndarray:
        """(n_lb, n_channels) float32 input channels of one run."""
        values = _channels(run, self.slope, self.reference_lb, self.differences)
        return ((values - self.centre) / self.scale).astype(np.float32)

    def windows(self, runs, length: int, stride: int) -> tuple[Windows, np.ndarray]:
        """(the windows of ``data.make_windows``, which do not span a run change, and their
        inputs (n, length, n_channels))."""
        labelled = make_windows(runs, length=length, stride=stride)
        x = np.zeros((len(labelled), int(length), self.n_channels), np.float32)
        for run in runs:
            rows = np.flatnonzero(labelled.run_number == run.run_number)
            if rows.size:
                view = sliding_window_view(self.transform_run(run), int(length), axis=0)
                x[rows] = view[labelled.start[rows]].transpose(0, 2, 1)
        return labelled, x

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {"kind": "run_reference", "slope": self.slope.tolist(), "centre": self.centre.tolist(),
                "scale": self.scale.tolist(), "reference_lb": self.reference_lb, "differences": self.differences}



@dataclass(frozen=True, eq=False)
class GlobalInputs:
    """The former inputs: every feature standardised over all good training LBs (one global mean
    and spread per feature, ``data.Standardiser``); kept for comparison."""

    standardiser: Standardiser

    n_channels = N_FEATURES

    @classmethod
    def fit_runs(cls, runs) -> GlobalInputs:
        """Fit the standardiser on the good LBs of ``runs``."""
        return cls(Standardiser.fit_runs(runs))

    def windows(self, runs, length: int, stride: int) -> tuple[Windows, np.ndarray]:
        """(the windows of ``data.make_windows``, their standardised values)."""
        labelled = make_windows(runs, length=length, stride=stride)
        return labelled, self.standardiser.transform(labelled.x)

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {"kind": "global", **self.standardiser.to_dict()}


INPUT_KINDS = ("run_reference", "global")


def fit_inputs(runs, kind: str = "run_reference", reference_lb: int = 16, differences: str = "run"):
    """The input transform ``kind`` ('run_reference' or 'global') fitted on the good LBs of ``runs``."""
    if kind == "global":
        return GlobalInputs.fit_runs(runs)
    if kind != "run_reference":
        raise DQMDataError(f"Unknown input kind {kind!r}; expected one of {INPUT_KINDS}.")
    return RunReferenceInputs.fit_runs(runs, reference_lb, differences)


def check_input_settings(kind: str, reference_lb: int, window: int) -> None:
    """Refuse an unknown input kind, or a reference longer than the window (the monitor would
    need LBs it has not seen when it emits the first window of a run)."""
    if kind not in INPUT_KINDS:
        raise DQMDataError(f"Unknown input kind {kind!r}; expected one of {INPUT_KINDS}.")
    if not 1 <= reference_lb <= window:
        raise DQMDataError(f"reference_lb must lie between 1 and the window length {window}, not {reference_lb}.")


def inputs_from_dict(data: dict):
    """Inverse of ``to_dict`` of either transform; a plain ``Standardiser.to_dict`` (no 'kind',
    as written before the run-reference inputs) reads as GlobalInputs."""
    kind = data.get("kind", "global") if isinstance(data, dict) else None
    if kind == "global":
        return GlobalInputs(Standardiser.from_dict(data))
    if kind != "run_reference" or not {"slope", "centre", "scale", "reference_lb", "differences"} <= set(data):
        raise DQMDataError("Input-transform data must come from RunReferenceInputs.to_dict or GlobalInputs.to_dict.")
    inputs = RunReferenceInputs(*(np.asarray(data[k], np.float64) for k in ("slope", "centre", "scale")),
                                int(data["reference_lb"]), str(data["differences"]))
    if inputs.slope.shape != (N_FEATURES,) or not inputs.centre.shape == inputs.scale.shape == (inputs.n_channels,):
        raise DQMDataError(f"Input-transform data needs {N_FEATURES} slopes and {inputs.n_channels} scales.")
    return inputs
