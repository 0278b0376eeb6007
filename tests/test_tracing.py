"""Tracing: spans reach an OTLP/HTTP collector parented to the caller's trace, and PostgreSQL sees it.

A small OTLP/HTTP receiver on loopback decodes what the server exports with
``opentelemetry-proto``; a running ``pg_sleep`` shows the sqlcommenter
comment (the database span's traceparent and the tool) in ``pg_stat_activity``.
"""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pgmcp_http.observability.tracing import incoming_trace_id, sqlcomment
from tests.helpers import call_tool, modern_meta, rpc, start_server, wait_until


class Receiver(http.server.ThreadingHTTPServer):
    """Collects every span POSTed to /v1/traces."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    def by_trace(self, trace_id: str) -> list[Any]:
        with self.lock:
            return [span for span in self.spans if span.trace_id.hex() == trace_id]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        receiver: Receiver = self.server  # type: ignore[assignment]
        with receiver.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    receiver.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def traced(pg, receiver, tmp_path_factory):
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}"
    server = start_server(pg.readonly_url, tmp_path_factory.mktemp("traced"), workers=2, threads=4,
                          env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
                               "OTEL_SERVICE_NAME": "pgmcp-test"})
    yield server
    server.stop()


def attributes(span: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        found[kv.key] = getattr(value, value.WhichOneof("value"))
    return found


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def test_spans_follow_the_callers_trace_from_params_meta(traced, receiver):
    parent, trace_id, span_id = traceparent()
    header_parent, _, header_span = traceparent()
    body = {"name": "query", "arguments": {"sql": "SELECT count(*) AS n FROM public.orders WHERE id > $1",
                                           "params": [1]}}
    meta = {**modern_meta(), "traceparent": parent}
    reply = rpc(traced.url, "tools/call", {**body, "_meta": meta}, id="req-10",
                headers={"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "query",
                         "traceparent": header_parent})
    assert reply.body["result"]["isError"] is False
    spans = wait_until(lambda: receiver.by_trace(trace_id) if len(receiver.by_trace(trace_id)) >= 2 else None,
                       what="the server and database spans")
    server_span = next(span for span in spans if span.name == "tools/call query")
    db_span = next(span for span in spans if span is not server_span)
    assert server_span.parent_span_id.hex() == span_id and server_span.kind == server_span.SPAN_KIND_SERVER
    assert [link.span_id.hex() for link in server_span.links] == [header_span]
    attrs = attributes(server_span)
    assert attrs | {"mcp.session.id": None} == {
        "mcp.method.name": "tools/call", "gen_ai.tool.name": "query", "gen_ai.operation.name": "execute_tool",
        "jsonrpc.request.id": "req-10", "mcp.protocol.version": "2026-07-28", "network.transport": "tcp",
        "network.protocol.name": "http", "mcp.session.id": None}
    assert db_span.parent_span_id == server_span.span_id and db_span.kind == db_span.SPAN_KIND_CLIENT
    assert db_span.name == "SELECT public.orders"
    assert attributes(db_span) == {"db.system.name": "postgresql", "db.query.summary": "SELECT public.orders",
                                   "db.operation.name": "SELECT", "gen_ai.tool.name": "query"}


def test_header_context_and_errors(traced, receiver):
    parent, trace_id, span_id = traceparent()
    result = call_tool(traced, "query", {"sql": "SELECT * FROM nowhere"}, headers={"traceparent": parent})
    assert result["isError"]
    spans = wait_until(lambda: receiver.by_trace(trace_id) if len(receiver.by_trace(trace_id)) >= 2 else None,
                       what="spans of the REST call")
    server_span = next(span for span in spans if span.name == "tools/call query")
    assert server_span.parent_span_id.hex() == span_id
    assert attributes(server_span)["error.type"] == "tool_error" and server_span.status.code == 2


def test_pg_stat_activity_shows_the_sqlcommenter_comment(traced, receiver, pg):
    parent, trace_id, _ = traceparent()
    replies: list[Any] = []
    worker = threading.Thread(target=lambda: replies.append(call_tool(
        traced, "query", {"sql": "SELECT pg_sleep(3) AS slept_traced"}, headers={"traceparent": parent})))
    worker.start()
    conn = psycopg2.connect(pg.superuser_dsn())
    conn.autocommit = True  # each poll its own snapshot of pg_stat_activity (no `with conn`: that begins one)
    try:
        with conn.cursor() as cur:
            def running() -> str | None:
                cur.execute("SELECT query FROM pg_stat_activity WHERE query LIKE '%slept_traced%' "
                            "AND pid <> pg_backend_pid()")
                row = cur.fetchone()
                return row[0] if row else None

            query = wait_until(running, what="the running pg_sleep in pg_stat_activity", interval=0.05)
    finally:
        conn.close()
        worker.join(30)
    assert replies and not replies[0]["isError"], replies
    assert f"/*tool='query',traceparent='00-{trace_id}-" in query
    comment = query[query.rindex("/*"):]
    db_span = wait_until(lambda: [s for s in receiver.by_trace(trace_id) if s.kind == s.SPAN_KIND_CLIENT],
                         what="the database span")[0]
    assert f"-{db_span.span_id.hex()}-01'" in comment  # the comment names the database span itself
    assert query.index("pg_sleep(3) AS slept_traced") < query.index("/*tool=")  # appended after the statement


def test_helpers_are_safe():
    assert sqlcomment({"tool": "a*/b'c"}) == "/*tool='a%2A%2Fb%27c'*/"
    assert incoming_trace_id({"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}) is None
    assert incoming_trace_id(None, {"traceparent": "00-" + "a" * 32 + "-" + "1" * 16 + "-01"}) == "a" * 32
