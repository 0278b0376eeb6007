"""Routing rules and the lag bound, without a database: what to ask libpq for, when a pooled connection still
fits, which hosts a URL names, and how the stale-read guard's cached figure grows and is measured again.

The behaviour against real streaming replication is in tests/test_db_replicas.py; these pin the arithmetic
that those runs cannot reach in reasonable time (the 30 s fallback, the 5 s refresh, two replicas behind one
name).
"""

from __future__ import annotations

from typing import Any

import psycopg2
import pytest

from pgmcp_http.db.nodes import PRIMARY, STANDBY, Node
from pgmcp_http.db.replica_lag import REFRESH_S, STALE_RECHECK_S, LagWatch, StandbyBehind
from pgmcp_http.db.routing import FALLBACK_LIFETIME_S, fits, hosts, session_attrs

URL = "postgresql://u:p@a.example:5432,b.example:5433/app"


@pytest.mark.parametrize(("attrs", "read_only", "asked"), [
    ("read-only", True, "standby"), ("read-write", True, "primary"), ("prefer-standby", True, "prefer-standby"),
    (None, True, None), ("any", True, "any"),
    (None, False, "read-write"), ("any", False, "read-write"), ("primary", False, "primary"),
])
def test_what_libpq_is_asked_for(attrs, read_only, asked):
    url = URL + (f"?target_session_attrs={attrs}" if attrs else "")
    assert session_attrs(url, {}, read_only=read_only) == asked


def test_a_libpq_parameter_beats_the_urls_own():
    assert session_attrs(URL + "?target_session_attrs=primary", {"target_session_attrs": "read-only"},
                         read_only=True) == "standby"


@pytest.mark.parametrize(("attrs", "opened", "now", "age", "kept"), [
    ("standby", STANDBY, STANDBY, 0, True),
    ("standby", STANDBY, PRIMARY, 0, False),  # promoted under the connection
    ("read-only", STANDBY, PRIMARY, 0, False),
    ("primary", PRIMARY, STANDBY, 0, False),  # demoted
    ("read-write", PRIMARY, PRIMARY, 10_000, True),
    ("any", PRIMARY, STANDBY, 0, False),  # any role change: reopened, so the role shown is the one asked again
    ("any", STANDBY, STANDBY, 10_000, True),
    ("prefer-standby", STANDBY, STANDBY, 10_000, True),
    ("prefer-standby", PRIMARY, PRIMARY, FALLBACK_LIFETIME_S - 1, True),  # fell back: kept a while
    ("prefer-standby", PRIMARY, PRIMARY, FALLBACK_LIFETIME_S, False),  # then replaced, to find the standbys
    (None, PRIMARY, PRIMARY, 10_000, True),
])
def test_which_pooled_connections_still_fit(attrs, opened, now, age, kept):
    assert fits(attrs, opened_role=opened, role_now=now, age_s=age) is kept


def test_hosts_a_url_names():
    assert hosts(URL, {}) == [{"host": "a.example", "port": "5432"}, {"host": "b.example", "port": "5433"}]
    assert hosts("host=a,b port=6432 dbname=x", {}) == [{"host": "a", "port": "6432"}, {"host": "b", "port": "6432"}]
    assert hosts("postgresql://u@/db?host=/run/postgresql", {}) == [{"host": "/run/postgresql"}]
    assert hosts("host=db.internal hostaddr=10.0.0.1,10.0.0.2 dbname=x", {}) == [
        {"host": "db.internal", "hostaddr": "10.0.0.1"}, {"host": "db.internal", "hostaddr": "10.0.0.2"}]
    assert hosts("not a connection string =", {}) == []


# -- the lag bound --------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Standby:
    """What LagWatch reads of a pooled connection: its node, server address and role, and a cursor that answers
    LAG_SQL with ``lag`` (or fails with ``error``)."""

    def __init__(self, name: str, server: str, lag: float, *, error: Exception | None = None) -> None:
        host, port = name.split(":")
        self.node = Node(host=host, port=int(port), role=STANDBY)
        self.server = server
        self.greeted = "on"
        self.lag = lag
        self.error = error
        self.closed = False
        self.measured = 0
        self.info = self

    def parameter_status(self, name: str) -> str:
        return "on"

    def cursor(self) -> Standby:
        return self

    def __enter__(self) -> Standby:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def execute(self, sql: str) -> None:
        if self.error is not None:
            raise self.error
        self.measured += 1

    def fetchone(self) -> tuple[float]:
        return (self.lag,)


def test_the_bound_grows_with_time_and_a_figure_past_the_limit_is_measured_again():
    clock = Clock()
    watch = LagWatch(max_lag_s=1.0, clock=clock)
    conn = Standby("replica:5432", "10.0.0.7:5432", lag=0.2)
    assert watch.bound(conn) == pytest.approx(0.2)
    clock.now += 0.5
    assert watch.bound(conn) == pytest.approx(0.7) and conn.measured == 1  # within the limit: no round trip
    clock.now += 0.4
    conn.lag = 5.0  # replay stopped meanwhile
    bound = watch.bound(conn)  # 0.2 + 0.9 > 1: the cached figure cannot vouch, so it is measured
    assert conn.measured == 2 and bound == pytest.approx(5.0) and watch.too_far(bound)
    clock.now += STALE_RECHECK_S / 2
    assert watch.too_far(watch.bound(conn)) and conn.measured == 2  # still behind: not asked again at once
    clock.now += STALE_RECHECK_S
    conn.lag = 0.0
    assert not watch.too_far(watch.bound(conn)) and conn.measured == 3  # caught up: served again


def test_without_a_limit_the_figure_is_refreshed_every_few_seconds():
    clock = Clock()
    watch = LagWatch(max_lag_s=None, clock=clock)
    conn = Standby("replica:5432", "10.0.0.7:5432", lag=100.0)
    assert not watch.too_far(watch.bound(conn))
    clock.now += REFRESH_S - 0.1
    watch.bound(conn)
    assert conn.measured == 1
    clock.now += 0.2
    watch.bound(conn)
    assert conn.measured == 2


def test_two_replicas_behind_one_name_are_measured_apart():
    clock = Clock()
    watch = LagWatch(max_lag_s=1.0, clock=clock)
    fresh = Standby("reader.example:5432", "10.0.0.7:5432", lag=0.0)
    behind = Standby("reader.example:5432", "10.0.0.8:5432", lag=30.0)
    assert not watch.too_far(watch.bound(fresh))
    assert watch.too_far(watch.bound(behind))  # not the fresh one's cached figure


def test_a_primary_has_no_lag():
    conn = Standby("db:5432", "10.0.0.1:5432", lag=99.0)
    conn.node = Node(host="db", port=5432, role=PRIMARY)
    conn.greeted = "off"
    conn.parameter_status = lambda name: "off"  # type: ignore[method-assign]
    assert LagWatch(max_lag_s=1.0).bound(conn) is None and conn.measured == 0


def test_a_lag_that_cannot_be_measured_refuses_with_the_guard_and_is_unknown_without():
    denied = psycopg2.ProgrammingError("permission denied for function pg_last_xact_replay_timestamp")
    with pytest.raises(StandbyBehind, match="could not be measured .*permission denied"):
        LagWatch(max_lag_s=1.0).bound(Standby("replica:5432", "x", lag=0, error=denied))
    assert LagWatch(max_lag_s=None).bound(Standby("replica:5432", "x", lag=0, error=denied)) is None
