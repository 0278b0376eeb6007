"""Functions in the visible schemas, for the ``postgres://function/...`` resources."""

from __future__ import annotations

from typing import Any

from pgmcp_http.catalog.visibility import ACCESSIBLE_FUNCTION_SQL, Visibility
from pgmcp_http.db import Transaction

__all__ = ["describe_function", "list_functions"]

_LIST_SQL = f"""
SELECT n.nspname AS schema, p.proname AS name,
       pg_catalog.pg_get_function_identity_arguments(p.oid) AS arguments,
       pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_catalog.pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND d.objid IS NULL
  AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
  AND (%(allowed)s::text[] IS NULL OR n.nspname = ANY(%(allowed)s::text[]))
  AND {ACCESSIBLE_FUNCTION_SQL}
ORDER BY 1, 2, 3
"""

_DESCRIBE_SQL = f"""
SELECT n.nspname AS schema, p.proname AS name,
       pg_catalog.pg_get_function_identity_arguments(p.oid) AS arguments,
       pg_catalog.pg_get_function_result(p.oid) AS returns,
       l.lanname AS language,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END AS volatility,
       p.prosecdef AS security_definer,
       CASE p.prokind WHEN 'f' THEN 'function' WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                      WHEN 'w' THEN 'window' END AS kind,
       pg_catalog.obj_description(p.oid, 'pg_proc') AS comment,
       CASE WHEN l.lanname IN ('sql', 'plpgsql') THEN p.prosrc END AS source
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE n.nspname = %(schema)s AND p.proname = %(name)s AND {ACCESSIBLE_FUNCTION_SQL}
ORDER BY 3
"""


def list_functions(tx: Transaction, visibility: Visibility, *, schema: str | None = None) -> list[dict[str, Any]]:
    """User functions (not those of extensions) in the visible schemas."""
    rows = tx.rows(_LIST_SQL, visibility.params(schema=schema))
    return [row for row in rows if visibility.function_visible(row["schema"], row["name"])]


def describe_function(tx: Transaction, visibility: Visibility, *, schema: str, name: str) -> list[dict[str, Any]]:
    """Every overload of ``schema.name``: signature, result, language, volatility, source."""
    if not visibility.function_visible(schema, name):
        return []
    return tx.rows(_DESCRIBE_SQL, visibility.params(schema=schema, name=name))
