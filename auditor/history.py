"""``hepaudit history``: code-quality metrics per commit over the last N commits of a git repository.

For every commit of the first-parent line the file list comes from ``git ls-tree``; only blobs not
seen before are read (one ``git cat-file --batch`` process per 2,000 blobs) and only contents the
shared analysis cache does not hold are analysed, with the same cache keys as ``hepaudit audit``.
Per commit the aggregates (total, per top-level folder, per language) and the per-function metrics
are stored in a local SQLite database; commits already there are skipped on the next run.

The report built from the database is JSON-ready (schema ``hepaudit.history``) and rendered by
``auditor.render.history_console`` and ``auditor.render.history_html``.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from auditor.config import AuditConfig, Thresholds
from auditor.errors import UserError
from auditor.static.aggregate import exceeded, top_folder
from auditor.static.analysis import tool_versions
from auditor.static.cache import ResultCache, content_hash, fingerprint
from auditor.static.discovery import _Filter
from auditor.static.engine import _analyse, available_cores
from auditor.static.languages import language_of

SCHEMA_NAME = "hepaudit.history"
SCHEMA_VERSION = "1.0"
DEFAULT_DB = Path(".hepaudit") / "history.sqlite"
_CAT_FILE_BATCH = 2000
_FUNCTION_KEYS = ("ccn", "cognitive", "nloc", "params", "nesting", "start_line")

Progress = Callable[[int, str], Callable[[int], None]]


@dataclass(frozen=True)
class Commit:
    sha: str
    date: str
    author: str
    subject: str


@dataclass(frozen=True)
class Repository:
    """A git work tree and the audited folder inside it (``prefix``, '' for the whole tree)."""

    root: Path
    prefix: str


# --------------------------------------------------------------------------------------------- git

def _git(root: Path, args: Sequence[str], data: bytes | None = None) -> bytes:
    try:
        out = subprocess.run(["git", *args], cwd=root, input=data, capture_output=True, timeout=600, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed or not on PATH; hepaudit history reads the history through it.") from None
    if out.returncode != 0:
        message = out.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"git {args[0]} failed in {root}: {message[0] if message else 'no message'}.")
    return out.stdout


def open_repository(path: Path) -> Repository:
    """The repository holding ``path``; UserError when there is none."""
    if not path.exists():
        raise UserError(f"Path '{path}' does not exist.")
    folder = (path if path.is_dir() else path.parent).resolve()
    try:
        out = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True,
                             text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise UserError("git is not installed or not on PATH; hepaudit history reads the history through it.") from None
    if out.returncode != 0 or not out.stdout.strip():
        raise UserError(f"'{path}' is not inside a git repository, so it has no history to read "
                        "(hepaudit audit measures the files as they are).")
    root = Path(out.stdout.strip()).resolve()
    prefix = folder.relative_to(root).as_posix()
    return Repository(root, "" if prefix == "." else prefix)


def list_commits(root: Path, count: int) -> list[Commit]:
    """The last ``count`` commits of HEAD's first-parent line, oldest first."""
    probe = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True, check=False)
    if probe.returncode != 0:
        raise UserError(f"The repository at {root} has no commits yet.")
    raw = _git(root, ["log", "--first-parent", f"-n{count}", "--format=%H%x1f%aI%x1f%an%x1f%s%x1e", "HEAD"])
    commits = []
    for record in raw.decode("utf-8", "replace").split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) == 4:
            commits.append(Commit(*fields))
    return commits[::-1]


def is_shallow(root: Path) -> bool:
    out = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=root, capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() == "true" or (root / ".git" / "shallow").is_file()


def shallow_state(shallow: bool, asked: int, available: int) -> dict[str, Any]:
    """Whether history is missing, and a note that says what to do about it."""
    note = None
    if shallow and available < asked:
        note = (f"This is a shallow clone: only {available} of the {asked} commits asked for are available "
                f"(CI checkouts often fetch a single commit). Fetch more with `git fetch --deepen={asked - available}` "
                "or all of it with `git fetch --unshallow` (GitHub Actions: actions/checkout with fetch-depth: 0). "
                f"Going on with {available}.")
    elif shallow:
        note = (f"This is a shallow clone; the {asked} commits asked for are present, older history is not "
                "(`git fetch --unshallow` fetches it).")
    elif available < asked:
        note = (f"The repository has only {available} commits on its first-parent line; {asked} were asked for. "
                f"Going on with {available}.")
    return {"shallow": shallow, "asked": asked, "available": available, "note": note}


class PathFilter:
    """Which paths of a commit's tree are audited: under the audited folder, a supported language,
    and not left out by ``include``/``exclude``/``skip_dirs`` of the current settings."""

    def __init__(self, config: AuditConfig, repo: Repository):
        self.rules = _Filter(config, repo.root)
        self.root = repo.root
        self.prefix = repo.prefix + "/" if repo.prefix else ""
        self._dirs: dict[str, bool] = {"": True}
        self._files: dict[str, tuple[str, str] | None] = {}

    def _dir_ok(self, folder: str) -> bool:
        """``folder`` is relative to the audited folder."""
        known = self._dirs.get(folder)
        if known is None:
            parent, _, name = folder.rpartition("/")
            known = (self._dir_ok(parent) and not self.rules.skip_dir_name(name)
                     and not self.rules.excluded_dir(self.root / self.prefix / folder))
            self._dirs[folder] = known
        return known

    def audited(self, path: str) -> tuple[str, str] | None:
        """``(path relative to the audited folder, language)``, or None when it is not audited."""
        if path not in self._files:
            self._files[path] = self._decide(path)
        return self._files[path]

    def _decide(self, path: str) -> tuple[str, str] | None:
        language = language_of(path) if path.startswith(self.prefix) else None
        if language is None:
            return None
        rel = path[len(self.prefix):]
        if not self._dir_ok(rel.rpartition("/")[0]) or not self.rules.wanted_file(self.root / path):
            return None
        return rel, language


def list_tree(root: Path, sha: str, paths: PathFilter) -> list[tuple[str, str, str]]:
    """``(path relative to the audited folder, language, blob id)`` of the audited files of a commit."""
    raw = _git(root, ["ls-tree", "-r", "-z", "--full-tree", sha])
    files = []
    for record in raw.split(b"\0"):
        meta, _, name = record.partition(b"\t")
        parts = meta.split()
        if len(parts) != 3 or parts[1] != b"blob" or parts[0] == b"120000":  # symbolic links are not sources
            continue
        audited = paths.audited(name.decode("utf-8", "surrogateescape"))
        if audited is not None:
            files.append((*audited, parts[2].decode()))
    return files


def parse_cat_file(raw: bytes) -> dict[str, bytes]:
    """Contents per object id from ``git cat-file --batch`` output."""
    blobs: dict[str, bytes] = {}
    position = 0
    while position < len(raw):
        end = raw.index(b"\n", position)
        header = raw[position:end].split()
        position = end + 1
        if len(header) != 3:  # "<id> missing" or "<id> ambiguous"
            continue
        size = int(header[2])
        blobs[header[0].decode()] = raw[position:position + size]
        position += size + 1
    return blobs


def read_blobs(root: Path, blob_ids: Iterable[str]) -> dict[str, bytes]:
    ids = sorted(set(blob_ids))
    blobs: dict[str, bytes] = {}
    for start in range(0, len(ids), _CAT_FILE_BATCH):
        batch = ids[start:start + _CAT_FILE_BATCH]
        blobs.update(parse_cat_file(_git(root, ["cat-file", "--batch"], ("\n".join(batch) + "\n").encode())))
    return blobs


def blob_problem(data: bytes, max_bytes: int) -> str | None:
    """Why a blob is not analysed (the same reasons as ``hepaudit audit``), or None."""
    if len(data) > max_bytes:
        return f"{len(data) / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB size cap (max_file_mb)"
    if not data:
        return "empty file"
    if b"\0" in data[:8192]:
        return "binary content (NUL bytes) in a source file"
    return None


# ------------------------------------------------------------------------------------------ store

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS commits (profile TEXT, sha TEXT, date TEXT, author TEXT, subject TEXT, "
    "not_analysed INTEGER, files BLOB, PRIMARY KEY (profile, sha))",
    "CREATE TABLE IF NOT EXISTS groups (profile TEXT, sha TEXT, scope TEXT, name TEXT, data TEXT, "
    "PRIMARY KEY (profile, sha, scope, name))",
    "CREATE TABLE IF NOT EXISTS blobs (blob TEXT PRIMARY KEY, digest TEXT, problem TEXT)",
    "CREATE TABLE IF NOT EXISTS contents (id INTEGER PRIMARY KEY, key TEXT UNIQUE, functions BLOB)",
)


def _pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 6)


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


def _select_in(connection: sqlite3.Connection, query: str, values: Sequence[Any],
               before: Sequence[str] = ()) -> list[tuple]:
    """``query`` with ``{marks}`` run over ``values`` in batches below SQLite's variable limit."""
    rows: list[tuple] = []
    for start in range(0, len(values), 900):
        batch = list(values[start:start + 900])
        rows += connection.execute(query.format(marks=",".join("?" * len(batch))), [*before, *batch]).fetchall()
    return rows


class HistoryStore:
    """The history database. ``profile`` names the settings (audited folder, filters, analysis
    versions) that the stored commits were measured with; other settings are kept apart."""

    def __init__(self, path: Path, profile: str):
        self.path = path
        self.profile = profile
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30)
            for statement in _SCHEMA:
                self.db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"Cannot open the history database {path}: {exc}.") from None

    def close(self) -> None:
        self.db.close()

    def known_commits(self, shas: Sequence[str]) -> set[str]:
        return {row[0] for row in _select_in(self.db, "SELECT sha FROM commits WHERE profile = ? AND sha IN ({marks})",
                                             shas, (self.profile,))}

    def blob_digests(self, blobs: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        rows = _select_in(self.db, "SELECT blob, digest, problem FROM blobs WHERE blob IN ({marks})", blobs)
        return {blob: (digest, problem) for blob, digest, problem in rows}

    def add_blobs(self, rows: dict[str, tuple[str | None, str | None]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)",
                                [(blob, digest, problem) for blob, (digest, problem) in rows.items()])

    def content_ids(self, functions_by_key: dict[str, list]) -> dict[str, int]:
        """Row ids of analysed contents, storing the function metrics of new ones."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO contents (key, functions) VALUES (?, ?)",
                                [(key, _pack(functions)) for key, functions in functions_by_key.items()])
        rows = _select_in(self.db, "SELECT key, id FROM contents WHERE key IN ({marks})", list(functions_by_key))
        return dict(rows)

    def add_commit(self, commit: Commit, files: dict[str, int], not_analysed: int, summary: dict[str, Any]) -> None:
        groups = [("total", "", summary["total"])]
        for scope in ("by_folder", "by_language"):
            groups += [(scope, name, group) for name, group in summary[scope].items()]
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO commits VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (self.profile, commit.sha, commit.date, commit.author, commit.subject, not_analysed,
                             _pack(files)))
            self.db.executemany("INSERT OR REPLACE INTO groups VALUES (?, ?, ?, ?, ?)",
                                [(self.profile, commit.sha, scope, name, json.dumps(group))
                                 for scope, name, group in groups])

    def commit_rows(self, shas: Sequence[str]) -> list[dict[str, Any]]:
        """Stored commits in the order of ``shas`` with their groups."""
        rows = _select_in(self.db, "SELECT sha, date, author, subject, not_analysed FROM commits "
                                   "WHERE profile = ? AND sha IN ({marks})", shas, (self.profile,))
        found = {sha: {"sha": sha, "date": date, "author": author, "subject": subject, "not_analysed": count,
                       "total": {}, "by_folder": {}, "by_language": {}}
                 for sha, date, author, subject, count in rows}
        for sha, scope, name, data in _select_in(self.db, "SELECT sha, scope, name, data FROM groups "
                                                          "WHERE profile = ? AND sha IN ({marks})", shas, (self.profile,)):
            if scope == "total":
                found[sha]["total"] = json.loads(data)
            else:
                found[sha][scope][name] = json.loads(data)
        return [found[sha] for sha in shas if sha in found]

    def functions_at(self, sha: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Function metrics of a stored commit keyed by (path, qualified name); a repeated name in
        one file (overloads, redefinitions) gets ``#2``, ``#3``, ... appended."""
        row = self.db.execute("SELECT files FROM commits WHERE profile = ? AND sha = ?", (self.profile, sha)).fetchone()
        files: dict[str, int] = _unpack(row[0]) if row else {}
        ids = sorted(set(files.values()))
        contents = {cid: _unpack(blob) for cid, blob in
                    _select_in(self.db, "SELECT id, functions FROM contents WHERE id IN ({marks})", ids)}
        functions: dict[tuple[str, str], dict[str, Any]] = {}
        for path, cid in files.items():
            for values in contents.get(cid, []):
                metrics = dict(zip(("qualified_name", *_FUNCTION_KEYS), values))
                name, number = metrics["qualified_name"], 2
                while (path, name) in functions:
                    name, number = f"{metrics['qualified_name']}#{number}", number + 1
                functions[(path, name)] = metrics
        return functions


@dataclass(frozen=True)
class FileStats:
    """What one analysed file adds to the aggregates of a commit."""

    functions: int
    ccn_sum: int
    max_ccn: int | None
    over_ccn: int
    over_any: int
    nloc: int
    mi: float | None


def file_stats(language: str, metrics: dict[str, Any], limits: Thresholds) -> FileStats:
    ccns = [f["ccn"] for f in metrics["functions"]]
    return FileStats(len(ccns), sum(ccns), max(ccns) if ccns else None,
                     sum(c > limits.ccn_for(language) for c in ccns),
                     sum(1 for f in metrics["functions"] if exceeded(f, language, limits)),
                     metrics["sloc"], metrics.get("mi"))


def _group(stats: Sequence[FileStats]) -> dict[str, Any]:
    """The numbers of ``aggregate``'s groups (same definitions and rounding), from file summaries."""
    totals = {name: sum(getattr(s, name) for s in stats) for name in ("functions", "ccn_sum", "over_ccn", "over_any",
                                                                          "nloc")}
    functions = totals["functions"]
    return {"files": len(stats), "functions": functions, "nloc": totals["nloc"],
            "mean_ccn": round(totals["ccn_sum"] / functions, 3) if functions else None,
            "max_ccn": max((s.max_ccn for s in stats if s.max_ccn is not None), default=None),
            "functions_over_ccn_threshold": totals["over_ccn"], "functions_over_any_threshold": totals["over_any"],
            "mi_median": _median([s.mi for s in stats if s.mi is not None])}


def _median(values: list[float]) -> float | None:
    """The median as ``aggregate`` computes it (inclusive quartiles), rounded the same way."""
    if not values:
        return None
    return round(statistics.quantiles(values, n=4, method="inclusive")[1] if len(values) > 1 else values[0], 3)


def summarize(files: Sequence[tuple[str, str, FileStats]]) -> dict[str, Any]:
    """Total, per top-level folder and per language groups of ``(path, language, stats)``."""
    by_folder: dict[str, list[FileStats]] = {}
    by_language: dict[str, list[FileStats]] = {}
    for rel, language, stats in files:
        by_folder.setdefault(top_folder(rel), []).append(stats)
        by_language.setdefault(language, []).append(stats)
    return {"total": _group([stats for _, _, stats in files]),
            "by_folder": {name: _group(group) for name, group in sorted(by_folder.items())},
            "by_language": {name: _group(group) for name, group in sorted(by_language.items())}}


def _function_rows(metrics: dict[str, Any]) -> list[list[Any]]:
    return [[f["qualified_name"], *(f.get(key) for key in _FUNCTION_KEYS)] for f in metrics["functions"]]


# ------------------------------------------------------------------------------------- collection

@dataclass
class _Collection:
    """Work on the commits not yet in the database."""

    repo: Repository
    config: AuditConfig
    analysis_print: str
    trees: dict[str, list[tuple[str, str, str]]]
    data: dict[str, bytes] = field(default_factory=dict)
    digests: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"blobs_read": 0, "cache_hits": 0, "analysed": 0})
    #: Per analysed content key: its row in the database and its share of the aggregates.
    contents: dict[str, tuple[int, FileStats]] = field(default_factory=dict)

    def key(self, language: str, blob: str) -> str | None:
        digest = self.digests[blob][0]
        return f"{language}:{digest}:{self.analysis_print}" if digest else None


def _read_new_blobs(work: _Collection, store: HistoryStore) -> None:
    """Digests of every blob in the new commits; only blobs the database has never seen are read."""
    blobs = sorted({blob for tree in work.trees.values() for _, _, blob in tree})
    work.digests = store.blob_digests(blobs)
    unseen = [blob for blob in blobs if blob not in work.digests]
    work.data = read_blobs(work.repo.root, unseen)
    work.stats["blobs_read"] = len(work.data)
    max_bytes = int(work.config.max_file_mb * 1e6)
    fresh = {}
    for blob, data in work.data.items():
        problem = blob_problem(data, max_bytes)
        fresh[blob] = (None if problem else content_hash(data), problem)
    store.add_blobs(fresh)
    work.digests.update(fresh)


def _wanted(work: _Collection) -> dict[str, tuple[str, str, str]]:
    """One ``(language, path, blob)`` per distinct analysis key of the new commits."""
    wanted: dict[str, tuple[str, str, str]] = {}
    for tree in work.trees.values():
        for rel, language, blob in tree:
            key = work.key(language, blob)
            if key and key not in wanted:
                wanted[key] = (language, rel, blob)
    return wanted


def _results(work: _Collection, cache_dir: Path | None, progress: Progress | None) -> dict[str, Any]:
    """Analysis results per cache key: from the shared cache, the rest analysed (in parallel)."""
    wanted = _wanted(work)
    cache = ResultCache(cache_dir)
    known = cache.get_many(wanted)
    missing = {key: item for key, item in wanted.items() if key not in known}
    reread = [blob for _, _, blob in missing.values() if blob not in work.data]
    work.data.update(read_blobs(work.repo.root, reread))  # seen before, but gone from the analysis cache
    todo = {key: (language, rel, work.data[blob]) for key, (language, rel, blob) in missing.items()}
    fresh, _ = _analyse(todo, {}, "off", work.config.jobs or available_cores(), progress)
    cache.put_many(fresh)
    cache.close()
    work.stats["cache_hits"] = len(known)
    work.stats["analysed"] = len(fresh)
    return {**known, **fresh}


def _prepare_contents(work: _Collection, store: HistoryStore, results: dict[str, Any]) -> None:
    """Store the function metrics of every analysed content once and summarise it once."""
    analysed = {key: outcome["metrics"] for key, outcome in results.items() if "metrics" in outcome}
    ids = store.content_ids({key: _function_rows(metrics) for key, metrics in analysed.items()})
    limits = work.config.thresholds
    work.contents = {key: (ids[key], file_stats(key.partition(":")[0], metrics, limits))
                     for key, metrics in analysed.items()}


def _store_commit(work: _Collection, store: HistoryStore, commit: Commit) -> None:
    files: list[tuple[str, str, FileStats]] = []
    ids: dict[str, int] = {}
    for rel, language, blob in work.trees[commit.sha]:
        content = work.contents.get(work.key(language, blob) or "")
        if content is not None:
            ids[rel] = content[0]
            files.append((rel, language, content[1]))
    not_analysed = len(work.trees[commit.sha]) - len(files)
    store.add_commit(commit, ids, not_analysed, summarize(files))


def collect(store: HistoryStore, work: _Collection, commits: Sequence[Commit], cache_dir: Path | None,
            progress: Progress | None = None) -> None:
    """Measure ``commits`` (all absent from ``store``) and store them."""
    _read_new_blobs(work, store)
    _prepare_contents(work, store, _results(work, cache_dir, progress))
    for commit in commits:
        _store_commit(work, store, commit)


# ----------------------------------------------------------------------------------------- report

def top_movers(first: dict[tuple[str, str], dict], last: dict[tuple[str, str], dict], top: int) -> dict[str, Any]:
    """Functions whose CCN changed most between two commits; added and removed ones are counted."""
    changed = []
    for key in first.keys() & last.keys():
        old, new = first[key], last[key]
        if old["ccn"] != new["ccn"]:
            changed.append({"path": key[0], "qualified_name": key[1], "ccn_first": old["ccn"], "ccn_last": new["ccn"],
                            "delta_ccn": new["ccn"] - old["ccn"], "nloc_first": old["nloc"], "nloc_last": new["nloc"],
                            "cognitive_first": old.get("cognitive"), "cognitive_last": new.get("cognitive"),
                            "start_line": new.get("start_line")})
    changed.sort(key=lambda m: (-abs(m["delta_ccn"]), -m["ccn_last"], m["path"], m["qualified_name"]))
    added = sorted(last.keys() - first.keys())
    return {"changed": changed[:top], "changed_count": len(changed), "added": len(added),
            "removed": len(first.keys() - last.keys()),
            "added_most_complex": [{"path": p, "qualified_name": q, "ccn": last[(p, q)]["ccn"]}
                                   for p, q in sorted(added, key=lambda k: -last[k]["ccn"])[:top]]}


def build_report(store: HistoryStore, repo: Repository, commits: Sequence[Commit], top: int) -> dict[str, Any]:
    rows = store.commit_rows([c.sha for c in commits])
    movers = top_movers(store.functions_at(rows[0]["sha"]), store.functions_at(rows[-1]["sha"]), top) if rows else {}
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "repository": str(repo.root),
        "path": repo.prefix or ".",
        "database": str(store.path),
        "commits": rows,
        "movers": {"first": rows[0]["sha"] if rows else None, "last": rows[-1]["sha"] if rows else None, **movers},
    }


def profile_of(config: AuditConfig, repo: Repository, analysis_print: str) -> str:
    return fingerprint({"analysis": analysis_print, "prefix": repo.prefix, "include": list(config.include),
                        "exclude": list(config.exclude), "skip_dirs": list(config.skip_dirs),
                        "base_dir": config.base_dir, "max_file_mb": str(config.max_file_mb),
                        "thresholds": json.dumps(asdict(config.thresholds), sort_keys=True)})


@dataclass(frozen=True)
class Storage:
    """Where results live: the history database (None: ``.hepaudit/history.sqlite`` in the
    repository root) and the analysis cache shared with ``hepaudit audit`` (None: no cache)."""

    db: Path | None = None
    cache_dir: Path | None = None


def run_history(target: Path, count: int, config: AuditConfig, storage: Storage,
                progress: Progress | None = None) -> dict[str, Any]:
    """Measure the last ``count`` commits of the repository holding ``target`` and report them."""
    started = time.perf_counter()
    if count < 1:
        raise UserError("--commits must be at least 1.")
    repo = open_repository(target)
    commits = list_commits(repo.root, count)
    shallow = shallow_state(is_shallow(repo.root), count, len(commits))
    analysis_print = fingerprint({**tool_versions(), "config": config.fingerprint()})
    store = HistoryStore(storage.db or repo.root / DEFAULT_DB, profile_of(config, repo, analysis_print))
    try:
        known = store.known_commits([c.sha for c in commits])
        new = [c for c in commits if c.sha not in known]
        paths = PathFilter(config, repo)
        work = _Collection(repo, config, analysis_print, {c.sha: list_tree(repo.root, c.sha, paths) for c in new})
        if new:
            collect(store, work, new, storage.cache_dir, progress)
        report = build_report(store, repo, commits, config.top)
    finally:
        store.close()
    report["thresholds"] = asdict(config.thresholds)
    report["shallow"] = shallow
    report["run"] = {"commits_measured": len(new), "commits_from_database": len(known), **work.stats,
                     "seconds": round(time.perf_counter() - started, 3), "cache_dir": str(storage.cache_dir) if storage.cache_dir else None}
    return report
