"""The per-worker pool and transactions against the real PostgreSQL: waits, broken connections, cleanup."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import psycopg
import psycopg2
import psycopg2.extensions
import pytest

from devkit import devdb
from pgmcp_http.db import (
    ConnectionLost,
    ConnectOptions,
    Database,
    DatabaseUnavailable,
    Pool,
    PoolTimeout,
    RowLimits,
    open_connection,
)
from pgmcp_http.sqlguard import Guard, GuardPolicy
from pgmcp_http.tools import Toolbox, ToolContext, builtin_tools
from tests.helpers import wait_until


def make_database(url: str, *, size: int = 2, acquire_timeout_s: float = 0.3, idle_timeout_s: float = 60,
                  timeout_ms: int = 5000) -> Database:
    options = ConnectOptions(dsn=url, libpq_params={}, connect_timeout_s=2, read_only=True,
                             statement_timeout_ms=timeout_ms, idle_in_transaction_timeout_ms=60_000)
    pool = Pool(connect=lambda: open_connection(options), size=size, acquire_timeout_s=acquire_timeout_s,
                idle_timeout_s=idle_timeout_s)
    return Database(pool=pool, read_only=True, timeout_ms=timeout_ms)


def backend_pid(db: Database) -> int:
    with db.transaction() as tx:
        return tx.rows("SELECT pg_backend_pid() AS pid")[0]["pid"]


def terminate(pg, pid: int) -> None:
    with psycopg.connect(pg.superuser_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)


def test_waiting_for_a_connection_is_bounded(pg):
    db = make_database(pg.readonly_url, size=1, acquire_timeout_s=0.3)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with db.pool.connection():
            holding.set()
            release.wait(5)

    worker = threading.Thread(target=hold)
    worker.start()
    holding.wait(5)
    started = time.monotonic()
    with pytest.raises(PoolTimeout, match="server busy: no database connection became free within 0.3 s"):
        with db.pool.connection():
            pass
    waited = time.monotonic() - started
    release.set()
    worker.join()
    assert 0.25 <= waited < 1.5
    assert db.pool.stats().timeouts == 1
    with db.pool.connection():
        pass  # the slot came back
    db.close()


def test_a_broken_connection_is_discarded_and_the_next_call_works(pg):
    db = make_database(pg.readonly_url, size=1)
    first = backend_pid(db)
    terminate(pg, first)  # while idle: dropped at checkout, the caller never sees it
    second = backend_pid(db)
    assert second != first and db.pool.stats().discarded == 1

    def terminate_soon() -> None:
        time.sleep(0.3)
        terminate(pg, second)

    killer = threading.Thread(target=terminate_soon)
    killer.start()
    with pytest.raises(ConnectionLost), db.transaction() as tx:  # while in use: the statement fails cleanly
        tx.rows("SELECT pg_sleep(3)")
    killer.join()
    assert db.pool.stats().discarded == 2
    assert backend_pid(db) not in (first, second)
    db.close()


def test_toolbox_retries_once_on_a_lost_connection(pg):
    db = make_database(pg.readonly_url, size=1)
    policy = GuardPolicy()
    toolbox = Toolbox(builtin_tools(read_only=True), database=lambda: db,
                      context=ToolContext(guard=Guard(policy), policy=policy,
                                          limits=RowLimits(max_rows=10, max_bytes=10_000), read_only=True))
    terminate(pg, backend_pid(db))
    outcome = toolbox.call("query", {"sql": "SELECT 7 AS n"})
    assert outcome.outcome == "ok" and outcome.data["rows"] == [{"n": 7}]
    db.close()


def test_a_connection_returned_mid_transaction_is_rolled_back(pg):
    db = make_database(pg.readonly_url, size=1)
    with db.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("BEGIN; SELECT 1")
    with db.pool.connection() as conn:
        assert conn.info.transaction_status == 0  # idle: nothing leaked to the next borrower
    db.close()


def test_session_settings_do_not_leak_between_calls(pg):
    db = make_database(pg.readonly_url, size=1)
    with db.transaction(timeout_ms=1234) as tx:
        assert tx.rows("SHOW statement_timeout")[0]["statement_timeout"] == "1234ms"
        assert tx.rows("SHOW transaction_read_only")[0]["transaction_read_only"] == "on"
    with db.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SHOW statement_timeout")
        assert cur.fetchone()[0] == "5s"  # back to the connection's default
    db.close()


def test_idle_connections_are_closed(pg):
    db = make_database(pg.readonly_url, size=2, idle_timeout_s=0.2)
    backend_pid(db)
    assert db.pool.stats().idle == 1
    time.sleep(0.3)
    assert db.pool.reap_idle() == 1
    assert db.pool.stats().open == 0
    assert backend_pid(db) > 0
    db.close()


def test_a_pool_starts_while_postgres_is_down_and_says_so(pg):
    db = make_database(f"postgresql://mcp_readonly:x@127.0.0.1:{devdb.free_port()}/sampledb")
    with pytest.raises(DatabaseUnavailable, match="database unavailable: connection to server"):
        with db.transaction() as tx:
            tx.rows("SELECT 1")
    assert db.pool.stats().connect_errors == 1 and db.pool.stats().open == 0
    db.close()


class _HeldCancel(psycopg2.extensions.connection):
    """A real connection whose cancel request waits for the test's go-ahead (one event per request)."""

    releases: ClassVar[list[threading.Event]] = []

    def cancel(self) -> None:
        gate = threading.Event()
        _HeldCancel.releases.append(gate)
        gate.wait(5)
        super().cancel()


def test_a_connection_is_not_returned_while_any_cancel_is_on_its_way(pg):
    """Two threads cancel the statement of the same borrower: the connection goes back to the pool only
    after both requests went out, so neither can reach the connection's next borrower."""
    _HeldCancel.releases = []
    pool = Pool(connect=lambda: psycopg2.connect(pg.readonly_url, connection_factory=_HeldCancel), size=1,
                acquire_timeout_s=5, idle_timeout_s=60)
    holding, finish = threading.Event(), threading.Event()
    holder_id: list[int] = []

    def borrow() -> None:
        with pool.connection():
            holder_id.append(threading.get_ident())
            holding.set()
            finish.wait(5)

    borrower = threading.Thread(target=borrow)
    borrower.start()
    holding.wait(5)
    cancellers = [threading.Thread(target=pool.cancel_held_by, args=(holder_id[0],)) for _ in range(2)]
    for thread in cancellers:
        thread.start()
    wait_until(lambda: len(_HeldCancel.releases) == 2, what="both cancel requests under way")
    _HeldCancel.releases[0].set()  # the first request goes out; the second is still on its way
    finish.set()
    time.sleep(0.3)
    assert borrower.is_alive() and pool.stats().in_use == 1  # the borrower waits to give it back
    _HeldCancel.releases[1].set()
    borrower.join(5)
    for thread in cancellers:
        thread.join(5)
    assert not borrower.is_alive() and pool.stats().in_use == 0
    pool.close()
