"""Cognitive complexity of Python functions (G. A. Campbell, SonarSource white paper v1.5).

radon has no cognitive complexity (radon issue #163), so hepaudit computes it on the same parsed
tree that radon uses. The white paper's rules, mapped to Python as SonarPython does:

* +1, plus the current nesting level, for ``if``, ternary ``x if c else y``, ``for``, ``while``,
  ``except`` and ``match``; each of them (except the ternary's operands, which are expressions)
  raises the nesting level of its body by one;
* +1 (no nesting bonus) for ``elif`` and ``else`` branches of ``if``, and for the ``else`` of a loop;
* +1 for each sequence of like boolean operators (``a and b and c`` is one, ``a and b or c`` two);
* +1 for each ``for`` and each ``if`` clause of a comprehension (no nesting bonus);
* nested functions, lambdas and classes raise the nesting level without an increment, and their
  complexity counts towards the enclosing function, as in the white paper.
``try``, ``finally``, ``with``, ``break`` and ``continue`` add nothing (Python has no labelled jumps).
"""

from __future__ import annotations

import ast

_LOOPS = (ast.For, ast.AsyncFor, ast.While)
#: Nodes without anything that can add cognitive complexity below them.
_LEAVES = (ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.cmpop, ast.unaryop,
           ast.boolop, ast.alias)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_TRY = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)


class _Cognitive:
    def __init__(self) -> None:
        self.score = 0

    def statements(self, body: list[ast.stmt], nesting: int) -> None:
        for statement in body:
            self.node(statement, nesting)

    def node(self, node: ast.AST, nesting: int) -> None:  # noqa: C901 - one branch per node kind
        if isinstance(node, ast.If):
            self.score += 1 + nesting
            self.if_chain(node, nesting)
        elif isinstance(node, _LOOPS):
            self.score += 1 + nesting
            self.expression_children(node, nesting, skip=("body", "orelse"))
            self.statements(node.body, nesting + 1)
            if node.orelse:
                self.score += 1
                self.statements(node.orelse, nesting + 1)
        elif isinstance(node, _TRY):
            self.statements(node.body, nesting)
            for handler in node.handlers:
                self.score += 1 + nesting
                if handler.type is not None:
                    self.node(handler.type, nesting)
                self.statements(handler.body, nesting + 1)
            self.statements(node.orelse, nesting)
            self.statements(node.finalbody, nesting)
        elif isinstance(node, ast.Match):
            self.score += 1 + nesting
            self.node(node.subject, nesting)
            for case in node.cases:
                if case.guard is not None:
                    self.node(case.guard, nesting + 1)
                self.statements(case.body, nesting + 1)
        elif isinstance(node, ast.IfExp):
            self.score += 1 + nesting
            for child in (node.test, node.body, node.orelse):
                self.node(child, nesting + 1)
        elif isinstance(node, ast.BoolOp):
            self.score += 1
            for value in node.values:
                if isinstance(value, ast.BoolOp) and isinstance(value.op, type(node.op)):
                    self.score -= 1  # same operator continued inside parentheses: one sequence
                self.node(value, nesting)
        elif isinstance(node, ast.comprehension):
            self.score += 1 + len(node.ifs)
            self.generic(node, nesting)
        elif isinstance(node, ast.Lambda):
            self.node(node.args, nesting)
            self.node(node.body, nesting + 1)
        elif isinstance(node, _SCOPES):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.node(child, nesting + 1)
                else:
                    self.node(child, nesting)
        else:
            self.generic(node, nesting)

    def if_chain(self, node: ast.If, nesting: int) -> None:
        self.node(node.test, nesting)
        self.statements(node.body, nesting + 1)
        orelse = node.orelse
        if len(orelse) == 1 and isinstance(orelse[0], ast.If):
            self.score += 1  # elif
            self.if_chain(orelse[0], nesting)
        elif orelse:
            self.score += 1  # else
            self.statements(orelse, nesting + 1)

    def expression_children(self, node: ast.AST, nesting: int, skip: tuple[str, ...]) -> None:
        for name, value in ast.iter_fields(node):
            if name in skip:
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    self.node(child, nesting)

    def generic(self, node: ast.AST, nesting: int) -> None:
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                for child in value:
                    if isinstance(child, ast.AST) and not isinstance(child, _LEAVES):
                        self.node(child, nesting)
            elif isinstance(value, ast.AST) and not isinstance(value, _LEAVES):
                self.node(value, nesting)


def cognitive_complexity(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Cognitive complexity of one function, nested functions included."""
    visitor = _Cognitive()
    for decorator in function.decorator_list:
        visitor.node(decorator, 0)
    visitor.statements(function.body, 0)
    return visitor.score


_NESTING = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Match) + _TRY


def nesting_depth(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Deepest nesting of control blocks in the function's own body (``elif`` is not deeper)."""

    def depth(body: list[ast.stmt], level: int) -> int:
        deepest = level
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if not isinstance(statement, _NESTING):
                continue
            inner = level + 1
            blocks: list[list[ast.stmt]] = []
            if isinstance(statement, ast.If):
                branch: ast.stmt = statement
                while isinstance(branch, ast.If):
                    blocks.append(branch.body)
                    if len(branch.orelse) == 1 and isinstance(branch.orelse[0], ast.If):
                        branch = branch.orelse[0]
                    else:
                        blocks.append(branch.orelse)
                        break
            elif isinstance(statement, ast.Match):
                blocks.extend(case.body for case in statement.cases)
            elif isinstance(statement, _TRY):
                blocks.extend([statement.body, statement.orelse, statement.finalbody])
                blocks.extend(handler.body for handler in statement.handlers)
            else:
                blocks.append(statement.body)
                blocks.append(getattr(statement, "orelse", []))
            for block in blocks:
                deepest = max(deepest, depth(block, inner))
        return deepest

    return depth(function.body, 0)
