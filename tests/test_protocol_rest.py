"""The federation's REST convention: /mcp/tools/list and /mcp/tools/call."""

from __future__ import annotations

from tests.helpers import request


def test_tools_list(server):
    status, _, body = request("GET", f"{server.base}/mcp/tools/list")
    assert status == 200
    assert [tool["name"] for tool in body["tools"]] == [
        "query", "describe_table", "list_tables", "analyze_query", "database_health"]
    assert all({"name", "description", "inputSchema"} <= set(tool) for tool in body["tools"])


def test_tools_call_as_the_federation_sends_it(server):
    status, _, body = request("POST", f"{server.base}/mcp/tools/call",
                              {"name": "query", "arguments": {"sql": "SELECT COUNT(*) AS n FROM users"}},
                              headers={"Content-Type": "application/json"})
    assert status == 200
    assert body["isError"] is False
    assert body["content"][0]["type"] == "text"
    assert '"rows":[{"n":50}]' in body["content"][0]["text"]


def test_tool_failure_is_200_is_error(server):
    status, _, body = request("POST", f"{server.base}/mcp/tools/call",
                              {"name": "query", "arguments": {"sql": "DROP TABLE users"}},
                              headers={"Content-Type": "application/json"})
    assert status == 200 and body["isError"] is True


def test_client_mistakes_are_4xx_with_the_reason_first(server):
    status, _, raw = request("POST", f"{server.base}/mcp/tools/call", {"name": "nope", "arguments": {}},
                             headers={"Content-Type": "application/json"})
    assert status == 404
    assert raw["error"].startswith("unknown tool 'nope'")
    status, _, raw = request("POST", f"{server.base}/mcp/tools/call", {"arguments": {}},
                             headers={"Content-Type": "application/json"})
    assert status == 400
    status, _, _ = request("POST", f"{server.base}/mcp/tools/call", raw=b"{nope",
                           headers={"Content-Type": "application/json"})
    assert status == 400
    status, _, _ = request("POST", f"{server.base}/mcp/tools/call", raw=b"{}", headers={"Content-Type": "text/plain"})
    assert status == 415
