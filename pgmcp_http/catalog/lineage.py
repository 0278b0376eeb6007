"""The catalog's links from blocked tables to what reads them, remembered per worker.

A view or materialized view depends, through its SELECT rule, on every
relation and function its query reads, and a SQL-standard function
(``BEGIN ATOMIC``) on what its body reads (``pg_depend``); partitions and
inheritance children are linked to their parents in ``pg_inherits``. One
recursive query starts from the relations ``BLOCKED_TABLES`` and
``ALLOWED_SCHEMAS`` keep out and returns only the links that lead away from
them (down a blocked table's own partitions, up to its parents, out to what
reads any of those), so it returns about one link per object that ends up
hidden, not the catalog; :func:`pgmcp_http.sqlguard.lineage.trace` makes the
paths. Nothing is read when neither setting is given.
"""

from __future__ import annotations

import threading
import time

from pgmcp_http.catalog.visibility import Visibility
from pgmcp_http.db import Transaction
from pgmcp_http.sqlguard import GuardPolicy
from pgmcp_http.sqlguard.lineage import FUNCTION, RELATION, Lineage, Link, trace

__all__ = ["LineageCache", "read_links"]

_CLASS = "'pg_catalog.pg_class'::pg_catalog.regclass::oid"
_PROC = "'pg_catalog.pg_proc'::pg_catalog.regclass::oid"
_REWRITE = "'pg_catalog.pg_rewrite'::pg_catalog.regclass::oid"

_LINKS_SQL = f"""
WITH RECURSIVE links(reader_class, reader, source_class, source, how, partition) AS MATERIALIZED (
    SELECT DISTINCT {_CLASS}, r.ev_class, d.refclassid, d.refobjid, 'reads', false  -- views: their SELECT rule
    FROM pg_catalog.pg_rewrite r
    JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind IN ('v', 'm')
    JOIN pg_catalog.pg_depend d ON d.classid = {_REWRITE} AND d.objid = r.oid
    WHERE r.ev_type = '1' AND d.refclassid IN ({_CLASS}, {_PROC})
      AND NOT (d.refclassid = {_CLASS} AND d.refobjid = r.ev_class)
    UNION ALL
    SELECT DISTINCT d.classid, d.objid, d.refclassid, d.refobjid, 'reads', false  -- BEGIN ATOMIC bodies
    FROM pg_catalog.pg_depend d
    WHERE d.classid = {_PROC} AND d.deptype = 'n' AND d.refclassid IN ({_CLASS}, {_PROC})
      AND NOT (d.refclassid = {_PROC} AND d.refobjid = d.objid)
    UNION ALL
    SELECT {_CLASS}, i.inhparent, {_CLASS}, i.inhrelid, 'holds', c.relispartition
    FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
    UNION ALL
    SELECT {_CLASS}, i.inhrelid, {_CLASS}, i.inhparent, 'part of', c.relispartition
    FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
),
seeds(oid) AS (
    SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND (c.relname = ANY(%(blocked_names)s::text[])
           OR n.nspname || '.' || c.relname = ANY(%(blocked_qualified)s::text[])
           OR (%(allowed)s::text[] IS NOT NULL AND NOT n.nspname = ANY(%(allowed)s::text[])))
),
secret(oid) AS (  -- relations whose own rows are kept out: the seeds and their partitions and children
    SELECT oid FROM seeds
    UNION
    SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN secret s ON s.oid = i.inhparent
),
reached(class, oid) AS (  -- and everything that reads those: views, functions, parents
    SELECT {_CLASS}, oid FROM secret
    UNION
    SELECT l.reader_class, l.reader FROM links l
    JOIN reached r ON r.class = l.source_class AND r.oid = l.source
    WHERE l.how <> 'part of'
)
SELECT CASE WHEN l.reader_class = {_PROC} THEN '{FUNCTION}' ELSE '{RELATION}' END AS reader_kind,
       rn.nspname AS reader_schema, COALESCE(rc.relname, rp.proname) AS reader_name,
       CASE WHEN l.source_class = {_PROC} THEN '{FUNCTION}' ELSE '{RELATION}' END AS source_kind,
       sn.nspname AS source_schema, COALESCE(sc.relname, sp.proname) AS source_name, l.how, l.partition
FROM links l
LEFT JOIN pg_catalog.pg_class rc ON l.reader_class = {_CLASS} AND rc.oid = l.reader
LEFT JOIN pg_catalog.pg_proc rp ON l.reader_class = {_PROC} AND rp.oid = l.reader
JOIN pg_catalog.pg_namespace rn ON rn.oid = COALESCE(rc.relnamespace, rp.pronamespace)
LEFT JOIN pg_catalog.pg_class sc ON l.source_class = {_CLASS} AND sc.oid = l.source
LEFT JOIN pg_catalog.pg_proc sp ON l.source_class = {_PROC} AND sp.oid = l.source
JOIN pg_catalog.pg_namespace sn ON sn.oid = COALESCE(sc.relnamespace, sp.pronamespace)
WHERE ((l.how = 'part of' AND l.source IN (SELECT oid FROM secret))  -- hashed, not one scan per link
       OR (l.how <> 'part of' AND (l.source_class, l.source) IN (SELECT class, oid FROM reached)))
  AND NOT (l.reader_class = {_CLASS} AND l.reader IN (SELECT oid FROM seeds))
"""


def read_links(tx: Transaction, policy: GuardPolicy) -> list[Link]:
    """The links that lead away from what ``policy`` keeps out, in one catalog query."""
    names, qualified = Visibility.from_policy(policy).blocked_lists()
    rows = tx.rows(_LINKS_SQL, {"blocked_names": names, "blocked_qualified": qualified,
                                "allowed": list(policy.allowed_schemas) or None})
    return [Link(reader=(row["reader_schema"], row["reader_name"]), source=(row["source_schema"], row["source_name"]),
                 how=row["how"], partition=row["partition"], reader_kind=row["reader_kind"],
                 source_kind=row["source_kind"]) for row in rows]


class LineageCache:
    """The :class:`Lineage` of this database under one policy, remembered per worker for ``ttl_s`` seconds.

    Read in the transaction of the call that finds it stale, like the SECURITY
    DEFINER list: most calls add no round trip. A view created over a blocked
    table may therefore be read until ``ttl_s`` after the last read began;
    ``ttl_s=0`` reads the catalog on every call.
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
        started = time.monotonic()  # the catalog as of now: its age counts from here, not from the answer
        lineage = trace(read_links(tx, policy), policy)
        with self._lock:
            if started >= self._read_at:  # a slower read that began earlier never replaces a newer one
                self._lineage, self._read_at = lineage, started
        return lineage
