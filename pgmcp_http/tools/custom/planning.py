"""Planning every custom tool once against the database, so a broken one stops start-up.

Each statement is sent to PostgreSQL as it will run, each placeholder bound
to a NULL of its parameter's type: ``EXPLAIN`` (never ``ANALYZE``: nothing executes) proves that tables,
columns, functions and types resolve and that the role may read them; then
``SELECT * FROM (<sql>) LIMIT 0`` describes the result columns for the
tool's ``outputSchema`` (PostgreSQL plans and initialises it but fetches no
row, so no function in it is called). The SECURITY DEFINER check of
``query`` runs too.

This happens in the gunicorn master before the workers fork, on one short
connection of its own that is closed before the fork. PostgreSQL being down
is not a broken tool: the server must start without its database, so
:func:`plan_tools` then reports why it could not check and the caller logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions as ext

from pgmcp_http.db import Column, DatabaseError, QueryFailed, RowLimits, Transaction
from pgmcp_http.db.run import transaction
from pgmcp_http.db.types import TypeNames
from pgmcp_http.sqlguard import Refusal
from pgmcp_http.tools.approval import approve
from pgmcp_http.tools.custom.arguments import typed_nulls
from pgmcp_http.tools.custom.errors import ToolsFileError
from pgmcp_http.tools.custom.statement import CheckedTool
from pgmcp_http.tools.spec import ToolContext

__all__ = ["PlanReport", "plan_tools"]

log = logging.getLogger(__name__)

# SQLSTATE classes that say nothing about the statement (the server is busy, shutting down, out of
# resources, the connection dropped): the check is skipped rather than the tool called broken.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX"})
_DESCRIBE_LIMITS = RowLimits(max_rows=1, max_bytes=1 << 20)


@dataclass(frozen=True)
class PlanReport:
    """What planning found: result columns per tool, or why the database could not be asked."""

    columns: dict[str, tuple[Column, ...]] = field(default_factory=dict)
    skipped: str | None = None


def plan_tools(tools: Sequence[CheckedTool], *, connect: Callable[[], ext.connection], context: ToolContext,
               server_read_only: bool, search_path: tuple[str, ...], timeout_ms: int, path: str) -> PlanReport:
    """Plan and describe every tool on one connection; ToolsFileError for the first broken one."""
    try:
        conn = connect()
    except psycopg2.Error as exc:
        return PlanReport(skipped=f"cannot connect ({_first_line(exc)})")
    types = TypeNames()
    columns: dict[str, tuple[Column, ...]] = {}
    try:
        for tool in tools:
            try:
                with transaction(conn, read_only=True, server_read_only=server_read_only, timeout_ms=timeout_ms,
                                 types=types, search_path=search_path,
                                 timeout_setting="the start-up check of TOOLS_FILE") as tx:
                    found = _plan_one(tx, tool, context)
            except Refusal as exc:
                raise ToolsFileError(path, tool.definition.sql_line, f"the sql is refused: {exc.reason}",
                                     tool=tool.name) from None
            except QueryFailed as exc:
                if (exc.sqlstate or "")[:2] in _TRANSIENT_CLASSES:
                    return PlanReport(columns=columns, skipped=f"PostgreSQL could not plan {tool.name}: "
                                                               f"{exc.describe()}")
                raise ToolsFileError(path, tool.definition.sql_line,
                                     f"PostgreSQL rejects the sql: {exc.describe()}; fix the statement (checked with "
                                     "each $n bound to a NULL of its parameter's type) or grant the role what it needs",
                                     tool=tool.name) from None
            except DatabaseError as exc:  # timeout, cancelled, connection lost
                return PlanReport(columns=columns, skipped=f"while planning {tool.name}: {exc}")
            if found is not None:
                columns[tool.name] = found
    finally:
        conn.close()
    return PlanReport(columns=columns)


def _plan_one(tx: Transaction, tool: CheckedTool, context: ToolContext) -> tuple[Column, ...] | None:
    """EXPLAIN the statement, then describe its columns (SELECT-like statements only)."""
    approved = approve(tx, tool.definition.sql, context)
    nulls = typed_nulls(tool.definition.parameters)
    if approved.kind == "show":
        return None  # SHOW cannot be explained; the guard has parsed it, which is all there is to check
    tx.rows(f"EXPLAIN (FORMAT JSON) {approved.text}", nulls)
    if approved.kind != "select":
        return None
    described = tx.fetch(f"SELECT * FROM (\n{approved.text}) AS pgmcp_describe LIMIT 0", nulls, _DESCRIBE_LIMITS,
                         server_cursor=False)
    return tuple(described.columns)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
