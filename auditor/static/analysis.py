"""Analyse one file's bytes in the right language; the unit of work that worker processes run."""

from __future__ import annotations

from typing import Any, Sequence

from auditor.static.languages import is_python
from auditor.static.python_metrics import AnalysisSkip

#: Bump when a metric's definition or the result layout changes: it invalidates the cache.
ANALYSIS_VERSION = 2  # 2: body_hash per function


def analyze_bytes(language: str, name: str, data: bytes) -> dict[str, Any]:
    """Metrics of one file as a JSON-ready dict: ``{"metrics": ...}`` or ``{"skip": reason}``."""
    try:
        if is_python(language):
            from auditor.static.python_metrics import analyze_python

            return {"metrics": analyze_python(data, name)}
        from auditor.static.clike_metrics import analyze_clike

        return {"metrics": analyze_clike(data, name)}
    except AnalysisSkip as skip:
        return {"skip": str(skip)}
    except RecursionError:
        return {"skip": "too deeply nested to analyse"}
    except Exception as exc:  # noqa: BLE001 - a library failing on one file must not stop the audit
        tool = "radon" if is_python(language) else "lizard"
        return {"skip": f"{tool} failed on it: {type(exc).__name__}: {exc}"}


def analyze_chunk(items: Sequence[tuple[str, str, bytes]]) -> list[dict[str, Any]]:
    """Analyse ``(language, name, bytes)`` items; run inside a worker process."""
    return [analyze_bytes(language, name, data) for language, name, data in items]


def tool_versions() -> dict[str, str]:
    """Versions of everything that changes per-file results."""
    import platform
    from importlib.metadata import version

    from auditor import __version__

    return {
        "hepaudit": __version__,
        "analysis": str(ANALYSIS_VERSION),
        "python": platform.python_version(),
        "radon": version("radon"),
        "lizard": version("lizard"),
    }
