"""A finished read is rolled back in the next call's first round trip, or by the pool soon after.

ROLLBACK_DELAY_MS leaves a read that ended cleanly open on its pooled
connection, owing its ROLLBACK to the next transaction there (one round trip
fewer per call). These tests prove, on real PostgreSQL and through PgBouncer in
transaction mode, what must hold for that to be safe: the next caller sees
nothing of the previous one (role, subject, settings, cursor), a quiet
connection gives back its snapshot and locks within about the delay, and
anything that is not a clean read (an error, a write, a delay of 0) is ended
at once as before.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from devkit import devdb
from devkit.pooler import start_pgbouncer
from pgmcp_http.catalog.health import OWN_DEFERRED_GRACE_S, health_sections, server_facts
from pgmcp_http.catalog.visibility import Visibility
from pgmcp_http.db import ConnectOptions, Database, Pool, RowLimits, open_connection
from pgmcp_http.db.cancel import Canceller
from pgmcp_http.db.errors import PoolClosed, QueryFailed
from pgmcp_http.identity import Caller
from tests.helpers import scratch_database

LIMITS = RowLimits(max_rows=1000, max_bytes=1_000_000)
SETUP = """
CREATE TABLE ledger (id int PRIMARY KEY, note text);
INSERT INTO ledger VALUES (1, 'one');
GRANT SELECT ON ledger TO mcp_readonly;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'deferred_analyst') THEN
    CREATE ROLE deferred_analyst NOLOGIN;
  END IF;
END $$;
GRANT deferred_analyst TO mcp_readonly;
GRANT SELECT ON ledger TO deferred_analyst;
"""
WHO = ("SELECT current_user::text AS who, current_setting('pgmcp.subject', true) AS subject, "
       "current_setting('statement_timeout') AS timeout, pg_backend_pid() AS pid, "
       "(SELECT count(*) FROM pg_cursors)::int AS cursors")


@pytest.fixture(scope="module")
def ledger(pg) -> Iterator[str]:
    with scratch_database(pg, "deferred_rollback", SETUP) as url:
        yield url


def _database(url: str, *, delay_s: float, size: int = 1, read_only: bool = True) -> Database:
    options = ConnectOptions(dsn=url, libpq_params={}, connect_timeout_s=2, read_only=read_only,
                             statement_timeout_ms=5000, idle_in_transaction_timeout_ms=60_000)
    pool = Pool(connect=lambda: open_connection(options), size=size, acquire_timeout_s=5, idle_timeout_s=60,
                rollback_delay_s=delay_s)
    return Database(pool=pool, read_only=read_only, timeout_ms=5000)


@contextlib.contextmanager
def _opened(url: str, **kwargs: float) -> Iterator[Database]:
    db = _database(url, **kwargs)
    try:
        yield db
    finally:
        db.close()


def _read(db: Database, sql: str = WHO, *, caller: Caller | None = None, timeout_ms: int | None = None) -> dict:
    with db.transaction(caller=caller, timeout_ms=timeout_ms) as tx:
        return tx.fetch(sql, None, LIMITS, server_cursor=True).rows[0]


def _backend(pg, pid: int) -> dict:
    """What pg_stat_activity says of backend ``pid`` (state, the last query string it was sent)."""
    with contextlib.closing(psycopg2.connect(pg.superuser_dsn())) as conn, conn.cursor() as cur:
        cur.execute("SELECT state, query, backend_xmin IS NOT NULL, "
                    "(SELECT count(*) FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation')::int "
                    "FROM pg_stat_activity a WHERE pid = %s", (pid,))
        state, query, holds_xmin, locks = cur.fetchone()
        return {"state": state, "query": query, "holds_xmin": holds_xmin, "locks": locks}


def _wait_for_state(pg, pid: int, state: str, timeout_s: float = 10) -> float:
    started = time.monotonic()
    while _backend(pg, pid)["state"] != state:
        assert time.monotonic() - started < timeout_s, f"backend {pid} still {_backend(pg, pid)}"
        time.sleep(0.005)
    return time.monotonic() - started


def test_a_clean_read_stays_open_and_the_next_one_ends_it_in_its_own_round_trip(pg, ledger):
    with _opened(ledger, delay_s=30) as db:  # no reaper within the test: only the next call can end it
        first = _read(db, "SELECT pg_backend_pid() AS pid, now() AS began FROM ledger")
        after_first = _backend(pg, first["pid"])
        assert after_first["state"] == "idle in transaction"
        assert after_first["locks"] >= 1  # ledger's AccessShareLock, until the rollback

        second = _read(db, "SELECT pg_backend_pid() AS pid, now() AS began")
        assert second["pid"] == first["pid"] and second["began"] > first["began"]  # a new transaction
        sent = _backend(pg, second["pid"])["query"]
        assert sent.startswith("ROLLBACK; BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"), sent
        assert _backend(pg, second["pid"])["locks"] == 0  # ledger's lock went with the first read


def test_the_next_caller_sees_nothing_of_the_previous_one(pg, ledger):
    analyst = Caller(subject="alice@example.com", role="deferred_analyst")
    with _opened(ledger, delay_s=30) as db:
        as_alice = _read(db, caller=analyst, timeout_ms=1234)
        assert (as_alice["who"], as_alice["subject"], as_alice["timeout"]) == (
            "deferred_analyst", "alice@example.com", "1234ms")
        anonymous = _read(db)
        assert anonymous["pid"] == as_alice["pid"]  # the same backend, whose previous read was still open
        assert (anonymous["who"], anonymous["subject"] or "", anonymous["timeout"]) == ("mcp_readonly", "", "5s")
        assert anonymous["cursors"] == 1  # its own cursor only: the previous read's went with its rollback


def test_a_quiet_connection_gives_back_its_snapshot_and_locks_within_the_delay(pg, ledger):
    with _opened(ledger, delay_s=0.05) as db:
        pid = _read(db, "SELECT pg_backend_pid() AS pid FROM ledger")["pid"]
        waited = _wait_for_state(pg, pid, "idle")
        assert waited < 5  # about 2 x 50 ms on a quiet machine; generous for a loaded one
        assert _backend(pg, pid)["locks"] == 0 and _backend(pg, pid)["holds_xmin"] is False
        with contextlib.closing(psycopg2.connect(pg.superuser_dsn("deferred_rollback"))) as admin:
            admin.autocommit = True
            with admin.cursor() as cur:  # DDL needing ACCESS EXCLUSIVE is not held up by the finished read
                cur.execute("SET lock_timeout = '1s'; ALTER TABLE ledger ADD COLUMN IF NOT EXISTS extra int; "
                            "ALTER TABLE ledger DROP COLUMN extra")
        assert db.pool.stats().open == 1 and db.pool.stats().discarded == 0  # rolled back, kept


def test_with_a_delay_of_zero_every_read_is_rolled_back_at_once(pg, ledger):
    with _opened(ledger, delay_s=0) as db:
        pid = _read(db, "SELECT pg_backend_pid() AS pid FROM ledger")["pid"]
        backend = _backend(pg, pid)
        assert backend["state"] == "idle" and backend["query"] == "ROLLBACK"


def test_a_failed_read_and_a_write_are_ended_at_once(pg, ledger):
    with _opened(ledger, delay_s=30) as db:
        pid = _read(db, "SELECT pg_backend_pid() AS pid")["pid"]
        with pytest.raises(Exception, match="division by zero"), db.transaction() as tx:
            tx.rows("SELECT 1/0")
        assert _backend(pg, pid)["state"] == "idle"
    with _opened(pg.superuser_url("deferred_rollback"), delay_s=30, read_only=False) as writer:
        before = _read(writer, "SELECT pg_backend_pid() AS pid FROM ledger")["pid"]  # a read, left owing
        assert _backend(pg, before)["state"] == "idle in transaction"
        with writer.transaction() as tx:  # the write on that connection sends the owed ROLLBACK first
            tx.make_writable()
            tx.rows("UPDATE ledger SET note = 'written' WHERE id = 1")
            pid = tx.rows("SELECT pg_backend_pid() AS pid")[0]["pid"]
        assert pid == before
        assert _backend(pg, pid)["state"] == "idle"  # committed at once, never left open
        with contextlib.closing(psycopg2.connect(pg.superuser_dsn("deferred_rollback"))) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT note FROM ledger WHERE id = 1")
            assert cur.fetchone()[0] == "written"
            cur.execute("UPDATE ledger SET note = 'one' WHERE id = 1")
            conn.commit()


def test_a_cursor_opened_outside_a_transaction_rolls_back_first(pg, ledger):
    analyst = Caller(subject="bob", role="deferred_analyst")
    with _opened(ledger, delay_s=30) as db:
        _read(db, caller=analyst)
        with db.pool.connection() as conn, conn.cursor() as cur:  # e.g. the replica-lag measurement
            cur.execute("SELECT current_user::text, current_setting('pgmcp.subject', true)")
            assert cur.fetchone() in (("mcp_readonly", None), ("mcp_readonly", ""))


@pytest.fixture(scope="module")
def bouncer(pg, ledger) -> Iterator[str]:
    """PgBouncer in transaction mode with ONE server connection for the read-only role."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-deferred-"))
    base.chmod(0o755)
    pooler = start_pgbouncer(pg.cluster, base / "bouncer", users={"mcp_readonly": pg.readonly_password},
                             pool_size=1, ignore_options=True, settings={"query_wait_timeout": "20"})
    try:
        yield pooler.url(user="mcp_readonly", password=pg.readonly_password, dbname="deferred_rollback")
    finally:
        pooler.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_behind_a_transaction_pooler_two_workers_share_one_server_connection(pg, bouncer):
    """Two workers' pools (one connection each) behind a pooler with one server connection: an owed rollback
    holds that server connection only until the other worker's pool reaper ends it, never for good, and the
    other worker's caller sees nothing of the first."""
    analyst = Caller(subject="carol", role="deferred_analyst")
    with _opened(bouncer, delay_s=0.02) as first, _opened(bouncer, delay_s=0.02) as second:
        for _ in range(5):
            mine = _read(first, caller=analyst, timeout_ms=777)
            started = time.monotonic()
            theirs = _read(second)
            assert time.monotonic() - started < 10
            assert mine["pid"] == theirs["pid"]  # the one server connection, handed across
            assert (mine["who"], mine["timeout"]) == ("deferred_analyst", "777ms")
            assert (theirs["who"], theirs["subject"] or "", theirs["timeout"]) == ("mcp_readonly", "", "5s")
            assert theirs["cursors"] == 1


def test_behind_a_transaction_pooler_a_new_connection_waits_only_for_the_delay(pg, bouncer):
    """One pool of two behind one server connection, two threads: while one thread's connection owes its
    rollback (holding the server connection), the other opens a second connection, which waits for the
    server connection. The settler must still reach the first (no pool lock held while connecting)."""
    errors: list[BaseException] = []
    with _opened(bouncer, delay_s=0.02, size=2) as db:
        def reader() -> None:
            try:
                for _ in range(10):
                    _read(db)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        threads = [threading.Thread(target=reader) for _ in range(2)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert time.monotonic() - started < 15  # PgBouncer's query_wait_timeout (20 s) never reached


def _keep_reading(db: Database, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=lambda: [_read(db, "SELECT 1 AS x") for _ in iter(stop.is_set, True)])
    thread.start()
    return thread


@pytest.mark.parametrize("pools", ["two workers", "one pool of two"])
def test_behind_a_transaction_pooler_a_busy_connection_still_hands_over_its_server_connection(pg, bouncer,
                                                                                            pools):
    """A connection read from back to back folds each rollback into the next read and so never ends a
    transaction: PgBouncer would keep the server connection from everyone else for as long as it stays
    busy. The chain is cut after CHAIN_DELAYS delays (here 4 x 20 ms), so another client gets a turn."""
    with _opened(bouncer, delay_s=0.02) as busy, _opened(bouncer, delay_s=0.02, size=2) as other:
        if pools == "one pool of two":
            busy = other
        _read(busy), _read(other)
        stop = threading.Event()
        reader = _keep_reading(busy, stop)
        try:
            time.sleep(0.3)
            started = time.monotonic()
            _read(other, "SELECT 1 AS x")
            waited = time.monotonic() - started
        finally:
            stop.set()
            reader.join()
    assert waited < 2, f"waited {waited:.2f} s for PgBouncer's one server connection"  # 0.1 s when quiet


def test_a_late_cancel_finds_a_finished_call_no_more(pg, ledger):
    """A finished read keeps its cancellation tag until the next call's ROLLBACK; the canceller signals only a
    backend running a statement, so a cancel arriving late cannot stop the next caller's statement."""
    canceller = Canceller(dsn=ledger, libpq_params={}, timeout_s=5)
    with _opened(ledger, delay_s=30) as db:
        with db.transaction(tag="ab" * 8) as tx:
            pid = tx.fetch("SELECT pg_backend_pid() AS pid", None, LIMITS, server_cursor=True).rows[0]["pid"]
        assert _backend(pg, pid)["state"] == "idle in transaction"
        assert canceller.cancel("ab" * 8) == 0
        assert _read(db, "SELECT true AS slept FROM pg_sleep(0.2)")["slept"] is True  # the next caller runs


def test_a_first_statement_psycopg2_refuses_keeps_the_debt(pg, ledger):
    """psycopg2 refuses a parameter before sending anything: the previous caller's read is still open, so a
    further statement of this transaction must still begin with its ROLLBACK, not run inside it."""
    with _opened(ledger, delay_s=30) as db:
        _read(db, caller=Caller(subject="alice", role="deferred_analyst"), timeout_ms=1234)
        with db.transaction() as tx:
            with pytest.raises(QueryFailed):
                tx.rows("SELECT %s AS x", (object(),))  # can't adapt type: never sent
            row = tx.rows(WHO)[0]
        assert (row["who"], row["subject"] or "", row["timeout"]) == ("mcp_readonly", "", "5s"), row
        _read(db, caller=Caller(subject="alice", role="deferred_analyst"))
        with db.transaction() as tx:  # taken and never sent at all: the pool rolls back at check-in
            with pytest.raises(QueryFailed):
                tx.rows("SELECT %s AS x", (object(),))
        after = _read(db, WHO)
        assert (after["who"], after["subject"] or "") == ("mcp_readonly", "")
        assert db.pool.stats().discarded == 0


def test_closing_the_pool_while_a_borrower_connects_says_the_pool_is_closed(ledger):
    options = ConnectOptions(dsn=ledger, libpq_params={}, connect_timeout_s=2, read_only=True,
                             statement_timeout_ms=5000, idle_in_transaction_timeout_ms=60_000)
    gate = threading.Event()
    pool = Pool(connect=lambda: gate.wait(5) and open_connection(options), size=1, acquire_timeout_s=5,
                idle_timeout_s=60, rollback_delay_s=0.005)
    seen: list[BaseException] = []

    def borrow() -> None:
        try:
            with pool.connection():
                pass
        except BaseException as exc:  # noqa: BLE001 - checked below
            seen.append(exc)
    borrower = threading.Thread(target=borrow)
    borrower.start()
    time.sleep(0.2)  # it is connecting now, outside the pool's lock
    pool.close()
    gate.set()
    borrower.join()
    assert len(seen) == 1 and isinstance(seen[0], PoolClosed), seen


def test_the_settler_leaves_a_closed_pool_alone(ledger, caplog):
    with _opened(ledger, delay_s=0.3) as db:
        _read(db)
        time.sleep(0.05)  # the settler sleeps through the delay while the pool closes
    time.sleep(0.5)
    assert db.pool.stats().discarded == 0 and "deferred rollback failed" not in caplog.text


def test_the_settler_never_makes_a_borrower_wait_for_a_slot(ledger):
    with _opened(ledger, delay_s=0.005, size=1) as db:
        for number in range(150):
            _read(db, "SELECT 1 AS x")
            time.sleep(0.004 + (number % 5) * 0.002)  # around the delay: the settler is often at work
        assert db.pool.stats().waits == 0, db.pool.stats()


def test_concurrent_reads_on_a_small_pool_all_answer(pg, ledger):
    """Eight threads on a pool of two with a short delay: the reaper and the borrowers never fight over a
    connection (no error, no connection beyond the pool's size)."""
    errors: list[BaseException] = []
    seen: set[int] = set()
    with _opened(ledger, delay_s=0.001, size=2) as db:
        def reader() -> None:
            try:
                for _ in range(40):
                    seen.add(_read(db, "SELECT pg_backend_pid() AS pid FROM ledger")["pid"])
                    time.sleep(0.001)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        threads = [threading.Thread(target=reader) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        assert len(seen) <= 2 and db.pool.stats().discarded == 0
        for pid in seen:
            _wait_for_state(pg, pid, "idle")


def test_database_health_leaves_out_a_read_waiting_for_its_rollback_but_not_a_stuck_one(pg, ledger):
    """database_health's idle-in-transaction list: this server's own finished reads awaiting their deferred
    rollback are not stuck sessions and are left out; another application's idle transaction is listed, and
    so is one of ours once idle longer than any deferred rollback lasts."""
    def idle_pids(inspector: Database) -> set[int]:
        with inspector.transaction() as tx:
            sections = health_sections(tx, Visibility(allowed_schemas=(), blocked_tables=()), server_facts(tx),
                                       sections=["activity"], limit=50, threshold_seconds=60)
        return {row["pid"] for row in sections["activity"]["idle_in_transaction"]}

    with _opened(ledger, delay_s=30) as ours, _opened(ledger, delay_s=0) as inspector, \
            contextlib.closing(psycopg2.connect(ledger, application_name="someone-else")) as other:
        other.cursor().execute("SELECT 1")  # psycopg2 leaves it idle in a transaction
        pid = _read(ours, "SELECT pg_backend_pid() AS pid")["pid"]
        assert _backend(pg, pid)["state"] == "idle in transaction"
        listed = idle_pids(inspector)
        assert other.info.backend_pid in listed and pid not in listed
        time.sleep(OWN_DEFERRED_GRACE_S + 0.2)  # as if the settler were stuck
        assert pid in idle_pids(inspector)


def test_the_delay_is_validated_at_start_up():
    from pgmcp_http.config import ConfigError, load_settings

    env = {"DATABASE_URL": f"postgresql://u@127.0.0.1:{devdb.free_port()}/d"}
    assert load_settings({**env}).rollback_delay_ms == 5
    assert load_settings({**env, "ROLLBACK_DELAY_MS": "0"}).rollback_delay_ms == 0
    for bad in ("-1", "1001", "soon"):
        with pytest.raises(ConfigError, match="ROLLBACK_DELAY_MS"):
            load_settings({**env, "ROLLBACK_DELAY_MS": bad})
