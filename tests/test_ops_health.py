"""Probes: /health (the guide's JSON, for the whole container), /livez and /readyz."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devkit import devdb
from tests.helpers import call_tool, request, scrape, start_server, total, wait_until

GUIDE_FIELDS = {"status", "service", "version", "timestamp", "database", "connection_pool", "uptime", "memory_usage"}
OURS = {"database_nodes"}


def test_health_has_the_guides_fields(server):
    # MAX_CONNECTIONS=10 over 2 workers: the container's pool, whichever worker answers.
    wait_until(lambda: request("GET", f"{server.base}/health")[2]["connection_pool"]["total"] == 10,
               what="both workers' pools counted")
    for _ in range(4):
        status, headers, body = request("GET", f"{server.base}/health")
        assert status == 200
        assert set(body) == GUIDE_FIELDS | OURS
        assert body["status"] == "healthy" and body["database"] == "connected"
        assert body["service"] == "postgres-mcp-server"
        assert set(body["connection_pool"]) == {"total", "active", "idle"}
        assert body["connection_pool"]["total"] == 10
        assert set(body["memory_usage"]) == {"rss", "heap_used", "heap_total"}
        assert body["memory_usage"]["rss"].endswith("MB")
        assert body["timestamp"].endswith("Z") and isinstance(body["uptime"], int)
        assert headers["cache-control"] == "no-store"


def test_health_names_the_node_each_workers_connections_are_on(server):
    for _ in range(6):
        assert call_tool(server, "query", {"sql": "SELECT 1"})["isError"] is False
    port = server.env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]
    nodes = request("GET", f"{server.base}/health")[2]["database_nodes"]
    assert nodes, "no worker reports a connection"
    assert {(entry["node"], entry["role"]) for entry in nodes} == {(f"127.0.0.1:{port}", "primary")}
    assert all(isinstance(entry["worker"], int) and entry["connections"] >= 1 for entry in nodes)
    assert len({entry["worker"] for entry in nodes}) == len(nodes)  # one entry per worker and node


def test_health_is_503_with_an_error_when_the_database_is_unreachable(pg, tmp_path):
    dead = f"postgresql://mcp_readonly:s3cret-pw@127.0.0.1:{devdb.free_port()}/sampledb"
    server = start_server(dead, tmp_path, workers=1, threads=2, env={"POOL_CONNECTION_TIMEOUT": "1000"})
    try:
        status, _, body = request("GET", f"{server.base}/health")
        assert status == 503
        assert body["status"] == "unhealthy" and body["database"] == "disconnected"
        assert "database unavailable" in body["error"] and "Connection refused" in body["error"]
        assert "s3cret-pw" not in str(body)
        assert set(body) == GUIDE_FIELDS | OURS | {"error"}
        assert body["database_nodes"] == []
        assert request("GET", f"{server.base}/readyz")[0] == 503
        assert request("GET", f"{server.base}/livez")[0] == 200
        result = call_tool(server, "query", {"sql": "SELECT 1"})
        assert result["isError"] is True
        assert "database unavailable" in result["content"][0]["text"]
        assert "s3cret-pw" not in server.log_path.read_text()
    finally:
        server.stop()


def test_health_can_be_disabled_but_livez_and_readyz_stay(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1, env={"HEALTH_CHECK_ENABLED": "false"})
    try:
        status, _, body = request("GET", f"{server.base}/health")
        assert status == 404 and "HEALTH_CHECK_ENABLED=false" in body["error"]
        status, _, body = request("GET", f"{server.base}/livez")
        assert (status, body) == (200, {"status": "alive"})
        status, _, body = request("GET", f"{server.base}/readyz")
        assert (status, body) == (200, {"status": "ready"})
    finally:
        server.stop()


def test_health_answers_at_once_while_every_pool_connection_is_busy(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=6,
                          env={"MAX_CONNECTIONS": "1", "POOL_CONNECTION_TIMEOUT": "10000"})
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            busy = [pool.submit(call_tool, server, "query", {"sql": "SELECT pg_sleep(1)"}) for _ in range(2)]
            wait_until(lambda: total(scrape(server), "postgres_mcp_pool_waiting") == 1,
                       what="one call holding the only connection and one waiting")
            started = time.monotonic()
            status, _, body = request("GET", f"{server.base}/health")
            assert time.monotonic() - started < 1.0
            assert status == 200 and body["database"] == "connected"
            assert body["connection_pool"] == {"total": 1, "active": 1, "idle": 0}
            assert request("GET", f"{server.base}/readyz")[0] == 200
            assert all(future.result()["isError"] is False for future in busy)
        assert total(scrape(server), "postgres_mcp_pool_wait_seconds_count") >= 1
    finally:
        server.stop()


@pytest.fixture
def throwaway_cluster():
    """A PostgreSQL cluster of its own, to stop and start without disturbing the session's."""
    base = Path(tempfile.mkdtemp(prefix="pgmcp-outage-"))
    os.chmod(base, 0o755)
    cluster = devdb.create_cluster(base / "pg", devdb.free_port())
    devdb.start_cluster(cluster, extra_options="-c fsync=off")
    url = devdb.load_sample(cluster, password="outage-" + secrets.token_urlsafe(12))
    try:
        yield cluster, url
    finally:
        devdb.stop_cluster(cluster, mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_health_follows_postgresql_down_and_up_while_livez_stays_200(throwaway_cluster, tmp_path):
    cluster, url = throwaway_cluster
    server = start_server(url, tmp_path, workers=2, threads=2, env={"HEALTH_CHECK_TIMEOUT": "1000"})
    livez: list[int] = []
    stop = threading.Event()

    def watch_livez() -> None:
        while not stop.is_set():
            livez.append(request("GET", f"{server.base}/livez", timeout=5)[0])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_livez)
    watcher.start()
    try:
        assert request("GET", f"{server.base}/health")[0] == 200
        assert call_tool(server, "query", {"sql": "SELECT 1 AS one"})["isError"] is False

        devdb.stop_cluster(cluster, mode="fast")
        status, _, body = request("GET", f"{server.base}/health")  # the very first probe after the stop
        assert status == 503 and body["database"] == "disconnected"
        assert request("GET", f"{server.base}/readyz")[0] == 503
        assert total(scrape(server), "postgres_mcp_database_connected") == 0

        devdb.start_cluster(cluster, extra_options="-c fsync=off")
        status, _, body = request("GET", f"{server.base}/health")  # and the first one after the start
        assert status == 200 and body["database"] == "connected"
        assert request("GET", f"{server.base}/readyz")[0] == 200
        assert total(scrape(server), "postgres_mcp_database_connected") == 1
        assert call_tool(server, "query", {"sql": "SELECT 1 AS one"})["isError"] is False
    finally:
        stop.set()
        watcher.join()
        server.stop()
    assert len(livez) > 5 and set(livez) == {200}
