"""``database_health``: what a DBA checks first, with findings an agent can act on.

The catalog module reads the numbers (:mod:`pgmcp_http.catalog.health`); this
module decides what deserves attention. Every finding is one sentence that
names the object, the number and the next step, because the caller is an
agent that will act on the text, not a person scanning a dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pgmcp_http.catalog.health import SECTIONS, ServerFacts, health_sections, server_facts
from pgmcp_http.catalog.relations import human_bytes
from pgmcp_http.db import Transaction
from pgmcp_http.tools.spec import ToolContext, ToolSpec

__all__ = ["DATABASE_HEALTH", "findings_for", "run_database_health"]

DEFAULT_LIMIT = 5
DEFAULT_LONG_RUNNING_SECONDS = 60

CONNECTIONS_WARN = 0.8            # of the slots ordinary roles may use
CACHE_HIT_WARN = 99.0             # percent, once the database has read enough blocks to judge
CACHE_MIN_BLOCKS = 10_000
TABLE_HIT_WARN = 90.0
TABLE_MIN_READS = 1_000
DEAD_MIN_TUPLES = 1_000
DEAD_WARN_PERCENT = 20.0
ANALYZE_MIN_CHANGES = 1_000       # and at least a fifth of the live rows, autovacuum's own default
NEVER_VACUUMED_ROWS = 100_000
UNUSED_INDEX_MIN_BYTES = 1024 * 1024
WRAPAROUND_CRITICAL_PERCENT = 50.0
REPLICATION_LAG_SECONDS = 60.0
SLOT_RETAINED_WARN_BYTES = 1024**3
STATEMENT_SHARE_WARN = 25.0       # percent of all execution time in this database
STATEMENT_MEAN_WARN_SECONDS = 1.0

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sections": {
            "type": "array",
            "items": {"type": "string", "enum": list(SECTIONS)},
            "minItems": 1,
            "uniqueItems": True,
            "description": "Only these parts (default: all).",
        },
        "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": DEFAULT_LIMIT,
                  "description": "Longest length of each list (sessions, tables, indexes, statements)."},
        "long_running_seconds": {"type": "number", "minimum": 0, "default": DEFAULT_LONG_RUNNING_SECONDS,
                                 "description": "A query running (or a transaction idle) longer than this is "
                                                "reported as a finding."},
    },
    "additionalProperties": False,
}

_SECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "findings": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["findings", "notes"],
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "database": {"type": "string"},
        "server_version": {"type": "string"},
        "role": {"type": "string"},
        "in_recovery": {"type": "boolean"},
        "sees_all_sessions": {"type": "boolean"},
        "checked_at": {"type": "string"},
        "findings": {"type": "array", "items": {"type": "string"},
                     "description": "Every section's findings, in section order; empty when nothing needs action."},
        "sections": {"type": "object", "properties": {name: _SECTION_SCHEMA for name in SECTIONS},
                     "additionalProperties": False},
    },
    "required": ["database", "server_version", "findings", "sections"],
}


def _duration(seconds: float) -> str:
    """``185.2`` → ``3 min 5 s``: how long, the way a person says it."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _snippet(query: str | None, chars: int = 80) -> str:
    if not query:
        return "(query text hidden)"
    text = " ".join(query.split())
    return text if len(text) <= chars else text[:chars] + "…"


def _session(row: dict[str, Any]) -> str:
    who = [f"role {row['role']}"] if row.get("role") else []
    if row.get("application_name"):
        who.append(f"application {row['application_name']!r}")
    if row.get("client_addr"):
        who.append(f"from {row['client_addr']}")
    return f"pid {row['pid']}" + (f" ({', '.join(who)})" if who else "")


def _connection_findings(section: dict[str, Any], _threshold: float) -> list[str]:
    found: list[str] = []
    used, most, usable = section["used"], section["max_connections"], section["available_to_regular_roles"]
    if used >= CONNECTIONS_WARN * usable:
        found.append(f"connections at {section['used_percent']:g}% of max_connections ({used} of {most}; "
                     f"{usable} are usable by non-superusers): put a pooler such as PgBouncer in front, or lower "
                     "the applications' pool sizes, before new connections are refused")
    if section["waiting_on_locks"]:
        found.append(f"{section['waiting_on_locks']} session(s) are waiting on locks: see activity.long_running "
                     "and its blocked_by pids")
    return found


def _activity_findings(section: dict[str, Any], threshold: float) -> list[str]:
    found: list[str] = []
    for row in section["long_running"]:
        text = (f"query of {_session(row)} has been running for {_duration(row['duration_seconds'])}: "
                f"{_snippet(row['query'])}")
        if row["blocked_by"]:
            text += f"; it waits for a lock held by pid {', '.join(map(str, row['blocked_by']))}"
        found.append(text + f". Examine it with analyze_query, or cancel it with pg_cancel_backend({row['pid']})")
    extra = section["long_running_count"] - len(section["long_running"])
    if extra > 0:
        found.append(f"{extra} more queries have run longer than {_duration(threshold)}")
    for row in section["idle_in_transaction"]:
        if row["idle_seconds"] > threshold:
            found.append(f"{_session(row)} has been idle in transaction for {_duration(row['idle_seconds'])}: it "
                         "holds its locks and keeps VACUUM from removing dead rows; make the application commit or "
                         "roll back, set idle_in_transaction_session_timeout, or end it with "
                         f"pg_terminate_backend({row['pid']})")
    return found


def _cache_findings(section: dict[str, Any], _threshold: float) -> list[str]:
    found: list[str] = []
    database = section.get("database") or {}
    ratio = database.get("hit_percent")
    enough = database and database["blks_hit"] + database["blks_read"] >= CACHE_MIN_BLOCKS
    if ratio is not None and ratio < CACHE_HIT_WARN and enough:
        found.append(f"cache hit ratio is {ratio:g}% (below {CACHE_HIT_WARN:g}%): the working set may not fit in "
                     f"shared_buffers ({human_bytes(section['shared_buffers_bytes'])}); the tables with the most "
                     "disk reads are listed under cache.tables")
    for row in section["tables"]:
        heap = row["heap_hit_percent"]
        if heap is not None and heap < TABLE_HIT_WARN and row["heap_blks_read"] >= TABLE_MIN_READS:
            found.append(f"table {row['schema']}.{row['name']} reads {100 - heap:.0f}% of its pages from disk "
                         f"({_count(row['heap_blks_read'])} blocks): look for sequential scans on it with "
                         "analyze_query")
    return found


def _vacuum_findings(section: dict[str, Any], _threshold: float) -> list[str]:
    found: list[str] = []
    if not section["autovacuum"]:
        found.append("autovacuum is off: dead rows pile up and transaction ids age towards wraparound; "
                     "set autovacuum = on")
    if not section["track_counts"]:
        found.append("track_counts is off: PostgreSQL collects no table statistics, so autovacuum cannot work and "
                     "the numbers here stay at zero; set track_counts = on")
    for row in section["most_dead_tuples"]:
        if row["n_dead_tup"] >= DEAD_MIN_TUPLES and (row["dead_percent"] or 0) >= DEAD_WARN_PERCENT:
            found.append(f"table {row['sql_name']} has {row['dead_percent']:g}% dead tuples "
                         f"({_count(row['n_dead_tup'])} dead, {_count(row['n_live_tup'])} live); "
                         f"VACUUM (ANALYZE) {row['sql_name']}, and if it keeps coming back lower its "
                         "autovacuum_vacuum_scale_factor")
    seen: set[str] = set()
    for row in section["most_dead_tuples"] + section["oldest_vacuum"]:
        if row["sql_name"] in seen:
            continue
        seen.add(row["sql_name"])
        found.extend(_staleness(row))
    return found


def _staleness(row: dict[str, Any]) -> list[str]:
    """Findings for a table the planner or VACUUM has not looked at for a while."""
    found: list[str] = []
    analyzed = max(filter(None, (row["last_analyze"], row["last_autoanalyze"])), default=None)
    changes = row["n_mod_since_analyze"] or 0
    if changes >= max(ANALYZE_MIN_CHANGES, 0.2 * row["n_live_tup"]):
        when = f"at {analyzed}" if analyzed else "never"
        found.append(f"table {row['sql_name']} has {_count(changes)} rows changed since it was last analyzed "
                     f"({when}): run ANALYZE {row['sql_name']} so the planner's estimates are current")
    vacuumed = row["last_vacuum"] or row["last_autovacuum"]
    if vacuumed is None and row["n_live_tup"] >= NEVER_VACUUMED_ROWS:
        found.append(f"table {row['sql_name']} ({_count(row['n_live_tup'])} rows) has never been vacuumed: "
                     f"VACUUM {row['sql_name']} sets its visibility map (index-only scans) and freezes old rows")
    return found


def _index_findings(section: dict[str, Any], _threshold: float) -> list[str]:
    found: list[str] = []
    since = f"since statistics were reset at {section['stats_reset']}" if section["stats_reset"] \
        else "since statistics began"
    for row in section["unused"]:
        if (row["size_bytes"] or 0) >= UNUSED_INDEX_MIN_BYTES:
            found.append(f"index {row['sql_name']} on {row['schema']}.{row['table']} ({row['size']}) has not been "
                         f"scanned {since}: unless a replica or a rare job uses it, DROP INDEX CONCURRENTLY "
                         f"{row['sql_name']} saves its space and its cost on every write")
    for row in section["invalid"]:
        found.append(f"index {row['sql_name']} on {row['schema']}.{row['table']} is invalid (a CREATE or REINDEX "
                     "CONCURRENTLY failed, or is still running): it costs writes but no query uses it; "
                     f"DROP INDEX CONCURRENTLY {row['sql_name']} and create it again")
    return found


def _wraparound_findings(section: dict[str, Any], _threshold: float) -> list[str]:
    found: list[str] = []
    freeze_max = section["autovacuum_freeze_max_age"]
    multixact_max = section["autovacuum_multixact_freeze_max_age"]
    for row in section["databases"]:
        percent = row["percent_toward_wraparound"]
        if percent >= WRAPAROUND_CRITICAL_PERCENT:
            found.append(f"database {row['name']} has used {percent:g}% of its transaction ids before wraparound "
                         f"(age {_count(row['xid_age'])}): VACUUM (FREEZE) its oldest tables now, and end whatever "
                         "holds back the xmin horizon (long or idle transactions, prepared transactions, stale "
                         "replication slots)")
        elif row["xid_age"] > freeze_max:
            found.append(f"database {row['name']} is past autovacuum_freeze_max_age (age {_count(row['xid_age'])}, "
                         f"{percent:g}% of the wraparound limit): autovacuum should be freezing it; check that "
                         "long transactions or stale replication slots do not block it")
        if row["multixact_age"] > multixact_max:
            found.append(f"database {row['name']} has multixact age {_count(row['multixact_age'])}, past "
                         "autovacuum_multixact_freeze_max_age: VACUUM (FREEZE) its oldest tables")
    for row in section["oldest_tables"]:
        if row["xid_age"] > freeze_max:
            found.append(f"table {row['sql_name']} has transaction id age {_count(row['xid_age'])}, past "
                         f"autovacuum_freeze_max_age: VACUUM (FREEZE) {row['sql_name']}")
    return found


def _replication_findings(section: dict[str, Any], _threshold: float) -> list[str]:
    if section["mode"] == "standby":
        return _standby_findings(section)
    found: list[str] = []
    for row in section["replicas"]:
        name = row["application_name"] or f"pid {row['pid']}"
        if row["state"] is not None and row["state"] != "streaming":
            found.append(f"replica {name} is in state {row['state']}, not streaming")
        lag = row["replay_lag_seconds"]
        if lag is not None and lag > REPLICATION_LAG_SECONDS:
            found.append(f"replica {name} replays {_duration(lag)} behind this primary "
                         f"({human_bytes(int(row['replay_lag_bytes'] or 0))} of WAL)")
    for slot in section["slots"]:
        retained = slot["retained_wal_bytes"] or 0
        if not slot["active"] and retained >= SLOT_RETAINED_WARN_BYTES:
            found.append(f"inactive replication slot {slot['name']} retains {human_bytes(int(retained))} of WAL: "
                         f"if its consumer is gone, SELECT pg_drop_replication_slot('{slot['name']}') before the "
                         "disk fills")
        if slot["wal_status"] == "lost":
            found.append(f"replication slot {slot['name']} has lost WAL its consumer still needs: that replica or "
                         "subscriber must be rebuilt")
    return found


def _standby_findings(section: dict[str, Any]) -> list[str]:
    found: list[str] = []
    if section["replay_paused"]:
        found.append("WAL replay is paused on this standby: resume it with pg_wal_replay_resume()")
    since = section["seconds_since_last_replay"]
    behind = (section["replay_lag_bytes"] or 0) > 0
    if section["receive_lsn"] is None:
        found.append("this standby has no WAL receiver (not streaming from a primary)"
                     + (f"; it last replayed a transaction {_duration(since)} ago" if since is not None else ""))
    elif behind and since is not None and since > REPLICATION_LAG_SECONDS:
        found.append(f"this standby is behind: its last replayed transaction committed {_duration(since)} ago and "
                     f"{human_bytes(int(section['replay_lag_bytes']))} of received WAL waits to be replayed")
    return found


def _statement_findings(section: dict[str, Any], _threshold: float) -> list[str]:
    found: list[str] = []
    for rank, row in enumerate(section["statements"]):
        share, mean = row["percent_of_total_time"] or 0, row["mean_seconds"]
        heavy = rank == 0 and share >= STATEMENT_SHARE_WARN and row["calls"] > 1
        if heavy or mean >= STATEMENT_MEAN_WARN_SECONDS:
            label = f"statement {row['queryid']}" if row["queryid"] else f"a statement of role {row['role']}"
            found.append(f"{label} takes {share:g}% of this database's execution time "
                         f"(mean {_duration(mean)} over {_count(row['calls'])} calls): examine it with "
                         f"analyze_query: {_snippet(row['query'])}")
    return found


_FINDERS: dict[str, Callable[[dict[str, Any], float], list[str]]] = {
    "connections": _connection_findings,
    "activity": _activity_findings,
    "cache": _cache_findings,
    "vacuum": _vacuum_findings,
    "indexes": _index_findings,
    "wraparound": _wraparound_findings,
    "replication": _replication_findings,
    "statements": _statement_findings,
}


def findings_for(name: str, section: dict[str, Any], threshold: float) -> list[str]:
    """The findings of one section (a pure function of its data, testable without a database)."""
    return _FINDERS[name](section, threshold)


def _header(facts: ServerFacts) -> dict[str, Any]:
    return {"database": facts.database, "server_version": facts.version, "role": facts.role,
            "in_recovery": facts.in_recovery, "sees_all_sessions": facts.sees_all_sessions,
            "checked_at": facts.checked_at}


def run_database_health(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    threshold = float(args.get("long_running_seconds", DEFAULT_LONG_RUNNING_SECONDS))
    facts = server_facts(tx)
    sections = health_sections(tx, ctx.visibility(tx), facts,
                               sections=args.get("sections") or SECTIONS,
                               limit=args.get("limit", DEFAULT_LIMIT), threshold_seconds=threshold)
    findings: list[str] = []
    shaped: dict[str, dict[str, Any]] = {}
    for name, section in sections.items():
        shaped[name] = {"findings": findings_for(name, section, threshold), **section}
        findings.extend(shaped[name]["findings"])
    return {**_header(facts), "findings": findings, "sections": shaped}


DATABASE_HEALTH = ToolSpec(
    name="database_health",
    title="Database health check",
    description=(
        "What a DBA checks first, in one call: connection usage against max_connections, long-running queries "
        "and idle-in-transaction sessions, cache hit ratios, tables with the most dead tuples and the oldest "
        "vacuum/analyze, unused and invalid indexes, transaction-id wraparound headroom, replication (lag on a "
        "standby, replicas and slots on a primary) and the top statements from pg_stat_statements when installed. "
        "`findings` lists what needs action in plain words; `notes` say what this role could not see. Durations "
        "are seconds, sizes bytes plus a readable string. Pick parts with `sections`."
    ),
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    run=run_database_health,
)
