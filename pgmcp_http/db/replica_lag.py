"""How far behind a standby is, and the stale-read guard (MAX_REPLICA_LAG).

Lag is measured the way PostgreSQL's documentation advises: a standby that
streams from its primary and has replayed all the WAL it received is current
(0 s), however long ago the primary last wrote, so an idle primary never looks
like lag; while received WAL waits to be replayed, the lag is the age of the
last replayed transaction (``pg_last_xact_replay_timestamp()``), which is what
replay pausing or a long replay conflict makes grow. A standby that is not
streaming (no WAL receiver: the primary is gone, the network is cut, a slot
was dropped) cannot know what it is missing, so the age of its last replayed
transaction is its lag too. WAL the primary has written but not yet sent to a
streaming standby is not seen from the standby: a slow link is not counted.

A measurement costs a round trip, so each worker keeps the latest one per
server (its own address, so that replicas behind one name are told apart)
and adds the time since: a standby ``L`` seconds behind at ``t0`` is at
most ``L + (now - t0)`` behind now, whatever happened meanwhile. That bound is
what the guard compares with MAX_REPLICA_LAG, so a cached figure never lets a
stale read through; a new measurement is taken when the bound passes the
limit (at most every :data:`STALE_RECHECK_S` while a node stays behind) and
every :data:`REFRESH_S` anyway, for /health and the metrics.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions as ext

from pgmcp_http.db.errors import DatabaseUnavailable, first_line
from pgmcp_http.db.nodes import PRIMARY, role_now

__all__ = ["LAG_SQL", "REFRESH_S", "STALE_RECHECK_S", "LagWatch", "StandbyBehind"]

REFRESH_S = 5.0
STALE_RECHECK_S = 0.25
AVOID_STANDBYS_S = 2.0

LAG_SQL = """
SELECT CASE
         WHEN NOT pg_catalog.pg_is_in_recovery() THEN 0
         WHEN EXISTS (SELECT FROM pg_catalog.pg_stat_wal_receiver)
              AND pg_catalog.pg_last_wal_receive_lsn() IS NOT NULL
              AND pg_catalog.pg_last_wal_receive_lsn() <= pg_catalog.pg_last_wal_replay_lsn() THEN 0
         ELSE greatest(0, EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - COALESCE(
                pg_catalog.pg_last_xact_replay_timestamp(), pg_catalog.pg_postmaster_start_time())))
       END::float8 AS lag_s
"""


class StandbyBehind(DatabaseUnavailable):
    """Every node the call could use was a standby further behind than MAX_REPLICA_LAG: nothing ran."""


@dataclass(frozen=True)
class Measured:
    lag_s: float
    at: float


class LagWatch:
    """One worker's view of its standbys' lag, and the MAX_REPLICA_LAG verdict on a connection."""

    def __init__(self, *, max_lag_s: float | None, clock: Callable[[], float] = time.monotonic,
                 observer: Callable[[str, float], None] | None = None) -> None:
        self.max_lag_s = max_lag_s
        self._clock = clock
        self._observer = observer  # told (node name, seconds) after each measurement: the metrics gauge
        self._lock = threading.Lock()
        self._measured: dict[str, Measured] = {}
        self._avoid_until = 0.0

    def bound(self, conn: ext.connection) -> float | None:
        """At most how many seconds behind the primary ``conn``'s node is now; None on a primary. Measures
        on ``conn`` (one round trip, outside any transaction) only when the cached figure cannot tell."""
        if role_now(conn) == PRIMARY:  # type: ignore[arg-type]
            return None
        key = self.key(conn)
        now = self._clock()
        with self._lock:
            seen = self._measured.get(key)
        if seen is None or self._due(seen, now):
            seen = self._measure(conn, key)
        if math.isnan(seen.lag_s):  # could not be measured: unknown, not shown (only with the guard off)
            return None
        return seen.lag_s + max(0.0, now - seen.at)

    @staticmethod
    def key(conn: ext.connection) -> str:
        """The server a connection is on: its name as libpq reached it, and the server's own address."""
        return f"{conn.node.name}@{getattr(conn, 'server', '')}"  # type: ignore[attr-defined]

    def too_far(self, bound: float | None) -> bool:
        return bound is not None and self.max_lag_s is not None and bound > self.max_lag_s

    def avoid_standbys(self) -> None:
        """A standby was too far behind: new connections go to the primary for a moment (see
        :meth:`avoiding`), so the pool moves there instead of reopening the same standby."""
        with self._lock:
            self._avoid_until = self._clock() + AVOID_STANDBYS_S

    def avoiding(self) -> bool:
        with self._lock:
            return self._clock() < self._avoid_until

    def _due(self, seen: Measured, now: float) -> bool:
        age = now - seen.at
        if age >= REFRESH_S:
            return True
        limit = self.max_lag_s
        return limit is not None and seen.lag_s + age > limit and age >= STALE_RECHECK_S

    def _measure(self, conn: ext.connection, key: str) -> Measured:
        """One measurement on ``conn``, outside any transaction; the clock is read before the query is sent,
        so the round trip counts as lag rather than hiding it. A failure on a live connection (the lag
        functions refused) is StandbyBehind with the guard on; with it off the lag is unknown (NaN) until the
        next measurement, and the call goes on."""
        at = self._clock()
        try:
            with conn.cursor() as cur:
                cur.execute(LAG_SQL)
                row = cur.fetchone()
        except psycopg2.Error as exc:
            if conn.closed:
                raise
            if self.max_lag_s is None:
                unknown = Measured(lag_s=math.nan, at=at)
                with self._lock:
                    self._measured[key] = unknown
                return unknown
            raise StandbyBehind(f"stale read refused: the lag of the standby {conn.node.name} could not be "  # type: ignore[attr-defined]
                                f"measured ({first_line(exc)}), so "
                                f"MAX_REPLICA_LAG={self.max_lag_s:g} cannot be vouched for; nothing was run. Ask "
                                "the operator to let the login role run pg_last_xact_replay_timestamp()") from None
        lag_s = float(row[0] or 0) if row else 0.0
        seen = Measured(lag_s=lag_s, at=at)
        with self._lock:
            self._measured[key] = seen
        if self._observer is not None:
            self._observer(conn.node.name, lag_s)  # type: ignore[attr-defined]
        return seen
