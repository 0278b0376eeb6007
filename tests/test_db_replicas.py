"""Read replicas and failover through libpq's multi-host routing, against real streaming replication.

A primary and a hot standby made with ``pg_basebackup -R`` run on loopback
(see :mod:`devkit.replication`). The server is given both hosts in one
DATABASE_URL, as an operator would, and libpq routes by
``target_session_attrs``; these tests check where calls land (each result's
``_meta`` and PostgreSQL's own ``pg_stat_activity``), that they keep landing
when a node stops, is promoted, or was never writable.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors
import pytest

from devkit import devdb, pooler, replication
from pgmcp_http.config import ConfigError, load_settings
from pgmcp_http.db import Canceller
from pgmcp_http.db.cancel import tagged_application_name
from tests.helpers import (
    ServerProcess,
    call_tool,
    initialize,
    request,
    scrape,
    session_rpc,
    start_server,
    start_up_failure,
    total,
    wait_until,
)

NODE_KEY = "pgmcp-http/node"
SCHEMA = """
CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) AS g;
CREATE ROLE reader LOGIN PASSWORD '{password}';
CREATE ROLE writer LOGIN PASSWORD '{password}';
GRANT SELECT ON items TO reader;
GRANT SELECT, INSERT ON items TO writer;
"""


@dataclass
class Pair:
    primary: devdb.Cluster
    standby: devdb.Cluster
    password: str

    def url(self, *hosts: devdb.Cluster, user: str = "reader", attrs: str | None = None) -> str:
        places = ",".join(f"127.0.0.1:{cluster.port}" for cluster in hosts)
        query = f"?target_session_attrs={attrs}" if attrs else ""
        return f"postgresql://{user}:{self.password}@{places}/app{query}"


@pytest.fixture
def pair() -> Iterator[Pair]:
    """A fresh primary with a table and two roles, and a streaming hot standby of it."""
    def schema(primary: devdb.Cluster) -> str:
        password = "rp-" + secrets.token_urlsafe(12)
        devdb.psql(primary, sql="CREATE DATABASE app")
        devdb.psql(primary, dbname="app", sql=SCHEMA.format(password=password))
        return password

    with replication.replicated("pgmcp-replicas-", schema) as (primary, standby, password):
        yield Pair(primary, standby, password)


def node_of(result: dict[str, Any]) -> tuple[str, int]:
    """(role, port) of the node a tool result says answered it."""
    assert result["isError"] is False, result
    node = result["_meta"][NODE_KEY]
    return node["role"], int(node["node"].rsplit(":", 1)[1])


def our_backends(cluster: devdb.Cluster) -> int:
    """How many pooled connections of the server this node holds (the probe and canceller use other names)."""
    return int(devdb.psql(cluster, sql="SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgmcp-http'"))


def count_items(server: ServerProcess) -> dict[str, Any]:
    return call_tool(server, "query", {"sql": "SELECT count(*) AS n FROM items"})


def test_prefer_standby_sends_every_read_to_the_standby_and_says_so(pair, tmp_path):
    url = pair.url(pair.primary, pair.standby, attrs="prefer-standby")
    server = start_server(url, tmp_path, workers=2, threads=4)
    try:
        for _ in range(8):
            result = count_items(server)
            assert node_of(result) == ("standby", pair.standby.port)
            assert result["structuredContent"]["rows"] == [{"n": 50}]
        # The catalog, resources, completions and health run on the same pool, so on the standby too.
        for name, arguments in (("list_tables", {}), ("describe_table", {"table_name": "items"}),
                                ("database_health", {"sections": ["replication", "connections"]}),
                                ("analyze_query", {"sql": "SELECT * FROM items WHERE id = 3"})):
            assert node_of(call_tool(server, name, arguments))[0] == "standby", name
        session, version = initialize(server.url)
        read = session_rpc(server.url, session, version, "resources/read", {"uri": "postgres://table/public/items"})
        assert "items" in read.body["result"]["contents"][0]["text"]
        completion = session_rpc(server.url, session, version, "completion/complete", {
            "ref": {"type": "ref/resource", "uri": "postgres://table/{schema}/{table}"},
            "argument": {"name": "table", "value": "it"}, "context": {"arguments": {"schema": "public"}}})
        assert completion.body["result"]["completion"]["values"] == ["items"]
        # An error PostgreSQL answered says who answered it too.
        failed = call_tool(server, "query", {"sql": "SELECT 1 / 0 AS n"})
        assert failed["isError"] is True and "division by zero" in failed["content"][0]["text"]
        assert (failed["_meta"][NODE_KEY]["role"], failed["_meta"][NODE_KEY]["node"]) == (
            "standby", f"127.0.0.1:{pair.standby.port}")
        assert our_backends(pair.primary) == 0
        assert our_backends(pair.standby) >= 1
        nodes = request("GET", f"{server.base}/health")[2]["database_nodes"]
        assert {(entry["node"], entry["role"]) for entry in nodes} == {(f"127.0.0.1:{pair.standby.port}", "standby")}
    finally:
        server.stop()


@pytest.mark.parametrize(("attrs", "expected"), [("read-only", "standby"), ("standby", "standby"),
                                                 ("primary", "primary"), ("read-write", "primary"),
                                                 ("any", "primary")])
def test_each_target_lands_on_the_node_it_names(pair, tmp_path, attrs, expected):
    # read-only and read-write mean the node's state, not the read-only default this server sets on its sessions
    server = start_server(pair.url(pair.primary, pair.standby, attrs=attrs), tmp_path, workers=1, threads=2)
    try:
        port = pair.standby.port if expected == "standby" else pair.primary.port
        for _ in range(3):
            assert node_of(count_items(server)) == (expected, port)
    finally:
        server.stop()


def test_reads_move_to_the_primary_when_the_standby_stops_and_back_when_it_returns(pair, tmp_path):
    url = pair.url(pair.standby, pair.primary, attrs="prefer-standby")
    server = start_server(url, tmp_path, workers=2, threads=4, env={"POOL_CONNECTION_TIMEOUT": "3000"})
    try:
        for _ in range(6):
            assert node_of(count_items(server))[0] == "standby"
        devdb.stop_cluster(pair.standby, mode="immediate")
        stopped = time.monotonic()
        outcomes = []
        for _ in range(20):
            result = count_items(server)
            outcomes.append((time.monotonic() - stopped, result["isError"], result.get("_meta")))
        failed = [outcome for outcome in outcomes if outcome[1]]
        assert not failed, failed  # the dead connections are replaced before the call, or retried once
        assert all(meta[NODE_KEY]["role"] == "primary" for _, _, meta in outcomes)
        assert outcomes[0][0] < 10, outcomes[0]
        devdb.start_cluster(pair.standby, extra_options="-c fsync=off")
        replication.wait_streaming(pair.primary)
        assert node_of(count_items(server))[0] == "primary"  # the pool keeps its fallback connections a while
    finally:
        server.stop()


def test_a_node_promoted_under_open_connections_is_reported_as_it_is_now_and_they_are_replaced(pair, tmp_path):
    server = start_server(pair.url(pair.standby, attrs="standby"), tmp_path, workers=1, threads=2,
                          env={"MAX_CONNECTIONS": "3", "WEB_CONCURRENCY": "1"})
    try:
        assert node_of(count_items(server)) == ("standby", pair.standby.port)
        pooled = our_backends(pair.standby)
        assert 1 <= pooled <= 3  # the call's, and the start-up role check's when it ran apart
        replication.promote(pair.standby)
        # Each pooled connection survives the promotion and serves one more call, which PostgreSQL's next
        # reply reports as answered by a primary; then the connection no longer fits target_session_attrs=standby
        # and is closed. Once none is left, libpq finds no standby.
        results = [count_items(server) for _ in range(pooled + 1)]
        served = [node_of(result) for result in results if not result["isError"]]
        assert served and set(served) == {("primary", pair.standby.port)}, results
        assert len(served) <= pooled
        failed = [result for result in results if result["isError"]]
        assert failed and "not in hot standby mode" in failed[-1]["content"][0]["text"]
        assert our_backends(pair.standby) == 0
    finally:
        server.stop()


def test_write_mode_refuses_to_start_on_standbys_only(pair, tmp_path):
    lines = start_up_failure(pair.url(pair.standby, user="writer"), tmp_path, env={"READ_ONLY": "false"})
    assert any("READ_ONLY=false needs a primary" in line and "answered as a standby" in line for line in lines), lines
    with pytest.raises(ConfigError, match="target_session_attrs=prefer-standby sends calls to standbys"):
        load_settings({"DATABASE_URL": pair.url(pair.primary, pair.standby, attrs="prefer-standby"),
                       "READ_ONLY": "false"})
    with pytest.raises(ConfigError, match="target_session_attrs=nearest is not one of"):
        load_settings({"DATABASE_URL": pair.url(pair.primary, attrs="nearest")})


def test_failover_writes_resume_on_the_promoted_standby_without_a_restart(pair, tmp_path):
    url = pair.url(pair.primary, pair.standby, user="writer")  # write mode asks libpq for a read-write node
    server = start_server(url, tmp_path, workers=2, threads=4,
                          env={"READ_ONLY": "false", "POOL_CONNECTION_TIMEOUT": "2000", "HEALTH_CHECK_TIMEOUT": "2000"})
    insert = "INSERT INTO items VALUES ($1, 'written') RETURNING id"
    try:
        assert node_of(call_tool(server, "query", {"sql": insert, "params": [101]})) == ("primary", pair.primary.port)
        pids = server.proc.pid
        devdb.stop_cluster(pair.primary, mode="immediate")
        # The gap: every call ends in a clear, retryable error; readiness says so.
        gap = call_tool(server, "query", {"sql": insert, "params": [102]})
        assert gap["isError"] is True
        assert "database unavailable" in gap["content"][0]["text"] and "retry" in gap["content"][0]["text"]
        assert request("GET", f"{server.base}/readyz")[0] == 503
        replication.promote(pair.standby)
        promoted = time.monotonic()
        result = wait_until(lambda: _succeeded(call_tool(server, "query", {"sql": insert, "params": [103]})),
                            timeout=30, what="a write on the promoted standby")
        assert node_of(result) == ("primary", pair.standby.port)
        assert time.monotonic() - promoted < 30
        assert request("GET", f"{server.base}/readyz")[0] == 200
        for key in range(104, 110):  # every later call succeeds, in whichever worker
            assert node_of(call_tool(server, "query", {"sql": insert, "params": [key]}))[0] == "primary"
        assert server.proc.pid == pids and server.proc.poll() is None
        log = server.log_path.read_text()
        assert "Worker exiting" not in log and "WORKER TIMEOUT" not in log
    finally:
        server.stop()


def test_failover_through_pgbouncer_resumes_once_the_pooler_points_at_the_new_primary(pair, tmp_path):
    # What docs/performance.md advises for failover: a call waiting for a server gives up within seconds (not
    # PgBouncer's default 120 s), and a failed server login is retried after 1 s (not 15 s).
    bouncer = pooler.start_pgbouncer(pair.primary, pair.primary.base.parent / "pgbouncer",
                                     users={"writer": pair.password, "postgres": "console only"}, ignore_options=True,
                                     settings={"query_wait_timeout": "5", "server_login_retry": "1"})
    server = start_server(bouncer.url(user="writer", password=pair.password, dbname="app"), tmp_path, workers=2,
                          threads=4, env={"READ_ONLY": "false", "POOL_CONNECTION_TIMEOUT": "2000"})
    insert = "INSERT INTO items VALUES ($1, 'written') RETURNING id"
    try:
        assert node_of(call_tool(server, "query", {"sql": insert, "params": [201]})) == ("primary", bouncer.port)
        devdb.stop_cluster(pair.primary, mode="immediate")
        gap = call_tool(server, "query", {"sql": insert, "params": [202]})
        assert gap["isError"] is True, gap  # within query_wait_timeout
        text = gap["content"][0]["text"]
        assert text.startswith("database unavailable") and text.endswith("retry later")
        replication.promote(pair.standby)
        bouncer.repoint(pair.standby)  # what a failover hook (Patroni's, a script) does
        result = wait_until(lambda: _succeeded(call_tool(server, "query", {"sql": insert, "params": [203]})),
                            timeout=30, what="a write through PgBouncer on the promoted standby")
        assert node_of(result) == ("primary", bouncer.port)
        for key in range(204, 210):
            assert node_of(call_tool(server, "query", {"sql": insert, "params": [key]}))[0] == "primary"
        landed = devdb.psql(pair.standby, dbname="app", sql="SELECT count(*) FROM items WHERE id BETWEEN 203 AND 209")
        assert landed.strip() == "7"
        assert server.proc.poll() is None
    finally:
        server.stop()
        bouncer.stop()


def _succeeded(result: dict[str, Any]) -> dict[str, Any] | None:
    return None if result["isError"] else result


def _standby_received_more_than_replayed(standby: devdb.Cluster) -> bool:
    return devdb.psql(standby, sql="SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()").strip() == "t"


def test_the_stale_read_guard_moves_or_refuses_calls_on_a_lagging_standby(pair, tmp_path):
    prefer = pair.url(pair.primary, pair.standby, attrs="prefer-standby")
    guarded = start_server(prefer, tmp_path, workers=2, threads=4, env={"MAX_REPLICA_LAG": "1"})
    standby_only = start_server(pair.url(pair.primary, pair.standby, attrs="standby"), tmp_path, workers=1,
                                threads=2, env={"MAX_REPLICA_LAG": "1"})
    unguarded = start_server(prefer, tmp_path, workers=1, threads=2)
    probe = {"sql": "SELECT count(*) AS n FROM items WHERE id = 1000"}
    try:
        for server in (guarded, standby_only, unguarded):
            result = call_tool(server, "query", probe)
            assert node_of(result) == ("standby", pair.standby.port)
        assert 0 <= call_tool(guarded, "query", probe)["_meta"][NODE_KEY]["lag_s"] < 1

        replication.pause_replay(pair.standby)
        devdb.psql(pair.primary, dbname="app", sql="INSERT INTO items VALUES (1000, 'fresh')")
        inserted = time.monotonic()
        wait_until(lambda: _standby_received_more_than_replayed(pair.standby), what="WAL waiting to be replayed")

        # Within MAX_REPLICA_LAG a standby may answer; after it, a call sees the row or is refused, never 0 rows.
        seen = []
        while time.monotonic() - inserted < 4:
            started = time.monotonic() - inserted
            result = call_tool(guarded, "query", probe)
            seen.append((started, result["structuredContent"]["rows"][0]["n"], result["_meta"][NODE_KEY]))
        late = [(n, meta["role"]) for started, n, meta in seen if started > 1.0]
        assert late and set(late) == {(1, "primary")}, seen

        discarded = total(scrape(standby_only), "postgres_mcp_pool_discarded_total")
        for _ in range(5):
            refused = call_tool(standby_only, "query", probe)
            assert refused["isError"] is True
            text = refused["content"][0]["text"]
            assert text.startswith(f"stale read refused: the standby 127.0.0.1:{pair.standby.port} is ")
            assert "s behind the primary (MAX_REPLICA_LAG=1)" in text and "nothing was run" in text
        samples = scrape(standby_only)
        assert total(samples, "postgres_mcp_tool_calls_total", tool="query", outcome="stale") == 5
        # Each refusal closes the lagging connection and tries once more, where libpq lands on the same standby:
        # at most one new connection per host listed, not one per pool slot.
        assert total(samples, "postgres_mcp_pool_discarded_total") - discarded <= 5 * 2

        # Without the guard the standby still answers, and the result says how far behind it is.
        stale = call_tool(unguarded, "query", probe)
        assert stale["structuredContent"]["rows"] == [{"n": 0}]
        assert stale["_meta"][NODE_KEY]["role"] == "standby" and stale["_meta"][NODE_KEY]["lag_s"] > 1

        def health_lag() -> float | None:  # measured again at most every 5 s, on a call's connection
            call_tool(unguarded, "query", probe)
            nodes = request("GET", f"{unguarded.base}/health")[2]["database_nodes"]
            assert [entry["role"] for entry in nodes] == ["standby"]
            return nodes[0]["replay_lag_seconds"] if nodes[0]["replay_lag_seconds"] > 1 else None

        assert wait_until(health_lag, timeout=20, interval=0.5, what="/health showing the replay lag") > 1

        replication.resume_replay(pair.standby)
        result = wait_until(lambda: _succeeded(call_tool(standby_only, "query", probe)), timeout=30,
                            what="the standby serving again once it caught up")
        assert node_of(result) == ("standby", pair.standby.port)
        assert result["structuredContent"]["rows"] == [{"n": 1}]
    finally:
        for server in (guarded, standby_only, unguarded):
            server.stop()


def test_a_standby_that_stopped_receiving_wal_is_not_taken_for_current(pair, tmp_path):
    # One host: nowhere to move, so the guard refuses at once and keeps its connection (nothing to reopen).
    server = start_server(pair.url(pair.standby), tmp_path, workers=1, threads=2, env={"MAX_REPLICA_LAG": "1"})
    probe = {"sql": "SELECT count(*) AS n FROM items WHERE id = 1000"}
    conninfo = devdb.psql(pair.standby, sql="SHOW primary_conninfo").strip()
    try:
        assert node_of(call_tool(server, "query", probe))[0] == "standby"
        devdb.psql(pair.standby, sql="ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'")
        devdb.psql(pair.standby, sql="SELECT pg_reload_conf()")
        wait_until(lambda: devdb.psql(pair.standby, sql="SELECT count(*) FROM pg_stat_wal_receiver").strip() == "0",
                   what="the standby's WAL receiver gone")
        devdb.psql(pair.primary, dbname="app", sql="INSERT INTO items VALUES (1000, 'unseen')")
        time.sleep(1.5)  # replay has caught up with all it received, yet it misses the row: not current
        discarded = total(scrape(server), "postgres_mcp_pool_discarded_total")
        for _ in range(3):
            refused = call_tool(server, "query", probe)
            assert refused["isError"] is True, refused
            assert refused["content"][0]["text"].startswith("stale read refused: the standby")
        assert total(scrape(server), "postgres_mcp_pool_discarded_total") == discarded
        devdb.psql(pair.standby, sql=f"ALTER SYSTEM SET primary_conninfo = '{conninfo.replace(chr(39), chr(39) * 2)}'")
        devdb.psql(pair.standby, sql="SELECT pg_reload_conf()")
        result = wait_until(lambda: _succeeded(call_tool(server, "query", probe)), timeout=30,
                            what="the standby serving again once it streams and has replayed the row")
        assert result["structuredContent"]["rows"] == [{"n": 1}]
    finally:
        server.stop()


def test_cancellation_reaches_a_statement_on_any_host(pair):
    tag = "5ca1ab1e" * 2
    running = psycopg2.connect(pair.url(pair.standby), application_name=tagged_application_name(tag))
    outcome: list[BaseException] = []

    def sleep() -> None:
        try:
            with running.cursor() as cur:
                cur.execute("SELECT pg_sleep(60)")
        except psycopg2.Error as exc:
            outcome.append(exc)

    thread = threading.Thread(target=sleep)
    thread.start()
    try:
        wait_until(lambda: devdb.psql(pair.standby, sql="SELECT count(*) FROM pg_stat_activity WHERE "
                                      f"application_name = '{tagged_application_name(tag)}' AND state = 'active'"
                                      ).strip() == "1", what="the statement running on the standby")
        canceller = Canceller(dsn=pair.url(pair.primary, pair.standby), libpq_params={}, timeout_s=5)
        assert canceller.cancel(tag) == 1  # the primary has no such statement; the standby has
        thread.join(timeout=30)
        assert outcome and isinstance(outcome[0], psycopg2.errors.QueryCanceled)
    finally:
        running.cancel()
        thread.join(timeout=30)
        running.close()
