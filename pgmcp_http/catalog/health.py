"""What a DBA checks first, read from the statistics views: the data behind ``database_health``.

Two round trips: :func:`server_facts` (version, standby or primary, what the
role may see, whether ``pg_stat_statements`` is usable and with which column
names), then :func:`health_sections` sends one ``SELECT`` with one JSON value
per requested section. JSON keeps numbers as numbers and timestamps as ISO
8601 text, so nothing needs converting on the way out.

Everything here is a catalog or statistics read that a plain role may make on
PostgreSQL 13-17. Sessions of other roles show up in ``pg_stat_activity``
without state, query or wait event unless the role has ``pg_read_all_stats``
(or ``pg_monitor``): they are counted as ``hidden`` and explained in a note,
never an error. Tables and indexes outside ALLOWED_SCHEMAS are filtered in SQL;
BLOCKED_TABLES is filtered in SQL too (so LIMIT counts only visible rows) and
checked again in Python by :class:`Visibility`, the one authority on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pgmcp_http.catalog.relations import human_bytes
from pgmcp_http.catalog.visibility import Visibility, accessible_relation_sql
from pgmcp_http.db import Transaction
from pgmcp_http.db.connect import APPLICATION_NAME

__all__ = ["SECTIONS", "WRAPAROUND_LIMIT", "ServerFacts", "StatementsView", "health_sections", "server_facts"]

SECTIONS = ("connections", "activity", "cache", "vacuum", "indexes", "wraparound", "replication", "statements")
WRAPAROUND_LIMIT = 2**31
"""Transaction ids a database can age before wraparound; PostgreSQL refuses writes a few million short of it."""

QUERY_TEXT_CHARS = 200
# This server's own idle-in-transaction connections younger than this are finished reads waiting for their
# deferred rollback (pgmcp_http.db.deferred_rollback: at most about twice ROLLBACK_DELAY_MS, itself at most
# 1 s), not stuck sessions: the activity section leaves them out. Older ones are listed like any other.
OWN_DEFERRED_GRACE_S = 2.0
HIDDEN_TEXT = "<insufficient privilege>"
READ_ALL_STATS_HINT = "grant pg_read_all_stats (or pg_monitor) to the server's role to see them"


@dataclass(frozen=True)
class StatementsView:
    """Where ``pg_stat_statements`` lives and what its time columns are called in the installed version.

    Extension version 1.8 (PostgreSQL 13) renamed ``total_time``/``mean_time``
    to ``total_exec_time``/``mean_exec_time``; an old extension version can stay
    installed after a server upgrade, so the view's own columns decide.
    """

    relation: str
    total_column: str
    mean_column: str
    has_toplevel: bool


@dataclass(frozen=True)
class ServerFacts:
    """What the sections depend on, read before them."""

    version: str
    version_num: int
    database: str
    role: str
    in_recovery: bool
    sees_all_sessions: bool
    checked_at: str
    statements: StatementsView | None
    statements_note: str | None


_FACTS_SQL = """
SELECT pg_catalog.current_setting('server_version') AS version,
       pg_catalog.current_setting('server_version_num')::int AS version_num,
       pg_catalog.current_database() AS database,
       CURRENT_USER AS role,
       pg_catalog.pg_is_in_recovery() AS in_recovery,
       pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE') AS sees_all_sessions,
       pg_catalog.to_json(pg_catalog.now()) AS checked_at,
       x.extversion AS statements_version,
       pg_catalog.quote_ident(n.nspname) || '.pg_stat_statements' AS statements_relation,
       pg_catalog.has_table_privilege(v.oid, 'SELECT') AS statements_readable,
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped) AS statements_columns,
       pg_catalog.current_setting('pg_stat_statements.max', true) IS NOT NULL AS statements_loaded
FROM (VALUES (1)) AS one (dummy)
LEFT JOIN pg_catalog.pg_extension x ON x.extname = 'pg_stat_statements'
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace
LEFT JOIN pg_catalog.pg_class v ON v.relnamespace = n.oid AND v.relname = 'pg_stat_statements'
"""


def _visible(schema: str, table: str, relid: str) -> str:
    """SQL condition: ``schema.table`` (oid ``relid``) is a user relation the configuration lets callers see,
    and, with a role mapping, one the caller's role may use."""
    return (
        f"{schema} NOT IN ('pg_catalog', 'information_schema') AND {schema} NOT LIKE 'pg\\_toast%%' "
        f"AND {schema} NOT LIKE 'pg\\_temp\\_%%' "
        f"AND (%(allowed)s::text[] IS NULL OR {schema} = ANY(%(allowed)s::text[])) "
        f"AND NOT ({table} = ANY(%(blocked)s::text[]) OR ({schema} || '.' || {table}) = ANY(%(blocked)s::text[])) "
        f"AND {accessible_relation_sql(relid, schema)}"
    )


def _seconds_since(expr: str, digits: int = 1) -> str:
    """SQL: seconds from ``expr`` to now (clock time: our transaction may have begun after it)."""
    return (f"pg_catalog.round(GREATEST(EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - {expr}), 0)::numeric, "
            f"{digits})")


def _percent(part: str, whole: str, digits: int = 2) -> str:
    return f"pg_catalog.round(100.0 * {part} / NULLIF({whole}, 0), {digits})"


# A relation under an ACCESS EXCLUSIVE lock (held or queued: ALTER TABLE, VACUUM FULL, REINDEX, DROP...)
# would make pg_relation_size() wait for it, and a health check must answer most when a migration
# hangs: such relations get a null size instead.
# The combined statement reads pg_locks once, in this CTE, for every fragment.
_LOCKED_CTE = """locked AS (
    SELECT l.relation FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()))"""


def _size(function: str, *oids: str) -> str:
    """SQL: ``function(oids[0])`` in bytes, or null while any of ``oids`` is exclusively locked."""
    locked = " OR ".join(f"{oid} IN (SELECT locked.relation FROM locked)" for oid in oids)
    return f"CASE WHEN {locked} THEN NULL ELSE pg_catalog.{function}({oids[0]}) END"


def _json_list(source: str, order: str) -> str:
    """SQL: the rows of subquery ``source`` as a JSON array in ``order`` (``[]`` when none)."""
    return f"(SELECT COALESCE(pg_catalog.json_agg(r ORDER BY {order}), '[]') FROM ({source}) r)"


# Client sessions: our role's own are fully visible; others' rows have no backend_type (nor state,
# query, wait event) without pg_read_all_stats, but keep their database and user.
_CLIENTS = ("(a.backend_type = 'client backend' "
            "OR (a.backend_type IS NULL AND a.datid IS NOT NULL AND a.usesysid IS NOT NULL))")

_CONNECTIONS = f"""
WITH c AS (
    SELECT COALESCE(a.state, 'hidden') AS state, a.datname, a.wait_event_type
    FROM pg_catalog.pg_stat_activity a WHERE {_CLIENTS}
)
SELECT pg_catalog.json_build_object(
    'max_connections', pg_catalog.current_setting('max_connections')::int,
    'superuser_reserved_connections', pg_catalog.current_setting('superuser_reserved_connections')::int,
    'reserved_connections', COALESCE(pg_catalog.current_setting('reserved_connections', true), '0')::int,
    'used', (SELECT pg_catalog.count(*) FROM c),
    'hidden', (SELECT pg_catalog.count(*) FROM c WHERE c.state = 'hidden'),
    'waiting_on_locks', (SELECT pg_catalog.count(*) FROM c WHERE c.wait_event_type = 'Lock'),
    'by_state', (SELECT COALESCE(pg_catalog.json_object_agg(s.state, s.n ORDER BY s.n DESC, s.state), '{{}}')
                 FROM (SELECT c.state, pg_catalog.count(*) AS n FROM c GROUP BY c.state) s),
    'by_database', (SELECT COALESCE(pg_catalog.json_object_agg(s.datname, s.n ORDER BY s.n DESC, s.datname), '{{}}')
                    FROM (SELECT c.datname, pg_catalog.count(*) AS n FROM c GROUP BY c.datname) s))
"""

_SESSION_COLUMNS = """s.pid, s.role, s.database, s.application_name, s.client_addr, s.state,
       s.wait_event_type, s.wait_event, s.transaction_seconds, s.query, s.query_truncated"""

_ACTIVITY = f"""
WITH s AS (
    SELECT a.pid, a.usename AS role, a.datname AS database, a.application_name,
           pg_catalog.host(a.client_addr) AS client_addr, a.state, a.wait_event_type, a.wait_event,
           {_seconds_since('a.query_start')} AS query_seconds,
           {_seconds_since('a.state_change')} AS state_seconds,
           {_seconds_since('a.xact_start')} AS transaction_seconds,
           pg_catalog.left(a.query, {QUERY_TEXT_CHARS}) AS query,
           pg_catalog.length(a.query) > {QUERY_TEXT_CHARS} AS query_truncated
    FROM pg_catalog.pg_stat_activity a
    WHERE a.backend_type = 'client backend' AND a.pid <> pg_catalog.pg_backend_pid()
), slow AS (
    SELECT * FROM s WHERE s.state = 'active' AND s.query_seconds > %(threshold)s
), idle AS (
    SELECT * FROM s WHERE s.state LIKE 'idle in transaction%%'
      AND (s.application_name ~ '^{APPLICATION_NAME}(/|$)' AND s.state_seconds < {OWN_DEFERRED_GRACE_S}) IS NOT TRUE
)
SELECT pg_catalog.json_build_object(
    'long_running_count', (SELECT pg_catalog.count(*) FROM slow),
    'long_running', {_json_list(
        f"SELECT {_SESSION_COLUMNS}, s.query_seconds AS duration_seconds, "
        "pg_catalog.pg_blocking_pids(s.pid) AS blocked_by "
        "FROM slow s ORDER BY s.query_seconds DESC, s.pid LIMIT %(limit)s",
        "r.duration_seconds DESC, r.pid")},
    'idle_in_transaction_count', (SELECT pg_catalog.count(*) FROM idle),
    'idle_in_transaction', {_json_list(
        f"SELECT {_SESSION_COLUMNS}, s.state_seconds AS idle_seconds "
        "FROM idle s ORDER BY s.state_seconds DESC, s.pid LIMIT %(limit)s",
        "r.idle_seconds DESC, r.pid")})
"""

_CACHE = f"""
SELECT pg_catalog.json_build_object(
    'shared_buffers_bytes', pg_catalog.pg_size_bytes(pg_catalog.current_setting('shared_buffers')),
    'database', (SELECT pg_catalog.json_build_object(
                        'blks_hit', d.blks_hit, 'blks_read', d.blks_read,
                        'hit_percent', {_percent('d.blks_hit', 'd.blks_hit + d.blks_read')},
                        'stats_reset', d.stats_reset)
                 FROM pg_catalog.pg_stat_database d WHERE d.datname = pg_catalog.current_database()),
    'tables', {_json_list(f'''
        SELECT s.schemaname AS schema, s.relname AS name,
               s.heap_blks_read, s.heap_blks_hit,
               {_percent('s.heap_blks_hit', 's.heap_blks_hit + s.heap_blks_read')} AS heap_hit_percent,
               s.idx_blks_read, s.idx_blks_hit,
               {_percent('s.idx_blks_hit', 's.idx_blks_hit + s.idx_blks_read')} AS index_hit_percent
        FROM pg_catalog.pg_statio_user_tables s
        WHERE {_visible('s.schemaname', 's.relname', 's.relid')}
          AND s.heap_blks_hit + s.heap_blks_read + COALESCE(s.idx_blks_hit + s.idx_blks_read, 0) > 0
        ORDER BY s.heap_blks_read + COALESCE(s.idx_blks_read, 0) DESC, s.heap_blks_hit DESC, 1, 2
        LIMIT %(limit)s''',
        "r.heap_blks_read + COALESCE(r.idx_blks_read, 0) DESC, r.heap_blks_hit DESC, r.schema, r.name")})
"""

_TABLE_STATS = f"""
        SELECT t.schema, t.name, t.sql_name, t.n_live_tup, t.n_dead_tup, t.dead_percent, t.n_mod_since_analyze,
               t.last_vacuum, t.last_autovacuum, t.last_analyze, t.last_autoanalyze,
               {_size('pg_table_size', 't.relid', 't.reltoastrelid')} AS size_bytes
        FROM t"""

_VACUUM = f"""
WITH t AS (
    SELECT s.relid, c.reltoastrelid, s.schemaname AS schema, s.relname AS name,
           pg_catalog.format('%%I.%%I', s.schemaname, s.relname) AS sql_name,
           s.n_live_tup, s.n_dead_tup, {_percent('s.n_dead_tup', 's.n_live_tup + s.n_dead_tup', 1)} AS dead_percent,
           s.n_mod_since_analyze, s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
           GREATEST(s.last_vacuum, s.last_autovacuum) AS vacuumed_at,
           GREATEST(s.last_analyze, s.last_autoanalyze) AS analyzed_at
    FROM pg_catalog.pg_stat_user_tables s
    JOIN pg_catalog.pg_class c ON c.oid = s.relid
    WHERE {_visible('s.schemaname', 's.relname', 's.relid')}
)
SELECT pg_catalog.json_build_object(
    'autovacuum', pg_catalog.current_setting('autovacuum')::boolean,
    'track_counts', pg_catalog.current_setting('track_counts')::boolean,
    'most_dead_tuples', {_json_list(
        _TABLE_STATS + " WHERE t.n_dead_tup > 0 ORDER BY t.n_dead_tup DESC, t.schema, t.name LIMIT %(limit)s",
        "r.n_dead_tup DESC, r.schema, r.name")},
    'oldest_vacuum', {_json_list(
        _TABLE_STATS + " WHERE t.n_live_tup + t.n_dead_tup > 0 "
        "ORDER BY t.vacuumed_at NULLS FIRST, t.analyzed_at NULLS FIRST, t.n_live_tup + t.n_dead_tup DESC, "
        "t.schema, t.name LIMIT %(limit)s",
        "r.last_vacuum IS NOT NULL OR r.last_autovacuum IS NOT NULL, "
        "GREATEST(r.last_vacuum, r.last_autovacuum), "
        "r.last_analyze IS NOT NULL OR r.last_autoanalyze IS NOT NULL, "
        "GREATEST(r.last_analyze, r.last_autoanalyze), r.n_live_tup + r.n_dead_tup DESC, r.schema, r.name")})
"""

# Definitions and quoted names only for the rows shown: pg_get_indexdef() on every index of a big
# catalog costs more than the rest of the section.
_INDEX_COLUMNS = ("u.schema, u.\"table\", u.name, pg_catalog.format('%%I.%%I', u.schema, u.name) AS sql_name, "
                  "u.size_bytes, pg_catalog.pg_get_indexdef(u.indexrelid) AS definition")

_INDEXES = f"""
WITH unused AS (
    SELECT s.indexrelid, s.schemaname AS schema, s.relname AS "table", s.indexrelname AS name,
           {_size('pg_relation_size', 's.indexrelid')} AS size_bytes
    FROM pg_catalog.pg_stat_user_indexes s
    JOIN pg_catalog.pg_index i ON i.indexrelid = s.indexrelid
    WHERE s.idx_scan = 0 AND i.indisvalid AND NOT i.indisunique AND NOT i.indisprimary AND NOT i.indisexclusion
      AND {_visible('s.schemaname', 's.relname', 's.relid')}
), invalid AS (
    SELECT n.nspname AS schema, c.relname AS "table", ic.relname AS name,
           pg_catalog.format('%%I.%%I', n.nspname, ic.relname) AS sql_name,
           {_size('pg_relation_size', 'i.indexrelid')} AS size_bytes,
           pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
           i.indisready AS ready
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE NOT i.indisvalid AND {_visible('n.nspname', 'c.relname', 'c.oid')}
)
SELECT pg_catalog.json_build_object(
    'stats_reset', (SELECT d.stats_reset FROM pg_catalog.pg_stat_database d
                    WHERE d.datname = pg_catalog.current_database()),
    'unused_count', (SELECT pg_catalog.count(*) FROM unused),
    'unused', {_json_list(f"SELECT {_INDEX_COLUMNS} FROM unused u "
                          "ORDER BY u.size_bytes DESC NULLS LAST, u.schema, u.name LIMIT %(limit)s",
                          'r.size_bytes DESC NULLS LAST, r.schema, r.name')},
    'invalid_count', (SELECT pg_catalog.count(*) FROM invalid),
    'invalid', {_json_list("SELECT * FROM invalid v ORDER BY 1, 3 LIMIT %(limit)s", "r.schema, r.name")})
"""

_XID_AGE = "GREATEST(pg_catalog.age(c.relfrozenxid), pg_catalog.age(t.relfrozenxid))"

_WRAPAROUND = f"""
SELECT pg_catalog.json_build_object(
    'wraparound_limit', {WRAPAROUND_LIMIT},
    'autovacuum_freeze_max_age', pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint,
    'autovacuum_multixact_freeze_max_age', pg_catalog.current_setting('autovacuum_multixact_freeze_max_age')::bigint,
    'databases', {_json_list(f'''
        SELECT d.datname AS name, pg_catalog.age(d.datfrozenxid) AS xid_age,
               {_percent('pg_catalog.age(d.datfrozenxid)', str(WRAPAROUND_LIMIT))} AS percent_toward_wraparound,
               {_percent('pg_catalog.age(d.datfrozenxid)',
                         "pg_catalog.current_setting('autovacuum_freeze_max_age')::bigint", 1)}
                   AS percent_of_freeze_max_age,
               pg_catalog.mxid_age(d.datminmxid) AS multixact_age,
               d.datallowconn AS allows_connections,
               d.datname = pg_catalog.current_database() AS current
        FROM pg_catalog.pg_database d
        ORDER BY pg_catalog.age(d.datfrozenxid) DESC, 1 LIMIT %(limit)s''', "r.xid_age DESC, r.name")},
    'oldest_tables', {_json_list(f'''
        SELECT n.nspname AS schema, c.relname AS name, pg_catalog.format('%%I.%%I', n.nspname, c.relname) AS sql_name,
               {_XID_AGE} AS xid_age,
               {_size('pg_table_size', 'c.oid', 'c.reltoastrelid')} AS size_bytes
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid
        WHERE c.relkind IN ('r', 'm') AND {_visible('n.nspname', 'c.relname', 'c.oid')}
        ORDER BY {_XID_AGE} DESC, 1, 2 LIMIT %(limit)s''', "r.xid_age DESC, r.schema, r.name")})
"""

# pg_current_wal_lsn() fails during recovery and the pg_last_* functions say nothing on a primary:
# CASE evaluates only the branch that applies (they are volatile, never folded).
_REPLICATION = f"""
SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.json_build_object(
    'mode', 'standby',
    'receive_lsn', pg_catalog.pg_last_wal_receive_lsn()::text,
    'replay_lsn', pg_catalog.pg_last_wal_replay_lsn()::text,
    'replay_lag_bytes', pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(),
                                                   pg_catalog.pg_last_wal_replay_lsn()),
    'last_replayed_transaction_at', pg_catalog.pg_last_xact_replay_timestamp(),
    'seconds_since_last_replay', {_seconds_since('pg_catalog.pg_last_xact_replay_timestamp()')},
    'replay_paused', pg_catalog.pg_is_wal_replay_paused())
ELSE pg_catalog.json_build_object(
    'mode', 'primary',
    'replicas', {_json_list('''
        SELECT r.pid, r.usename AS role, r.application_name, pg_catalog.host(r.client_addr) AS client_addr,
               r.state, r.sync_state, r.sent_lsn::text AS sent_lsn, r.replay_lsn::text AS replay_lsn,
               pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.replay_lsn) AS replay_lag_bytes,
               pg_catalog.round(EXTRACT(EPOCH FROM r.replay_lag)::numeric, 3) AS replay_lag_seconds
        FROM pg_catalog.pg_stat_replication r ORDER BY r.application_name, r.pid LIMIT %(limit)s''',
        "r.application_name, r.pid")},
    'slots', {_json_list('''
        SELECT s.slot_name AS name, s.slot_type AS type, s.database, s.active, s.wal_status,
               pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn) AS retained_wal_bytes
        FROM pg_catalog.pg_replication_slots s
        ORDER BY pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.restart_lsn) DESC NULLS LAST, 1
        LIMIT %(limit)s''', "r.retained_wal_bytes DESC NULLS LAST, r.name")})
END
"""


def _statements_sql(view: StatementsView) -> str:
    """SQL for the top statements of this database; column names come from the installed view."""
    total, mean = f"s.{view.total_column}", f"s.{view.mean_column}"
    toplevel = " AND s.toplevel" if view.has_toplevel else ""
    source = f"""
        SELECT s.queryid::text AS queryid, pg_catalog.pg_get_userbyid(s.userid) AS role, s.calls,
               pg_catalog.round(({total} / 1000)::numeric, 6) AS total_seconds,
               pg_catalog.round(({mean} / 1000)::numeric, 6) AS mean_seconds,
               s.rows,
               pg_catalog.round((100 * {total} / NULLIF(pg_catalog.sum({total}) OVER (), 0))::numeric, 1)
                   AS percent_of_total_time,
               {_percent('s.shared_blks_hit', 's.shared_blks_hit + s.shared_blks_read')} AS hit_percent,
               pg_catalog.left(s.query, {QUERY_TEXT_CHARS}) AS query,
               pg_catalog.length(s.query) > {QUERY_TEXT_CHARS} AS query_truncated
        FROM {view.relation} s
        WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database())
          {toplevel}
        ORDER BY {total} DESC LIMIT %(limit)s"""
    return f"SELECT pg_catalog.json_build_object('statements', {_json_list(source, 'r.total_seconds DESC')})"


_SECTION_SQL = {
    "connections": _CONNECTIONS,
    "activity": _ACTIVITY,
    "cache": _CACHE,
    "vacuum": _VACUUM,
    "indexes": _INDEXES,
    "wraparound": _WRAPAROUND,
    "replication": _REPLICATION,
}

_TIME_COLUMNS = (("total_exec_time", "mean_exec_time"), ("total_time", "mean_time"))


def _statements_view(row: dict[str, Any]) -> tuple[StatementsView | None, str | None]:
    """The usable pg_stat_statements view, or None and the reason in words."""
    if row["statements_version"] is None:
        return None, ("pg_stat_statements is not installed in this database (it needs "
                      "shared_preload_libraries = 'pg_stat_statements' and CREATE EXTENSION pg_stat_statements)")
    if not row["statements_loaded"]:
        return None, ("pg_stat_statements is installed in this database but not loaded: add it to "
                      "shared_preload_libraries and restart PostgreSQL")
    if not row["statements_readable"]:
        return None, f"this role ({row['role']}) may not SELECT {row['statements_relation']}"
    columns = set(row["statements_columns"])
    for total, mean in _TIME_COLUMNS:
        if {total, mean} <= columns:
            view = StatementsView(relation=row["statements_relation"], total_column=total, mean_column=mean,
                                  has_toplevel="toplevel" in columns)
            return view, None
    return None, (f"pg_stat_statements {row['statements_version']} has neither total_exec_time nor total_time; "
                  "this version is not supported")


def server_facts(tx: Transaction) -> ServerFacts:
    """The server, the role's view of it, and how to read pg_stat_statements (one round trip)."""
    (row,) = tx.rows(_FACTS_SQL)
    view, note = _statements_view(row)
    return ServerFacts(version=row["version"], version_num=row["version_num"], database=row["database"],
                       role=row["role"], in_recovery=row["in_recovery"], sees_all_sessions=row["sees_all_sessions"],
                       checked_at=row["checked_at"], statements=view, statements_note=note)


def health_sections(tx: Transaction, visibility: Visibility, facts: ServerFacts, *, sections: Iterable[str],
                    limit: int, threshold_seconds: float) -> dict[str, dict[str, Any]]:
    """The requested sections as plain data, each with ``notes`` on what the role could not see."""
    wanted = [name for name in SECTIONS if name in set(sections)]
    parts = {name: _SECTION_SQL[name] for name in wanted if name in _SECTION_SQL}
    if "statements" in wanted and facts.statements is not None:
        parts["statements"] = _statements_sql(facts.statements)
    raw: dict[str, Any] = {}
    if parts:
        sql = f"WITH {_LOCKED_CTE}\nSELECT " + ",\n".join(f"({text}) AS {name}" for name, text in parts.items())
        params = {"allowed": visibility.schema_filter(), "blocked": visibility.never_shown(),
                  "by_privilege": visibility.by_privilege,
                  "limit": limit, "threshold": threshold_seconds}
        (raw,) = tx.rows(sql, params)
    result: dict[str, dict[str, Any]] = {}
    for name in wanted:
        section: dict[str, Any] = raw.get(name) or {}
        result[name] = _SHAPERS[name](section, visibility, facts)
    return result


def _keep_visible(rows: list[dict[str, Any]], visibility: Visibility, table_key: str = "name") -> list[dict[str, Any]]:
    """Rows about tables (or their indexes) the configuration hides are dropped, whatever SQL returned."""
    return [row for row in rows if visibility.table_visible(row["schema"], row[table_key])]


def _with_sizes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        if "size_bytes" in row:
            row["size"] = None if row["size_bytes"] is None else human_bytes(row["size_bytes"])
    return rows


LOCKED_SIZE_NOTE = ("size is null for relations under an ACCESS EXCLUSIVE lock right now (ALTER TABLE, VACUUM FULL, "
                    "REINDEX...): measuring them would wait for the lock")


def _hidden_sessions_note(hidden: int, facts: ServerFacts) -> list[str]:
    if facts.sees_all_sessions or hidden == 0:
        return []
    return [f"{hidden} session(s) belong to other roles: {facts.role} cannot see their state, duration, query or "
            f"wait event ({READ_ALL_STATS_HINT})"]


def _shape_connections(section: dict[str, Any], _visibility: Visibility, facts: ServerFacts) -> dict[str, Any]:
    section["available_to_regular_roles"] = (section["max_connections"] - section["superuser_reserved_connections"]
                                             - section["reserved_connections"])
    section["used_percent"] = round(100 * section["used"] / section["max_connections"], 1)
    section["notes"] = _hidden_sessions_note(section["hidden"], facts)
    return section


def _shape_activity(section: dict[str, Any], _visibility: Visibility, facts: ServerFacts) -> dict[str, Any]:
    notes = [] if facts.sees_all_sessions else [
        f"only sessions of {facts.role} (and roles it is a member of) are listed: other roles' sessions show no "
        f"state or query ({READ_ALL_STATS_HINT})"]
    section["notes"] = notes
    return section


def _shape_tables(*keys: str) -> Callable[[dict[str, Any], Visibility, ServerFacts], dict[str, Any]]:
    """A shaper that filters (and sizes) the table lists under ``keys``."""
    def shape(section: dict[str, Any], visibility: Visibility, _facts: ServerFacts) -> dict[str, Any]:
        locked = False
        for key in keys:
            table_key = "table" if key in ("unused", "invalid") else "name"
            section[key] = _with_sizes(_keep_visible(section.get(key) or [], visibility, table_key))
            locked = locked or any("size_bytes" in row and row["size_bytes"] is None for row in section[key])
        section["notes"] = [LOCKED_SIZE_NOTE] if locked else []
        return section
    return shape


def _shape_replication(section: dict[str, Any], _visibility: Visibility, facts: ServerFacts) -> dict[str, Any]:
    notes: list[str] = []
    if section.get("mode") == "primary" and section["replicas"] and not facts.sees_all_sessions:
        notes.append(f"replica connections show only their pid to {facts.role} ({READ_ALL_STATS_HINT})")
    section["notes"] = notes
    return section


def _shape_statements(section: dict[str, Any], _visibility: Visibility, facts: ServerFacts) -> dict[str, Any]:
    if facts.statements is None:
        return {"available": False, "statements": [], "notes": [facts.statements_note]}
    hidden = 0
    for row in section["statements"]:
        if row["query"] == HIDDEN_TEXT:
            row["query"], row["query_hidden"] = None, True
            hidden += 1
    notes = [f"{hidden} statement(s) of other roles have no text for {facts.role} ({READ_ALL_STATS_HINT})"] \
        if hidden else []
    return {"available": True, "time_columns": [facts.statements.total_column, facts.statements.mean_column],
            **section, "notes": notes}


_SHAPERS: dict[str, Callable[[dict[str, Any], Visibility, ServerFacts], dict[str, Any]]] = {
    "connections": _shape_connections,
    "activity": _shape_activity,
    "cache": _shape_tables("tables"),
    "vacuum": _shape_tables("most_dead_tuples", "oldest_vacuum"),
    "indexes": _shape_tables("unused", "invalid"),
    "wraparound": _shape_tables("oldest_tables"),
    "replication": _shape_replication,
    "statements": _shape_statements,
}
