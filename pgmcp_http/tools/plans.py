"""EXPLAIN for the tools: custom or generic plans, and plans with hypothetical indexes.

Nothing here executes the statement. With ``$n`` placeholders and no values,
the generic plan is shown (PREPARE under ``plan_cache_mode =
force_generic_plan``, then ``EXPLAIN EXECUTE`` with NULLs). Prepared
statements and hypopg's hypothetical indexes live in the session, not the
transaction, so both are removed before the connection goes back to the pool;
when a failure leaves that impossible, the connection is discarded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pgmcp_http.db import DatabaseError, Transaction
from pgmcp_http.sqlguard import Approved

__all__ = ["EXPLAIN_OPTIONS", "explain", "hypopg_schema", "hypothetical_index"]

EXPLAIN_OPTIONS = "FORMAT JSON, VERBOSE, COSTS, SETTINGS"
_PREPARED = "pgmcp_explain"


def explain(tx: Transaction, approved: Approved, params: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The plan document (``{"Plan": ..., "Settings": ...}``) and whether it is ``custom`` or ``generic``."""
    if approved.param_count and params is None:
        return _generic(tx, approved), "generic"
    rows = tx.rows(f"EXPLAIN ({EXPLAIN_OPTIONS}) {approved.text}", params or {})
    return _document(rows), "custom"


def _document(rows: list[dict[str, Any]]) -> dict[str, Any]:
    (row,) = rows
    (value,) = row.values()
    return value[0]


def _generic(tx: Transaction, approved: Approved) -> dict[str, Any]:
    tx.rows("SET LOCAL plan_cache_mode = force_generic_plan")
    tx.rows(f"PREPARE {_PREPARED} AS {approved.statement}")
    nulls = ", ".join(["NULL"] * approved.param_count)
    try:
        tx.rows("SAVEPOINT pgmcp_explain")
        try:
            rows = tx.rows(f"EXPLAIN ({EXPLAIN_OPTIONS}) EXECUTE {_PREPARED}({nulls})")
        except DatabaseError:
            tx.rows("ROLLBACK TO SAVEPOINT pgmcp_explain")
            raise
    finally:
        _cleanup(tx, f"DEALLOCATE {_PREPARED}")
    return _document(rows)


def _cleanup(tx: Transaction, sql: str) -> None:
    try:
        tx.rows(sql)
    except DatabaseError:
        tx.discard()
        raise


_HYPOPG_SQL = """
SELECT n.nspname AS schema FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'hypopg' AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')
"""


def hypopg_schema(tx: Transaction) -> str | None:
    """The schema hypopg is installed in, when it is and the role may use it."""
    rows = tx.rows(_HYPOPG_SQL)
    return rows[0]["schema"] if rows else None


@contextmanager
def hypothetical_index(tx: Transaction, schema: str, statement: str) -> Iterator[str]:
    """Create a hypothetical index for the session (yields its name), and reset hypopg afterwards."""
    qualified = '"' + schema.replace('"', '""') + '"'
    try:
        (row,) = tx.rows(f"SELECT indexname FROM {qualified}.hypopg_create_index(%(sql)s)", {"sql": statement})
        yield str(row["indexname"])
    finally:
        _cleanup(tx, f"SELECT {qualified}.hypopg_reset()")
