"""The health probe's own path to PostgreSQL: one short-lived connection, never a pool slot.

A probe that borrowed from the pool would wait behind busy queries and report
a saturated but healthy server as down (and a load balancer would then pull
every replica at the worst moment). This one opens a fresh connection with a
short ``connect_timeout``, runs ``SELECT 1`` under a transaction-local
statement timeout (so it also works behind PgBouncer in transaction mode) and
closes it. A fresh connection also proves what the pool cannot: that a new
login still works (password rotated, ``pg_hba.conf`` changed, too many
connections).

At most one probe per process talks to PostgreSQL at a time: concurrent
health checks queue for at most the probe's time bound and then report the
database as not answering, so a hung server never piles up connections.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import psycopg2
import psycopg2.errors

from pgmcp_http.db.errors import DatabaseUnavailable, QueryTimeout, first_line
from pgmcp_http.db.routing import session_attrs

__all__ = ["PROBE_APPLICATION_NAME", "Probe"]

PROBE_APPLICATION_NAME = "pgmcp-http-probe"


class Probe:
    """Asks PostgreSQL ``SELECT 1`` on a connection of its own, within ``timeout_s``."""

    def __init__(self, *, dsn: str, libpq_params: dict[str, str], timeout_s: float, read_only: bool = True,
                 secrets: Callable[[], tuple[str, dict[str, str]]] | None = None) -> None:
        self._dsn = dsn
        self._read_only = read_only  # routes as the pool does: a write-mode server needs a read-write node
        self._libpq_params = libpq_params
        self._secrets = secrets  # a rotating password or a cloud IAM token, fetched per connection
        self.timeout_s = timeout_s
        self._lock = threading.Lock()

    def check(self) -> float:
        """Return the round trip in seconds; raise DatabaseUnavailable or QueryTimeout when
        PostgreSQL does not answer within about ``timeout_s`` (libpq cannot time a connection
        attempt out in less than 2 s)."""
        if not self._lock.acquire(timeout=self.timeout_s):
            raise DatabaseUnavailable(
                f"database unavailable: an earlier health probe has waited more than {self.timeout_s:g} s "
                "for PostgreSQL; check that the database host answers"
            )
        try:
            return self._round_trip()
        finally:
            self._lock.release()

    def _round_trip(self) -> float:
        started = time.monotonic()
        dsn, extra = self._secrets() if self._secrets is not None else (self._dsn, {})
        params = {**self._libpq_params, **extra}
        attrs = session_attrs(dsn, params, read_only=self._read_only)
        if attrs is not None:
            params["target_session_attrs"] = attrs
        try:
            conn = psycopg2.connect(
                dsn,
                application_name=PROBE_APPLICATION_NAME,
                connect_timeout=max(2, math.ceil(self.timeout_s)),
                **params,
            )
        except psycopg2.OperationalError as exc:
            raise DatabaseUnavailable(f"database unavailable: {first_line(exc)}") from None
        try:
            with conn.cursor() as cur:
                cur.execute("SET LOCAL statement_timeout = %s", (f"{max(1, int(self.timeout_s * 1000))}ms",))
                cur.execute("SELECT 1")
                cur.fetchone()
        except psycopg2.errors.QueryCanceled:
            raise QueryTimeout(int(self.timeout_s * 1000), "HEALTH_CHECK_TIMEOUT") from None
        except psycopg2.Error as exc:
            raise DatabaseUnavailable(f"database unavailable: {first_line(exc)}") from None
        finally:
            conn.close()
        return time.monotonic() - started
