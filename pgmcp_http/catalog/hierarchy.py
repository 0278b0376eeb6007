"""Partitioning and inheritance of one relation: its key, its partitions, its parents and children.

Parents and children in hidden schemas, in BLOCKED_TABLES, or (with a role
mapping) that the caller's role may not use are counted but not named, so
describing a visible table does not reveal what is hidden.
"""

from __future__ import annotations

from typing import Any

from pgmcp_http.catalog.visibility import Visibility, accessible_relation_sql
from pgmcp_http.db import Transaction

__all__ = ["hierarchy"]

_SQL = f"""
SELECT CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partition_key,
       c.relispartition AS is_partition,
       CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid, true) END AS partition_bound,
       ARRAY(SELECT ARRAY[pn.nspname::text, p.relname::text, {accessible_relation_sql('p.oid', 'pn.oid')}::text]
             FROM pg_catalog.pg_inherits i
             JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
             WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) AS parents,
       ARRAY(SELECT ARRAY[kn.nspname::text, k.relname::text, {accessible_relation_sql('k.oid', 'kn.oid')}::text,
                          COALESCE(pg_catalog.pg_get_expr(k.relpartbound, k.oid, true), '')]
             FROM pg_catalog.pg_inherits i
             JOIN pg_catalog.pg_class k ON k.oid = i.inhrelid
             JOIN pg_catalog.pg_namespace kn ON kn.oid = k.relnamespace
             WHERE i.inhparent = c.oid ORDER BY kn.nspname, k.relname) AS children
FROM pg_catalog.pg_class c
WHERE c.oid = %(oid)s
"""


def hierarchy(tx: Transaction, visibility: Visibility, oid: int) -> dict[str, Any]:
    """``partitioning`` (key or bound, partitions) and ``inheritance`` (parents, children) of a relation."""
    (row,) = tx.rows(_SQL, visibility.params(oid=oid))
    parents = _named(row["parents"], visibility)
    children = _named(row["children"], visibility)
    result: dict[str, Any] = {}
    if row["partition_key"] is not None:
        result["partitioning"] = {
            "key": row["partition_key"],
            "partitions": [{"schema": s, "name": n, "bound": bound} for s, n, bound in children["shown"]],
            "hidden_partitions": children["hidden"],
        }
    elif row["is_partition"]:
        parent = parents["shown"][0] if parents["shown"] else None
        result["partitioning"] = {
            "partition_of": {"schema": parent[0], "name": parent[1]} if parent else None,
            "bound": row["partition_bound"],
        }
    elif parents["shown"] or parents["hidden"] or children["shown"] or children["hidden"]:
        result["inheritance"] = {
            "parents": [{"schema": s, "name": n} for s, n, *_ in parents["shown"]],
            "children": [{"schema": s, "name": n} for s, n, *_ in children["shown"]],
            "hidden": parents["hidden"] + children["hidden"],
        }
    return result


def _named(entries: list[list[str]], visibility: Visibility) -> dict[str, Any]:
    """[schema, name, accessible ('true'/'false'), extra...] entries: those shown (without the flag), and how
    many are hidden (by the configuration, or because the caller's role may not use them)."""
    shown = [[schema, name, *extra] for schema, name, accessible, *extra in entries
             if accessible == "true" and visibility.table_visible(schema, name)]
    return {"shown": shown, "hidden": len(entries) - len(shown)}
