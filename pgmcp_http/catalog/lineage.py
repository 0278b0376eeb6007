"""The catalog's links from blocked tables to what reads them, remembered per worker.

A view or materialized view depends, through its rewrite rule, on every
relation its query reads (``pg_depend``); partitions and inheritance children
are linked to their parents in ``pg_inherits``. One recursive query starts
from the relations ``BLOCKED_TABLES`` and ``ALLOWED_SCHEMAS`` keep out and
returns only the links that lead away from them, so its answer stays small
whatever the size of the catalog; :func:`pgmcp_http.sqlguard.lineage.trace`
makes the paths. Nothing is read when neither setting is given.
"""

from __future__ import annotations

import threading
import time

from pgmcp_http.db import Transaction
from pgmcp_http.sqlguard import GuardPolicy
from pgmcp_http.sqlguard.lineage import Lineage, Link, trace

__all__ = ["LineageCache", "read_links"]

_LINKS_SQL = """
WITH RECURSIVE links(reader, source, how, partition) AS MATERIALIZED (
    SELECT DISTINCT r.ev_class, d.refobjid, 'reads', false
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind IN ('v', 'm')
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid <> r.ev_class
    UNION ALL
    SELECT i.inhparent, i.inhrelid, 'holds', c.relispartition
    FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    UNION ALL
    SELECT i.inhrelid, i.inhparent, 'part of', c.relispartition
    FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
),
seeds(oid) AS (
    SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND (c.relname = ANY(%(blocked_names)s::text[])
           OR n.nspname || '.' || c.relname = ANY(%(blocked_qualified)s::text[])
           OR (%(allowed)s::text[] IS NOT NULL AND NOT n.nspname = ANY(%(allowed)s::text[])))
),
reached(oid) AS (
    SELECT oid FROM seeds
    UNION
    SELECT l.reader FROM links l JOIN reached r ON r.oid = l.source
)
SELECT rn.nspname AS reader_schema, rc.relname AS reader_name, sn.nspname AS source_schema,
       sc.relname AS source_name, l.how, l.partition
FROM links l
JOIN reached r ON r.oid = l.source
JOIN pg_catalog.pg_class rc ON rc.oid = l.reader JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
JOIN pg_catalog.pg_class sc ON sc.oid = l.source JOIN pg_catalog.pg_namespace sn ON sn.oid = sc.relnamespace
WHERE NOT EXISTS (SELECT 1 FROM seeds s WHERE s.oid = l.reader)
"""


def read_links(tx: Transaction, policy: GuardPolicy) -> list[Link]:
    """The links that lead away from what ``policy`` keeps out, in one catalog query."""
    names = [entry for entry in policy.blocked_tables if "." not in entry]
    qualified = [entry for entry in policy.blocked_tables if "." in entry]
    rows = tx.rows(_LINKS_SQL, {"blocked_names": names, "blocked_qualified": qualified,
                                "allowed": list(policy.allowed_schemas) or None})
    return [Link(reader=(row["reader_schema"], row["reader_name"]), source=(row["source_schema"], row["source_name"]),
                 how=row["how"], partition=row["partition"]) for row in rows]


class LineageCache:
    """The :class:`Lineage` of this database under one policy, remembered per worker for ``ttl_s`` seconds.

    Read in the transaction of the call that finds it stale, like the SECURITY
    DEFINER list: most calls add no round trip. A view created over a blocked
    table less than ``ttl_s`` ago may therefore be read once before the server
    notices; ``ttl_s=0`` reads the catalog on every call.
    """

    def __init__(self, ttl_s: float = 2.0) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._lineage = Lineage()
        self._read_at = float("-inf")

    def get(self, tx: Transaction, policy: GuardPolicy) -> Lineage:
        if not policy.restricts_relations:
            return self._lineage  # nothing is kept out: nothing reads a kept-out table
        with self._lock:
            if time.monotonic() - self._read_at < self.ttl_s:
                return self._lineage
        lineage = trace(read_links(tx, policy), policy)
        with self._lock:
            self._lineage, self._read_at = lineage, time.monotonic()
        return lineage
