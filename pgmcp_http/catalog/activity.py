"""How a relation is used and kept: row estimates, live and dead tuples, scans, vacuum and sizes.

The cumulative statistics system (``pg_stat_all_tables``) counts since the
last statistics reset; ``stats_reset`` in the answer says from when.
"""

from __future__ import annotations

from typing import Any

from pgmcp_http.catalog.relations import human_bytes
from pgmcp_http.db import Transaction

__all__ = ["activity"]

_SQL = """
SELECT c.reltuples::bigint AS row_estimate,
       s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples,
       s.seq_scan AS seq_scans, s.idx_scan AS index_scans,
       s.n_tup_ins AS inserted, s.n_tup_upd AS updated, s.n_tup_del AS deleted,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       s.vacuum_count + s.autovacuum_count AS vacuums, s.analyze_count + s.autoanalyze_count AS analyzes,
       CASE WHEN c.relkind = 'p' THEN  -- a partitioned table stores nothing itself: sum its tree
            (SELECT COALESCE(sum(pg_catalog.pg_total_relation_size(t.relid)), 0)::bigint
             FROM pg_catalog.pg_partition_tree(c.oid) t)
            ELSE pg_catalog.pg_total_relation_size(c.oid) END AS total_bytes,
       pg_catalog.pg_relation_size(c.oid) AS table_bytes,
       pg_catalog.pg_indexes_size(c.oid) AS index_bytes,
       CASE WHEN c.reltoastrelid <> 0 THEN pg_catalog.pg_total_relation_size(c.reltoastrelid) ELSE 0 END
           AS toast_bytes,
       (SELECT d.stats_reset FROM pg_catalog.pg_stat_database d WHERE d.datname = current_database())
           AS stats_reset
FROM pg_catalog.pg_class c
LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
WHERE c.oid = %(oid)s
"""

_SIZES = ("total_bytes", "table_bytes", "index_bytes", "toast_bytes")


def activity(tx: Transaction, oid: int) -> dict[str, Any]:
    """The ``statistics`` section of describe_table for a table, partitioned table or materialized view."""
    (row,) = tx.rows(_SQL, {"oid": oid})
    estimate = row.pop("row_estimate")
    stats: dict[str, Any] = {"row_estimate": None if estimate < 0 else estimate, "analyzed": estimate >= 0}
    stats.update(row)
    for key in _SIZES:
        stats[key.replace("_bytes", "_size")] = human_bytes(row[key])
    return stats
