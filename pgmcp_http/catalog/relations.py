"""Listing schemas and relations in one catalog query each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgmcp_http.catalog.visibility import ACCESSIBLE_RELATION_SQL, ACCESSIBLE_SCHEMA_SQL, PARENT_SQL, Visibility
from pgmcp_http.db import Transaction

__all__ = ["RELATION_KINDS", "RelationPage", "human_bytes", "list_relations", "list_schemas", "relations_page"]

RELATION_KINDS = {
    "r": "table",
    "v": "view",
    "m": "materialized view",
    "p": "partitioned table",
    "f": "foreign table",
}

_SCHEMAS_SQL = f"""
SELECT n.nspname AS name,
       pg_catalog.pg_get_userbyid(n.nspowner) AS owner,
       pg_catalog.obj_description(n.oid, 'pg_namespace') AS comment
FROM pg_catalog.pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND (%(allowed)s::text[] IS NULL OR n.nspname = ANY(%(allowed)s::text[]))
  AND {ACCESSIBLE_SCHEMA_SQL}
ORDER BY n.nspname
"""

_RELATIONS_SQL = f"""
SELECT n.nspname AS schema,
       c.relname AS name,
       c.relkind AS relkind,
       pg_catalog.pg_get_userbyid(c.relowner) AS owner,
       CASE WHEN c.relkind IN ('r', 'm') THEN pg_catalog.pg_total_relation_size(c.oid)
            WHEN c.relkind = 'p' THEN  -- a partitioned table stores nothing itself: sum its tree
            (SELECT COALESCE(sum(pg_catalog.pg_total_relation_size(t.relid)), 0)::bigint
             FROM pg_catalog.pg_partition_tree(c.oid) t) END AS total_bytes,
       c.reltuples::bigint AS row_estimate,
       pg_catalog.has_table_privilege(c.oid, 'SELECT') AS can_select,
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
       CASE WHEN c.relkind = 'p' THEN
            (SELECT count(*) FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid)::int END AS partitions,
       CASE WHEN c.relispartition THEN
            (SELECT ARRAY[pn.nspname::text, pc.relname::text]
             FROM pg_catalog.pg_inherits i
             JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent
             JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
             WHERE i.inhrelid = c.oid) END AS partition_of
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND (%(include_partitions)s OR NOT c.relispartition OR {PARENT_SQL} = ANY(%(hidden)s::text[]))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
  AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s::text)
  AND (%(allowed)s::text[] IS NULL OR n.nspname = ANY(%(allowed)s::text[]))
  AND (%(pattern)s::text IS NULL OR c.relname ILIKE %(pattern)s::text)
  AND {ACCESSIBLE_RELATION_SQL}
  AND (%(after_schema)s::text IS NULL
       OR (n.nspname, c.relname) > (%(after_schema)s::text::name, %(after_name)s::text::name))
ORDER BY n.nspname, c.relname
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class RelationPage:
    """One page of :func:`relations_page`: the visible entries, and where the next page starts (or None)."""

    relations: list[dict[str, Any]]
    next_after: tuple[str, str] | None


def human_bytes(size: int) -> str:
    """``1536`` → ``1.5 kB``: sizes as psql's \\dt+ would show them (powers of 1024)."""
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def list_schemas(tx: Transaction, visibility: Visibility) -> list[dict[str, Any]]:
    """Schemas a caller may see, with owner and comment."""
    return tx.rows(_SCHEMAS_SQL, visibility.params())


def list_relations(tx: Transaction, visibility: Visibility, *, schema: str | None = None) -> list[dict[str, Any]]:
    """Every table, view, materialized view, partitioned and foreign table a caller may see."""
    return relations_page(tx, visibility, schema=schema).relations


def relations_page(tx: Transaction, visibility: Visibility, *, schema: str | None = None,
                   name_pattern: str | None = None, include_partitions: bool = False,
                   after: tuple[str, str] | None = None, limit: int | None = None) -> RelationPage:
    """Relations in (schema, name) order, in one catalog query whatever the number of tables.

    ``after`` continues from a (schema, name) pair (keyset paging, stable while
    tables come and go); ``limit`` caps the catalog rows read. Blocked tables
    are dropped after the read, so a page may hold fewer than ``limit``.
    Partitions are folded under their parent unless ``include_partitions``.
    """
    found = tx.rows(_RELATIONS_SQL, visibility.params(
        schema=schema, pattern=name_pattern, include_partitions=include_partitions,
        after_schema=after[0] if after else None, after_name=after[1] if after else None,
        limit=None if limit is None else limit + 1, hidden=visibility.never_shown(),
    ))
    more = limit is not None and len(found) > limit
    if more:
        found = found[:limit]
    relations = [_entry(row, visibility) for row in found if visibility.table_visible(row["schema"], row["name"])]
    next_after = (found[-1]["schema"], found[-1]["name"]) if more else None
    return RelationPage(relations=relations, next_after=next_after)


def _entry(row: dict[str, Any], visibility: Visibility) -> dict[str, Any]:
    kind = RELATION_KINDS[row["relkind"]]
    estimate = row["row_estimate"]
    entry: dict[str, Any] = {"schema": row["schema"], "name": row["name"], "kind": kind, "owner": row["owner"]}
    if row["total_bytes"] is not None:
        entry["total_bytes"] = row["total_bytes"]
        entry["total_size"] = human_bytes(row["total_bytes"])
    if kind in ("table", "materialized view", "partitioned table"):
        # reltuples is -1 until the first VACUUM or ANALYZE (PostgreSQL 14+); 0 before 14.
        entry["row_estimate"] = None if estimate < 0 else estimate
        if estimate < 0:
            entry["analyzed"] = False
    if kind == "partitioned table":
        entry["partitions"] = row["partitions"]
    if row["partition_of"] and visibility.table_visible(*row["partition_of"]):  # a hidden parent goes unnamed
        parent_schema, parent = row["partition_of"]
        entry["partition_of"] = {"schema": parent_schema, "name": parent}
    entry["can_select"] = row["can_select"]
    entry["comment"] = row["comment"]
    return entry
