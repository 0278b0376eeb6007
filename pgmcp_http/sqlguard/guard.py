"""The verdict on one SQL text, from PostgreSQL's own parser (pglast).

:func:`check` parses the text, requires exactly one statement of an allowed
kind, then walks every node of the tree: nested statements (data-modifying
CTEs), ``SELECT ... INTO``, locking clauses, every function call wherever it
stands (select list, ``FROM``, ``LATERAL``, ``WHERE``...) and every relation
reference. It does no I/O and knows nothing of connections or HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser
from pglast.parser import ParseError

from pgmcp_http.sqlguard.errors import Refusal
from pgmcp_http.sqlguard.params import Placeholders, rewrite_placeholders
from pgmcp_http.sqlguard.policy import SYSTEM_SCHEMAS, GuardPolicy
from pgmcp_http.sqlguard.rules import (
    DENIED_RELATIONS,
    READ_STATEMENTS,
    WRITE_STATEMENTS,
    denied_function_reason,
    statement_label,
)

__all__ = ["Approved", "check"]


@dataclass(frozen=True)
class Approved:
    """A statement the guard let through.

    ``text`` is the statement with ``$n`` placeholders rewritten for the
    driver (see :mod:`pgmcp_http.sqlguard.params`); ``statement`` is the same
    statement as written, ``$n`` intact (for ``PREPARE``, sent without
    parameters so ``%`` stays as it is); ``param_count`` is the
    number of parameters it expects; ``kind`` is ``select``, ``show`` or
    ``write``; ``server_cursor`` says whether it can run behind ``DECLARE``;
    ``relations`` holds every relation named, as (schema or None, name).
    """

    text: str
    statement: str
    sql: str
    kind: str
    param_count: int
    relations: frozenset[tuple[str | None, str]]
    functions: frozenset[tuple[str | None, str]]
    operators: frozenset[str]

    @property
    def server_cursor(self) -> bool:
        return self.kind == "select"


def check(sql: str, policy: GuardPolicy) -> Approved:
    """Approve ``sql`` under ``policy`` or raise :class:`Refusal` saying why."""
    if len(sql) > policy.max_length:
        raise Refusal(f"the SQL is {len(sql)} characters long; MAX_QUERY_LENGTH allows {policy.max_length}")
    if not sql.strip():
        raise Refusal("the SQL is empty; send one SELECT statement")
    if "\x00" in sql:
        # PostgreSQL's parser and libpq both stop reading at a NUL: what runs would not be what was checked.
        raise Refusal("the SQL contains a NUL character (\\u0000); remove it")
    try:
        tree = orjson.loads(parser.parse_sql_json(sql))
    except ParseError as exc:
        raise Refusal(f"syntax error: {exc.args[0]}") from None
    statements = tree.get("stmts", [])
    if len(statements) != 1:
        raise Refusal(f"only one statement is allowed; found {len(statements)}")
    node_type, body = _only(statements[0]["stmt"])
    kind = _statement_kind(node_type, body, policy)
    relations: set[tuple[str | None, str]] = set()
    functions: set[tuple[str | None, str]] = set()
    operators: set[str] = set()
    nested_write = False
    for key, value in _walk(body):
        nested_write = _check_node(key, value, policy, relations, functions, operators) or nested_write
    if nested_write:
        kind = "write"  # a data-modifying CTE (write mode only): it cannot run behind DECLARE CURSOR
    statement = _statement_text(sql, statements[0])
    placeholders: Placeholders = rewrite_placeholders(statement)
    return Approved(
        text=placeholders.text,
        statement=statement,
        sql=sql,
        kind=kind,
        param_count=placeholders.count,
        relations=frozenset(relations),
        functions=frozenset(functions),
        operators=frozenset(operators),
    )


def _statement_text(sql: str, raw_stmt: dict[str, Any]) -> str:
    """The statement alone: no trailing semicolon, and a newline so a trailing ``--`` comment ends.

    The server appends text after it (``DECLARE ... FOR <statement>`` then
    ``FETCH``); without the newline a final line comment would swallow it.
    """
    raw = sql.encode("utf-8")
    start = raw_stmt.get("stmt_location", 0)
    length = raw_stmt.get("stmt_len", 0)
    body = raw[start:start + length] if length else raw[start:]
    return body.decode("utf-8").strip().rstrip(";").rstrip() + "\n"


def _only(node: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((node_type, body),) = node.items()
    return node_type, body


def _statement_kind(node_type: str, body: dict[str, Any], policy: GuardPolicy) -> str:
    if node_type == "SelectStmt":
        if "intoClause" in body:
            raise Refusal("SELECT ... INTO creates a table; it is not allowed")
        return "select"
    if node_type == "VariableShowStmt":
        return "show"
    if node_type in WRITE_STATEMENTS:
        if policy.read_only:
            raise Refusal(f"{statement_label(node_type)} is not allowed in read-only mode")
        _check_write_target(node_type, body)
        return "write"
    if node_type == "ExplainStmt":
        raise Refusal("EXPLAIN is not run by this tool; use the analyze_query tool with the bare statement")
    allowed = "SELECT, VALUES, TABLE or SHOW" + ("" if policy.read_only else ", INSERT, UPDATE, DELETE or MERGE")
    raise Refusal(f"{statement_label(node_type)} is not allowed; only {allowed} statements may run")


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, value)`` for every dict entry in the tree, depth first, without recursion limits."""
    stack: list[Any] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                yield key, value
                if isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(current, list):
            stack.extend(current)


def _check_node(key: str, value: Any, policy: GuardPolicy, relations: set[tuple[str | None, str]],
                functions: set[tuple[str | None, str]], operators: set[str]) -> bool:
    """Refuse what this node may not do; True when it is a nested write allowed in write mode."""
    if key[:1].isupper() and key.endswith("Stmt") and key not in READ_STATEMENTS:  # a node type, not a field
        if key in WRITE_STATEMENTS and not policy.read_only:
            _check_write_target(key, value)
            return True
        raise Refusal(f"a data-modifying or utility statement ({statement_label(key)}) inside the query "
                      "is not allowed in read-only mode")
    if key == "intoClause":
        raise Refusal("SELECT ... INTO creates a table; it is not allowed")
    if key == "lockingClause":
        raise Refusal("locking clauses (FOR UPDATE / FOR SHARE) are not allowed: they take row locks")
    if not isinstance(value, dict):
        return False
    if "funcname" in value and isinstance(value["funcname"], list):
        functions.add(_check_function(value["funcname"], policy))
    elif "relname" in value and isinstance(value.get("relname"), str):
        relations.add(_check_relation(value, policy))
    elif key == "A_Indirection":
        # (expr).f is PostgreSQL's attribute notation for f(expr): every field name may be a function.
        for name in _names(value.get("indirection", [])):
            functions.add(_check_function_name(None, name, policy))
    elif key == "ColumnRef":
        # t.f may be the function f called on t's row (attribute notation) when t has no column f.
        names = _names(value.get("fields", []))
        if len(names) >= 2 and names[-1]:
            functions.add(_check_function_name(None, names[-1], policy))
    elif key == "A_Expr" and isinstance(value.get("name"), list):
        names = _names(value["name"])
        _check_qualified(names, "operator", policy)
        if names:
            operators.add(names[-1])
    elif key in ("typeName", "TypeName") and isinstance(value.get("names"), list):
        _check_qualified(_names(value["names"]), "type", policy)
    return False


def _check_qualified(names: list[str], what: str, policy: GuardPolicy) -> None:
    """An operator or type named with a schema outside ALLOWED_SCHEMAS (OPERATOR(app.+), 'x'::app.t)."""
    if len(names) >= 2 and names[-2] and not policy.schema_allowed(names[-2]):
        raise Refusal(f"{what} {names[-2]}.{names[-1]} is in schema {names[-2]}, which is not in ALLOWED_SCHEMAS")


def _check_write_target(node_type: str, body: Any) -> None:
    """Refuse a write into a system catalog: ``UPDATE pg_settings`` is ``set_config`` in disguise (its rule
    calls it), which could change ``role`` for the rest of a pooled session; the others need a superuser."""
    target = body.get("relation") if isinstance(body, dict) else None
    if not isinstance(target, dict):
        return
    schema, table = target.get("schemaname"), target.get("relname")
    if schema in SYSTEM_SCHEMAS or (schema is None and table == "pg_settings"):
        shown = f"{schema}.{table}" if schema else table
        raise Refusal(f"{statement_label(node_type)} into {shown} is not allowed: writing a system catalog changes "
                      "settings or the catalog itself")


def _names(parts: list[Any]) -> list[str]:
    return [part.get("String", {}).get("sval", "") for part in parts if isinstance(part, dict)]


def _check_function(funcname: list[Any], policy: GuardPolicy) -> tuple[str | None, str]:
    names = _names(funcname)
    name = names[-1] if names else ""
    schema = names[-2] if len(names) >= 2 else None
    return _check_function_name(schema, name, policy)


def _check_function_name(schema: str | None, name: str, policy: GuardPolicy) -> tuple[str | None, str]:
    reason = denied_function_reason(name)
    if reason is not None:
        raise Refusal(f"function {name} is not allowed: it {reason}")
    if schema is not None and not policy.schema_allowed(schema):
        raise Refusal(f"function {schema}.{name} is in schema {schema}, which is not in ALLOWED_SCHEMAS")
    return schema, name


def _check_relation(node: dict[str, Any], policy: GuardPolicy) -> tuple[str | None, str]:
    """Check one relation reference; CTE names get no exemption (a same-named table may be in scope)."""
    table: str = node["relname"]
    schema: str | None = node.get("schemaname")
    if (schema is None or schema in SYSTEM_SCHEMAS) and table in DENIED_RELATIONS:
        raise Refusal(f"relation {table} is not allowed: it {DENIED_RELATIONS[table]}")
    if schema is not None and not policy.schema_allowed(schema):
        raise Refusal(f"table {schema}.{table} is in schema {schema}, which is not in ALLOWED_SCHEMAS")
    entry = policy.blocked_entry(schema, table)
    if entry is not None:
        shown = f"{schema}.{table}" if schema else table
        if schema is None and "." in entry:
            raise Refusal(f"table {shown} may resolve to {entry}, which is blocked by BLOCKED_TABLES; "
                          "qualify the name with its schema if you mean another table")
        raise Refusal(f"table {shown} is blocked by BLOCKED_TABLES")
    return schema, table
