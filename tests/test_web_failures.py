"""A bug below POST /mcp: a 500 with a JSON-RPC error naming the request id, one audit record, a healthy app.

Nothing a client sends should reach this path (the dispatcher turns a failing
handler into a JSON-RPC error itself), so the dispatcher is replaced by one
that raises: the web layer's last line of defence is what is under test. The
app is the real one, in process, over the real test database, and serves a
real call again once the dispatcher is back.
"""

from __future__ import annotations

import json
import logging

from pgmcp_http.app import create_app
from pgmcp_http.config import load_settings
from tests.helpers import MODERN, TEST_SESSION_SECRET, modern_meta

HEADERS = {"Content-Type": "application/json", "Accept": "application/json", "MCP-Protocol-Version": MODERN,
           "Mcp-Method": "tools/call", "Mcp-Name": "query", "X-Request-Id": "boom-1"}
BODY = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "query", "arguments": {"sql": "SELECT 1 AS one"}, "_meta": modern_meta(MODERN)}})


class _Broken:
    def dispatch(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug below the web layer")


def test_an_unexpected_failure_is_a_500_json_rpc_error_and_the_app_goes_on(pg, tmp_path, caplog):
    audit = tmp_path / "audit.log"
    settings = load_settings({"DATABASE_URL": pg.readonly_url, "AUDIT_LOG": str(audit),
                              "SESSION_SECRET": TEST_SESSION_SECRET, "BIND_HOST": "127.0.0.1"})
    app = create_app(settings, configure_logs=False)
    runtime = app.extensions["pgmcp"]
    working = runtime.dispatcher
    client = app.test_client()
    try:
        runtime.dispatcher = _Broken()
        with caplog.at_level(logging.ERROR):
            reply = client.post("/mcp", data=BODY, headers=HEADERS)
        assert reply.status_code == 500 and reply.headers["X-Request-Id"] == "boom-1"
        error = reply.get_json()["error"]
        assert error["code"] == -32603 and "request id boom-1" in error["message"]
        assert "a bug below the web layer" not in reply.get_data(as_text=True)  # details stay in the log
        assert any(r.getMessage() == "unhandled error" and r.exc_info for r in caplog.records)
        registry = runtime.metrics.registry
        assert registry.get_sample_value("flask_http_request_exceptions_total",
                                         {"method": "POST", "status": "500"}) == 1
        assert registry.get_sample_value("flask_http_request_total", {"method": "POST", "status": "500"}) == 1
        [record] = [json.loads(line) for line in audit.read_text().splitlines()]
        assert record["request_id"] == "boom-1" and record["outcome"] == "error"

        runtime.dispatcher = working
        again = client.post("/mcp", data=BODY, headers={**HEADERS, "X-Request-Id": "fine-1"})
        assert again.status_code == 200
        assert again.get_json()["result"]["structuredContent"]["rows"] == [{"one": 1}]
    finally:
        runtime.dispatcher = working
        runtime.close()
