"""How far behind a standby is, and the stale-read guard (MAX_REPLICA_LAG).

Lag is measured the way PostgreSQL's documentation advises: a standby whose
replay has caught up with the WAL it received is current (0 s), however long
ago the primary last wrote, so an idle primary never looks like lag; only
while received WAL waits to be replayed is the lag the age of the last
replayed transaction (``pg_last_xact_replay_timestamp()``), which is what
replay pausing or a long replay conflict makes grow.

A measurement costs a round trip, so each worker keeps the latest one per
node and adds the time since: a standby ``L`` seconds behind at ``t0`` is at
most ``L + (now - t0)`` behind now, whatever happened meanwhile. That bound is
what the guard compares with MAX_REPLICA_LAG, so a cached figure never lets a
stale read through; a new measurement is taken when the bound passes the
limit (at most every :data:`STALE_RECHECK_S` while a node stays behind) and
every :data:`REFRESH_S` anyway, for /health and the metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2.extensions as ext

from pgmcp_http.db.errors import DatabaseUnavailable
from pgmcp_http.db.nodes import PRIMARY, role_now

__all__ = ["LAG_SQL", "REFRESH_S", "STALE_RECHECK_S", "LagWatch", "StandbyBehind"]

REFRESH_S = 5.0
STALE_RECHECK_S = 0.25
AVOID_STANDBYS_S = 2.0

LAG_SQL = """
SELECT CASE
         WHEN NOT pg_catalog.pg_is_in_recovery() THEN 0
         WHEN pg_catalog.pg_last_wal_receive_lsn() IS NOT NULL
              AND pg_catalog.pg_last_wal_receive_lsn() <= pg_catalog.pg_last_wal_replay_lsn() THEN 0
         ELSE greatest(0, EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - COALESCE(
                pg_catalog.pg_last_xact_replay_timestamp(), pg_catalog.pg_postmaster_start_time())))
       END::float8 AS lag_s,
       COALESCE(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(),
                                            pg_catalog.pg_last_wal_replay_lsn()), 0)::float8 AS behind_bytes
"""


class StandbyBehind(DatabaseUnavailable):
    """Every node the call could use was a standby further behind than MAX_REPLICA_LAG: nothing ran."""


@dataclass(frozen=True)
class Measured:
    lag_s: float
    behind_bytes: float
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
        name = conn.node.name  # type: ignore[attr-defined]
        now = self._clock()
        with self._lock:
            seen = self._measured.get(name)
        if seen is None or self._due(seen, now):
            seen = self._measure(conn, name)
        return seen.lag_s + max(0.0, now - seen.at)

    def too_far(self, bound: float | None) -> bool:
        return bound is not None and self.max_lag_s is not None and bound > self.max_lag_s

    def behind_bytes(self, name: str) -> float:
        with self._lock:
            seen = self._measured.get(name)
        return seen.behind_bytes if seen is not None else 0.0

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

    def _measure(self, conn: ext.connection, name: str) -> Measured:
        with conn.cursor() as cur:
            cur.execute(LAG_SQL)
            row = cur.fetchone()
        lag_s, behind = (float(row[0] or 0), float(row[1] or 0)) if row else (0.0, 0.0)
        seen = Measured(lag_s=lag_s, behind_bytes=behind, at=self._clock())
        with self._lock:
            self._measured[name] = seen
        if self._observer is not None:
            self._observer(name, lag_s)
        return seen
