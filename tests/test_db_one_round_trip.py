"""A read that is the whole transaction goes as one message: same guarantees, one round trip.

Transaction.fetch sends ``SET TRANSACTION ... READ ONLY``, the ``SET LOCAL``
limits, the cursor and its first batch as one implicit transaction. These
tests hold that path to everything the two-round-trip path guarantees: the
transaction is read-only and time-limited and carries the call's tag while
the statement runs, nothing outlives the message on the connection, results
and cuts are the same, errors are the same, and a result longer than the
first batch is fetched whole (then the statement goes the batched way next
time). Real PostgreSQL throughout.
"""

from __future__ import annotations

import pytest

from pgmcp_http.db import (
    ConnectOptions,
    Database,
    Pool,
    QueryFailed,
    QueryTimeout,
    RoleUnavailable,
    RowLimits,
    open_connection,
)
from pgmcp_http.db.cancel import tagged_application_name
from pgmcp_http.db.run import FIRST_BATCH, Transaction
from pgmcp_http.identity import Caller
from tests.helpers import scratch_database

LIMITS = RowLimits(max_rows=1000, max_bytes=10_000_000)
SETTINGS = ("SELECT current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS timeout, "
            "current_setting('application_name') AS app, current_setting('IntervalStyle') AS style")


def make_database(url: str) -> Database:
    options = ConnectOptions(dsn=url, libpq_params={}, connect_timeout_s=2, read_only=True,
                             statement_timeout_ms=5000, idle_in_transaction_timeout_ms=60_000)
    pool = Pool(connect=lambda: open_connection(options), size=1, acquire_timeout_s=1, idle_timeout_s=60)
    return Database(pool=pool, read_only=True, timeout_ms=5000)


@pytest.fixture
def db(pg):
    database = make_database(pg.readonly_url)
    yield database
    database.close()


@pytest.fixture
def round_trips(monkeypatch):
    """Counts what the transactions send (the statements themselves run on the real database)."""
    sent: list[str] = []
    real = Transaction._execute

    def counting(self, cur, sql, params, *, alone=False):
        sent.append("alone" if alone else ("begin" if not self.begun else "more"))
        return real(self, cur, sql, params, alone=alone)

    monkeypatch.setattr(Transaction, "_execute", counting)
    return sent


def session_settings(db: Database) -> dict:
    """The connection's settings outside any transaction of ours (the pool holds one connection)."""
    with db.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT current_setting('statement_timeout'), current_setting('application_name'), "
                    "current_setting('IntervalStyle'), current_setting('transaction_read_only')")
        return dict(zip(("timeout", "app", "style", "ro"), cur.fetchone(), strict=True))


def test_a_small_read_is_one_message_with_every_guarantee_and_leaves_nothing(db, round_trips):
    before = session_settings(db)
    with db.transaction(timeout_ms=1234, tag="ab" * 8) as tx:
        result = tx.fetch(SETTINGS, None, LIMITS, server_cursor=True)
        assert not tx.begun  # PostgreSQL ended it with the message: no ROLLBACK to send
    assert round_trips == ["alone"]
    assert result.rows == [{"ro": "on", "timeout": "1234ms", "app": tagged_application_name("ab" * 8),
                            "style": "iso_8601"}]
    assert session_settings(db) == before
    assert before["timeout"] != "1234ms" and before["style"] != "iso_8601"


def test_writes_are_refused_inside_the_one_message(pg):
    setup = ("CREATE TABLE writes (n int); GRANT INSERT ON writes TO PUBLIC; CREATE FUNCTION write_one() "
             "RETURNS int LANGUAGE sql AS 'INSERT INTO writes VALUES (1) RETURNING n'")
    with scratch_database(pg, "one_message_writes", setup) as url:
        db = make_database(url)
        try:
            with pytest.raises(QueryFailed, match="read-only transaction"), db.transaction() as tx:
                tx.fetch("SELECT write_one()", None, LIMITS, server_cursor=True)
            with db.pool.connection() as conn:
                assert conn.info.transaction_status == 0  # idle: nothing left open
        finally:
            db.close()


def test_the_time_limit_holds_inside_the_one_message(db, pg):
    with pytest.raises(QueryTimeout), db.transaction(timeout_ms=200) as tx:
        tx.fetch("SELECT pg_sleep(3)", None, LIMITS, server_cursor=True)
    with db.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND state = 'active' "
                    "AND pid <> pg_backend_pid()")
        assert cur.fetchone()[0] == 0
        assert conn.info.transaction_status == 0


def test_errors_read_the_same(db):
    with pytest.raises(QueryFailed, match="division by zero"), db.transaction() as tx:
        tx.fetch("SELECT 1 / (SELECT count(*) - count(*) FROM pg_class)", None, LIMITS, server_cursor=True)


def test_a_role_that_cannot_be_taken_runs_nothing(db):
    caller = Caller(subject="alice", role="no_such_role_here")
    with pytest.raises(RoleUnavailable, match="no_such_role_here"), db.transaction(caller=caller) as tx:
        tx.fetch("SELECT 1", None, LIMITS, server_cursor=True)


def test_max_rows_is_cut_in_the_one_message(db, round_trips):
    with db.transaction() as tx:
        result = tx.fetch("SELECT g FROM generate_series(1, 50) g", None, RowLimits(max_rows=10, max_bytes=10**6),
                          server_cursor=True)
    assert round_trips == ["alone"]
    assert [row["g"] for row in result.rows] == list(range(1, 11))
    assert result.truncated and result.truncated_reason == "MAX_ROWS=10"


def test_a_result_longer_than_the_first_batch_is_fetched_whole_then_goes_batched(db, round_trips):
    sql = f"SELECT g FROM generate_series(1, {FIRST_BATCH * 3 + 7}) g"
    for _ in range(2):
        with db.transaction() as tx:
            result = tx.fetch(sql, None, LIMITS, server_cursor=True)
        assert [row["g"] for row in result.rows] == list(range(1, FIRST_BATCH * 3 + 8))
        assert not result.truncated
    # The first call tried one message, then ran it again batched; the second went batched at once.
    assert round_trips[:2] == ["alone", "begin"] and round_trips.count("alone") == 1
    assert round_trips.count("begin") == 2
    assert sql in db.large_results


def test_a_transaction_that_read_the_catalog_first_stays_explicit(db, round_trips):
    with db.transaction() as tx:
        tx.rows("SELECT 1 AS one")
        result = tx.fetch("SELECT 2 AS two", None, LIMITS, server_cursor=True)
    assert result.rows == [{"two": 2}]
    assert round_trips == ["begin", "more"]
