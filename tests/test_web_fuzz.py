"""Fuzzing the HTTP surface with hypothesis: whatever arrives, no 5xx, no traceback, no dead worker.

Messages are drawn around the real shapes (JSON-RPC envelopes with known and
unknown methods, tool calls with odd arguments, the 2026-07-28 ``_meta`` and
routing headers) as well as raw bytes, against a live gunicorn. The number of
examples is bounded so the suite stays fast.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import MODERN, modern_meta, request, start_server

METHODS = ["initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/read",
           "resources/templates/list", "server/discover", "prompts/list", "completion/complete",
           "notifications/initialized", "nope/nothing", ""]
TOOLS = ["query", "describe_table", "list_tables", "analyze_query", "database_health", "nope"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=12)
sql_texts = st.one_of(st.sampled_from(["SELECT 1", "SELECT $1", "DELETE FROM users", "SELECT * FROM users", ";;",
                                       "SELECT '\\x00'", "EXPLAIN SELECT 1", "SELECT $99999999999"]),
                      st.text(max_size=60))
arguments = st.one_of(
    st.fixed_dictionaries({"sql": sql_texts}, optional={"params": st.lists(json_values, max_size=3)}),
    st.fixed_dictionaries({}, optional={"table_name": st.text(max_size=20), "schema_name": json_values,
                                        "limit": json_values, "cursor": st.text(max_size=20)}),
    json_values,
)
params = st.one_of(
    st.fixed_dictionaries({"name": st.one_of(st.sampled_from(TOOLS), json_values), "arguments": arguments}),
    st.fixed_dictionaries({}, optional={"uri": st.one_of(st.text(max_size=40), st.just("postgres://table/public/users")),
                                        "cursor": json_values, "protocolVersion": st.text(max_size=12),
                                        "capabilities": json_values}),
    json_values,
)
messages = st.one_of(
    st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": st.sampled_from(METHODS)},
                          optional={"id": st.one_of(st.integers(), st.text(max_size=8), st.none(), json_values),
                                    "params": params}),
    json_values,
)


@pytest.fixture(scope="module")
def target(pg, tmp_path_factory):
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("fuzz"), workers=2, threads=4,
                          env={"QUERY_TIMEOUT": "2000"})
    yield server
    server.stop()


def assert_sane(status: int, body: Any) -> None:
    assert status < 500, (status, body)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else json.dumps(body)
    assert "Traceback" not in text and 'File "' not in text


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@FUZZ
@given(message=messages, modern=st.booleans(), header_name=st.one_of(st.none(), st.text(max_size=20)))
def test_json_rpc_messages(target, message, modern, header_name):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if modern and isinstance(message, dict):
        if isinstance(message.get("params"), dict):
            message["params"]["_meta"] = modern_meta()
        headers["MCP-Protocol-Version"] = MODERN
        headers["Mcp-Method"] = str(message.get("method", ""))
        if header_name is not None and header_name.isprintable() and header_name.isascii():
            headers["Mcp-Name"] = header_name
    status, _, body = request("POST", target.url, message, headers)
    assert_sane(status, body)


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), arguments.map(lambda a: json.dumps({"name": "query", "arguments": a})
                                                             .encode())))
def test_rest_calls_and_raw_bytes(target, body):
    status, _, reply = request("POST", f"{target.base}/mcp/tools/call", raw=body,
                               headers={"Content-Type": "application/json"})
    assert_sane(status, reply)
    status, _, reply = request("POST", target.url, raw=body, headers={"Content-Type": "application/json"})
    assert_sane(status, reply)


def test_every_worker_survived(target):
    """After the fuzzing, the same workers answer (none crashed and was replaced) and the log has no traceback
    from an unexpected error."""
    pids = {line.get("worker_pid") for line in target.log_lines() if line.get("worker_pid")}
    assert 1 <= len(pids) <= 2
    assert all("unhandled error" not in line.get("message", "") for line in target.log_lines())
    assert request("GET", f"{target.base}/livez")[0] == 200
