"""JSON logs: one access line per request, a slow-query line, and never a secret or a bound value."""

from __future__ import annotations

import secrets

import pytest

from pgmcp_http.observability.slowlog import sql_shape
from tests.helpers import (
    SERVER_LOGS,
    SERVER_SECRETS,
    TEST_METRICS_TOKEN,
    call_tool,
    initialize,
    request,
    session_rpc,
    start_server,
    wait_until,
)


def lines_with(server, **fields):
    return [line for line in server.log_lines() if all(line.get(k) == v for k, v in fields.items())]


def test_access_line_carries_the_request_facts_and_its_id(server):
    session, version = initialize(server.url, "2025-11-25")
    request_id = "trace-" + secrets.token_hex(6)
    reply = session_rpc(server.url, session, version, "tools/call",
                        {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}})
    assert reply.status == 200
    status, headers, _ = request("POST", server.url, {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                                      "params": {"name": "list_tables", "arguments": {}}},
                                 headers={"Content-Type": "application/json", "Accept": "application/json",
                                          "Mcp-Session-Id": session, "MCP-Protocol-Version": version,
                                          "X-Request-Id": request_id})
    assert status == 200 and headers["x-request-id"] == request_id
    [line] = wait_until(lambda: lines_with(server, request_id=request_id), what="the access line")
    assert line["logger"] == "pgmcp.access" and line["level"] == "INFO"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/mcp", 200)
    assert (line["mcp_method"], line["tool"], line["mcp_version"]) == ("tools/call", "list_tables", version)
    assert isinstance(line["duration_ms"], float | int) and line["duration_ms"] >= 0
    assert line["outcome"] == "ok"

    generated = reply.headers["x-request-id"]
    assert len(generated) == 32
    wait_until(lambda: lines_with(server, request_id=generated, tool="query"), what="the generated id logged")


def test_slow_query_line_has_the_statement_shape_never_the_values(pg, tmp_path):
    literal, bound = "literal-" + secrets.token_hex(6), "bound-" + secrets.token_hex(6)
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=2, env={"SLOW_QUERY_MS": "50"})
    try:
        fast = call_tool(server, "query", {"sql": "SELECT 1 AS one"})
        slow = call_tool(server, "query", {"sql": f"SELECT pg_sleep(0.1), $1::text AS v, '{literal}' AS w "
                                                  "-- a comment",
                                           "params": [bound]})
        assert fast["isError"] is False and slow["isError"] is False
        [line] = wait_until(lambda: lines_with(server, message="slow tool call"), what="the slow line")
        assert line["logger"] == "pgmcp.slow" and line["level"] == "WARNING"
        assert line["tool"] == "query" and line["outcome"] == "ok" and line["slow_query_ms"] == 50
        assert line["duration_ms"] >= 100
        assert line["sql"] == "SELECT pg_sleep(?), $1::text AS v, ? AS w"
        assert line["param_count"] == 1
        assert len(line["request_id"]) == 32  # the same id as the request's access line
        assert lines_with(server, request_id=line["request_id"], path="/mcp/tools/call")
        text = server.log_path.read_text()
        assert literal not in text and bound not in text
    finally:
        server.stop()


@pytest.mark.parametrize("sql,shape", [
    ("SELECT * FROM users WHERE email = 'bob@example.com' AND id > 42",
     "SELECT * FROM users WHERE email = ? AND id > ?"),
    ("select $1, 1.5e3, -7, E'a\\nb', B'101', X'ff', $$body$$, $t$x$t$", "select $1, ?, -?, ?, ?, ?, ?, ?"),
    ("SELECT 'it''s' /* secret */ -- more\n FROM t", "SELECT ? FROM t"),
    ('SELECT "Mixed Case" FROM "Sales".x', 'SELECT "Mixed Case" FROM "Sales".x'),
    ("SELECT 'unterminated", None),
])
def test_sql_shape_keeps_the_statement_and_drops_every_literal(sql, shape):
    assert sql_shape(sql) == shape


@pytest.mark.last
def test_no_server_log_of_the_session_holds_a_password_or_a_token(pg, tmp_path):
    """Runs after every other test: greps everything the session's servers wrote."""
    # Give this check something to chew on even when run alone: a token in use, wrong tokens,
    # database errors and a bad login.
    server = start_server(pg.readonly_url, tmp_path, workers=1, threads=2,
                          env={"METRICS_TOKEN": TEST_METRICS_TOKEN, "SLOW_QUERY_MS": "1"})
    try:
        request("GET", f"{server.base}/metrics", headers={"Authorization": f"Bearer {TEST_METRICS_TOKEN}"})
        request("GET", f"{server.base}/metrics", headers={"Authorization": f"Bearer {TEST_METRICS_TOKEN}x"})
        call_tool(server, "query", {"sql": "SELECT no_such_column FROM users"})
        call_tool(server, "query", {"sql": f"SELECT '{pg.readonly_password}' AS pw"})
    finally:
        server.stop()
    assert {pg.readonly_password, TEST_METRICS_TOKEN} <= SERVER_SECRETS

    leaks = []
    lines = 0
    for path in SERVER_LOGS:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            lines += 1
            leaks += [f"{path.name}:{number}: {secret[:3]}..." for secret in SERVER_SECRETS if secret in line]
    assert lines > 5
    assert leaks == []
