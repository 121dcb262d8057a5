"""HDF5 files of synthetic LAr monitoring runs (h5py).

Layout (format ``hepaudit.dqm.runs``, version 1)::

    /                 attrs: format (str), format_version (int), features (16 str), partitions (4 str),
                             config_type (str, optional), config_json (str, optional)
    /runs/run_<NNNNNNNN>  one group per run, attrs: run_number (int), mode ('pp' | 'heavy_ion'),
                             noise_sigma (16 float32, optional), lumi_response (16 float32, optional)

Datasets of a run group, one value per lumiblock (all of length n_lb >= 1):

=============================  =======  ==========================================================
column                         dtype    meaning and unit
=============================  =======  ==========================================================
``q_mean_<P>``, ``q_std_<P>``  float32  mean / std of the topo-cluster quality factor Q in
                                        partition P (EMBA, EMBC, EMECA, EMECC); dimensionless
``tau_mean_<P>``,              float32  mean / std of the cluster time tau in partition P; ns
``tau_std_<P>``
``luminosity``                 float32  instantaneous luminosity; 1e30 cm^-2 s^-1
``labels``                     int8     anomaly code: 0 good, 1 noise_burst, 2 hv_trip, 3 desync,
                                        4 noisy_channel, 5 trigger
``benign``                     int16    benign-control code: 0 none, 101 lumi_step, 102 run_change
``partition``                  int8     affected partition 0..3 of a local anomaly, -1 none/global
=============================  =======  ==========================================================

No value may be NaN or infinite. The attributes noise_sigma and lumi_response hold the generator's
per-feature noise sigma (feature units) and luminosity response (feature units per 1e30 cm^-2 s^-1).
Reading checks everything above and raises :class:`DQMDataError` with one sentence naming the problem.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np

from reference.dqm.data import FEATURES, PARTITIONS, Run
from reference.dqm.errors import DQMDataError

FORMAT_NAME = "hepaudit.dqm.runs"
FORMAT_VERSION = 1
LABEL_COLUMNS = {"labels": np.int8, "benign": np.int16, "partition": np.int8}
FLOAT_COLUMNS = (*FEATURES, "luminosity")
COLUMNS = (*FLOAT_COLUMNS, *LABEL_COLUMNS)
_VECTOR_ATTRS = ("noise_sigma", "lumi_response")


def _group_name(run_number: int) -> str:
    return f"run_{run_number:08d}"


def write_runs(path, runs, config=None) -> None:
    """Write ``runs`` to an HDF5 file at ``path`` (overwritten); ``config`` (a dataclass) is kept as JSON."""
    numbers = [run.run_number for run in runs]
    if len(set(numbers)) != len(numbers):
        raise DQMDataError("Run numbers must be unique to be written to one file.")
    if config is not None and not dataclasses.is_dataclass(config):
        raise DQMDataError(f"The config to store must be a dataclass instance, not {type(config).__name__}.")
    with h5py.File(Path(path), "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["features"] = list(FEATURES)
        f.attrs["partitions"] = list(PARTITIONS)
        if config is not None:
            f.attrs["config_type"] = type(config).__name__
            f.attrs["config_json"] = json.dumps(dataclasses.asdict(config))
        group = f.create_group("runs")
        for run in runs:
            _write_run(group.create_group(_group_name(run.run_number)), run)


def _write_run(group, run: Run) -> None:
    group.attrs["run_number"] = int(run.run_number)
    group.attrs["mode"] = run.mode
    for name in _VECTOR_ATTRS:
        if getattr(run, name) is not None:
            group.attrs[name] = np.asarray(getattr(run, name), dtype=np.float32)
    for column, name in enumerate(FEATURES):
        group.create_dataset(name, data=np.ascontiguousarray(run.values[:, column]))
    group.create_dataset("luminosity", data=run.luminosity)
    for name, dtype in LABEL_COLUMNS.items():
        group.create_dataset(name, data=getattr(run, name).astype(dtype))


def read_runs(path) -> list:
    """All runs of an HDF5 file written by write_runs, in file order (ascending run number)."""
    with _open(path) as f:
        _check_header(f, path)
        runs = f["runs"]
        return [_read_run(runs[name], f"{path}:{runs[name].name}") for name in sorted(runs)]


def read_config(path):
    """The stored config as (type name, dict), or None when the file holds none."""
    with _open(path) as f:
        _check_header(f, path)
        if "config_json" not in f.attrs:
            return None
        try:
            return str(f.attrs.get("config_type", "")), json.loads(f.attrs["config_json"])
        except (TypeError, ValueError):
            raise DQMDataError(f"File {path} has a config_json attribute that is not valid JSON.") from None


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise DQMDataError(f"File not found: {path}.")
    if not h5py.is_hdf5(path):
        raise DQMDataError(f"File {path} is not an HDF5 file.")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DQMDataError(f"File {path} cannot be opened as HDF5 ({exc}).") from None


def _check_header(f, path) -> None:
    name = f.attrs.get("format")
    if isinstance(name, bytes):
        name = name.decode()
    if name != FORMAT_NAME:
        raise DQMDataError(f"File {path} is not a {FORMAT_NAME} file (format attribute {name!r}).")
    version = f.attrs.get("format_version")
    if version != FORMAT_VERSION:
        raise DQMDataError(f"File {path} has format version {version}, but only version {FORMAT_VERSION} can be read.")
    if not isinstance(f.get("runs"), h5py.Group):
        raise DQMDataError(f"File {path} has no 'runs' group.")


def _read_run(group, where: str) -> Run:
    attrs = {key: group.attrs.get(key) for key in ("run_number", "mode", *_VECTOR_ATTRS)}
    if attrs["run_number"] is None or attrs["mode"] is None:
        raise DQMDataError(f"Run group {where} lacks the run_number or mode attribute.")
    if not isinstance(attrs["run_number"], (int, np.integer)):
        raise DQMDataError(f"Run group {where} has a run_number attribute that is not an integer.")
    columns = _read_columns(group, where)
    values = np.stack([columns[name] for name in FEATURES], axis=1)
    try:
        return Run(run_number=int(attrs["run_number"]), mode=str(attrs["mode"]), values=values,
                   luminosity=columns["luminosity"], labels=columns["labels"], benign=columns["benign"],
                   partition=columns["partition"], noise_sigma=attrs["noise_sigma"], lumi_response=attrs["lumi_response"])
    except DQMDataError as exc:
        raise DQMDataError(f"Run group {where} is invalid: {str(exc).rstrip('.')}.") from None


def _read_columns(group, where: str) -> dict:
    """Every column as a 1-D array, checked for presence, shape, dtype kind and finiteness."""
    missing = [name for name in COLUMNS if not isinstance(group.get(name), h5py.Dataset)]
    if missing:
        raise DQMDataError(f"Run group {where} lacks the dataset(s) {', '.join(missing)}.")
    columns = {name: group[name][()] for name in COLUMNS}
    n_lb = columns["luminosity"].shape[0] if columns["luminosity"].ndim == 1 else -1
    for name, data in columns.items():
        if data.ndim != 1 or data.shape[0] != n_lb or n_lb < 1:
            raise DQMDataError(f"Dataset {name} of run group {where} has shape {data.shape}; expected ({max(n_lb, 1)},)"
                               " like luminosity, with at least one LB.")
        _check_column(name, data, where)
    return columns


def _check_column(name: str, data: np.ndarray, where: str) -> None:
    if name in LABEL_COLUMNS:
        if not np.issubdtype(data.dtype, np.integer):
            raise DQMDataError(f"Dataset {name} of run group {where} must hold integers, not {data.dtype}.")
        return
    if not np.issubdtype(data.dtype, np.floating):
        raise DQMDataError(f"Dataset {name} of run group {where} must hold floating-point numbers, not {data.dtype}.")
    bad = np.flatnonzero(~np.isfinite(data))
    if bad.size:
        raise DQMDataError(f"Dataset {name} of run group {where} has a NaN or infinite value at LB {bad[0]}.")
