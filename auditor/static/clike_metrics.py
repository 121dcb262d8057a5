"""C, C++, CUDA, HIP and SYCL metrics from lizard.

Every file is handed to lizard explicitly, with its own name: lizard's directory walk only
accepts ``c, cpp, cc, cxx, h, hpp`` and so silently skips ``.cu``, ``.cuh``, ``.hip``, ``.sycl``,
``.ipp`` and more, while an explicitly named file of any suffix is read by its C-like reader.
lizard's nesting-depth extension (``-END``) gives the nesting depth of each function.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any

from radon.complexity import cc_rank

from auditor.static.python_metrics import AnalysisSkip, body_hash

_ANALYZER = None


def _analyzer():
    global _ANALYZER  # noqa: PLW0603 - one lizard pipeline per worker process
    if _ANALYZER is None:
        from lizard import FileAnalyzer, get_extensions

        _ANALYZER = FileAnalyzer(get_extensions(["nd"]))
    return _ANALYZER


def decode_clike(data: bytes) -> tuple[str, list[str]]:
    """UTF-8 text, or Latin-1 with a note: C/C++ has no encoding declaration and legacy
    comments are often Latin-1; the metrics only depend on the ASCII tokens."""
    try:
        text = data.decode("utf-8-sig")
        return text, []
    except UnicodeDecodeError as exc:
        return data.decode("latin-1"), [f"not valid UTF-8 (byte {exc.start}); read as Latin-1"]


def _declared_name(qualified: str) -> str:
    """Pattern of the name as declared, with any ``Class::`` or ``ns::`` qualifiers written there."""
    short = qualified.rsplit("::", 1)[-1]
    return rf"(?:\b\w+\s*::\s*)*(?<![\w~]){re.escape(short)}(?=\s*\()"


def analyze_clike(data: bytes, name: str) -> dict[str, Any]:
    """Metrics of one C-family file; AnalysisSkip when lizard cannot process it."""
    text, notes = decode_clike(data)
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            info = _analyzer().analyze_source_code(name, text)
    except RecursionError:
        raise AnalysisSkip("too deeply nested for lizard") from None
    except Exception as exc:  # noqa: BLE001 - lizard's parser failing on one file must not stop the audit
        raise AnalysisSkip(f"lizard failed: {type(exc).__name__}: {exc}") from None
    if errors.getvalue().strip():
        notes.append("lizard: " + errors.getvalue().strip().splitlines()[-1])
    lines = text.splitlines()
    blank = sum(1 for line in lines if not line.strip())
    functions = [{
        "name": f.name.rsplit("::", 1)[-1],
        "qualified_name": f.name,
        "signature": f.long_name,
        "start_line": f.start_line,
        "end_line": f.end_line,
        "ccn": f.cyclomatic_complexity,
        "grade": cc_rank(f.cyclomatic_complexity),
        "cognitive": None,
        "nloc": f.nloc,
        "params": f.parameter_count,
        "nesting": f.max_nesting_depth,
        "tokens": f.token_count,
        "body_hash": body_hash(lines, f.start_line, f.end_line, _declared_name(f.name)),
    } for f in info.function_list]
    return {
        "loc": len(lines), "sloc": info.nloc, "blank": blank,
        "comments": max(0, len(lines) - info.nloc - blank),
        "functions": functions, "notes": notes,
    }
