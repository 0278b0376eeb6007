"""Names that start with what a person has typed: schemas, tables and functions, for completions.

One indexed catalog query per call, whatever the catalog's size: a prefix
``LIKE`` on ``name`` columns, hidden schemas and blocked tables filtered in
SQL (so ``total`` counts only what may be shown), at most ``limit`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgmcp_http.catalog.visibility import (
    ACCESSIBLE_FUNCTION_SQL,
    ACCESSIBLE_RELATION_SQL,
    ACCESSIBLE_SCHEMA_SQL,
    PARENT_SQL,
    Visibility,
)
from pgmcp_http.db import Transaction

__all__ = ["NameMatches", "function_names", "schema_names", "table_names"]


@dataclass(frozen=True)
class NameMatches:
    """The first ``limit`` matching names, in order, and how many match in all."""

    values: list[str]
    total: int


_HIDDEN = f"""n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND (%(allowed)s::text[] IS NULL OR n.nspname = ANY(%(allowed)s::text[])) AND {ACCESSIBLE_SCHEMA_SQL}"""

_SCHEMAS_SQL = f"""
SELECT n.nspname AS name, count(*) OVER () AS total
FROM pg_catalog.pg_namespace n
WHERE {_HIDDEN} AND lower(n.nspname) LIKE %(prefix)s
ORDER BY n.nspname LIMIT %(limit)s
"""

_TABLES_SQL = f"""
SELECT name, count(*) OVER () AS total FROM (
    SELECT DISTINCT c.relname AS name
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND {_HIDDEN}
      AND (NOT c.relispartition OR {PARENT_SQL} = ANY(%(blocked_qualified)s::text[]))  -- folded under a shown parent
      AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
      AND lower(c.relname) LIKE %(prefix)s AND {ACCESSIBLE_RELATION_SQL}
      AND NOT c.relname = ANY(%(blocked_names)s::text[])
      AND NOT (n.nspname || '.' || c.relname) = ANY(%(blocked_qualified)s::text[])
) t
ORDER BY name LIMIT %(limit)s
"""

_FUNCTIONS_SQL = f"""
SELECT name, count(*) OVER () AS total FROM (
    SELECT DISTINCT p.proname AS name
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    LEFT JOIN pg_catalog.pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
    WHERE {_HIDDEN} AND d.objid IS NULL
      AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
      AND lower(p.proname) LIKE %(prefix)s AND {ACCESSIBLE_FUNCTION_SQL}
      AND NOT (n.nspname || '.' || p.proname) = ANY(%(hidden_functions)s::text[])
) f
ORDER BY name LIMIT %(limit)s
"""


def _pattern(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _run(tx: Transaction, sql: str, params: dict[str, object]) -> NameMatches:
    rows = tx.rows(sql, params)
    return NameMatches(values=[row["name"] for row in rows], total=int(rows[0]["total"]) if rows else 0)


def schema_names(tx: Transaction, visibility: Visibility, prefix: str, *, limit: int) -> NameMatches:
    return _run(tx, _SCHEMAS_SQL, visibility.params(prefix=_pattern(prefix), limit=limit))


def table_names(tx: Transaction, visibility: Visibility, prefix: str, *, schema: str | None,
                limit: int) -> NameMatches:
    """Tables and views (partitions folded under their parent), in one schema or every visible one."""
    names, qualified = visibility.blocked_lists()
    return _run(tx, _TABLES_SQL, visibility.params(schema=schema, prefix=_pattern(prefix), blocked_names=names,
                                                    blocked_qualified=qualified, limit=limit))


def function_names(tx: Transaction, visibility: Visibility, prefix: str, *, schema: str | None,
                   limit: int) -> NameMatches:
    """User functions (not an extension's), one entry per name whatever its overloads."""
    hidden = sorted(f"{schema}.{name}" for schema, name in visibility.hidden_functions)
    return _run(tx, _FUNCTIONS_SQL, visibility.params(schema=schema, prefix=_pattern(prefix), limit=limit,
                                                      hidden_functions=hidden))
