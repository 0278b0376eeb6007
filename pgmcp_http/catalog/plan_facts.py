"""Catalog facts the plan advice needs, for the relations one plan reads, in one query."""

from __future__ import annotations

from pgmcp_http.db import Transaction
from pgmcp_http.planner import RelationFacts

__all__ = ["memory_settings", "relation_facts"]

_FACTS_SQL = """
SELECT n.nspname || '.' || c.relname AS relation, n.nspname AS schema, c.relname AS name,
       c.reltuples::float8 AS rows,
       (SELECT count(*) FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)::int AS columns,
       (c.reltuples >= 0 OR s.last_analyze IS NOT NULL OR s.last_autoanalyze IS NOT NULL) AS analyzed,
       ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, 1, true) FROM pg_catalog.pg_index i
             WHERE i.indrelid = c.oid AND i.indisvalid) AS leading_keys
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
WHERE n.nspname || '.' || c.relname = ANY(%(relations)s::text[])
"""

_MEMORY_SQL = """
SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('work_mem')) AS work_mem,
       pg_catalog.current_setting('hash_mem_multiplier')::float8 AS hash_mem_multiplier
"""


def relation_facts(tx: Transaction, relations: list[str]) -> dict[str, RelationFacts]:
    """Row estimate, width, statistics state and indexed leading keys of each ``schema.table``."""
    if not relations:
        return {}
    return {
        row["relation"]: RelationFacts(
            relation=row["relation"], schema=row["schema"], name=row["name"], rows=max(row["rows"], 0.0),
            columns=row["columns"], analyzed=row["analyzed"], leading_keys=tuple(row["leading_keys"]))
        for row in tx.rows(_FACTS_SQL, {"relations": relations})
    }


def memory_settings(tx: Transaction) -> tuple[int, int]:
    """``work_mem`` and the memory a hash may use (work_mem * hash_mem_multiplier), in bytes."""
    (row,) = tx.rows(_MEMORY_SQL)
    work_mem = int(row["work_mem"])
    return work_mem, int(work_mem * row["hash_mem_multiplier"])
