"""The worker's access to PostgreSQL: its pool, transaction defaults and stale-read guard in one handle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions as ext

from pgmcp_http.db.errors import ConnectionLost, RoleRefused
from pgmcp_http.db.pool import Pool
from pgmcp_http.db.replica_lag import LagWatch, StandbyBehind
from pgmcp_http.db.run import Transaction, transaction
from pgmcp_http.db.types import TypeNames
from pgmcp_http.identity import Caller

__all__ = ["Database"]


class Database:
    """Hands out transactions on pooled connections with the server's limits applied."""

    def __init__(self, *, pool: Pool, read_only: bool, timeout_ms: int,
                 search_path: tuple[str, ...] = (), lag: LagWatch | None = None, hosts: int = 1) -> None:
        self.pool = pool
        self.lag = lag
        self.hosts = hosts  # how many hosts DATABASE_URL names: how many other nodes a lagging call may try
        self.read_only = read_only
        self.timeout_ms = timeout_ms
        self.search_path = search_path
        self.types = TypeNames()

    @contextmanager
    def transaction(self, *, timeout_ms: int | None = None, timeout_setting: str = "QUERY_TIMEOUT",
                    tag: str | None = None, caller: Caller | None = None,
                    comment: str | None = None) -> Iterator[Transaction]:
        """A read-only transaction (see :class:`Transaction`), always ended on exit; ``tag`` names it
        for cancellation (see :mod:`pgmcp_http.db.cancel`); it runs as ``caller``'s role (RoleRefused,
        before any connection is taken, for a caller that may not run SQL); ``comment`` follows each
        statement sent."""
        if caller is not None and caller.refusal is not None:
            raise RoleRefused(caller.refusal)
        connection = self.pool.connection() if self.lag is None else self._fresh_connection(self.lag)
        with connection as conn, transaction(
            conn,
            read_only=True,
            server_read_only=self.read_only,
            timeout_ms=timeout_ms or self.timeout_ms,
            types=self.types,
            search_path=self.search_path,
            timeout_setting=timeout_setting,
            tag=tag,
            caller=caller,
            comment=comment,
            rollback_delay_s=self.pool.rollback_delay_s,
        ) as tx:
            yield tx

    @contextmanager
    def _fresh_connection(self, lag: LagWatch) -> Iterator[ext.connection]:
        """A pooled connection on a node no further behind than MAX_REPLICA_LAG (without it,
        :meth:`transaction` borrows straight from the pool).

        With one host in DATABASE_URL there is nowhere else to go: the call is
        refused at once and the connection kept (it is only behind). With
        several, a lagging connection is closed and another taken; new
        connections meanwhile go to the primary when the URL allows it (see
        :meth:`LagWatch.avoid_standbys`). The tries stop when a connection
        opened for this call lands on a server already refused (libpq keeps
        choosing it), so a refused call opens at most one connection per host;
        StandbyBehind then says how far behind and what to do.
        """
        started = time.monotonic()
        refused: dict[str, tuple[str, float]] = {}  # server -> (name, seconds behind at most)
        for _ in range(self.pool.size + self.hosts + 1):
            with self.pool.connection() as conn:
                try:
                    bound = lag.bound(conn)
                except psycopg2.Error as exc:
                    conn.close()
                    raise ConnectionLost.of(exc) from None
                if not lag.too_far(bound):
                    conn.lag_s = bound  # type: ignore[attr-defined]  # what the result says of freshness
                    yield conn
                    return
                server = lag.key(conn)
                again = server in refused and conn.opened_at >= started  # type: ignore[attr-defined]
                refused[server] = (conn.node.name, bound or 0.0)  # type: ignore[attr-defined]
                if self.hosts <= 1 or again:
                    break
                lag.avoid_standbys()
                conn.close()  # the pool replaces it; the next one may land elsewhere
        raise StandbyBehind(self._behind_message(list(refused.values())))

    def _behind_message(self, behind: list[tuple[str, float]]) -> str:
        name, seconds = max(behind, key=lambda item: item[1])
        limit = self.lag.max_lag_s if self.lag is not None else 0
        return (f"stale read refused: the standby {name} is {seconds:.1f} s behind the primary "
                f"(MAX_REPLICA_LAG={limit:g}) and no node within DATABASE_URL's target_session_attrs was "
                "fresher; nothing was run. Retry in a few seconds, when it has caught up, or ask the operator to "
                "check the standby's replay (pg_stat_wal_receiver, replay paused or conflicts) or to allow the "
                "primary (target_session_attrs=prefer-standby)")

    def ping(self, *, timeout_s: float) -> None:
        """Prove PostgreSQL answers within about ``timeout_s``: waits that long at most for a
        connection, then runs ``SELECT 1`` under a statement timeout of the same length."""
        with self.pool.connection(timeout_s=timeout_s) as conn, transaction(
            conn, read_only=True, server_read_only=True, timeout_ms=int(timeout_s * 1000), types=self.types,
            timeout_setting="health probe", rollback_delay_s=self.pool.rollback_delay_s,
        ) as tx:
            tx.rows("SELECT 1")

    def close(self) -> None:
        self.pool.close()
