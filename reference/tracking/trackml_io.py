"""TrackML CSV input/output: hits, cells, particles, truth, detectors.csv and submissions.

Readers check the header for the required columns and turn every problem (missing file or
column, malformed row, empty table) into :class:`TrackingInputError` with one clear sentence.
Rows with non-finite hit coordinates are dropped and counted in ``Event.info``.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from reference.tracking.errors import TrackingInputError
from reference.tracking.event import Cells, Event, Hits, Particles, Truth
from reference.tracking.geometry import Detector, detector_from_arrays

HITS_COLUMNS = ("hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id")
CELLS_COLUMNS = ("hit_id", "ch0", "ch1", "value")
PARTICLES_COLUMNS = ("particle_id", "vx", "vy", "vz", "px", "py", "pz", "q", "nhits")
TRUTH_COLUMNS = ("hit_id", "particle_id", "tx", "ty", "tz", "tpx", "tpy", "tpz", "weight")
DETECTOR_COLUMNS = ("volume_id", "layer_id", "module_id", "cx", "cy", "cz", "rot_xu", "rot_xv", "rot_xw",
                    "rot_yu", "rot_yv", "rot_yw", "rot_zu", "rot_zv", "rot_zw", "module_t",
                    "module_minhu", "module_maxhu", "module_hv", "pitch_u", "pitch_v")
INT_COLUMNS = {"hit_id", "volume_id", "layer_id", "module_id", "ch0", "ch1", "particle_id", "q", "nhits",
               "particle_type", "track_id"}
EVENT_RE = re.compile(r"^(event\d+)-hits\.csv$")


def read_table(path: Path, required: tuple, optional: tuple = ()) -> dict:
    """Read a CSV with a header into {column: array}; ints as int64, others as float64."""
    path = Path(path)
    if not path.is_file():
        raise TrackingInputError(f"File not found: {path}.")
    with open(path, encoding="utf-8") as f:
        header = f.readline().strip()
    if not header:
        raise TrackingInputError(f"File {path} is empty (no header line).")
    names = [h.strip() for h in header.split(",")]
    missing = [c for c in required if c not in names]
    if missing:
        raise TrackingInputError(f"File {path} lacks the column(s) {', '.join(missing)}.")
    wanted = [c for c in (*required, *optional) if c in names]
    out = {}
    int_cols = [c for c in wanted if c in INT_COLUMNS]
    flt_cols = [c for c in wanted if c not in INT_COLUMNS]
    for cols, dtype in ((int_cols, np.int64), (flt_cols, np.float64)):
        if not cols:
            continue
        idx = [names.index(c) for c in cols]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=idx, dtype=dtype, ndmin=2)
        except ValueError as exc:
            reason = str(exc).split("\n", maxsplit=1)[0]
            raise TrackingInputError(f"File {path} has a malformed row ({reason}).") from None
        for k, c in enumerate(cols):
            out[c] = data[:, k].copy() if data.shape[0] else np.zeros(0, dtype)
    return out


def _write_table(path: Path, columns: dict, formats: dict) -> None:
    names = list(columns)
    n = len(columns[names[0]])
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(names) + "\n")
        if n == 0:
            return
        fmt = ",".join(formats.get(c, "%d" if c in INT_COLUMNS else "%.6g") for c in names)
        cols = [np.asarray(columns[c]) for c in names]
        # write in chunks to bound memory; savetxt on a structured array keeps dtypes
        dtype = [(c, cols[i].dtype) for i, c in enumerate(names)]
        rec = np.empty(n, dtype=dtype)
        for i, c in enumerate(names):
            rec[c] = cols[i]
        np.savetxt(f, rec, fmt=fmt, delimiter=",")


def list_events(directory: Path) -> list:
    """Sorted event prefixes (e.g. 'event000000001') that have a hits file in the directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TrackingInputError(f"Directory not found: {directory}.")
    found = []
    for p in directory.iterdir():
        m = EVENT_RE.match(p.name)
        if m:
            found.append(m.group(1))
    return sorted(found)


def read_event(directory: Path, prefix: str) -> Event:
    """Read one TrackML event; cells, particles and truth are read when their files exist."""
    directory = Path(directory)
    h = read_table(directory / f"{prefix}-hits.csv", HITS_COLUMNS)
    finite = np.isfinite(h["x"]) & np.isfinite(h["y"]) & np.isfinite(h["z"])
    n_nan = int((~finite).sum())
    hits = Hits(*(h[c][finite] for c in HITS_COLUMNS))
    info = {"hits_dropped_nonfinite": n_nan}
    if len(hits) and len(np.unique(hits.hit_id)) != len(hits):
        raise TrackingInputError(f"File {directory / (prefix + '-hits.csv')} repeats hit_id values.")
    cells = particles = truth = None
    cpath = directory / f"{prefix}-cells.csv"
    if cpath.is_file():
        c = read_table(cpath, CELLS_COLUMNS)
        if not np.all(np.isfinite(c["value"])):
            raise TrackingInputError(f"File {cpath} contains non-finite cell values.")
        cells = Cells(c["hit_id"], c["ch0"].astype(np.int32), c["ch1"].astype(np.int32), c["value"])
    ppath = directory / f"{prefix}-particles.csv"
    if ppath.is_file():
        p = read_table(ppath, PARTICLES_COLUMNS, ("particle_type",))
        ptype = p.get("particle_type", np.zeros(len(p["particle_id"]), np.int64))
        particles = Particles(p["particle_id"], ptype, p["vx"], p["vy"], p["vz"], p["px"], p["py"],
                              p["pz"], p["q"], p["nhits"])
    tpath = directory / f"{prefix}-truth.csv"
    if tpath.is_file():
        t = read_table(tpath, TRUTH_COLUMNS)
        truth = Truth(*(t[c] for c in TRUTH_COLUMNS))
    return Event(hits=hits, cells=cells, particles=particles, truth=truth, info=info)


def write_event(directory: Path, prefix: str, event: Event) -> None:
    """Write hits/cells/particles/truth CSV files with TrackML column names."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hits = event.hits
    _write_table(directory / f"{prefix}-hits.csv", {c: getattr(hits, c) for c in HITS_COLUMNS},
                 {"x": "%.6f", "y": "%.6f", "z": "%.6f"})
    if event.cells is not None:
        _write_table(directory / f"{prefix}-cells.csv", {c: getattr(event.cells, c) for c in CELLS_COLUMNS},
                     {"value": "%.5g"})
    if event.particles is not None:
        cols = ("particle_id", "particle_type", "vx", "vy", "vz", "px", "py", "pz", "q", "nhits")
        _write_table(directory / f"{prefix}-particles.csv", {c: getattr(event.particles, c) for c in cols},
                     {c: "%.9g" for c in ("vx", "vy", "vz", "px", "py", "pz")})
    if event.truth is not None:
        _write_table(directory / f"{prefix}-truth.csv", {c: getattr(event.truth, c) for c in TRUTH_COLUMNS},
                     {"tx": "%.6f", "ty": "%.6f", "tz": "%.6f", "tpx": "%.7g", "tpy": "%.7g",
                      "tpz": "%.7g", "weight": "%.9g"})


def read_detector(path: Path) -> Detector:
    """Read a TrackML ``detectors.csv`` into a :class:`Detector`."""
    d = read_table(Path(path), DETECTOR_COLUMNS)
    n = len(d["volume_id"])
    if n == 0:
        raise TrackingInputError(f"File {path} lists no modules.")
    rot = np.empty((n, 3, 3))
    for i, a in enumerate("xyz"):
        for j, b in enumerate("uvw"):
            rot[:, i, j] = d[f"rot_{a}{b}"]
    return detector_from_arrays(d["volume_id"].astype(np.int32), d["layer_id"].astype(np.int32),
                                d["module_id"].astype(np.int32), np.column_stack([d["cx"], d["cy"], d["cz"]]),
                                rot, d["module_t"] * 2.0, d["module_minhu"], d["module_maxhu"], d["module_hv"],
                                d["pitch_u"], d["pitch_v"])


def write_detector(path: Path, detector: Detector) -> None:
    """Write a TrackML ``detectors.csv`` (module_t is the half thickness, as in TrackML)."""
    D = detector
    cols = {"volume_id": D.volume_id, "layer_id": D.layer_id, "module_id": D.module_id,
            "cx": D.center_mm[:, 0], "cy": D.center_mm[:, 1], "cz": D.center_mm[:, 2]}
    for i, a in enumerate("xyz"):
        for j, b in enumerate("uvw"):
            cols[f"rot_{a}{b}"] = D.rotation[:, i, j]
    cols.update({"module_t": D.thickness_mm / 2.0, "module_minhu": D.minhu_mm, "module_maxhu": D.maxhu_mm,
                 "module_hv": D.hv_mm, "pitch_u": D.pitch_u_mm, "pitch_v": D.pitch_v_mm})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _write_table(Path(path), cols, {c: "%.10g" for c in cols if c not in INT_COLUMNS})


def write_submission(path: Path, hit_id, track_id) -> None:
    """Write a TrackML submission file (hit_id,track_id); every hit appears exactly once."""
    order = np.argsort(hit_id, kind="stable")
    _write_table(Path(path), {"hit_id": np.asarray(hit_id)[order], "track_id": np.asarray(track_id)[order]}, {})


def read_submission(path: Path) -> tuple:
    """Read a TrackML submission file; returns (hit_id, track_id)."""
    t = read_table(Path(path), ("hit_id", "track_id"))
    return t["hit_id"], t["track_id"]
