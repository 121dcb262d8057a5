"""``[tool.hepaudit]`` configuration: defaults, loading, validation.

hepaudit reads its settings from the ``[tool.hepaudit]`` table of a ``pyproject.toml`` or from the
top level of a ``hepaudit.toml``. The file is searched for from the audited folder upwards (and no
further than the top of its git work tree). Unrelated ``[tool.*]`` tables are never interpreted, so
a ``%`` or an array of tables elsewhere cannot break hepaudit (both break radon's own reader).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from auditor.errors import UserError

#: Folder names (shell globs, matched at any depth) that are not audited by default:
#: version-control and tool caches, virtual environments, build output and vendored code.
DEFAULT_SKIP_DIRS: tuple[str, ...] = (
    ".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".venv", "venv", ".eggs", "*.egg-info",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hepaudit-cache", "node_modules",
    "site-packages", "build", "_build", "dist", "vendor", "vendored*", "third_party",
    "thirdparty", "3rdparty", "extern", "external",
)

PYLINT_MODES = ("off", "fast", "full")


@dataclass(frozen=True)
class Thresholds:
    """Limits above which a function counts as a hotspot (documented community defaults)."""

    ccn_python: int = 10  #: cyclomatic complexity, Python (ruff/mccabe convention)
    ccn_cpp: int = 15  #: cyclomatic complexity, C/C++/CUDA (lizard's default warning)
    cognitive: int = 15  #: cognitive complexity (SonarSource rule S3776)
    nloc: int = 100  #: lines of code in one function
    params_python: int = 5  #: parameters, Python (pylint's max-args)
    params_cpp: int = 7  #: parameters, C/C++/CUDA
    nesting: int = 5  #: nesting depth of control structures

    def ccn_for(self, language: str) -> int:
        return self.ccn_python if language == "Python" else self.ccn_cpp

    def params_for(self, language: str) -> int:
        return self.params_python if language == "Python" else self.params_cpp


THRESHOLD_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Thresholds))


@dataclass(frozen=True)
class ThresholdOverride:
    """Thresholds for the files matching ``paths`` (one ``[[tool.hepaudit.overrides]]`` table).

    ``paths`` are gitignore-style patterns relative to the configuration file's folder (``*.cu``
    matches at any depth, ``legacy/`` or ``legacy/**`` everything below ``legacy``); ``limits``
    holds only the ``(threshold name, limit)`` pairs this override sets.
    """

    paths: tuple[str, ...]
    limits: tuple[tuple[str, int], ...]

    def apply(self, thresholds: Thresholds) -> Thresholds:
        return dataclasses.replace(thresholds, **dict(self.limits))


@dataclass(frozen=True)
class AuditConfig:
    """Settings of ``hepaudit audit``; every field can be set in ``[tool.hepaudit]``."""

    include: tuple[str, ...] = ()  #: gitignore-style patterns; when given, only matching files
    exclude: tuple[str, ...] = ()  #: gitignore-style patterns of files/folders to leave out
    skip_dirs: tuple[str, ...] = DEFAULT_SKIP_DIRS  #: folder-name globs skipped at any depth
    max_file_mb: float = 2.0  #: larger files (usually generated) are reported, not analysed
    pylint: str = "fast"  #: off | fast (design/size/complexity checkers) | full
    jobs: int = 0  #: worker processes; 0 means one per available core
    #: Dask scheduler to run the analysis on (local, local:N, tcp://host:port or a scheduler
    #: .json file); None: this machine's processes (``jobs``), and Dask is not imported.
    scheduler: str | None = None
    top: int = 20  #: number of worst functions listed
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Per-folder thresholds, in file order; the last override that matches a file wins per key.
    overrides: tuple[ThresholdOverride, ...] = ()
    #: Folder the include/exclude/override patterns are relative to (the config file's folder).
    base_dir: str = "."
    #: Where the settings came from, for the report.
    source: str = "defaults"

    def fingerprint(self) -> str:
        """The settings that change per-file results (none do today: thresholds only flag)."""
        return "audit-config-v1"


_SCALARS: dict[str, tuple[tuple[type, ...], str]] = {
    "max_file_mb": ((int, float), "a number"),
    "pylint": ((str,), "a string"),
    "jobs": ((int,), "an integer"),
    "scheduler": ((str,), "a string"),
    "top": ((int,), "an integer"),
}
_LISTS = ("include", "exclude", "skip_dirs")
#: Keys read by other hepaudit commands; accepted here and left to them.
_OTHER_KEYS = ("chains",)


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def parse_config(table: dict[str, Any], source: str, base_dir: str) -> AuditConfig:
    """Validate a ``[tool.hepaudit]`` table; raise UserError naming the first bad key."""
    prefix = "tool.hepaudit" if source.endswith("pyproject.toml") else "hepaudit"
    known = set(_SCALARS) | set(_LISTS) | set(_TABLES) | set(_OTHER_KEYS)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise UserError(f"Unknown setting '{prefix}.{key}' in {source}; valid settings are: {', '.join(sorted(known))}.")
        if key not in _OTHER_KEYS:
            values[key] = _parse_value(key, value, f"{prefix}.{key}", source)
    config = AuditConfig(**values, base_dir=base_dir, source=source)
    return validate(config, source)


def _parse_value(key: str, value: Any, name: str, source: str) -> Any:
    """One known setting, checked for its type; ``name`` is its dotted name for messages."""
    if key in _TABLES:
        return _TABLES[key](value, name, source)
    if key in _LISTS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"Setting '{name}' in {source} must be a list of strings, not {_type_name(value)}.")
        return tuple(value)
    expected, described = _SCALARS[key]
    if isinstance(value, bool) or not isinstance(value, expected):
        raise UserError(f"Setting '{name}' in {source} must be {described}, not {_type_name(value)}.")
    return value


def _threshold_limits(table: dict[str, Any], name: str, source: str, extra: tuple[str, ...] = ()) -> dict[str, int]:
    """The threshold keys of ``table`` (keys in ``extra`` are left to the caller), checked."""
    limits = {}
    for key, number in table.items():
        if key in extra:
            continue
        if key not in THRESHOLD_NAMES:
            valid = ", ".join([*extra, *sorted(THRESHOLD_NAMES)])
            raise UserError(f"Unknown setting '{name}.{key}' in {source}; valid keys are: {valid}.")
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise UserError(f"Setting '{name}.{key}' in {source} must be a positive integer, not {number!r}.")
        limits[key] = number
    return limits


def _parse_thresholds(value: Any, name: str, source: str) -> Thresholds:
    if not isinstance(value, dict):
        raise UserError(f"Setting '{name}' in {source} must be a table, not {_type_name(value)}.")
    return Thresholds(**_threshold_limits(value, name, source))


def _parse_overrides(value: Any, name: str, source: str) -> tuple[ThresholdOverride, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise UserError(f"Setting '{name}' in {source} must be an array of tables ([[{name}]] with paths = [...] "
                        f"and thresholds), not {_type_name(value)}.")
    return tuple(_parse_override(item, f"{name}[{number}]", source) for number, item in enumerate(value, 1))


def _parse_override(table: dict[str, Any], name: str, source: str) -> ThresholdOverride:
    paths = table.get("paths")
    if paths is None:
        raise UserError(f"Setting '{name}' in {source} has no 'paths': give the files it applies to, "
                        'e.g. paths = ["legacy/**"].')
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p.strip() for p in paths):
        raise UserError(f"Setting '{name}.paths' in {source} must be a non-empty list of glob strings, not {paths!r}.")
    try:
        pathspec.GitIgnoreSpec.from_lines(paths)
    except (ValueError, TypeError) as exc:
        raise UserError(f"Setting '{name}.paths' in {source} holds a pattern that is not a valid glob: {exc}.") from None
    limits = _threshold_limits(table, name, source, extra=("paths",))
    if not limits:
        raise UserError(f"Setting '{name}' in {source} sets no threshold; add one of {', '.join(THRESHOLD_NAMES)}.")
    return ThresholdOverride(tuple(paths), tuple(limits.items()))


_TABLES = {"thresholds": _parse_thresholds, "overrides": _parse_overrides}


class ThresholdLookup:
    """The thresholds of each file: ``[tool.hepaudit.thresholds]``, then every override whose
    patterns match the file's path relative to the configuration file's folder, in order (so the
    last matching override wins for each key it sets). Files outside that folder get the defaults."""

    def __init__(self, config: AuditConfig):
        self.default = config.thresholds
        self.base = os.path.realpath(config.base_dir)
        self.rules = [(pathspec.GitIgnoreSpec.from_lines(o.paths), o) for o in config.overrides]
        self._known: dict[str, Thresholds] = {}

    def for_file(self, path: str) -> Thresholds:
        """``path`` is absolute or relative to the current folder."""
        if not self.rules:
            return self.default
        if path not in self._known:
            self._known[path] = self._resolve(os.path.relpath(os.path.realpath(path), self.base))
        return self._known[path]

    def _resolve(self, rel: str) -> Thresholds:
        limits = self.default
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return limits
        rel = Path(rel).as_posix()
        for spec, override in self.rules:
            if spec.match_file(rel):
                limits = override.apply(limits)
        return limits


def validate(config: AuditConfig, source: str = "the command line") -> AuditConfig:
    """Check value ranges; raise UserError naming the offending setting."""
    if config.pylint not in PYLINT_MODES:
        raise UserError(f"Setting 'pylint' from {source} must be one of off, fast, full, not {config.pylint!r}.")
    if config.jobs < 0:
        raise UserError(f"Setting 'jobs' from {source} must be 0 (automatic) or a positive integer, not {config.jobs}.")
    if config.scheduler is not None and not config.scheduler.strip():
        raise UserError(f"Setting 'scheduler' from {source} must name a Dask scheduler (local, local:N, "
                        "tcp://host:port or a scheduler .json file), not an empty string.")
    if config.top < 0:
        raise UserError(f"Setting 'top' from {source} must not be negative, not {config.top}.")
    if not config.max_file_mb > 0:
        raise UserError(f"Setting 'max_file_mb' from {source} must be a positive number of megabytes, not {config.max_file_mb}.")
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}.") from None


def _git_top(start: Path) -> Path | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True,
                             text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def find_config(start: Path) -> Path | None:
    """The nearest ``hepaudit.toml`` or ``pyproject.toml`` with ``[tool.hepaudit]`` above ``start``."""
    start = start.resolve()
    top = _git_top(start)
    for folder in (start, *start.parents):
        candidate = folder / "hepaudit.toml"
        if candidate.is_file():
            return candidate
        candidate = folder / "pyproject.toml"
        if candidate.is_file() and "hepaudit" in _read_toml(candidate).get("tool", {}):
            return candidate
        if top is not None and folder == top:
            break
    return None


def load_config(start: Path, explicit: Path | None = None) -> AuditConfig:
    """Load the settings that apply to ``start`` (or from ``explicit``); defaults when none."""
    path = explicit if explicit is not None else find_config(start)
    if path is None:
        return AuditConfig(base_dir=str(start.resolve()))
    if not path.is_file():
        raise UserError(f"Configuration file {path} does not exist.")
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("hepaudit", {}) if isinstance(tool, dict) else {}
    else:
        table = data
    if not isinstance(table, dict):
        raise UserError(f"'tool.hepaudit' in {path} must be a table.")
    return parse_config(table, str(path), str(path.parent.resolve()))


def configured_scheduler(start: Path) -> str | None:
    """The ``scheduler`` setting of the configuration that applies to ``start`` (None when unset),
    for commands that read it without the rest of the audit settings."""
    folder = start if start.is_dir() else start.parent
    return load_config(folder).scheduler
