"""What a plan's conditions say about columns, read with PostgreSQL's parser.

EXPLAIN VERBOSE prints filters and join conditions as SQL expressions with
qualified column references (``(o.status = 'paid'::text)``). Parsing them
with pglast (not regular expressions) finds, for each comparison, the column,
whether it is compared for equality or a range, and whether a function or a
cast is wrapped around the column (which keeps a plain index from being used).
Expressions pglast cannot read (``hashed SubPlan 1``) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser
from pglast.parser import ParseError

__all__ = ["ColumnUse", "JoinKey", "column_uses", "join_keys"]

_EQUALITY = frozenset({"="})
_RANGE = frozenset({"<", ">", "<=", ">="})
_PATTERN = frozenset({"~~", "~~*"})


@dataclass(frozen=True)
class ColumnUse:
    """One column compared with a value: ``qualifier.column op value``.

    ``wrapper`` is the function name around the column (``lower``), ``cast``
    when the column is cast to another type, or None; ``wrapper_sql`` is the
    expression an expression index would hold (``lower(email)``).
    """

    qualifier: str | None
    column: str
    kind: str  # equality, range, pattern, null
    wrapper: str | None = None
    wrapper_sql: str | None = None


@dataclass(frozen=True)
class JoinKey:
    """Two columns compared for equality by a join condition."""

    left: tuple[str | None, str]
    right: tuple[str | None, str]


def _parse(expression: str) -> dict[str, Any] | None:
    try:
        tree = orjson.loads(parser.parse_sql_json(f"SELECT 1 WHERE {expression}"))
    except (ParseError, ValueError):
        return None
    stmts = tree.get("stmts", [])
    if len(stmts) != 1:
        return None
    return stmts[0]["stmt"].get("SelectStmt", {}).get("whereClause")


def _walk(node: Any) -> list[dict[str, Any]]:
    """Every dict in the tree in document order (so columns keep the order the condition names them)."""
    found: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            found.append(current)
            stack.extend(reversed([value for value in current.values() if isinstance(value, (dict, list))]))
        elif isinstance(current, list):
            stack.extend(reversed(current))
    return found


def _column(node: dict[str, Any]) -> tuple[str | None, str] | None:
    ref = node.get("ColumnRef")
    if ref is None:
        return None
    names = [f.get("String", {}).get("sval") for f in ref.get("fields", []) if "String" in f]
    if not names or any(name is None for name in names):
        return None
    return (names[-2] if len(names) > 1 else None), names[-1]


def _unwrap(node: dict[str, Any]) -> tuple[tuple[str | None, str] | None, str | None]:
    """The column under at most one cast or function call, and what wraps it."""
    column = _column(node)
    if column is not None:
        return column, None
    if "TypeCast" in node:
        inner = node["TypeCast"].get("arg", {})
        inner_column = _column(inner)
        if inner_column is not None:
            return inner_column, "cast"
        column, wrapper = _unwrap(inner)  # (lower((users.email)::text)): a cast under a function
        return column, wrapper
    if "FuncCall" in node:
        call = node["FuncCall"]
        args = call.get("args", [])
        names = [f.get("String", {}).get("sval") for f in call.get("funcname", [])]
        if len(args) == 1 and names:
            column, _ = _unwrap(args[0])
            if column is not None:
                return column, str(names[-1])
    return None, None


def _is_value(node: dict[str, Any]) -> bool:
    if "A_Const" in node or "ParamRef" in node:
        return True
    if "TypeCast" in node:
        return _is_value(node["TypeCast"].get("arg", {}))
    return "A_ArrayExpr" in node


def _operator(expr: dict[str, Any]) -> str:
    names = [f.get("String", {}).get("sval", "") for f in expr.get("name", [])]
    return names[-1] if names else ""


def column_uses(expression: str) -> list[ColumnUse]:
    """Columns compared with values in ``expression`` (a Filter or Index Cond)."""
    where = _parse(expression)
    if where is None:
        return []
    uses: list[ColumnUse] = []
    for node in _walk(where):
        if "NullTest" in node:
            column, wrapper = _unwrap(node["NullTest"].get("arg", {}))
            if column is not None:
                uses.append(ColumnUse(column[0], column[1], "null", wrapper))
            continue
        expr = node.get("A_Expr")
        if expr is None:
            continue
        op = _operator(expr)
        kind = expr.get("kind")
        if kind == "AEXPR_OP_ANY" and op == "=":
            label = "equality"
        elif kind == "AEXPR_BETWEEN":
            label = "range"
        elif kind == "AEXPR_OP" and op in _EQUALITY | _RANGE | _PATTERN:
            label = "equality" if op in _EQUALITY else "range" if op in _RANGE else "pattern"
        else:
            continue
        left, right = expr.get("lexpr", {}), expr.get("rexpr", {})
        for side, other in ((left, right), (right, left)):
            column, wrapper = _unwrap(side)
            if column is not None and (kind == "AEXPR_BETWEEN" or _is_value(other)):
                expression = f"{wrapper}({column[1]})" if wrapper not in (None, "cast") else None
                uses.append(ColumnUse(column[0], column[1], label, wrapper, expression))
                break
    return uses


def join_keys(expression: str) -> list[JoinKey]:
    """Column pairs a join condition compares for equality (``o.user_id = u.id``)."""
    where = _parse(expression)
    if where is None:
        return []
    keys: list[JoinKey] = []
    for node in _walk(where):
        expr = node.get("A_Expr")
        if expr is None or expr.get("kind") != "AEXPR_OP" or _operator(expr) != "=":
            continue
        left, _ = _unwrap(expr.get("lexpr", {}))
        right, _ = _unwrap(expr.get("rexpr", {}))
        if left is not None and right is not None:
            keys.append(JoinKey(left, right))
    return keys
