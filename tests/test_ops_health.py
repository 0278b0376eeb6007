"""GET /health: the guide's JSON, 200 while PostgreSQL answers and 503 when it does not."""

from __future__ import annotations

from tests.helpers import request, start_server


def test_health_has_the_guides_fields(server):
    status, _, body = request("GET", f"{server.base}/health")
    assert status == 200
    assert set(body) == {"status", "service", "version", "timestamp", "database", "connection_pool", "uptime",
                         "memory_usage"}
    assert body["status"] == "healthy" and body["database"] == "connected"
    assert body["service"] == "postgres-mcp-server"
    assert set(body["connection_pool"]) == {"total", "active", "idle"}
    assert body["connection_pool"]["total"] == 5  # MAX_CONNECTIONS=10 over 2 workers
    assert body["memory_usage"]["rss"].endswith("MB")
    assert body["timestamp"].endswith("Z") and isinstance(body["uptime"], int)


def test_health_is_503_with_an_error_when_the_database_is_unreachable(pg, tmp_path):
    from pgmcp_http import devdb

    dead = f"postgresql://mcp_readonly:s3cret-pw@127.0.0.1:{devdb.free_port()}/sampledb"
    server = start_server(dead, tmp_path, workers=1, threads=2, env={"POOL_CONNECTION_TIMEOUT": "1000"})
    try:
        status, _, body = request("GET", f"{server.base}/health")
        assert status == 503
        assert body["status"] == "unhealthy" and body["database"] == "disconnected"
        assert "database unavailable" in body["error"] and "Connection refused" in body["error"]
        assert "s3cret-pw" not in str(body)
        assert set(body) >= {"status", "service", "version", "timestamp", "database", "connection_pool",
                             "uptime", "memory_usage"}
        status, _, result = request("POST", f"{server.base}/mcp/tools/call",
                                    {"name": "query", "arguments": {"sql": "SELECT 1"}},
                                    headers={"Content-Type": "application/json"})
        assert status == 200 and result["isError"] is True
        assert "database unavailable" in result["content"][0]["text"]
        assert "s3cret-pw" not in server.log_path.read_text()
    finally:
        server.stop()


def test_health_can_be_disabled(pg, tmp_path):
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=1, env={"HEALTH_CHECK_ENABLED": "false"})
    try:
        status, _, _ = request("GET", f"{server.base}/health")
        assert status == 404
    finally:
        server.stop()
