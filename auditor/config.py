"""``[tool.hepaudit]`` configuration: defaults, loading, validation.

hepaudit reads its settings from the ``[tool.hepaudit]`` table of a ``pyproject.toml`` or from the
top level of a ``hepaudit.toml``. The file is searched for from the audited folder upwards (and no
further than the top of its git work tree). Unrelated ``[tool.*]`` tables are never interpreted, so
a ``%`` or an array of tables elsewhere cannot break hepaudit (both break radon's own reader).
"""

from __future__ import annotations

import dataclasses
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class AuditConfig:
    """Settings of ``hepaudit audit``; every field can be set in ``[tool.hepaudit]``."""

    include: tuple[str, ...] = ()  #: gitignore-style patterns; when given, only matching files
    exclude: tuple[str, ...] = ()  #: gitignore-style patterns of files/folders to leave out
    skip_dirs: tuple[str, ...] = DEFAULT_SKIP_DIRS  #: folder-name globs skipped at any depth
    max_file_mb: float = 2.0  #: larger files (usually generated) are reported, not analysed
    pylint: str = "fast"  #: off | fast (design/size/complexity checkers) | full
    jobs: int = 0  #: worker processes; 0 means one per available core
    top: int = 20  #: number of worst functions listed
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: Folder the include/exclude patterns are relative to (the config file's folder).
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
    values: dict[str, Any] = {}
    known = set(_SCALARS) | set(_LISTS) | {"thresholds"} | set(_OTHER_KEYS)
    for key, value in table.items():
        where = f"'{prefix}.{key}' in {source}"
        if key not in known:
            raise UserError(f"Unknown setting {where}; valid settings are: {', '.join(sorted(known))}.")
        if key in _OTHER_KEYS:
            continue
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise UserError(f"Setting {where} must be a list of strings, not {_type_name(value)}.")
            values[key] = tuple(value)
        elif key == "thresholds":
            values[key] = _parse_thresholds(value, prefix, source)
        else:
            expected, described = _SCALARS[key]
            if isinstance(value, bool) or not isinstance(value, expected):
                raise UserError(f"Setting {where} must be {described}, not {_type_name(value)}.")
            values[key] = value
    config = AuditConfig(**values, base_dir=base_dir, source=source)
    return validate(config, source)


def _parse_thresholds(value: Any, prefix: str, source: str) -> Thresholds:
    if not isinstance(value, dict):
        raise UserError(f"Setting '{prefix}.thresholds' in {source} must be a table, not {_type_name(value)}.")
    names = {f.name for f in dataclasses.fields(Thresholds)}
    for key, number in value.items():
        where = f"'{prefix}.thresholds.{key}' in {source}"
        if key not in names:
            raise UserError(f"Unknown setting {where}; valid thresholds are: {', '.join(sorted(names))}.")
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise UserError(f"Setting {where} must be a positive integer, not {number!r}.")
    return Thresholds(**value)


def validate(config: AuditConfig, source: str = "the command line") -> AuditConfig:
    """Check value ranges; raise UserError naming the offending setting."""
    if config.pylint not in PYLINT_MODES:
        raise UserError(f"Setting 'pylint' from {source} must be one of off, fast, full, not {config.pylint!r}.")
    if config.jobs < 0:
        raise UserError(f"Setting 'jobs' from {source} must be 0 (automatic) or a positive integer, not {config.jobs}.")
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
