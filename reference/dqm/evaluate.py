"""Evaluation of anomaly scores on labelled windows.

For one score per window (an autoencoder's reconstruction loss, or a student's prediction of it):

Autoencoders score a window by its worst error channel (:func:`worst_feature`: each feature's
mean and peak squared error over the window, in units of their 99th percentile on good training
windows); the window MSE is reported next to it.

- ROC-AUC per anomaly type: positives are the windows labelled with that type, negatives the
  good windows (no anomaly, no benign control) of the same test runs;
- the alarm threshold at a false-alarm rate of 1 % on good *validation* windows (the 99th
  percentile), the detection efficiency per type and the false-alarm rate on good test windows;
- the alarm rate on benign-control windows (a luminosity step, a change of run), which must stay
  at the false-alarm level;
- persistence: an alarm only when k consecutive windows of a run are above the threshold (the
  CMS ECAL time-evolution idea), with its false-alarm rate and efficiencies;
- partition attribution: for detected local anomalies, whether the partition with the largest
  reconstruction error is the one the anomaly was injected in.

All rates come with their counts, so small samples show.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve

from reference.dqm.data import ANOMALY_CODES, BENIGN_CODES, PARTITIONS, Windows

FALSE_ALARM_RATE = 0.01
LOCAL_TYPES = ("noise_burst", "hv_trip", "desync", "noisy_channel")


def feature_scale(summary_good: np.ndarray, quantile: float = 0.99) -> np.ndarray:
    """Per channel (time-mean and time-max error of each feature, see
    ``train.error_summary``), the ``quantile`` of good windows: the unit of :func:`worst_feature`,
    which makes every channel exceed 1 on the same share of good windows."""
    if len(summary_good) == 0:
        raise ValueError("the feature scale needs good windows; there are none.")
    return np.maximum(np.quantile(summary_good, quantile, axis=0), 1e-12)


def worst_feature(summary: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Anomaly score of a window: its largest reconstruction-error channel (a feature's mean or
    peak squared error over the window) in units of that channel's good-window scale. A window
    MSE dilutes an anomaly confined to one feature of one partition by the 16 features, and a
    one-lumiblock burst by the 32 lumiblocks; this score does neither."""
    return (summary / scale).reshape(len(summary), -1).max(axis=1)


def per_feature(summary: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(n, F) normalised error per feature (the larger of its two channels), for attribution."""
    return (summary / scale).max(axis=1)


def good_mask(windows: Windows) -> np.ndarray:
    """Windows with neither an anomaly nor a benign control."""
    return (windows.label == 0) & (windows.benign == 0)


def threshold_at(scores_good: np.ndarray, false_alarm_rate: float = FALSE_ALARM_RATE) -> float:
    """Score above which ``false_alarm_rate`` of the good windows lie."""
    if len(scores_good) == 0:
        raise ValueError("the alarm threshold needs good validation windows; there are none.")
    return float(np.quantile(scores_good, 1.0 - false_alarm_rate))


def _rate(flags: np.ndarray) -> dict:
    n = int(flags.size)
    return {"rate": float(flags.mean()) if n else None, "n": n}


def auc_per_type(scores: np.ndarray, windows: Windows) -> dict:
    """ROC-AUC of each anomaly type against the good windows (None when a class is empty)."""
    good = good_mask(windows)
    out = {}
    for kind, code in ANOMALY_CODES.items():
        positive = windows.label == code
        if positive.any() and good.any():
            y = np.concatenate([np.ones(positive.sum()), np.zeros(good.sum())])
            out[kind] = float(roc_auc_score(y, np.concatenate([scores[positive], scores[good]])))
        else:
            out[kind] = None
    values = [v for v in out.values() if v is not None]
    out["macro"] = float(np.mean(values)) if values else None
    return out


def roc_points(scores: np.ndarray, windows: Windows) -> dict:
    """(false-positive rate, true-positive rate) arrays per anomaly type, for plots."""
    good = good_mask(windows)
    curves = {}
    for kind, code in ANOMALY_CODES.items():
        positive = windows.label == code
        if positive.any() and good.any():
            y = np.concatenate([np.ones(positive.sum()), np.zeros(good.sum())])
            fpr, tpr, _ = roc_curve(y, np.concatenate([scores[positive], scores[good]]))
            curves[kind] = (fpr, tpr)
    return curves


def persistent(alarm: np.ndarray, windows: Windows, k: int) -> np.ndarray:
    """Alarms that are the k-th (or later) of k consecutive alarmed windows of one run."""
    if k <= 1:
        return alarm.copy()
    order = np.lexsort((windows.start, windows.run_number))
    a = alarm[order].astype(np.int64)
    same_run = np.r_[False, windows.run_number[order][1:] == windows.run_number[order][:-1]]
    consecutive = np.r_[False, np.diff(windows.start[order]) == 1] & same_run
    streak = np.zeros_like(a)
    for i in range(len(a)):  # length of the current run of alarms; a gap in starts resets it
        if not a[i]:
            streak[i] = 0
        elif consecutive[i]:
            streak[i] = streak[i - 1] + 1
        else:
            streak[i] = 1
    out = np.empty_like(alarm)
    out[order] = streak >= k
    return out


def _alarm_rates(alarm: np.ndarray, windows: Windows) -> dict:
    rates = {kind: _rate(alarm[windows.label == code]) for kind, code in ANOMALY_CODES.items()}
    rates["false_alarm"] = _rate(alarm[good_mask(windows)])
    for kind, code in BENIGN_CODES.items():
        rates[f"benign_{kind}"] = _rate(alarm[(windows.benign == code) & (windows.label == 0)])
    rates["benign_all"] = _rate(alarm[(windows.benign != 0) & (windows.label == 0)])
    return rates


def attribution(feature_error: np.ndarray, windows: Windows, alarm: np.ndarray) -> dict:
    """Share of detected local anomalies whose largest per-partition error is in the injected
    partition (feature columns 4p..4p+3 belong to partition p; further input channels, such as
    the A-C differences, which belong to two partitions, are left out)."""
    own = 4 * len(PARTITIONS)
    if feature_error.shape[1] < own:
        raise ValueError(f"attribution needs the {own} partition features, got {feature_error.shape[1]} columns.")
    per_partition = feature_error[:, :own].reshape(len(feature_error), len(PARTITIONS), 4).sum(axis=2)
    predicted = per_partition.argmax(axis=1)
    out = {}
    hits = []
    for kind in LOCAL_TYPES:
        mask = (windows.label == ANOMALY_CODES[kind]) & (windows.partition >= 0) & alarm
        correct = predicted[mask] == windows.partition[mask]
        out[kind] = _rate(correct)
        hits.append(correct)
    out["all_local"] = _rate(np.concatenate(hits))
    return out


def evaluate_scores(scores: np.ndarray, windows: Windows, threshold: float, persistence: int = 3) -> dict:
    """Every window-level figure of merit for one score (see the module docstring)."""
    if scores.shape != (len(windows),):
        raise ValueError(f"need one score per window: {scores.shape} scores for {len(windows)} windows.")
    alarm = scores > threshold
    return {"auc": auc_per_type(scores, windows), "threshold": threshold,
            "at_threshold": _alarm_rates(alarm, windows),
            "persistence_k": persistence,
            "with_persistence": _alarm_rates(persistent(alarm, windows, persistence), windows)}


def student_agreement(student: np.ndarray, teacher_log_loss: np.ndarray, windows: Windows,
                      teacher_auc: dict) -> dict:
    """How closely a student's predicted log-loss follows the teacher's: Pearson and Spearman
    correlation, the earth mover's distance between the two distributions, and the AUC change
    per anomaly type (student minus teacher)."""
    auc = auc_per_type(student, windows)
    delta = {k: (None if auc[k] is None or teacher_auc.get(k) is None else auc[k] - teacher_auc[k]) for k in auc}
    return {"pearson": float(stats.pearsonr(student, teacher_log_loss)[0]),
            "spearman": float(stats.spearmanr(student, teacher_log_loss)[0]),
            "emd": float(stats.wasserstein_distance(student, teacher_log_loss)),
            "auc": auc, "delta_auc": delta}
