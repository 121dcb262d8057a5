"""Shared fixtures for the auditor tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from auditor.config import AuditConfig


@pytest.fixture()
def config() -> AuditConfig:
    """Defaults with pylint off and one worker, for fast, deterministic tests."""
    return AuditConfig(pylint="off", jobs=1)


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
                        "HOME": str(root), "PATH": "/usr/bin:/bin:/usr/local/bin"})
