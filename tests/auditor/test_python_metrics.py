"""Python metrics equal radon's on the same code, and cognitive complexity follows the white paper."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from radon.complexity import cc_visit, add_inner_blocks
from radon.metrics import h_visit, mi_visit
from radon.raw import analyze

from auditor.static.cognitive import cognitive_complexity, nesting_depth
from auditor.static.python_metrics import AnalysisSkip, analyze_python

SAMPLE = textwrap.dedent('''
    """Module docstring."""
    import os


    def plain(a, b=1, *args, c, **kw):
        # a comment
        if a and b or c:
            return [x for x in args if x]
        elif a:
            return 1
        else:
            return 2


    class Holder:
        """A class."""

        def method(self, x):
            try:
                for i in range(x):
                    while i:
                        i -= 1
            except ValueError:
                pass
            return x if x else None

        async def coro(self):
            with open(os.devnull) as handle:
                return handle

        class Inner:
            def deep(self):
                assert self
                return 1


    def outer(n):
        def inner(m):
            return m or n
        return inner(n) if n > 1 else 0


    def make():
        class Local:
            def hidden(self, q):
                return 1 if q else 2
        return Local
    ''')

#: The repository's own sources make a larger parity corpus.
OWN_SOURCES = sorted((Path(__file__).parents[2] / "auditor").rglob("*.py"))


def _radon_ccn(code: str) -> dict[tuple[int, str], int]:
    return {(b.lineno, b.name.rsplit(".", 1)[-1]): b.complexity
            for b in add_inner_blocks(cc_visit(code)) if not hasattr(b, "methods")}


@pytest.mark.parametrize("source", [SAMPLE] + [p.read_text() for p in OWN_SOURCES[:12]],
                         ids=["sample"] + [p.name for p in OWN_SOURCES[:12]])
def test_ccn_and_file_metrics_equal_radon(source: str) -> None:
    result = analyze_python(source.encode(), "x.py")
    ours = {(f["start_line"], f["name"]): f["ccn"] for f in result["functions"]}
    radon = _radon_ccn(source)
    for key, value in radon.items():
        assert ours[key] == value, key
    assert result["mi"] == pytest.approx(mi_visit(source, True), abs=1e-3)
    assert result["halstead"]["volume"] == pytest.approx(h_visit(source).total.volume, abs=1e-3)
    raw = analyze(source)
    assert (result["loc"], result["lloc"], result["sloc"], result["comments"], result["multi"], result["blank"]) == (
        raw.loc, raw.lloc, raw.sloc, raw.comments, raw.multi, raw.blank)


def test_every_function_is_reported_with_qualified_names() -> None:
    result = analyze_python(SAMPLE.encode(), "x.py")
    names = {f["qualified_name"] for f in result["functions"]}
    # radon itself drops methods of classes defined inside functions (Local.hidden): we do not.
    assert names == {"plain", "Holder.method", "Holder.coro", "Holder.Inner.deep", "outer", "outer.inner",
                     "make", "make.Local.hidden"}
    hidden = next(f for f in result["functions"] if f["name"] == "hidden")
    assert hidden["ccn"] == 2


def test_parameters_nloc_lines_and_grades() -> None:
    result = analyze_python(SAMPLE.encode(), "x.py")
    plain = next(f for f in result["functions"] if f["name"] == "plain")
    assert plain["params"] == 5
    assert (plain["start_line"], plain["end_line"]) == (6, 13)
    assert plain["nloc"] == 7  # eight lines, one of them a comment
    assert (plain["ccn"], plain["grade"]) == (7, "B")  # if, and, or, comprehension for+if, elif
    assert result["mi_grade"] == "A"


def _function(code: str) -> ast.FunctionDef:
    node = ast.parse(textwrap.dedent(code)).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


@pytest.mark.parametrize("code, expected", [
    ("def f():\n    return 1\n", 0),
    # The white paper's sumOfPrimes example: for(+1) for(+2) if(+3) continue-to-label dropped.
    ("""
    def sum_of_primes(maximum):
        total = 0
        for i in range(1, maximum):
            for j in range(2, i):
                if i % j == 0:
                    break
            total += i
        return total
    """, 6),
    # getWords: a switch is one increment in the white paper; Python's if/elif chain costs each branch.
    ("""
    def words(number):
        if number == 1:
            return "one"
        elif number == 2:
            return "a couple"
        else:
            return "lots"
    """, 3),
    ("""
    def boolean(a, b, c, d):
        return a and b and c or d and not (a or b)
    """, 4),
    ("""
    def nested(a):
        try:
            if a:
                return [x for x in a if x]
        except ValueError:
            return 1 if a else 2
    """, 1 + 2 + 1 + 2),  # if, comprehension for+if, except, ternary nested once
    ("""
    def with_closure(a):
        def inner(b):
            if b:
                return 1
        return inner
    """, 2),
    ("""
    def matcher(a):
        match a:
            case 1:
                while a:
                    a -= 1
            case _:
                pass
    """, 1 + 2),
])
def test_cognitive_complexity(code: str, expected: int) -> None:
    assert cognitive_complexity(_function(code)) == expected


def test_nesting_depth_ignores_elif_and_nested_functions() -> None:
    code = """
    def f(a):
        if a:
            for x in a:
                with open(x):
                    pass
        elif a is None:
            pass
        def g():
            if a:
                if a:
                    if a:
                        if a:
                            pass
        return g
    """
    assert nesting_depth(_function(code)) == 3


@pytest.mark.parametrize("data, reason", [
    (b"def f(:\n    pass\n", "cannot parse it"),
    (b"x = '\xff\xfe'\n", "undecodable bytes"),
    (b"# -*- coding: no-such-codec -*-\nx = 1\n", "encoding"),
    (b"x = (" * 300 + b")" * 300 + b"\n", "cannot parse it"),
])
def test_unparseable_sources_raise_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(AnalysisSkip, match=reason):
        analyze_python(data, "bad.py")


def test_braces_in_syntax_errors_do_not_crash() -> None:
    # radon's CLI crashes formatting such messages (radon issue #188).
    with pytest.raises(AnalysisSkip, match="cannot parse"):
        analyze_python(b"x = f'{'\ny = {}}'\n", "braces.py")


def test_latin1_declared_source_is_decoded() -> None:
    data = "# -*- coding: latin-1 -*-\ndef f():\n    return 'é'\n".encode("latin-1")
    assert analyze_python(data, "l.py")["functions"][0]["name"] == "f"


RAW_CASES = [
    "x = 1\n",
    "",
    "\n\n\n",
    '"""Docstring\n\nspanning lines."""\n\ndef f():\n    """One line."""\n    return 1\n',
    "a = (1,\n     2,  # inside\n\n     3)\nb = 2; c = 3\nif a: b = 4\n",
    "x = 1 + \\\n    2\ny = '''\nmulti\n''' + 'a'\n",
    "class A:\n    x: int = 1\n    def f(self): return {\n        'k': 'v',\n    }\n",
    "# only a comment\n#another\n\n\n  # indented\n",
    "s = f'{x!r:>10}'\nt = [i for i in range(3)\n     if i]\nlambda: (\n  1)\n",
    "x = 1\x0cy = 2\r\nz = 3\rw = 4\n",
    "def f():\n    pass\n# trailing comment without newline",
    "if True:\n    try: pass\n    except: pass\n",
]


@pytest.mark.parametrize("source", RAW_CASES + [p.read_text() for p in OWN_SOURCES])
def test_linear_raw_counts_equal_radon(source: str) -> None:
    from auditor.static.raw_lines import analyze as linear

    assert linear(source) == analyze(source)


def test_long_literal_is_one_logical_line() -> None:
    from auditor.static.raw_lines import analyze as linear

    # radon's own loop re-tokenizes this 3,000 times (quadratic); one pass gives the same counts.
    source = "TABLE = [\n" + "".join(f"    ({i}, 'entry {i}'),\n" for i in range(3000)) + "]\n"
    result = linear(source)
    assert (result.loc, result.sloc, result.lloc, result.blank) == (3002, 3002, 1, 0)
