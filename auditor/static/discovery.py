"""Find the source files to audit.

Inside a git work tree the file list comes from git itself (tracked plus untracked files that are
not ignored), so ``.gitignore`` is honoured exactly as git does. Elsewhere the folders are walked,
following symbolic links to folders at most once. Folders named in ``skip_dirs`` (vendored code,
build output, caches) are pruned, and ``include``/``exclude`` patterns are matched gitignore-style
relative to the configuration file's folder.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pathspec

from auditor.config import AuditConfig
from auditor.errors import UserError
from auditor.static.languages import language_of


@dataclass(frozen=True)
class Candidate:
    """A file to analyse: absolute path, path relative to the audit root, language."""

    path: str
    rel: str
    language: str


@dataclass(frozen=True)
class Skipped:
    """A file that was found but could not be analysed, and why."""

    rel: str
    language: str | None
    reason: str


@dataclass
class Discovery:
    root: Path
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Folders left out by ``skip_dirs`` (relative paths).
    pruned_dirs: list[str] = field(default_factory=list)
    #: How the file list was obtained per audited path: ``git`` or ``walk``.
    methods: set[str] = field(default_factory=set)


def audit_root(paths: Sequence[Path]) -> Path:
    """The folder that report paths are relative to."""
    absolute = [Path(os.path.abspath(p)) for p in paths]
    folders = [p if p.is_dir() else p.parent for p in absolute]
    return Path(os.path.commonpath([str(f) for f in folders]))


class _Filter:
    def __init__(self, config: AuditConfig, root: Path):
        self.root = root
        self.base = Path(config.base_dir)
        self.skip_dirs = tuple(config.skip_dirs)
        self.include = pathspec.GitIgnoreSpec.from_lines(config.include) if config.include else None
        self.exclude = pathspec.GitIgnoreSpec.from_lines(config.exclude) if config.exclude else None

    def _relative_to_base(self, path: Path) -> str | None:
        try:
            return path.relative_to(self.base).as_posix()
        except ValueError:
            return None

    def skip_dir_name(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.skip_dirs)

    def excluded_dir(self, path: Path) -> bool:
        rel = self._relative_to_base(path)
        return bool(self.exclude and rel and self.exclude.match_file(rel + "/"))

    def wanted_file(self, path: Path) -> bool:
        rel = self._relative_to_base(path)
        if rel is None:
            return True
        if self.exclude and self.exclude.match_file(rel):
            return False
        return not (self.include and not self.include.match_file(rel))


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix() or "."
    except ValueError:
        return path.as_posix()


def _git_files(folder: Path) -> list[str] | None:
    """Files git would consider in ``folder`` (tracked or untracked-not-ignored), or None."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=folder,
                                capture_output=True, text=True, timeout=60, check=False)
        if inside.returncode != 0 or inside.stdout.strip() != "true":
            return None
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                 cwd=folder, capture_output=True, timeout=600, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if listing.returncode != 0:
        return None
    names = listing.stdout.decode("utf-8", "surrogateescape").split("\0")
    return sorted({name for name in names if name})


class _Walker:
    def __init__(self, config: AuditConfig, result: Discovery):
        self.filter = _Filter(config, result.root)
        self.result = result
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: set[str] = set()
        self.pruned: set[str] = set()

    def prune(self, folder: Path) -> None:
        rel = _rel(folder, self.result.root)
        if rel not in self.pruned:
            self.pruned.add(rel)
            self.result.pruned_dirs.append(rel)

    def add_file(self, path: Path, explicit: bool = False) -> None:
        key = os.path.normpath(str(path))
        if key in self.seen_files:
            return
        self.seen_files.add(key)
        language = language_of(path.name)
        rel = _rel(path, self.result.root)
        if language is None:
            if explicit:
                self.result.skipped.append(Skipped(rel, None, "not a supported source file (unknown suffix)"))
            return
        if not explicit and not self.filter.wanted_file(path):
            return
        self.result.candidates.append(Candidate(str(path), rel, language))

    def add_path(self, path: Path) -> None:
        if path.is_dir():
            files = _git_files(path)
            if not files:  # not a work tree, or a folder git ignores: the user asked for it, walk it
                self.result.methods.add("walk")
                self.walk(path)
            else:
                self.result.methods.add("git")
                self.add_git_listing(path, files)
        else:
            self.add_file(path, explicit=True)

    def add_git_listing(self, folder: Path, names: Iterable[str]) -> None:
        for name in names:
            parts = name.split("/")
            skipped_at = next((i for i, part in enumerate(parts[:-1]) if self.filter.skip_dir_name(part)), None)
            if skipped_at is not None:
                self.prune(folder.joinpath(*parts[: skipped_at + 1]))
                continue
            path = folder.joinpath(*parts)
            if not path.is_symlink() and path.is_dir():
                # A git submodule: audit it with its own ignore rules.
                self.add_path(path)
                continue
            self.add_file(path)

    def walk(self, folder: Path) -> None:
        try:
            info = folder.stat()
        except OSError as exc:
            self.result.skipped.append(Skipped(_rel(folder, self.result.root), None, f"folder cannot be read: {exc.strerror}"))
            return
        key = (info.st_dev, info.st_ino)
        if key in self.seen_dirs:
            self.result.skipped.append(Skipped(_rel(folder, self.result.root) + "/", None,
                                               "symbolic link loop (folder already visited)"))
            return
        self.seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.result.skipped.append(Skipped(_rel(folder, self.result.root) + "/", None,
                                               f"folder cannot be read: {exc.strerror}"))
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if self.filter.skip_dir_name(entry.name):
                    self.prune(path)
                elif not self.filter.excluded_dir(path):
                    self.walk(path)
            else:
                self.add_file(path)


def discover(paths: Sequence[Path], config: AuditConfig) -> Discovery:
    """List the files to analyse under ``paths``; raise UserError for a path that does not exist."""
    if not paths:
        raise UserError("Give at least one file or folder to audit.")
    for path in paths:
        if not os.path.lexists(path):
            raise UserError(f"Path '{path}' does not exist.")
    result = Discovery(root=audit_root(paths))
    walker = _Walker(config, result)
    for path in paths:
        walker.add_path(Path(os.path.abspath(path)))
    result.candidates.sort(key=lambda c: c.rel)
    return result
