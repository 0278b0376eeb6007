"""Listing schemas and relations in one catalog query each."""

from __future__ import annotations

from typing import Any

from pgmcp_http.catalog.visibility import Visibility
from pgmcp_http.db import Transaction

__all__ = ["RELATION_KINDS", "list_relations", "list_schemas"]

RELATION_KINDS = {
    "r": "table",
    "v": "view",
    "m": "materialized view",
    "p": "partitioned table",
    "f": "foreign table",
}

_SCHEMAS_SQL = """
SELECT n.nspname AS name,
       pg_catalog.pg_get_userbyid(n.nspowner) AS owner,
       pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment
FROM pg_catalog.pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND (%(allowed)s::text[] IS NULL OR n.nspname = ANY(%(allowed)s::text[]))
ORDER BY n.nspname
"""

_RELATIONS_SQL = """
SELECT n.nspname AS schema,
       c.relname AS name,
       c.relkind AS relkind,
       pg_catalog.pg_get_userbyid(c.relowner) AS owner,
       CASE WHEN c.relkind IN ('r', 'm', 'p') THEN pg_catalog.pg_total_relation_size(c.oid) END AS total_bytes,
       c.reltuples::bigint AS row_estimate,
       pg_catalog.has_table_privilege(c.oid, 'SELECT') AS can_select,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       (SELECT count(*) FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid)::int AS partitions
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
  AND (%(allowed)s::text[] IS NULL OR n.nspname = ANY(%(allowed)s::text[]))
ORDER BY n.nspname, c.relname
"""


def _human(size: int | None) -> str | None:
    if size is None:
        return None
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return None


def list_schemas(tx: Transaction, visibility: Visibility) -> list[dict[str, Any]]:
    """Schemas a caller may see, with owner and comment."""
    return tx.rows(_SCHEMAS_SQL, {"allowed": visibility.schema_filter()})


def list_relations(tx: Transaction, visibility: Visibility, *, schema: str | None = None) -> list[dict[str, Any]]:
    """Tables, views, materialized views, partitioned and foreign tables a caller may see."""
    found = tx.rows(_RELATIONS_SQL, {"schema": schema, "allowed": visibility.schema_filter()})
    relations: list[dict[str, Any]] = []
    for row in found:
        if not visibility.table_visible(row["schema"], row["name"]):
            continue
        kind = RELATION_KINDS[row.pop("relkind")]
        estimate = row.pop("row_estimate")
        partitions = row.pop("partitions")
        entry: dict[str, Any] = {"schema": row["schema"], "name": row["name"], "kind": kind, "owner": row["owner"]}
        if row["total_bytes"] is not None:
            entry["total_bytes"] = row["total_bytes"]
            entry["total_size"] = _human(row["total_bytes"])
        if kind in ("table", "materialized view", "partitioned table"):
            entry["row_estimate"] = None if estimate < 0 else estimate
            if estimate < 0:
                entry["analyzed"] = False
        if kind == "partitioned table":
            entry["partitions"] = partitions
        entry["can_select"] = row["can_select"]
        entry["comment"] = row["comment"]
        relations.append(entry)
    return relations
