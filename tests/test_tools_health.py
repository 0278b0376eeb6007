"""database_health against real PostgreSQL: what it reports must be what the statistics views say.

The read-only role on the sample database shows what a plain role sees (its own sessions in full,
others' as hidden); fresh databases owned by the superuser hold the dead tuples, unused and
invalid indexes and blocked tables; a primary with pg_stat_statements preloaded and a streaming
standby cover the statements and replication sections.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from jsonschema import Draft202012Validator

from devkit import devdb, replication
from pgmcp_http.catalog.health import SECTIONS
from pgmcp_http.tools.database_health import OUTPUT_SCHEMA
from tests.helpers import ServerProcess, request, start_server
from tests.test_tools_core import failure, ok


def health(server: ServerProcess, **arguments: Any) -> dict[str, Any]:
    data = ok(server, "database_health", arguments)
    assert not list(Draft202012Validator(OUTPUT_SCHEMA).iter_errors(data))
    return data


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{row['schema']}.{row['name']}" for row in rows]


# -- the sample database, as the read-only role -------------------------------------------------

def test_every_section_by_default_and_only_those_asked_for(server):
    data = health(server)
    assert list(data["sections"]) == list(SECTIONS)
    assert (data["database"], data["role"], data["in_recovery"], data["sees_all_sessions"]) == \
        ("sampledb", "mcp_readonly", False, False)
    assert data["findings"] == [text for section in data["sections"].values() for text in section["findings"]]

    truth = ok(server, "query", {"sql": "SELECT current_setting('max_connections')::int AS max, "
                                        "current_setting('server_version') AS version"})["rows"][0]
    connections = data["sections"]["connections"]
    assert connections["max_connections"] == truth["max"] and data["server_version"] == truth["version"]
    assert connections["available_to_regular_roles"] == truth["max"] - connections["superuser_reserved_connections"]
    assert connections["used"] >= 1 and connections["by_state"]["active"] >= 1

    wraparound = data["sections"]["wraparound"]
    current = [row for row in wraparound["databases"] if row["current"]]
    assert [row["name"] for row in current] == ["sampledb"] and 0 < current[0]["xid_age"] < 2**31
    assert data["sections"]["replication"] == {"findings": [], "notes": [], "mode": "primary", "replicas": [],
                                               "slots": []}
    assert data["sections"]["cache"]["database"]["blks_hit"] > 0

    statements = data["sections"]["statements"]
    assert statements["available"] is False and statements["statements"] == []
    assert statements["notes"][0].startswith("pg_stat_statements is not installed in this database")

    only = health(server, sections=["statements", "connections"], limit=1)
    assert list(only["sections"]) == ["connections", "statements"]


def test_arguments_are_checked_and_the_tool_is_read_only(server):
    assert "sections.0" in failure(server, "database_health", {"sections": ["disk"]})
    assert "limit" in failure(server, "database_health", {"limit": 0})
    assert "long_running_seconds" in failure(server, "database_health", {"long_running_seconds": -1})
    status, _, body = request("GET", f"{server.base}/mcp/tools/list")
    assert status == 200
    (tool,) = [tool for tool in body["tools"] if tool["name"] == "database_health"]
    assert tool["annotations"]["readOnlyHint"] is True and tool["outputSchema"] == OUTPUT_SCHEMA


def _run_in_background(url: str, sql: str) -> tuple[psycopg.Connection, threading.Thread]:
    conn = psycopg.connect(url, autocommit=True, application_name="health-test-slow")

    def blocked() -> None:
        with contextlib.suppress(psycopg.errors.QueryCanceled):
            conn.execute(sql)

    thread = threading.Thread(target=blocked, daemon=True)
    thread.start()
    return conn, thread


def test_sessions_long_running_idle_in_transaction_locked_and_hidden(pg, server):
    """A plain role sees its own sessions whole and others' only as `hidden`; a table under an ACCESS
    EXCLUSIVE lock neither blocks the check nor hides its row, only its size."""
    own = psycopg.connect(pg.readonly_url, application_name="health-test-idle")
    admin = psycopg.connect(pg.superuser_url(), application_name="health-test-admin")
    slow = None
    try:
        own.execute("SELECT 1")  # psycopg opens a transaction and leaves it idle
        admin.execute("LOCK TABLE public.products IN ACCESS EXCLUSIVE MODE")
        admin_pid = admin.info.backend_pid
        slow, thread = _run_in_background(pg.readonly_url, "SELECT count(*) FROM public.products")
        time.sleep(1.0)
        started = time.monotonic()
        data = health(server, long_running_seconds=0.5, limit=100)
        assert time.monotonic() - started < 5
        sections = data["sections"]

        (idle,) = [row for row in sections["activity"]["idle_in_transaction"]
                   if row["application_name"] == "health-test-idle"]
        assert (idle["pid"], idle["state"], idle["query"], idle["role"]) == \
            (own.info.backend_pid, "idle in transaction", "SELECT 1", "mcp_readonly")
        assert idle["idle_seconds"] >= 0.9
        who = f"pid {idle['pid']} (role mcp_readonly, application 'health-test-idle', from 127.0.0.1)"
        assert any(text.startswith(f"{who} has been idle in transaction for ")
                   and text.endswith(f"pg_terminate_backend({idle['pid']})") for text in data["findings"])

        (waiting,) = [row for row in sections["activity"]["long_running"]
                      if row["application_name"] == "health-test-slow"]
        assert waiting["pid"] == slow.info.backend_pid and waiting["query"] == "SELECT count(*) FROM public.products"
        assert (waiting["wait_event_type"], waiting["blocked_by"]) == ("Lock", [admin_pid])
        assert waiting["duration_seconds"] >= 0.9
        assert any(f"waits for a lock held by pid {admin_pid}" in text for text in data["findings"])
        assert sections["connections"]["waiting_on_locks"] >= 1

        # The superuser's session is there, without what a plain role may not see.
        seen = ok(server, "query", {"sql": "SELECT state, query FROM pg_stat_activity WHERE pid = $1",
                                    "params": [admin_pid]})["rows"]
        assert seen == [{"state": None, "query": "<insufficient privilege>"}]
        listed = sections["activity"]["long_running"] + sections["activity"]["idle_in_transaction"]
        assert admin_pid not in [row["pid"] for row in listed]
        assert sections["connections"]["hidden"] >= 1 and sections["connections"]["by_state"]["hidden"] >= 1
        assert "pg_read_all_stats" in sections["connections"]["notes"][0]

        (products,) = [row for row in sections["vacuum"]["oldest_vacuum"] if row["name"] == "products"]
        assert products["size_bytes"] is None and products["size"] is None
        assert "ACCESS EXCLUSIVE" in sections["vacuum"]["notes"][0]
    finally:
        if slow is not None:
            slow.cancel()
            thread.join(timeout=5)
            slow.close()
        admin.close()
        own.close()


# -- a fresh database, as the superuser, with hidden tables --------------------------------------

CHURN = """
CREATE TABLE {name} (id int PRIMARY KEY, v int, pad text) WITH (autovacuum_enabled = false);
INSERT INTO {name} SELECT i, i, 'same' FROM generate_series(1, {rows}) i;
CREATE INDEX {index} ON {name} (v);
UPDATE {name} SET v = v + 1;
UPDATE {name} SET v = v + 1;
"""


def _churn(conn: psycopg.Connection, name: str, rows: int) -> None:
    """A table with two dead versions of every row, an unused index and a failed (invalid) one."""
    table = name.rpartition(".")[2]
    for statement in CHURN.format(name=name, rows=rows, index=f"{table}_v_idx").strip().split(";\n"):
        conn.execute(statement)
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {table}_pad_key ON {name} (pad)")


def _flush_statistics(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")  # the flush happens before this statement is read


def test_dead_tuples_unused_and_invalid_indexes_never_hidden_tables(pg, postgresql, tmp_path):
    info = postgresql.info
    url = f"postgresql://{info.user}:{pg.superuser_password}@{info.host}:{info.port}/{info.dbname}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA private")
        admin.execute("CREATE EXTENSION pg_stat_statements")  # installed, but this cluster does not preload it
        _churn(admin, "public.churn", 40_000)
        _churn(admin, "public.hidden_churn", 5_000)
        _churn(admin, "private.churn", 5_000)
        _flush_statistics(admin)
        truth = {f"{row[0]}.{row[1]}": row[2:] for row in admin.execute(
            "SELECT s.schemaname, s.relname, s.n_live_tup, s.n_dead_tup, pg_relation_size(s.relid) "
            "FROM pg_stat_user_tables s WHERE s.n_dead_tup > 0").fetchall()}
        index_bytes = admin.execute("SELECT pg_relation_size('public.churn_v_idx')").fetchone()[0]
    # Without the configuration every churn table would be reported.
    assert set(truth) == {"public.churn", "public.hidden_churn", "private.churn"}

    server = start_server(url, tmp_path, workers=1, threads=2,
                          env={"BLOCKED_TABLES": "hidden_churn", "ALLOWED_SCHEMAS": "public,app"})
    try:
        data = health(server, limit=50)
    finally:
        server.stop()
    sections = data["sections"]
    text = json.dumps(data)
    assert "hidden_churn" not in text and "private.churn" not in text and '"private"' not in text

    (dead, *_) = sections["vacuum"]["most_dead_tuples"]
    assert names([dead]) == ["public.churn"]
    assert (dead["n_live_tup"], dead["n_dead_tup"]) == truth["public.churn"][:2]
    assert dead["dead_percent"] == round(100 * dead["n_dead_tup"] / (dead["n_live_tup"] + dead["n_dead_tup"]), 1)
    assert dead["last_vacuum"] is None and dead["last_autovacuum"] is None and dead["n_mod_since_analyze"] > 0
    assert any(f.startswith(f"table public.churn has {dead['dead_percent']:g}% dead tuples") and
               "VACUUM (ANALYZE) public.churn" in f for f in data["findings"])
    assert any(f.startswith("table public.churn has ") and "run ANALYZE public.churn" in f
               for f in data["findings"])

    indexes = sections["indexes"]
    unused = {row["name"]: row for row in indexes["unused"]}
    assert "churn_v_idx" in unused and not {"churn_pkey", "churn_pad_key"} & set(unused)
    assert unused["churn_v_idx"]["size_bytes"] == index_bytes >= 1024 * 1024
    assert unused["churn_v_idx"]["definition"] == "CREATE INDEX churn_v_idx ON public.churn USING btree (v)"
    assert [(row["schema"], row["name"]) for row in indexes["invalid"]] == [("public", "churn_pad_key")]
    assert any("DROP INDEX CONCURRENTLY public.churn_v_idx" in f for f in data["findings"])
    assert any(f.startswith("index public.churn_pad_key on public.churn is invalid") for f in data["findings"])

    assert "public.churn" in names(sections["wraparound"]["oldest_tables"])
    assert sections["statements"]["notes"] == [
        "pg_stat_statements is installed in this database but not loaded: add it to shared_preload_libraries "
        "and restart PostgreSQL"]


# -- a primary with pg_stat_statements preloaded, and its streaming standby ------------------------

PRELOAD = "shared_preload_libraries=pg_stat_statements"


@pytest.fixture(scope="module")
def replicated() -> Iterator[tuple[devdb.Cluster, devdb.Cluster, str]]:
    """A primary that preloads pg_stat_statements, a streaming standby of it, and a plain role's password."""
    def roles(primary: devdb.Cluster) -> str:
        password = "hp-" + secrets.token_urlsafe(12)
        devdb.psql(primary, sql=f"ALTER ROLE postgres PASSWORD '{password}'; "
                                f"CREATE ROLE health_reader LOGIN PASSWORD '{password}'")
        return password

    with replication.replicated("pgmcp-health-", roles, options=f"-c fsync=off -c {PRELOAD}") as pair:
        yield pair


def _top_statement(server: ServerProcess, fragment: str) -> tuple[list[str], dict[str, Any]]:
    section = health(server, sections=["statements"], limit=20)["sections"]["statements"]
    assert section["available"] is True, section
    (row,) = [row for row in section["statements"] if fragment in (row["query"] or "")]
    return section["time_columns"], row


def _streaming(server: ServerProcess) -> dict[str, Any]:
    """The primary's replication section once its standby streams (it connects a moment after starting)."""
    deadline = time.monotonic() + 15
    while True:
        section = health(server, sections=["replication"])["sections"]["replication"]
        if [row["state"] for row in section["replicas"]] == ["streaming"] or time.monotonic() > deadline:
            return section
        time.sleep(0.2)


def test_statements_with_old_and_new_column_names_and_replication_both_ways(replicated, tmp_path):
    primary, standby, password = replicated
    url = primary.url(user="postgres", password=password, dbname="postgres")
    with psycopg.connect(url, autocommit=True) as admin:
        # Version 1.7 still has total_time/mean_time; 1.8 (PostgreSQL 13) renamed them *_exec_time.
        admin.execute("CREATE EXTENSION pg_stat_statements VERSION '1.7'")
        for _ in range(3):
            admin.execute("SELECT count(*) FROM generate_series(1, 100000) AS health_probe")
        server = start_server(url, tmp_path, workers=1, threads=2)
        try:
            columns, row = _top_statement(server, "health_probe")
            assert columns == ["total_time", "mean_time"] and row["calls"] == 3
            truth = admin.execute("SELECT queryid::text, total_time / 1000 FROM pg_stat_statements "
                                  "WHERE query LIKE '%health_probe%' AND query NOT LIKE '%pg_stat%'").fetchone()
            assert (row["queryid"], row["total_seconds"]) == (truth[0], pytest.approx(truth[1], abs=1e-6))
            assert row["mean_seconds"] == pytest.approx(row["total_seconds"] / 3, abs=1e-5)

            admin.execute("ALTER EXTENSION pg_stat_statements UPDATE")
            columns, row = _top_statement(server, "health_probe")
            assert columns == ["total_exec_time", "mean_exec_time"] and row["calls"] == 3

            section = _streaming(server)
            assert section["mode"] == "primary" and section["findings"] == []
            (replica,) = section["replicas"]
            assert replica["replay_lag_bytes"] >= 0 and replica["sync_state"] == "async"
        finally:
            server.stop()

    devdb.psql(standby, sql="SELECT 'a superuser statement on the standby'")
    reader = start_server(standby.url(user="health_reader", password=password, dbname="postgres"),
                          tmp_path, workers=1, threads=2)
    try:
        # A limit above the number of statements: the superuser's quick one must be listed (hidden) however the
        # reader's own statements rank by time on a busy machine.
        data = health(reader, sections=["replication", "connections", "statements"], limit=50)
    finally:
        reader.stop()
    assert data["in_recovery"] is True and data["role"] == "health_reader"
    section = data["sections"]["replication"]
    assert section["mode"] == "standby" and section["replay_paused"] is False
    assert section["receive_lsn"] is not None and section["replay_lag_bytes"] >= 0
    assert section["findings"] == [], replication
    statements = data["sections"]["statements"]
    assert statements["available"] is True and statements["time_columns"] == ["total_exec_time", "mean_exec_time"]
    assert any(row.get("query_hidden") for row in statements["statements"])
    assert "have no text for health_reader" in statements["notes"][0]
