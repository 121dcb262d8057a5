"""JSON output of an audit report, with its published JSON Schema."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from auditor.errors import UserError

SCHEMA_FILE = "audit-report.schema.json"
RUN_SCHEMA_FILE = "run-report.schema.json"
HISTORY_SCHEMA_FILE = "history-report.schema.json"
KNOWN_SCHEMAS = ("hepaudit.audit", "hepaudit.run", "hepaudit.history")


def schema(name: str = SCHEMA_FILE) -> dict[str, Any]:
    """A published JSON Schema (draft 2020-12): the audit report's by default."""
    return json.loads(resources.files("auditor").joinpath("schemas", name).read_text())


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, ensure_ascii=False) + "\n"


def write_text(path: Path, text: str, what: str) -> None:
    """Write an output file; a bad destination is the user's error, not a traceback."""
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write the {what} to {path}: {exc.strerror}.") from None


def load(path: Path) -> dict[str, Any]:
    """Read a saved audit, run or history report; UserError when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a JSON file: {exc}.") from None
    if not isinstance(data, dict) or data.get("schema") not in KNOWN_SCHEMAS:
        raise UserError(f"{path} is not a hepaudit report (audit, run or history).")
    major = str(data.get("schema_version", "")).split(".")[0]
    if major != "1":
        raise UserError(f"{path} has report schema version {data.get('schema_version')!r}; this hepaudit reads 1.x.")
    return data
