"""Per-stage code quality follows the implementation into the package code it calls."""

from __future__ import annotations

from auditor.stage_quality import implementation_quality, unwrap
from tests.auditor import quality_sample


def test_follows_calls_through_numba_dispatchers() -> None:
    assert unwrap(quality_sample.kernel) is quality_sample.kernel.py_func
    quality = implementation_quality(quality_sample.stage, "tests")
    names = {f["qualified_name"] for f in quality["functions"]}
    assert names == {"tests.auditor.quality_sample.stage", "tests.auditor.quality_sample.kernel",
                     "tests.auditor.quality_sample._clip"}  # numpy is not the package's code; _unused_helper is not called
    assert quality["max_ccn"] == 3 and quality["grade"] == "A"
    assert quality["files"] == ["tests/auditor/quality_sample.py"]
    assert quality["mi"] is not None
    assert quality_sample.stage([0.5, 2.0, -1.0]) == 1.5  # the code itself still runs unchanged


def test_source_not_found_is_reported() -> None:
    quality = implementation_quality(len, "builtins")
    assert quality == {"status": "source not found", "functions": []}
