"""Behind PgBouncer in transaction mode every guarantee still holds, because each is made per transaction.

Such a pooler lends a backend for one transaction at a time and refuses (its
default) or drops the libpq ``options`` startup parameter, so the session
defaults the server sends at connect time never arrive. The server must
still refuse writes and writing functions, cut slow statements at
QUERY_TIMEOUT, read capped results through a server-side cursor, and leave
nothing behind on a backend that the next client would inherit. Both of
PgBouncer's behaviours are tried: ``options`` refused, and ``options``
accepted and ignored.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from devkit import devdb
from devkit.pooler import Pooler, start_pgbouncer
from tests.faults import active_statements, raw_call, rest_call
from tests.helpers import PgCluster, ServerProcess, call_tool, start_server, wait_until

pytestmark = pytest.mark.faults

SETTINGS = ("statement_timeout", "transaction_read_only", "default_transaction_read_only", "search_path",
            "application_name", "DateStyle", "IntervalStyle", "bytea_output", "idle_in_transaction_session_timeout",
            "lock_timeout", "row_security", "plan_cache_mode", "work_mem")
POOL_SIZE = 2  # few backends, so the load below makes every one of them serve many different calls


@dataclass
class Behind:
    pg: PgCluster
    pooler: Pooler
    server: ServerProcess

    def through_pooler(self) -> psycopg2.extensions.connection:
        return psycopg2.connect(self.pooler.url(user="mcp_readonly", password="unused", dbname=devdb.SAMPLE_DB))


@pytest.fixture(scope="module")
def scratch(pg: PgCluster) -> Iterator[None]:
    """A table the role may write to, and a function that writes to it: only the read-only transaction
    can stop ``SELECT pgb_sneaky_write()`` (the guard allows calling a user function)."""
    devdb.psql(pg.cluster, dbname=devdb.SAMPLE_DB, sql="""
        CREATE TABLE public.pgb_scratch (id int);
        GRANT INSERT, SELECT ON public.pgb_scratch TO mcp_readonly;
        CREATE FUNCTION public.pgb_sneaky_write() RETURNS int LANGUAGE sql
            AS $$ INSERT INTO public.pgb_scratch VALUES (1) RETURNING id $$;""")
    yield
    devdb.psql(pg.cluster, dbname=devdb.SAMPLE_DB,
               sql="DROP FUNCTION public.pgb_sneaky_write(); DROP TABLE public.pgb_scratch;")


@pytest.fixture(scope="module", params=["options refused", "options ignored"])
def behind(request: pytest.FixtureRequest, pg: PgCluster, scratch: None,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Behind]:
    base = Path(tempfile.mkdtemp(prefix="pgmcp-pgbouncer-"))
    base.chmod(0o755)
    pooler = start_pgbouncer(pg.cluster, base / "bouncer",
                             users={"mcp_readonly": pg.readonly_password, "postgres": pg.superuser_password},
                             pool_size=POOL_SIZE, ignore_options=request.param == "options ignored")
    url = pooler.url(user="mcp_readonly", password=pg.readonly_password, dbname=devdb.SAMPLE_DB)
    server = None
    try:  # the pooler is stopped even when the server fails to start
        server = start_server(url, tmp_path_factory.mktemp("behind"), workers=2, threads=4,
                              env={"QUERY_TIMEOUT": "1000", "MAX_ROWS": "1000", "MAX_CONNECTIONS": "8",
                                   "POOL_CONNECTION_TIMEOUT": "10000"})
        yield Behind(pg, pooler, server)
    finally:
        if server is not None:
            server.stop()
        pooler.stop()
        shutil.rmtree(base, ignore_errors=True)


def _text(result: dict) -> str:
    return result["content"][0]["text"]


def test_writes_and_writing_functions_are_refused(behind):
    refused = call_tool(behind.server, "query", {"sql": "INSERT INTO public.pgb_scratch VALUES (2)"})
    assert refused["isError"] is True and "not allowed in read-only mode" in _text(refused)
    sneaky = call_tool(behind.server, "query", {"sql": "SELECT public.pgb_sneaky_write()"})
    assert sneaky["isError"] is True
    assert "read-only transaction" in _text(sneaky) and "25006" in _text(sneaky)
    with contextlib.closing(psycopg2.connect(behind.pg.superuser_dsn())) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM public.pgb_scratch")
        assert cur.fetchone()[0] == 0


def test_a_slow_query_is_still_cut_at_query_timeout(behind):
    started = time.monotonic()
    result = call_tool(behind.server, "query", {"sql": "SELECT pg_sleep(5)"})
    assert result["isError"] is True
    assert "cancelled after 1 s (QUERY_TIMEOUT=1000)" in _text(result)
    assert time.monotonic() - started < 4


def test_a_capped_select_star_reads_through_the_server_side_cursor(behind):
    result = call_tool(behind.server, "query", {"sql": "SELECT g, md5(g::text) AS h FROM generate_series(1, 200000) g"})
    data = result["structuredContent"]
    assert result["isError"] is False
    assert data["row_count"] == 1000 and data["truncated"] is True and data["truncated_reason"] == "MAX_ROWS=1000"
    assert data["rows"][999] == {"g": 1000, "h": data["rows"][999]["h"]}


def _defaults(conn: psycopg2.extensions.connection) -> dict[str, str]:
    with conn.cursor() as cur:
        values = {}
        for name in SETTINGS:
            cur.execute(f"SHOW {name}")
            values[name] = cur.fetchone()[0]
        return values


def _leftovers(conn: psycopg2.extensions.connection) -> tuple[int, int, int]:
    """Open cursors, prepared statements and advisory locks held by this backend."""
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM pg_cursors), (SELECT count(*) FROM pg_prepared_statements), "
                    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())")
        return cur.fetchone()


def test_concurrent_calls_from_several_workers_leave_no_setting_behind(behind):
    calls = [
        {"sql": "SELECT count(*) FROM orders WHERE status = 'paid'"},
        {"sql": "SELECT pg_sleep(2)"},  # cut by QUERY_TIMEOUT mid-transaction
        {"sql": "SELECT 1/0"},  # an error mid-transaction
        {"sql": "SELECT * FROM generate_series(1, 5000) g"},  # cursor, several fetches
        {"sql": "SELECT public.pgb_sneaky_write()"},  # refused by the read-only transaction
        {"sql": "SHOW search_path"},
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: rest_call(behind.server.port, calls[i % len(calls)]["sql"]), range(48)))
        analyses = list(pool.map(lambda _: call_tool(behind.server, "analyze_query", {
            "sql": "SELECT * FROM orders WHERE user_id = $1"}), range(8)))
    assert all(call.status == 200 for call in results), [(c.status, c.result, c.error) for c in results
                                                         if c.status != 200]
    assert sum(call.ok for call in results) == 24  # the three kinds meant to succeed, and only those
    assert all(result["isError"] is False for result in analyses), [_text(r) for r in analyses if r["isError"]]

    with contextlib.closing(psycopg2.connect(behind.pg.readonly_url)) as fresh:  # direct, no options
        expected = _defaults(fresh)
    # Hold every backend of the pooler at once (one open transaction per client), and look at each.
    clients = [behind.through_pooler() for _ in range(POOL_SIZE)]
    try:
        seen_pids = set()
        for conn in clients:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                seen_pids.add(cur.fetchone()[0])
            found = _defaults(conn)
            found_name = found.pop("application_name")
            assert found == {k: v for k, v in expected.items() if k != "application_name"}
            assert found_name in ("", "pgmcp-http"), found_name  # the pooler's own tracking, never a call's tag
            assert _leftovers(conn) == (0, 0, 0)
        assert len(seen_pids) == POOL_SIZE  # every backend was inspected
    finally:
        for conn in clients:
            conn.rollback()
            conn.close()


def test_the_calls_really_went_through_pgbouncer(behind):
    """PgBouncer's own console counts the transactions it carried to the sample database."""
    admin = psycopg2.connect(host=behind.pooler.host, port=behind.pooler.port, user="postgres", dbname="pgbouncer")
    admin.autocommit = True  # the console takes no transactions
    try:
        with admin.cursor() as cur:
            cur.execute("SHOW STATS")
            names = [col.name for col in cur.description]
            stats = {row[names.index("database")]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}
    finally:
        admin.close()
    assert stats[devdb.SAMPLE_DB]["total_xact_count"] >= 10


def test_a_client_that_hangs_up_is_cancelled_through_pgbouncer(behind, tmp_path):
    """The cancel request of a vanished client travels through PgBouncer to the right backend."""
    url = behind.pooler.url(user="mcp_readonly", password=behind.pg.readonly_password, dbname=devdb.SAMPLE_DB)
    server = start_server(url, tmp_path, workers=1, threads=2, env={"QUERY_TIMEOUT": "60000"})
    try:
        with contextlib.closing(psycopg2.connect(behind.pg.superuser_dsn())) as admin:
            admin.autocommit = True
            client = raw_call(server.port, "SELECT pg_sleep(30) AS abandoned_behind_pgbouncer")
            running = lambda: [s for s in active_statements(admin, "abandoned_behind_pgbouncer")  # noqa: E731
                               if s[1] == "active"]
            wait_until(running, what="the statement running behind PgBouncer")
            client.close()
            wait_until(lambda: not running(), timeout=5, interval=0.05, what="the statement cancelled")
    finally:
        server.stop()
