"""The layers under the guard: the connected role is checked at start-up, and limits hold at the edges."""

from __future__ import annotations

import time

import psycopg
import pytest

from pgmcp_http.catalog import role_warnings
from tests.helpers import request, start_server
from tests.test_db_pool import make_database
from tests.test_tools_core import ok


def warnings_for(url: str, *, read_only: bool = True) -> list[str]:
    db = make_database(url)
    try:
        with db.transaction() as tx:
            return role_warnings(tx, read_only=read_only)
    finally:
        db.close()


def test_the_sample_read_only_role_carries_no_risk(pg):
    assert warnings_for(pg.readonly_url) == []


def test_a_superuser_is_named_as_the_risk(pg):
    (warning,) = warnings_for(pg.superuser_url())
    assert warning.startswith("the database role postgres is a superuser")
    assert "scripts/create-readonly-role.sql" in warning


@pytest.fixture
def writer(pg):
    """A login role that may write one table, create in a schema and signal backends (dropped afterwards)."""
    statements = [
        "CREATE ROLE pgmcp_writer LOGIN PASSWORD 'writer-pw' CREATEDB",
        "GRANT USAGE, CREATE ON SCHEMA app TO pgmcp_writer",
        "GRANT SELECT, INSERT ON app.settings TO pgmcp_writer",
        "GRANT pg_signal_backend TO pgmcp_writer",
    ]
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)
    try:
        yield pg.cluster.url(user="pgmcp_writer", password="writer-pw", dbname="sampledb")
    finally:
        with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
            conn.execute("DROP OWNED BY pgmcp_writer")
            conn.execute("DROP ROLE pgmcp_writer")


def test_write_privileges_memberships_and_create_are_each_reported(writer):
    found = warnings_for(writer)
    assert len(found) == 4, found
    assert "has CREATEDB" in found[0]
    assert "is a member of pg_signal_backend" in found[1]
    assert "may write to tables (app.settings)" in found[2]
    assert "may CREATE objects in schema(s) app" in found[3]
    # In write mode writing is the point: only the other risks remain.
    assert len(warnings_for(writer, read_only=False)) == 2


def test_the_server_logs_the_warning_once_at_start_up(pg, tmp_path):
    server = start_server(pg.superuser_url(), tmp_path, workers=2, threads=1)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            warned = [line for line in server.log_lines() if "is a superuser" in line.get("message", "")]
            if warned:
                break
            time.sleep(0.1)
        assert len(warned) == 1 and warned[0]["level"] == "WARNING"
        assert pg.superuser_password not in server.log_path.read_text()
    finally:
        server.stop()


def test_a_first_row_larger_than_the_byte_cap_is_explained(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1, env={"MAX_RESULT_BYTES": "1024"})
    try:
        data = ok(server, "query", {"sql": "SELECT repeat('x', 5000) AS big"})
        assert data["rows"] == [] and data["truncated"] is True
        assert data["truncated_reason"].startswith("MAX_RESULT_BYTES=1024 (the first row alone is 5010 bytes")
        assert "left(col, 200)" in data["truncated_reason"]
    finally:
        server.stop()


DEFINER_OBJECTS = """
CREATE FUNCTION public.order_note(o orders) RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text';
CREATE FUNCTION public.definer_eq(a int, b int) RETURNS boolean LANGUAGE sql SECURITY DEFINER AS 'SELECT a = b';
CREATE OPERATOR public.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = public.definer_eq);
CREATE FUNCTION public.definer_step(s int, v int) RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT s + v';
CREATE AGGREGATE public.definer_sum(int) (SFUNC = public.definer_step, STYPE = int, INITCOND = '0');
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO mcp_readonly;
"""


@pytest.mark.parametrize(("sql", "reason"), [
    ("SELECT o.order_note FROM orders o LIMIT 1", "function public.order_note is SECURITY DEFINER"),
    ("SELECT (o).order_note FROM orders o LIMIT 1", "function public.order_note is SECURITY DEFINER"),
    ("SELECT 1 === 1 AS same", "operator public.=== runs a function that is SECURITY DEFINER"),
    ("SELECT definer_sum(id) FROM users", "function public.definer_sum is SECURITY DEFINER"),
], ids=["attribute", "parenthesised-attribute", "operator", "aggregate"])
def test_definer_functions_are_found_behind_every_notation(pg, server, sql, reason):
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        conn.execute(DEFINER_OBJECTS)
        try:
            status, _, body = request("POST", f"{server.base}/mcp/tools/call",
                                      {"name": "query", "arguments": {"sql": sql}},
                                      {"Content-Type": "application/json"})
        finally:
            conn.execute("DROP AGGREGATE public.definer_sum(int); DROP FUNCTION public.definer_step(int, int); "
                         "DROP OPERATOR public.=== (int, int); DROP FUNCTION public.definer_eq(int, int); "
                         "DROP FUNCTION public.order_note(orders)")
    assert status == 200 and body["isError"] is True, body
    assert reason in body["content"][0]["text"]


def test_the_definer_list_is_remembered_for_its_ttl_only(pg):
    from pgmcp_http.catalog.definers import DefinerCache

    db = make_database(pg.readonly_url)
    remembering, asking = DefinerCache(ttl_s=60), DefinerCache(ttl_s=0)
    try:
        with db.transaction() as tx:
            before = remembering.get(tx)
        with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
            conn.execute("CREATE FUNCTION public.fresh_definer() RETURNS int LANGUAGE sql SECURITY DEFINER "
                         "AS 'SELECT 1'")
            try:
                with db.transaction() as tx:
                    assert remembering.get(tx) == before  # within its TTL: one read for many calls
                    assert ("public", "fresh_definer") in asking.get(tx)
            finally:
                conn.execute("DROP FUNCTION public.fresh_definer()")
    finally:
        db.close()
