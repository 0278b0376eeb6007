"""Raw HTTP against POST /mcp: every error path with its status code and JSON-RPC code."""

from __future__ import annotations

import json

import pytest

from pgmcp_http.protocol.sessions import SessionCodec
from tests.helpers import JSON_HEADERS, TEST_SESSION_SECRET, initialize, modern_rpc, request, rpc, session_rpc


def _error_code(body: dict) -> int:
    return body["error"]["code"]


# -- HTTP layer ---------------------------------------------------------------

def test_wrong_content_type_is_415(server):
    status, _, body = request("POST", server.url, raw=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                              headers={"Content-Type": "text/plain", "Accept": "application/json"})
    assert status == 415
    assert _error_code(body) == -32600


def test_accept_without_json_is_406(server):
    status, _, body = request("POST", server.url, {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                              headers={"Content-Type": "application/json", "Accept": "text/html"})
    assert status == 406
    assert _error_code(body) == -32600


def test_bad_json_is_400_parse_error(server):
    status, _, body = request("POST", server.url, raw=b'{"jsonrpc": "2.0", "id": 1, "method": ', headers=JSON_HEADERS)
    assert status == 400
    assert _error_code(body) == -32700
    assert body["id"] is None


def test_batch_is_refused_clearly(server):
    status, _, body = request("POST", server.url, [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
                              headers=JSON_HEADERS)
    assert status == 400
    assert _error_code(body) == -32600
    assert "batch" in body["error"]["message"]


@pytest.mark.parametrize("message", [
    {"id": 1, "method": "ping"},                       # no jsonrpc member
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1},                       # no method
    {"jsonrpc": "2.0", "id": True, "method": "ping"},  # id must be a string or an integer
    {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1, 2]},
    "just a string",
])
def test_invalid_messages_are_400_invalid_request(server, message):
    status, _, body = request("POST", server.url, message, headers=JSON_HEADERS)
    assert status == 400
    assert _error_code(body) == -32600


def test_oversized_body_is_413(server):
    big = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * (1_048_576 + 10)}}
    status, _, body = request("POST", server.url, big, headers=JSON_HEADERS)
    assert status == 413
    assert _error_code(body) == -32600


def test_foreign_origin_is_403(server):
    status, _, body = request("POST", server.url, {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                              headers={**JSON_HEADERS, "Origin": "http://evil.example"})
    assert status == 403
    assert "ALLOWED_ORIGINS" in body["error"]["message"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_get_and_delete_are_405(server, method):
    status, headers, _ = request(method, server.url, headers={"Accept": "text/event-stream"})
    assert status == 405
    assert headers["allow"] == "POST"


# -- handshake era ---------------------------------------------------------------

@pytest.mark.parametrize("asked,answered", [
    ("2024-11-05", "2024-11-05"), ("2025-03-26", "2025-03-26"), ("2025-06-18", "2025-06-18"),
    ("2025-11-25", "2025-11-25"), ("1999-01-01", "2025-11-25"), ("2026-07-28", "2025-11-25"),
])
def test_initialize_negotiates(server, asked, answered):
    reply = rpc(server.url, "initialize", {"protocolVersion": asked, "capabilities": {},
                                           "clientInfo": {"name": "t", "version": "1"}})
    assert reply.status == 200
    result = reply.body["result"]
    assert result["protocolVersion"] == answered
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["serverInfo"]["name"] == "postgres-mcp-server"
    session = reply.headers["mcp-session-id"]
    assert all(0x21 <= ord(ch) <= 0x7E for ch in session)


def test_federation_health_check_initialize(server):
    """The TAS federation probes with initialize at 2024-11-05 and no other header."""
    reply = rpc(server.url, "initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                           "clientInfo": {"name": "tas-mcp-federation", "version": "1.0.0"}})
    assert reply.status == 200
    assert reply.body["result"]["protocolVersion"] == "2024-11-05"
    assert "title" not in reply.body["result"]["serverInfo"]  # not defined before 2025-06-18


def test_notifications_are_202_without_body(server):
    session, version = initialize(server.url)
    reply = rpc(server.url, "notifications/initialized", None, id=None,
                headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": version})
    assert reply.status == 202
    assert reply.body == b""


def test_missing_session_is_400(server):
    reply = rpc(server.url, "tools/list", {})
    assert reply.status == 400
    assert _error_code(reply.body) == -32600
    assert "Mcp-Session-Id" in reply.body["error"]["message"]


def test_forged_session_is_404(server):
    session, version = initialize(server.url)
    payload, _, signature = session.rpartition(".")
    forged = f"{payload}.{'A' * len(signature)}"
    reply = session_rpc(server.url, forged, version, "tools/list")
    assert reply.status == 404
    garbage = session_rpc(server.url, "not-a-session", version, "tools/list")
    assert garbage.status == 404


def test_expired_session_is_404(server):
    issued_long_ago = SessionCodec(TEST_SESSION_SECRET.encode(), ttl_s=60, clock=lambda: 1_000_000.0)
    reply = session_rpc(server.url, issued_long_ago.issue("2025-11-25"), "2025-11-25", "tools/list")
    assert reply.status == 404
    assert "expired" in reply.body["error"]["message"]


def test_session_from_another_secret_is_404(server):
    other = SessionCodec(b"another-secret-another-secret-another", ttl_s=60)
    reply = session_rpc(server.url, other.issue("2025-11-25"), "2025-11-25", "tools/list")
    assert reply.status == 404


def test_handshake_errors(server):
    session, version = initialize(server.url)
    unknown = session_rpc(server.url, session, version, "no/such/method")
    assert (unknown.status, _error_code(unknown.body)) == (200, -32601)
    no_name = session_rpc(server.url, session, version, "tools/call", {"arguments": {}})
    assert (no_name.status, _error_code(no_name.body)) == (200, -32602)
    unknown_tool = session_rpc(server.url, session, version, "tools/call", {"name": "drop_everything"})
    assert _error_code(unknown_tool.body) == -32602
    assert "available tools: query" in unknown_tool.body["error"]["message"]
    bad_arguments = session_rpc(server.url, session, version, "tools/call", {"name": "query", "arguments": [1]})
    assert _error_code(bad_arguments.body) == -32602
    missing = session_rpc(server.url, session, version, "resources/read", {"uri": "postgres://table/public/nope"})
    assert _error_code(missing.body) == -32002
    assert missing.body["error"]["data"] == {"uri": "postgres://table/public/nope"}
    ping = session_rpc(server.url, session, version, "ping", id=0)
    assert ping.body == {"jsonrpc": "2.0", "id": 0, "result": {}}
    string_id = session_rpc(server.url, session, version, "ping", id="abc")
    assert string_id.body["id"] == "abc"


def test_schema_violations_are_tool_errors_naming_the_argument(server):
    session, version = initialize(server.url)
    reply = session_rpc(server.url, session, version, "tools/call", {"name": "query", "arguments": {"sql": 42}})
    result = reply.body["result"]
    assert result["isError"] is True
    assert "`sql`" in result["content"][0]["text"]
    missing = session_rpc(server.url, session, version, "tools/call", {"name": "describe_table", "arguments": {}})
    assert "'table_name' is a required property" in missing.body["result"]["content"][0]["text"]


# -- modern era (2026-07-28) --------------------------------------------------------

def test_discover(server):
    reply = modern_rpc(server.url, "server/discover")
    assert reply.status == 200
    result = reply.body["result"]
    assert result["supportedVersions"] == ["2026-07-28"]
    assert result["resultType"] == "complete"
    assert result["cacheScope"] == "public" and result["ttlMs"] > 0
    assert result["capabilities"]["tools"] == {"listChanged": False}
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "postgres-mcp-server"


def test_modern_tools_call_without_a_session(server):
    reply = modern_rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}})
    assert reply.status == 200
    result = reply.body["result"]
    assert result["resultType"] == "complete"
    assert result["structuredContent"]["rows"] == [{"one": 1}]
    assert "mcp-session-id" not in reply.headers


def test_modern_list_results_carry_cache_hints(server):
    for method in ("tools/list", "resources/list", "resources/templates/list"):
        result = modern_rpc(server.url, method).body["result"]
        assert result["resultType"] == "complete"
        assert result["cacheScope"] in ("public", "private")
        assert isinstance(result["ttlMs"], int)


def test_modern_missing_meta_is_400_invalid_params(server):
    reply = rpc(server.url, "tools/list", {},
                headers={"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
    assert (reply.status, _error_code(reply.body)) == (400, -32602)


def test_modern_header_mismatch_is_400(server):
    wrong_method = modern_rpc(server.url, "tools/list", headers={"Mcp-Method": "tools/call"})
    assert (wrong_method.status, _error_code(wrong_method.body)) == (400, -32020)
    wrong_name = modern_rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 1"}},
                            headers={"Mcp-Name": "list_tables"})
    assert (wrong_name.status, _error_code(wrong_name.body)) == (400, -32020)
    no_version_header = rpc(server.url, "tools/list", {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}}})
    assert (no_version_header.status, _error_code(no_version_header.body)) == (400, -32020)


def test_modern_name_header_may_be_base64(server):
    import base64
    encoded = "=?base64?" + base64.b64encode(b"query").decode() + "?="
    reply = modern_rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": "SELECT 2 AS two"}},
                       headers={"Mcp-Name": encoded})
    assert reply.status == 200
    assert reply.body["result"]["structuredContent"]["rows"] == [{"two": 2}]


def test_modern_duplicated_routing_header_is_rejected(server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/mcp")
    for name, value in [("Content-Type", "application/json"), ("Accept", "application/json"),
                        ("MCP-Protocol-Version", "2026-07-28"), ("Mcp-Method", "tools/list"),
                        ("Mcp-Method", "tools/list")]:
        conn.putheader(name, value)
    data = json.dumps(body).encode()
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    assert response.status == 400
    assert _error_code(payload) == -32020


def test_modern_unsupported_version_is_400_with_supported_list(server):
    reply = modern_rpc(server.url, "tools/list", version="2099-01-01")
    assert (reply.status, _error_code(reply.body)) == (400, -32022)
    assert reply.body["error"]["data"] == {"supported": ["2026-07-28"], "requested": "2099-01-01"}


def test_modern_unknown_and_removed_methods_are_404(server):
    for method in ("no/such/method", "ping", "initialize", "logging/setLevel"):
        reply = modern_rpc(server.url, method)
        assert (reply.status, _error_code(reply.body)) == (404, -32601), method


def test_modern_bad_params_is_400(server):
    reply = modern_rpc(server.url, "tools/call", {"arguments": {}})
    assert (reply.status, _error_code(reply.body)) == (400, -32602)


def test_modern_notification_is_202(server):
    reply = rpc(server.url, "notifications/cancelled", {"requestId": 5}, id=None,
                headers={"MCP-Protocol-Version": "2026-07-28"})
    assert reply.status == 202


def test_modern_tool_failure_is_200_with_is_error(server):
    reply = modern_rpc(server.url, "tools/call", {"name": "query", "arguments": {"sql": "DELETE FROM users"}})
    assert reply.status == 200
    assert reply.body["result"]["isError"] is True
    assert "DELETE is not allowed in read-only mode" in reply.body["result"]["content"][0]["text"]


def test_a_supported_but_different_version_header_is_answered_in_the_sessions_revision(server):
    """The transport asks for 400 only for an invalid or unsupported MCP-Protocol-Version."""
    session, _ = initialize(server.url, "2025-11-25")
    reply = rpc(server.url, "tools/list", {}, headers={"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-03-26"})
    assert reply.status == 200
    assert "outputSchema" in reply.body["result"]["tools"][0]  # shaped for the session's 2025-11-25
    unsupported = rpc(server.url, "tools/list", {}, headers={"Mcp-Session-Id": session,
                                                            "MCP-Protocol-Version": "1999-01-01"})
    assert unsupported.status == 400
