"""The baseline of ``hepaudit check --baseline-ref REF``: the audited paths as they were at a git revision.

The files come straight from git's object database: ``git ls-tree`` lists the commit's tree and the
source files under the audited paths are read with ``git cat-file --batch`` into a temporary folder,
which is removed afterwards, also on error. The repository's work tree, index, refs and hooks are
not touched, so a CI job can run it on a checkout in any state. The copy is audited with the
working tree's settings (include, exclude and override patterns move along with the files) and the
same content-hash cache, so a file that is identical in both versions is analysed once. Paths in
the result are relative to the same folder as the working tree's report, so functions match.

Not part of the baseline: symbolic links (not sources) and git submodules (other repositories).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from auditor.config import AuditConfig
from auditor.errors import UserError
from auditor.gate import Function, functions_of_audit
from auditor.history import list_tree, read_blobs
from auditor.static.discovery import audit_root
from auditor.static.engine import run_audit
from auditor.static.languages import language_of


@dataclass(frozen=True)
class RefTarget:
    """A commit to audit as the baseline, and where the audited paths are in its repository."""

    ref: str  #: as the user wrote it, e.g. ``origin/main``
    sha: str  #: the commit it names
    top: Path  #: top folder of the git work tree (symbolic links resolved)
    paths: tuple[str, ...]  #: the audited paths relative to ``top``, '' for ``top`` itself
    root: str  #: the folder report paths are relative to (see ``audit_root``), relative to ``top``

    @property
    def label(self) -> str:
        return f"{self.ref} ({self.sha[:10]})"


@dataclass(frozen=True)
class RefAudit:
    """The baseline functions, and what it took to get them."""

    target: RefTarget
    functions: tuple[Function, ...]
    files: int  #: source files analysed at the commit
    cache_hits: int  #: of which found in the analysis cache


def _git(folder: Path, args: Sequence[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=120, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed or not on PATH; --baseline-ref reads the baseline through it.") from None


def work_tree_top(folder: Path, shown: str) -> Path:
    """The top of the git work tree holding ``folder``; ``shown`` names it in the error."""
    out = _git(folder, ["rev-parse", "--show-toplevel"])
    if out.returncode != 0 or not out.stdout.strip():
        raise UserError(f"{shown} is not inside a git work tree, so --baseline-ref has no revision to read; "
                        "give a baseline file with --baseline instead.")
    return Path(out.stdout.strip()).resolve()


def commit_of(top: Path, ref: str) -> str:
    """The commit that ``ref`` names in the repository at ``top``."""
    out = _git(top, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"])
    if out.returncode != 0 or not ref.strip():
        raise UserError(f"Git ref '{ref}' does not name a commit in the repository at {top}; check its spelling, "
                        "and in a shallow CI checkout fetch it first (e.g. `git fetch origin main`, or "
                        "actions/checkout with fetch-depth: 0).")
    return out.stdout.strip()


def _inside(top: Path, path: Path) -> str:
    try:
        rel = Path(os.path.realpath(path)).relative_to(top).as_posix()
    except ValueError:
        raise UserError(f"'{path}' is not inside the git work tree at {top}, so it has no version at the baseline "
                        "ref; audit one repository at a time.") from None
    return "" if rel == "." else rel


def open_ref(paths: Sequence[Path], ref: str) -> RefTarget:
    """Check that ``paths`` are in one git work tree and that ``ref`` names a commit there."""
    root = audit_root(paths)
    top = work_tree_top(root, ", ".join(f"'{p}'" for p in paths))
    sha = commit_of(top, ref)
    return RefTarget(ref, sha, top, tuple(_inside(top, Path(p)) for p in paths), _inside(top, root))


class _UnderPaths:
    """The source files of a tree below any of ``prefixes`` (paths relative to the top, '' = all)."""

    def __init__(self, prefixes: Sequence[str]):
        self.prefixes = tuple(prefixes)

    def audited(self, path: str) -> tuple[str, str] | None:
        """``(path, language)`` for a wanted file, as :func:`auditor.history.list_tree` asks."""
        language = language_of(path)
        if language is None:
            return None
        wanted = any(not p or path == p or path.startswith(p + "/") for p in self.prefixes)
        return (path, language) if wanted else None


def export(target: RefTarget, dest: Path) -> int:
    """Write the source files under the target's paths, as of its commit, below ``dest``."""
    files = list_tree(target.top, target.sha, _UnderPaths(target.paths))
    blobs = read_blobs(target.top, [blob for _, _, blob in files])
    for path, _, blob in files:
        if blob not in blobs:
            raise UserError(f"git could not read {path} at {target.label} (a partial clone without that "
                            "object?); fetch it, or give a baseline file with --baseline.")
        out = dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blobs[blob])
    return len(files)


def _moved_base(base_dir: str, top: Path, copy: Path) -> str:
    """Where the configuration folder is in the copy (unchanged when it is outside the work tree)."""
    rel = os.path.relpath(os.path.realpath(base_dir), top)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return base_dir
    return str(copy / rel)


def _rebased(report: dict[str, Any], found_root: Path, label_root: Path) -> list[dict[str, Any]]:
    """The report's files with paths relative to ``label_root`` instead of ``found_root``."""
    return [{**entry, "path": Path(os.path.relpath(found_root / entry["path"], label_root)).as_posix()}
            for entry in report["files"]]


def audit_ref(target: RefTarget, config: AuditConfig, cache_dir: Path | None, shown_root: str,
              progress: Callable | None = None) -> RefAudit:
    """Audit the target's paths at its commit; function paths are given the way a report whose
    ``root`` is ``shown_root`` gives them (pass the working tree report's ``root``)."""
    with tempfile.TemporaryDirectory(prefix="hepaudit-ref-") as temp:
        copy = Path(temp) / "tree"
        copy.mkdir()
        export(target, copy)
        present = [copy / rel for rel in target.paths if (copy / rel).exists()]
        if not present:  # every audited path is new since the ref
            return RefAudit(target, (), 0, 0)
        settings = dataclasses.replace(config, pylint="off", base_dir=_moved_base(config.base_dir, target.top, copy))
        report = run_audit(present, settings, cache_dir, progress=progress)
        files = _rebased(report, audit_root(present), copy / target.root)
    functions = functions_of_audit({"root": shown_root, "files": files})
    return RefAudit(target, tuple(functions), len(files), report["cache"]["hits"])
