"""The per-worker connection pool: psycopg2's ThreadedConnectionPool plus what it lacks.

psycopg2's pool raises "connection pool exhausted" at once, never waits, never
checks what it hands back and never closes idle connections. This wrapper adds:

- a bounded wait for a free connection (``acquire_timeout_s``), ending in
  :class:`PoolTimeout` ("busy") instead of an error or a hang;
- a check on return: a connection that is closed, mid-transaction or in an
  unknown state is rolled back or discarded, never handed to the next caller;
- a check on checkout: an idle connection with something to read has been
  closed or terminated by the server (PostgreSQL restarted, an administrator
  ended the backend) and is discarded without a round trip, so after a restart
  no caller pays for a dead connection;
- idle expiry: connections unused for ``idle_timeout_s`` are closed, on the
  next checkout and by a small reaper thread, so a worker that falls quiet
  gives its connections back to PostgreSQL;
- counters (``stats()``) for /health and the metrics, and an optional
  :class:`PoolObserver` told of every change (the metrics layer publishes the
  gauges from it, so this module never imports a metrics library);
- :meth:`Pool.cancel_held_by`: cancel the statement of whichever connection a
  given thread holds (the web layer uses it when a client hangs up mid-call,
  so no orphaned query runs on to its timeout);
- deferred rollbacks (``rollback_delay_s``): a connection returned owing the
  rollback of a finished read (:mod:`pgmcp_http.db.deferred_rollback`) is kept
  as it is for the next borrower to fold in, and a settler thread rolls it
  back once it has sat idle that long, so no snapshot or lock outlives a
  quiet moment;
- an optional ``keep`` check on return, for what only the caller can judge
  (a connection whose node was promoted or demoted is replaced, see
  :mod:`pgmcp_http.db.routing`), and :meth:`Pool.nodes`: which nodes the open
  connections are on.

Create it after fork (one per gunicorn worker): a libpq connection must never
be shared between processes.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg2
import psycopg2.extensions as ext
from psycopg2.pool import ThreadedConnectionPool

from pgmcp_http.db import deferred_rollback
from pgmcp_http.db.errors import DatabaseUnavailable, PoolClosed, PoolTimeout, first_line

__all__ = ["Pool", "PoolObserver", "PoolStats"]

log = logging.getLogger(__name__)

Connect = Callable[[], ext.connection]


class Borrowed:
    """A connection borrowed from a :class:`Pool` for a ``with`` block (a class rather than a generator:
    it is entered on every call)."""

    __slots__ = ("_conn", "_outer", "_pool", "_timeout_s")

    def __init__(self, pool: Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._conn: ext.connection | None = None
        self._outer: ext.connection | None = None

    def __enter__(self) -> ext.connection:
        self._conn, self._outer = self._pool._lend(self._timeout_s)
        return self._conn

    def __exit__(self, *exc_info: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._take_back(conn, self._outer)


@dataclass(frozen=True)
class PoolStats:
    """A snapshot of one worker's pool."""

    size: int
    open: int
    in_use: int
    idle: int
    waiting: int
    waits: int
    timeouts: int
    connect_errors: int
    discarded: int


class PoolObserver(Protocol):
    """Told when a pool's figures change; must be quick and must not raise."""

    def pool_changed(self, pool: Pool) -> None:
        """Connections were borrowed, returned, opened or closed: read ``pool.stats()``."""

    def pool_waited(self, seconds: float, *, timed_out: bool) -> None:
        """A borrower found every connection in use and waited ``seconds`` for one."""


class _FactoryPool(ThreadedConnectionPool):
    """ThreadedConnectionPool whose connections come from our factory (settings, casters)."""

    def __init__(self, maxconn: int, connect: Connect, *, aside_wait_s: float) -> None:
        self._factory = connect
        self._aside_wait_s = aside_wait_s
        # minconn=0 so that nothing connects here (the server must start while
        # PostgreSQL is down); then minconn=maxconn, because psycopg2 closes
        # every returned connection beyond minconn instead of keeping it.
        super().__init__(0, maxconn)
        self.minconn = maxconn
        self._aside: list[ext.connection] = []  # taken out by take_idle(aside=True), still counted as idle
        self._put_back = threading.Condition(self._lock)  # a connection set aside came back (or closed)
        self._opening = 0

    def getconn(self, key: Any = None) -> ext.connection:
        """psycopg2's ``getconn``, except that a new connection is opened outside the pool's lock.

        Opening one takes a round trip or more, and behind a transaction-mode
        pooler it waits for a server connection, which an idle connection
        owing a rollback may hold (:mod:`pgmcp_http.db.deferred_rollback`).
        Under psycopg2's lock that wait would block every check-in and the
        settler that ends it: a deadlock seen with two workers behind a
        PgBouncer with two server connections.
        """
        with self._lock:
            while True:
                if self.closed:
                    raise psycopg2.pool.PoolError("connection pool is closed")
                if self._pool:
                    return self._lend(self._pool.pop())
                if len(self._used) + len(self._aside) + self._opening < self.maxconn:
                    break
                # Full, with a connection set aside by the settler for one ROLLBACK: wait for it rather than
                # open one more than the pool's size.
                if not self._aside or not self._put_back.wait(timeout=self._aside_wait_s):
                    raise psycopg2.pool.PoolError("connection pool exhausted")
            self._opening += 1
        try:
            conn = self._factory()
        finally:
            with self._lock:
                self._opening -= 1
        with self._lock:
            if not self.closed:
                return self._lend(conn)
        conn.close()
        raise psycopg2.pool.PoolError("connection pool is closed")

    def _lend(self, conn: ext.connection) -> ext.connection:
        """Note ``conn`` as in use, as psycopg2's ``putconn`` expects (the caller holds the lock)."""
        key = self._getkey()
        self._used[key] = conn
        self._rused[id(conn)] = key
        return conn

    def idle_connections(self) -> list[ext.connection]:
        return list(self._pool)

    def take_idle(self, conn: ext.connection, *, aside: bool = False) -> bool:
        """Remove an idle connection from the pool (for a reaper); False if it was taken meanwhile. One
        taken ``aside`` (to be given back by :meth:`put_idle`) still counts as open and idle."""
        with self._lock:
            try:
                self._pool.remove(conn)
            except ValueError:
                return False
            if aside:
                self._aside.append(conn)
            return True

    def put_idle(self, conn: ext.connection) -> None:
        """Give back a connection :meth:`take_idle` set aside (closed now if the pool closed meanwhile)."""
        with self._lock:
            self._aside.remove(conn)
            if self.closed or conn.closed:
                conn.close()
            else:
                self._pool.append(conn)
            self._put_back.notify()

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self._used), len(self._pool) + len(self._aside)

    def every_connection(self) -> list[ext.connection]:
        with self._lock:
            return [*self._used.values(), *self._pool, *self._aside]


class Pool:
    """A bounded, self-checking pool of autocommit psycopg2 connections."""

    def __init__(self, *, connect: Connect, size: int, acquire_timeout_s: float, idle_timeout_s: float,
                 name: str = "pgmcp", observer: PoolObserver | None = None,
                 keep: Callable[[ext.connection], bool] | None = None, rollback_delay_s: float = 0.0) -> None:
        if size < 1:
            raise ValueError(f"pool {name!r}: size must be at least 1, got {size}")
        self.name = name
        self.size = size
        self.acquire_timeout_s = acquire_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.rollback_delay_s = rollback_delay_s
        self._connect = connect
        self._keep = keep
        # Bumped whenever a connection opens or closes: the set of nodes can only change then.
        self.generation = 0
        self._pool = _FactoryPool(size, self._open, aside_wait_s=acquire_timeout_s)
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._last_used: dict[int, float] = {}
        self._holders: dict[int, ext.connection] = {}  # thread ident -> the connection it borrowed
        # id() of connections cancel requests are on their way to, and how many (two threads may cancel one)
        self._cancelling: collections.Counter[int] = collections.Counter()
        self._cancel_sent = threading.Condition(self._lock)
        self._waiting = 0
        self._waits = 0
        self._timeouts = 0
        self._connect_errors = 0
        self._discarded = 0
        self._closed = threading.Event()
        self._reaper: threading.Thread | None = None
        self._owing = threading.Event()  # set when a connection comes back owing a rollback
        self._settler: threading.Thread | None = None
        self._observer = observer
        self._changed()

    def connection(self, *, timeout_s: float | None = None) -> Borrowed:
        """Borrow a connection for the length of a ``with`` block.

        Raises PoolTimeout when none frees up within ``timeout_s`` (default
        ``acquire_timeout_s``) and DatabaseUnavailable when a new connection
        cannot be opened.
        """
        return Borrowed(self, self.acquire_timeout_s if timeout_s is None else timeout_s)

    def _lend(self, timeout_s: float) -> tuple[ext.connection, ext.connection | None]:
        """Take a slot and a connection for this thread; returns it and what the thread held before."""
        self._acquire_slot(timeout_s)
        try:
            conn = self._checkout()
        except BaseException:
            self._slots.release()
            self._changed()
            raise
        self._changed()
        holder = threading.get_ident()
        with self._lock:
            outer = self._holders.get(holder)
            self._holders[holder] = conn
        return conn, outer

    def _take_back(self, conn: ext.connection, outer: ext.connection | None) -> None:
        with self._lock:  # before the check-in: a cancel never reaches the connection's next borrower
            while id(conn) in self._cancelling:
                self._cancel_sent.wait()
            holder = threading.get_ident()
            if outer is None:
                self._holders.pop(holder, None)
            else:
                self._holders[holder] = outer
        try:
            self._checkin(conn)
        finally:
            self._slots.release()
            self._changed()

    def cancel_held_by(self, thread_id: int) -> bool:
        """Ask PostgreSQL to cancel the statement running on the connection thread ``thread_id`` holds.

        Safe from any thread (libpq's cancel request travels on a connection of
        its own). The request is sent without holding the pool's lock (reaching
        an unresponsive host can take long, and every checkout needs the lock);
        meanwhile the borrower cannot give the connection back, so the cancel
        never reaches another caller. True when a cancel request was sent; a
        statement that already finished ignores it.
        """
        with self._lock:
            conn = self._holders.get(thread_id)
            if conn is None or conn.closed:
                return False
            self._cancelling[id(conn)] += 1
        try:
            conn.cancel()
        except psycopg2.Error as exc:
            log.warning("could not cancel a statement: %s", first_line(exc))
            return False
        finally:
            with self._lock:
                self._cancelling[id(conn)] -= 1
                if not self._cancelling[id(conn)]:
                    del self._cancelling[id(conn)]
                self._cancel_sent.notify_all()
        return True

    def nodes(self) -> dict[tuple[str, str], int]:
        """How many open connections are on each (node name, role), for /health and the metrics."""
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for conn in self._pool.every_connection():
            node = getattr(conn, "node", None)
            if node is not None and not conn.closed:
                counts[(node.name, node.role)] += 1
        return dict(counts)

    def stats(self) -> PoolStats:
        in_use, idle = self._pool.counts()
        with self._lock:
            return PoolStats(size=self.size, open=in_use + idle, in_use=in_use, idle=idle,
                             waiting=self._waiting, waits=self._waits, timeouts=self._timeouts,
                             connect_errors=self._connect_errors, discarded=self._discarded)

    def figures(self) -> tuple[int, int, int, int, int, int]:
        """(in_use, idle, size, waiting, connect_errors, discarded): what the gauges publish, read on every
        checkout and check-in, so without the snapshot :meth:`stats` builds."""
        in_use, idle = self._pool.counts()
        return in_use, idle, self.size, self._waiting, self._connect_errors, self._discarded

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (the worker is shutting down)."""
        return self._closed.is_set()

    def close(self) -> None:
        """Close every connection; later borrowers get PoolClosed."""
        self._closed.set()
        self._owing.set()  # wakes the settler, which then sees the pool closed
        with contextlib.suppress(psycopg2.pool.PoolError):
            self._pool.closeall()
        with self._lock:
            self.generation += 1
        self._changed()

    # -- internals ---------------------------------------------------------

    def _acquire_slot(self, timeout_s: float) -> None:
        if self._closed.is_set():
            raise PoolClosed(f"pool {self.name!r} is closed: the worker is shutting down")
        if self._slots.acquire(blocking=False):
            return
        with self._lock:
            self._waiting += 1
            self._waits += 1
        self._changed()
        started = time.monotonic()
        acquired = False
        try:
            acquired = self._slots.acquire(timeout=timeout_s)
        finally:
            with self._lock:
                self._waiting -= 1
            if self._observer is not None:
                self._observer.pool_waited(time.monotonic() - started, timed_out=not acquired)
            self._changed()
        if not acquired:
            with self._lock:
                self._timeouts += 1
            raise PoolTimeout(
                f"server busy: no database connection became free within {timeout_s:g} s "
                f"(all {self.size} of this worker's connections are in use); retry shortly, "
                "or ask the operator to raise MAX_CONNECTIONS or POOL_CONNECTION_TIMEOUT"
            )

    def _checkout(self) -> ext.connection:
        while True:
            if self._closed.is_set():
                raise PoolClosed(f"pool {self.name!r} is closed: the worker is shutting down")
            try:
                conn = self._pool.getconn()
            except psycopg2.OperationalError as exc:
                with self._lock:
                    self._connect_errors += 1
                raise DatabaseUnavailable(_connect_failure(exc)) from None
            except psycopg2.pool.PoolError:
                if self._closed.is_set():  # closed while this borrower was connecting
                    raise PoolClosed(f"pool {self.name!r} is closed: the worker is shutting down") from None
                raise PoolTimeout(f"server busy: no database connection became free within "
                                  f"{self.acquire_timeout_s:g} s; retry shortly") from None
            with self._lock:
                idle_since = self._last_used.pop(id(conn), None)
            stale = idle_since is not None and time.monotonic() - idle_since > self.idle_timeout_s
            if conn.closed or stale or _server_spoke(conn):
                self._discard(conn)
                continue
            return conn

    def _open(self) -> ext.connection:
        conn = self._connect()
        with self._lock:
            self.generation += 1
        return conn

    def _checkin(self, conn: ext.connection) -> None:
        owing = not conn.closed and _owes_rollback(conn)
        if not owing and not conn.closed and conn.info.transaction_status != ext.TRANSACTION_STATUS_IDLE:
            _try_rollback(conn)
        if conn.closed or (not owing and conn.info.transaction_status != ext.TRANSACTION_STATUS_IDLE):
            self._discard(conn)
            return
        if self._keep is not None and not self._keep(conn):
            self._discard(conn)
            return
        with self._lock:
            self._last_used[id(conn)] = time.monotonic()
        self._pool.putconn(conn)
        self._start_once("_reaper", self._reap_forever, "reaper")
        if owing:
            self._owing.set()
            self._start_once("_settler", self._settle_forever, "settler")

    def _discard(self, conn: ext.connection) -> None:
        with self._lock:
            self._discarded += 1
            self._last_used.pop(id(conn), None)
        try:
            self._pool.putconn(conn, close=True)
        except psycopg2.pool.PoolError:
            conn.close()
        with self._lock:  # after it left the pool: a reader of the new generation no longer sees it
            self.generation += 1

    def _start_once(self, attribute: str, target: Callable[[], None], role: str) -> None:
        """Start the pool's ``role`` thread (the reaper, the settler) the first time it is needed."""
        if getattr(self, attribute) is not None:
            return
        with self._lock:
            if getattr(self, attribute) is not None:
                return
            thread = threading.Thread(target=target, name=f"{self.name}-{role}", daemon=True)
            setattr(self, attribute, thread)
        thread.start()

    def _reap_forever(self) -> None:
        interval = max(self.idle_timeout_s / 2, 0.5)
        while not self._closed.wait(interval):
            self.reap_idle()

    def _settle_forever(self) -> None:
        """Wake when a connection comes back owing a rollback, give the next borrower ``rollback_delay_s`` to
        fold it in, then roll back those still owing (about 1/delay wake-ups a second under load at most)."""
        while True:
            self._owing.wait()
            if self._closed.is_set():
                return
            self._owing.clear()
            time.sleep(self.rollback_delay_s)
            if self._closed.is_set():
                return
            self.settle_idle()

    def settle_idle(self) -> int:
        """Roll back idle connections that have owed a rollback for ``rollback_delay_s``; return how many.

        Each is set aside (still counted as open) for its ``ROLLBACK``; a
        borrower that finds the pool full meanwhile waits for it to come back
        rather than open a connection beyond the pool's size. No pool slot is
        taken, so a borrower never counts as having waited for the settler.
        """
        now = time.monotonic()
        settled = 0
        for conn in self._pool.idle_connections():
            if conn.closed or not deferred_rollback.owes(conn):
                continue
            with self._lock:
                since = self._last_used.get(id(conn))
            if since is not None and now - since < self.rollback_delay_s:
                self._owing.set()  # not due yet: look again after another delay
                continue
            if not self._pool.take_idle(conn, aside=True):
                continue  # a borrower took it, and folds the rollback in
            try:
                deferred_rollback.settle(conn)
            except psycopg2.Error as exc:
                log.warning("discarding a connection whose deferred rollback failed: %s", type(exc).__name__)
                conn.close()
            closed = conn.closed
            self._pool.put_idle(conn)
            if closed:
                with self._lock:
                    self._discarded += 1
                    self._last_used.pop(id(conn), None)
                    self.generation += 1
                self._changed()
            else:
                settled += 1
        return settled

    def reap_idle(self) -> int:
        """Close idle connections unused for longer than ``idle_timeout_s``; return how many."""
        now = time.monotonic()
        closed = 0
        for conn in self._pool.idle_connections():
            with self._lock:
                since = self._last_used.get(id(conn))
            if since is None or now - since <= self.idle_timeout_s:
                continue
            if self._pool.take_idle(conn):
                with self._lock:
                    self._last_used.pop(id(conn), None)
                    self.generation += 1
                conn.close()
                closed += 1
        if closed:
            self._changed()
        return closed

    def _changed(self) -> None:
        if self._observer is not None:
            self._observer.pool_changed(self)


def _try_rollback(conn: ext.connection) -> None:
    """End whatever transaction a borrower left open; a failure leaves the connection closed or dirty."""
    try:
        with conn.cursor() as cur:
            cur.execute("ROLLBACK")
    except psycopg2.Error as exc:
        log.warning("discarding a connection whose rollback failed: %s", type(exc).__name__)
        conn.close()


def _owes_rollback(conn: ext.connection) -> bool:
    """A connection left in a finished read-only transaction on purpose, in good state."""
    return (deferred_rollback.owes(conn)
            and conn.info.transaction_status == ext.TRANSACTION_STATUS_INTRANS)


def _server_spoke(conn: ext.connection) -> bool:
    """Whether an idle connection has input waiting: only the server closing it (end of stream, or a
    FATAL such as "terminating connection due to administrator command") puts any there."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _connect_failure(exc: psycopg2.OperationalError) -> str:
    """libpq's first line, which names the host and the reason (never the password)."""
    return f"database unavailable: {first_line(exc)}"
