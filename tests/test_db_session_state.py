"""A read leaves nothing on its connection, even when a function it calls changes session settings.

The guard refuses ``set_config`` written in a statement, but not a database
function that calls it (a common row-level-security idiom: ``set_tenant(t)``
doing ``set_config('app.tenant', t, false)``), nor a view that does. Such a
change survives a COMMIT and would reach the next caller of the pooled
connection, or another client of a transaction-mode pooler. Every read is
therefore ended with ROLLBACK, which undoes it. (A one-round-trip read as an
implicit transaction, which PostgreSQL commits, was tried and dropped for
exactly this reason; this test keeps it from coming back.)
"""

from __future__ import annotations

from pgmcp_http.db import ConnectOptions, Database, Pool, RowLimits, open_connection
from tests.helpers import scratch_database

SETUP = """
CREATE FUNCTION set_tenant(t text) RETURNS text LANGUAGE sql AS
  $$ SELECT set_config('app.tenant', t, false) || set_config('search_path', 'evil', false) $$;
CREATE VIEW tenant_view AS SELECT set_tenant('from-a-view') AS t;
GRANT SELECT ON tenant_view TO PUBLIC;
"""
LIMITS = RowLimits(max_rows=1000, max_bytes=1_000_000)


def test_a_session_setting_changed_inside_a_read_does_not_outlive_it(pg):
    with scratch_database(pg, "session_state", SETUP) as url:
        options = ConnectOptions(dsn=url, libpq_params={}, connect_timeout_s=2, read_only=True,
                                 statement_timeout_ms=5000, idle_in_transaction_timeout_ms=60_000)
        pool = Pool(connect=lambda: open_connection(options), size=1, acquire_timeout_s=1, idle_timeout_s=60)
        db = Database(pool=pool, read_only=True, timeout_ms=5000)
        try:
            with db.pool.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT current_setting('search_path')")
                path_before = cur.fetchone()[0]
            for sql in ("SELECT set_tenant('evil') AS t", "SELECT * FROM tenant_view"):
                with db.transaction() as tx:
                    assert tx.fetch(sql, None, LIMITS, server_cursor=True).rows
                with db.pool.connection() as conn, conn.cursor() as cur:  # the same, only connection
                    cur.execute("SELECT current_setting('app.tenant', true), current_setting('search_path')")
                    assert cur.fetchone() in ((None, path_before), ("", path_before)), sql
        finally:
            db.close()
