"""Python metrics from one parse: radon's cyclomatic complexity, Halstead, raw counts and
maintainability index, plus cognitive complexity, nesting depth, parameters and NLOC per function.

The source is decoded as Python itself would (PEP 263 coding cookie, UTF-8 by default), parsed
once with ``ast``, and that tree is shared by radon's complexity and Halstead visitors and by the
cognitive-complexity visitor. radon's own ``mi_visit`` parses the file a second time; hepaudit
feeds ``mi_compute`` the same inputs from the shared tree, so the MI equals ``radon mi`` (which
counts multi-line strings as comments by default).
"""

from __future__ import annotations

import ast
import hashlib
import io
import platform
import re
import tokenize
from typing import Any

from radon.complexity import cc_rank
from radon.metrics import h_visit_ast, mi_compute, mi_rank
from auditor.static.raw_lines import analyze as raw_analyze
from radon.visitors import ComplexityVisitor, Function

from auditor.static.cognitive import cognitive_complexity, nesting_depth

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCK_FIELDS = ("body", "orelse", "finalbody")


class AnalysisSkip(Exception):
    """The file cannot be analysed; the message is the reason shown to the user."""


def decode_python(data: bytes) -> str:
    """Decode Python source as the interpreter would; AnalysisSkip when it cannot."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise AnalysisSkip(f"undecodable bytes at byte {bad.start}: not UTF-8 and no coding declaration") from None
        raise AnalysisSkip(f"bad encoding declaration: {exc.msg}") from None
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        position = f" at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else ""
        raise AnalysisSkip(f"undecodable bytes{position} for encoding {encoding}") from None
    return text[1:] if text.startswith("\ufeff") else text


def parse_python(text: str, name: str) -> ast.Module:
    try:
        return ast.parse(text, filename=name)
    except SyntaxError as exc:
        where = f" (line {exc.lineno})" if exc.lineno else ""
        raise AnalysisSkip(f"Python {platform.python_version()} cannot parse it: {exc.msg}{where}") from None
    except (RecursionError, MemoryError):
        raise AnalysisSkip("too deeply nested for Python's parser") from None
    except ValueError as exc:
        raise AnalysisSkip(f"Python cannot parse it: {exc}") from None


def _qualified_names(tree: ast.Module) -> dict[tuple[int, int], tuple[str, ast.AST]]:
    """(line, column) of every function -> (qualified name, node).

    Functions and classes are statements, so only statement lists are walked, not expressions.
    """
    found: dict[tuple[int, int], tuple[str, ast.AST]] = {}
    stack: list[tuple[list[ast.stmt], str]] = [(tree.body, "")]
    while stack:
        body, prefix = stack.pop()
        for statement in body:
            if isinstance(statement, (*_FUNCTIONS, ast.ClassDef)):
                name = f"{prefix}{statement.name}"
                if isinstance(statement, _FUNCTIONS):
                    found[(statement.lineno, statement.col_offset)] = (name, statement)
                stack.append((statement.body, name + "."))
                continue
            for field in _BLOCK_FIELDS:
                inner = getattr(statement, field, None)
                if inner:
                    stack.append((inner, prefix))
            for handler in getattr(statement, "handlers", ()):
                stack.append((handler.body, prefix))
            for case in getattr(statement, "cases", ()):
                stack.append((case.body, prefix))
    return found


def _radon_blocks(visitor: ComplexityVisitor) -> list[Function]:
    """All radon function blocks, closures and methods of inner classes included."""
    pending = list(visitor.blocks)
    functions: list[Function] = []
    while pending:
        block = pending.pop()
        if isinstance(block, Function):
            functions.append(block)
            pending.extend(block.closures)
        else:
            pending.extend(block.inner_classes)
            pending.extend(block.methods)
    return functions


def _nloc(lines: list[str], start: int, end: int) -> int:
    count = 0
    for line in lines[start - 1:end]:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            count += 1
    return count


def body_hash(lines: list[str], start: int, end: int, name_pattern: str) -> str:
    """Identity of a function's code that survives moves, renames and re-indentation.

    SHA-256 (first 16 hex digits) of lines ``start..end`` with runs of whitespace collapsed and
    blank lines dropped; the first match of ``name_pattern`` (the function's own name as
    declared) is blanked, so renaming a function, or moving it to another class or file, keeps
    its hash while any change to its parameters or body changes it.
    """
    text = "\n".join(" ".join(line.split()) for line in lines[start - 1:end] if line.strip())
    text = re.sub(name_pattern, "", text, count=1)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    return (len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            + (args.vararg is not None) + (args.kwarg is not None))


def analyze_python(data: bytes, name: str) -> dict[str, Any]:
    """Metrics of one Python file (see module docstring); AnalysisSkip when it cannot be parsed."""
    text = decode_python(data)
    tree = parse_python(text, name)
    lines = text.splitlines()
    visitor = ComplexityVisitor.from_ast(tree)
    ccn_at = {(block.lineno, block.col_offset): block.complexity for block in _radon_blocks(visitor)}
    functions = []
    for (line, column), (qualified, node) in sorted(_qualified_names(tree).items()):
        ccn = ccn_at.get((line, column))
        if ccn is None:
            # radon drops classes defined inside functions; measure their methods on their own.
            ccn = ComplexityVisitor.from_ast(node).functions[0].complexity
        end = node.end_lineno or line
        functions.append({
            "name": node.name,
            "qualified_name": qualified,
            "start_line": line,
            "end_line": end,
            "ccn": ccn,
            "grade": cc_rank(ccn),
            "cognitive": cognitive_complexity(node),
            "nloc": _nloc(lines, line, end),
            "params": _parameters(node),
            "nesting": nesting_depth(node),
            "body_hash": body_hash(lines, line, end, rf"\bdef\s+{re.escape(node.name)}\b"),
        })
    halstead = h_visit_ast(tree).total
    try:
        raw = raw_analyze(text)
    except (SyntaxError, tokenize.TokenError) as exc:  # tokenize disagrees with the parser
        raise AnalysisSkip(f"radon's line counter cannot tokenize it: {exc}") from None
    comment_percent = (raw.comments + raw.multi) / raw.sloc * 100 if raw.sloc else 0
    mi = mi_compute(halstead.volume, visitor.total_complexity, raw.lloc, comment_percent)
    return {
        "loc": raw.loc, "lloc": raw.lloc, "sloc": raw.sloc, "comments": raw.comments,
        "multi": raw.multi, "blank": raw.blank,
        "mi": round(mi, 4), "mi_grade": mi_rank(mi),
        "halstead": {key: round(float(getattr(halstead, key)), 4) for key in (
            "h1", "h2", "N1", "N2", "vocabulary", "length", "calculated_length", "volume",
            "difficulty", "effort", "time", "bugs")},
        "functions": functions,
    }
