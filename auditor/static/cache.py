"""Content-hash cache of per-file results.

Key: a hash of the file's bytes, its language, and the versions of everything that shapes the
result (hepaudit's analysis version, Python, radon, lizard; pylint and its profile for lint).
The path is not part of the key, so a moved or duplicated file is a hit. One SQLite file holds
every entry: thousands of small files would cost more to open than to analyse.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import zlib
from pathlib import Path
from typing import Any, Iterable

SCHEMA = "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value BLOB NOT NULL)"


def default_cache_dir() -> Path:
    """``$HEPAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/hepaudit``, else ``~/.cache/hepaudit``."""
    if os.environ.get("HEPAUDIT_CACHE_DIR"):
        return Path(os.environ["HEPAUDIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hepaudit"


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def fingerprint(parts: dict[str, str]) -> str:
    """A short hash of tool versions and settings, mixed into every key."""
    text = json.dumps(parts, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class ResultCache:
    """Maps keys to JSON values in one SQLite database; a no-op when disabled or unusable."""

    def __init__(self, folder: Path | None):
        self.connection: sqlite3.Connection | None = None
        self.problem: str | None = None
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(folder / "results-v1.sqlite", timeout=30)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            # The audit still runs, only slower; the report says why the cache is off.
            self.connection = None
            self.problem = f"cache disabled: {folder} is not usable ({exc})"

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        if self.connection is None:
            return {}
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        try:
            for start in range(0, len(keys), 900):
                batch = keys[start:start + 900]
                marks = ",".join("?" * len(batch))
                for key, blob in self.connection.execute(
                        f"SELECT key, value FROM results WHERE key IN ({marks})", batch):
                    found[key] = json.loads(zlib.decompress(blob))
        except (sqlite3.Error, zlib.error, ValueError):
            return found  # a damaged entry is a miss; it is rewritten below
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        if self.connection is None or not items:
            return
        rows = [(key, zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 1))
                for key, value in items.items()]
        try:
            with self.connection:
                self.connection.executemany("INSERT OR REPLACE INTO results VALUES (?, ?)", rows)
        except sqlite3.Error as exc:
            self.problem = f"cache not updated: {exc}"

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
