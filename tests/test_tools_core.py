"""The four tools against the real sample database, through the live server."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from tests.helpers import request, start_server


def call(server: Any, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """tools/call through the federation's REST route (the same toolbox as MCP)."""
    status, _, body = request("POST", f"{server.base}/mcp/tools/call", {"name": name, "arguments": arguments},
                              headers={"Content-Type": "application/json"})
    assert status == 200, body
    return body


def ok(server: Any, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = call(server, name, arguments)
    assert result["isError"] is False, result["content"][0]["text"]
    return result["structuredContent"]


def failure(server: Any, name: str, arguments: dict[str, Any]) -> str:
    result = call(server, name, arguments)
    assert result["isError"] is True, result
    assert "structuredContent" not in result
    return result["content"][0]["text"]


@pytest.fixture(scope="module")
def restricted(pg, tmp_path_factory):
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("restricted"), workers=2, threads=2, env={
        "MAX_ROWS": "5", "MAX_RESULT_BYTES": "2048", "QUERY_TIMEOUT": "500", "ALLOWED_SCHEMAS": "public,app",
        "BLOCKED_TABLES": "app.secrets", "ALLOWED_DEFINER_FUNCTIONS": "public.sneaky_write"})
    yield server
    server.stop()


# -- query --------------------------------------------------------------------

def test_params_bind_beside_percent_signs_and_dollar_texts(server):
    data = ok(server, "query", {
        "sql": "SELECT count(*) AS n, '$1 %' AS literal, $$ $2 $$ AS quoted FROM users "
               "WHERE name LIKE 'User 1%' AND id > $1 /* $2 */ -- $3",
        "params": [12]})
    # User 1, 10..19 match the pattern; of those only 13..19 have id > 12.
    assert data["rows"] == [{"n": 7, "literal": "$1 %", "quoted": " $2 "}]


def test_param_count_mismatch_is_explained_before_the_database(server):
    assert "uses $1..$2 (2 parameters) but 1 params were given" in failure(
        server, "query", {"sql": "SELECT $1::int + $2::int", "params": [1]})
    assert "no $n placeholders" in failure(server, "query", {"sql": "SELECT 1", "params": [1]})


def test_arrays_and_objects_bind_as_json(server):
    data = ok(server, "query", {"sql": "SELECT $1::jsonb ->> 'city' AS city, jsonb_array_length($2::jsonb) AS n",
                                "params": [{"city": "Oslo"}, [1, 2, 3]]})
    assert data["rows"] == [{"city": "Oslo", "n": 3}]


def test_values_survive_json(server):
    data = ok(server, "query", {"sql": """
        SELECT 12345678901234567890.123456789::numeric AS big,
               'NaN'::float8 AS nan, 'Infinity'::float8 AS inf, NULL::float8 AS missing,
               1.5::float8 AS plain,
               timestamptz '2025-01-02 03:04:05.678+00' AS ts,
               timestamp '2025-01-02 03:04:05' AS ts_local,
               date '2025-01-02' AS d,
               interval '1 day 2 hours' AS span,
               '\\x00ff'::bytea AS raw,
               '{"a": [1, null]}'::jsonb AS doc,
               ARRAY[1, 2, NULL] AS ints,
               ARRAY[1.5, 2.25]::numeric[] AS nums,
               '6f1a0b9c-0000-4000-8000-000000000001'::uuid AS id,
               '10.0.0.1/32'::inet AS addr,
               true AS yes,
               9007199254740993::bigint AS large_int
    """})
    assert data["rows"] == [{
        "big": "12345678901234567890.123456789",
        "nan": "NaN", "inf": "Infinity", "missing": None, "plain": 1.5,
        "ts": "2025-01-02T03:04:05.678+00:00",
        "ts_local": "2025-01-02T03:04:05",
        "d": "2025-01-02",
        "span": "P1DT2H",
        "raw": "base64:AP8=",
        "doc": {"a": [1, None]},
        "ints": [1, 2, None],
        "nums": ["1.5", "2.25"],
        "id": "6f1a0b9c-0000-4000-8000-000000000001",
        "addr": "10.0.0.1",
        "yes": True,
        "large_int": 9007199254740993,
    }]
    types = {col["name"]: col["type"] for col in data["columns"]}
    assert types["big"] == "numeric" and types["ts"] == "timestamp with time zone" and types["ints"] == "integer[]"


def test_duplicate_column_names_keep_every_value(server):
    data = ok(server, "query", {"sql": "SELECT u.id, o.id, o.user_id FROM users u JOIN orders o ON o.user_id = u.id "
                                       "ORDER BY o.id LIMIT 1"})
    assert data["columns"][:2] == [{"name": "id", "type": "integer"}, {"name": "id", "type": "integer", "key": "id_2"}]
    assert data["rows"] == [{"id": 2, "id_2": 1, "user_id": 2}]


def test_show_and_values_and_table(server):
    assert ok(server, "query", {"sql": "SHOW transaction_read_only"})["rows"] == [{"transaction_read_only": "on"}]
    assert ok(server, "query", {"sql": "VALUES (1, 'a'), (2, 'b')"})["row_count"] == 2
    assert ok(server, "query", {"sql": "TABLE app.settings"})["row_count"] == 2


def test_every_call_is_a_read_only_transaction_even_for_a_writing_function(pg, server, restricted):
    """A SECURITY DEFINER function owned by the superuser may write. The guard refuses to call one
    unless ALLOWED_DEFINER_FUNCTIONS names it; when it does, the read-only transaction stops the write."""
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        conn.execute("""
            CREATE OR REPLACE FUNCTION public.sneaky_write() RETURNS int LANGUAGE sql SECURITY DEFINER AS
            $$ INSERT INTO user_events (user_id, event_type) VALUES (1, 'sneaky') RETURNING 1 $$""")
        conn.execute("GRANT EXECUTE ON FUNCTION public.sneaky_write() TO mcp_readonly")
        try:
            refused = failure(server, "query", {"sql": "SELECT * FROM users WHERE id = sneaky_write()"})
            assert "function public.sneaky_write is SECURITY DEFINER" in refused
            assert "ALLOWED_DEFINER_FUNCTIONS" in refused
            allowed = failure(restricted, "query", {"sql": "SELECT sneaky_write()"})
            assert "read-only transaction" in allowed and "25006" in allowed
            assert conn.execute("SELECT count(*) FROM user_events WHERE event_type = 'sneaky'").fetchone() == (0,)
        finally:
            conn.execute("DROP FUNCTION public.sneaky_write()")


def test_postgres_errors_come_back_with_sqlstate_and_position(server):
    text = failure(server, "query", {"sql": "SELECT no_such_column FROM users"})
    assert 'column "no_such_column" does not exist' in text
    assert "42703" in text and "near: `no_such_column FROM users`" in text


def test_max_rows_truncates_and_says_so(restricted):
    data = ok(restricted, "query", {"sql": "SELECT g FROM generate_series(1, 100) g"})
    assert data["rows"] == [{"g": n} for n in range(1, 6)]
    assert data["truncated"] is True and data["truncated_reason"] == "MAX_ROWS=5"
    assert "first 5 rows" in data["note"]
    small = ok(restricted, "query", {"sql": "SELECT g FROM generate_series(1, 5) g"})
    assert small["truncated"] is False and small["row_count"] == 5


def test_max_result_bytes_truncates(restricted):
    data = ok(restricted, "query", {"sql": "SELECT repeat('x', 900) AS filler FROM generate_series(1, 4)"})
    assert data["truncated"] is True and data["truncated_reason"] == "MAX_RESULT_BYTES=2048"
    assert 1 <= data["row_count"] < 4


def test_timeout_cancels_on_the_server_and_the_worker_stays_healthy(pg, restricted):
    started = time.monotonic()
    text = failure(restricted, "query", {"sql": "SELECT pg_sleep(5)"})
    assert time.monotonic() - started < 3
    assert "QUERY_TIMEOUT=500" in text
    assert ok(restricted, "query", {"sql": "SELECT 1 AS one"})["rows"] == [{"one": 1}]
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        running = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5)%' "
                               "AND state = 'active' AND pid <> pg_backend_pid()").fetchone()
    assert running == (0,)


def test_allowed_schemas_and_blocked_tables(restricted):
    assert "blocked by BLOCKED_TABLES" in failure(restricted, "query", {"sql": "SELECT * FROM app.secrets"})
    assert "not in ALLOWED_SCHEMAS" in failure(restricted, "query", {"sql": "SELECT * FROM pg_toast.x"})
    names = {(t["schema"], t["name"]) for t in ok(restricted, "list_tables", {})["tables"]}
    assert ("app", "settings") in names and ("app", "secrets") not in names
    hidden = failure(restricted, "describe_table", {"schema_name": "app", "table_name": "secrets"})
    missing = failure(restricted, "describe_table", {"schema_name": "app", "table_name": "nothing_here"})
    assert hidden.startswith("no table or view named app.secrets")
    assert missing.startswith("no table or view named app.nothing_here")
    assert "app.secrets" not in missing


# -- describe_table, list_tables, analyze_query -----------------------------------------

def test_describe_table_in_depth(server):
    data = ok(server, "describe_table", {"table_name": "orders"})
    columns = {col["name"]: col for col in data["columns"]}
    assert columns["status"]["default"] == "'pending'::text" and columns["status"]["nullable"] is False
    assert columns["total_amount"]["type"] == "numeric(12,2)"
    assert [fk["references"]["table"] for fk in data["foreign_keys"]] == ["customers", "users"]
    assert {ref["table"] for ref in data["referenced_by"]} == {"order_items"}
    assert {index["name"] for index in data["indexes"]} >= {"orders_pkey", "orders_user_id_idx"}
    assert any("status" in check["definition"] for check in data["check_constraints"])
    assert data["statistics"]["row_estimate"] == 200


def test_describe_view_has_its_definition(server):
    data = ok(server, "describe_table", {"table_name": "customer_summary"})
    assert data["kind"] == "view" and "LEFT JOIN orders" in data["definition"]


def test_describe_unknown_table_suggests_close_names(server):
    assert "did you mean public.users or" in failure(server, "describe_table", {"table_name": "user"})
    assert "public.users" in failure(server, "describe_table", {"table_name": "Users"})


def test_list_tables_reports_size_rows_and_access(server):
    tables = {(t["schema"], t["name"]): t for t in ok(server, "list_tables", {})["tables"]}
    users = tables[("public", "users")]
    assert users["row_estimate"] == 50 and users["can_select"] is True and users["total_bytes"] > 0
    assert users["comment"] == "People who can sign in"
    only_app = ok(server, "list_tables", {"schema_name": "app"})
    assert {t["schema"] for t in only_app["tables"]} == {"app"}


def test_analyze_query_explains_without_running(server):
    started = time.monotonic()
    data = ok(server, "analyze_query", {"sql": "SELECT pg_sleep(10), * FROM users WHERE id = $1", "params": [1]})
    assert time.monotonic() - started < 2
    assert data["summary"]["scans"][0]["relation"] == "public.users"
    refused = failure(server, "analyze_query", {"sql": "EXPLAIN ANALYZE SELECT 1"})
    assert "use the analyze_query tool with the bare statement" in refused
    assert "DELETE is not allowed" in failure(server, "analyze_query", {"sql": "DELETE FROM users"})


# -- write mode ---------------------------------------------------------------

def test_write_mode_commits_dml_and_still_refuses_ddl(pg, postgresql, tmp_path):
    info = postgresql.info
    url = f"postgresql://{info.user}:{pg.superuser_password}@{info.host}:{info.port}/{info.dbname}"
    server = start_server(url, tmp_path, workers=1, threads=2, env={"READ_ONLY": "false"})
    try:
        data = ok(server, "query", {
            "sql": "INSERT INTO user_events (user_id, event_type, event_data) VALUES ($1, $2, $3) RETURNING id",
            "params": [1, "registration", {"plan": "pro"}]})
        assert data["row_count"] == 1 and data["command"] == "INSERT 0 1"
        stored = postgresql.execute("SELECT event_type, event_data FROM user_events").fetchall()
        assert stored == [("registration", {"plan": "pro"})]
        assert "not allowed" in failure(server, "query", {"sql": "DROP TABLE user_events"})
        assert "not allowed" in failure(server, "query", {"sql": "SELECT set_config('role', 'x', false)"})
        reads = ok(server, "query", {"sql": "SELECT count(*) AS n FROM users"})
        assert reads["rows"] == [{"n": 50}]
        moved = ok(server, "query", {"sql": "WITH gone AS (DELETE FROM user_events WHERE event_type = $1 RETURNING id) "
                                            "SELECT count(*) AS n FROM gone", "params": ["registration"]})
        assert moved["rows"] == [{"n": 1}]
        assert postgresql.execute("SELECT count(*) FROM user_events").fetchone() == (0,)
    finally:
        server.stop()
