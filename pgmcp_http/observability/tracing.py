"""OpenTelemetry traces: one server span per MCP request, a client span for its database work.

Off and free unless the ``OTEL_*`` variables ask for traces (see config.py):
then, in each gunicorn worker after fork (a batch exporter owns a thread,
which must not be forked), the SDK is imported and an OTLP/HTTP exporter set
up; the SDK reads its other ``OTEL_*`` variables (sampler, batch delays,
headers) itself. Until then every method here is a cheap no-op, and the
OpenTelemetry packages are not even imported.

Spans follow the OpenTelemetry semantic conventions for MCP: the name is
``{mcp.method.name} {target}`` (the tool or prompt name), kind SERVER, with
``mcp.method.name``, ``mcp.protocol.version``, ``mcp.session.id`` (a digest of
the session id, which is a credential), ``gen_ai.tool.name``,
``gen_ai.operation.name``, ``jsonrpc.request.id``, ``mcp.resource.uri`` and,
on failure, ``error.type`` (the JSON-RPC code, or ``tool_error``). The parent
comes from ``params._meta`` (``traceparent``/``tracestate``) as the
conventions prefer, else from the HTTP headers; when both are present the
header context is linked. The database span (kind CLIENT,
``db.system.name=postgresql``, ``db.query.summary``, never a value) is what
the sqlcommenter comment names, so ``pg_stat_activity`` and PostgreSQL's log
lead back to it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from urllib.parse import quote

from pgmcp_http.identity import Caller

__all__ = ["ServerSpan", "Tracing", "incoming_trace_id", "sqlcomment"]

log = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_PROPAGATED = ("traceparent", "tracestate")


def incoming_trace_id(*carriers: Mapping[str, Any] | None) -> str | None:
    """The trace id of the first valid ``traceparent`` among ``carriers`` (for the audit record when
    this server does not trace itself)."""
    for carrier in carriers:
        value = carrier.get("traceparent") if carrier else None
        match = _TRACEPARENT.match(value) if isinstance(value, str) else None
        if match is not None and match.group(1) != "0" * 32:
            return match.group(1)
    return None


def sqlcomment(fields: Mapping[str, str]) -> str:
    """A sqlcommenter comment: keys sorted, values URL-encoded and single-quoted, so that nothing in it can
    close the comment or open a string (``*``, ``/`` and ``'`` are all percent-encoded)."""
    parts = ",".join(f"{quote(key, safe='')}='{quote(value, safe='')}'" for key, value in sorted(fields.items()))
    return f"/*{parts}*/"


class ServerSpan:
    """What the web layer tells a server span once the request is answered (a no-op when not tracing)."""

    def __init__(self, span: Any = None) -> None:
        self._span = span

    @property
    def trace_id(self) -> str | None:
        if self._span is None:
            return None
        context = self._span.get_span_context()
        return f"{context.trace_id:032x}" if context.is_valid else None

    def finish(self, *, version: str | None, error_code: int | None = None, error_message: str | None = None,
               tool_error: bool = False) -> None:
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        if version is not None:
            self._span.set_attribute("mcp.protocol.version", version)
        error_type = str(error_code) if error_code is not None else "tool_error" if tool_error else None
        if error_code is not None:
            self._span.set_attribute("rpc.response.status_code", str(error_code))
        if error_type is not None:
            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, error_message))


_IDLE = ServerSpan()


class Tracing:
    """The worker's tracer, or nothing at all when tracing is off."""

    def __init__(self, *, enabled: bool, service_name: str, sqlcommenter: bool, version: str) -> None:
        self.enabled = enabled
        self.service_name = service_name
        self.sqlcommenter = sqlcommenter
        self.version = version
        self._provider: Any = None
        self._tracer: Any = None
        self._propagator: Any = None

    @property
    def active(self) -> bool:
        return self._tracer is not None

    def start_worker(self) -> None:
        """Set up the SDK and the OTLP/HTTP exporter in this process (gunicorn ``post_fork``)."""
        if not self.enabled or self._tracer is not None:
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = TracerProvider(resource=Resource.create({"service.name": self.service_name,
                                                                  "service.version": self.version}))
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("pgmcp_http", self.version)
        self._propagator = TraceContextTextMapPropagator()
        log.info("tracing on: spans go to the OTLP/HTTP collector named by OTEL_EXPORTER_OTLP_*")

    def shutdown(self) -> None:
        """Flush and stop the exporter (worker exit)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = self._tracer = None

    def server_span(self, *, method: str, request_id: Any, params: Mapping[str, Any] | None,
                    headers: Mapping[str, str], session_id: str | None = None, caller: Caller | None = None,
                    ) -> AbstractContextManager[ServerSpan]:
        """The span of one MCP request (``params`` and ``headers`` carry the caller's trace context)."""
        if self._tracer is None:
            return nullcontext(_IDLE)
        return self._server_span(method, request_id, params, headers, session_id, caller)

    @contextmanager
    def _server_span(self, method: str, request_id: Any, params: Mapping[str, Any] | None,
                     headers: Mapping[str, str], session_id: str | None,
                     caller: Caller | None) -> Iterator[ServerSpan]:
        from opentelemetry.trace import Link, SpanKind, get_current_span

        params = params or {}
        meta = params.get("_meta")
        meta_carrier = {key: meta[key] for key in _PROPAGATED if isinstance(meta, Mapping)
                        and isinstance(meta.get(key), str)}
        header_carrier = {key: headers[key] for key in _PROPAGATED if headers.get(key)}
        parent = self._propagator.extract(meta_carrier) if meta_carrier else None
        links = []
        if header_carrier:
            from_headers = self._propagator.extract(header_carrier)
            if parent is None:
                parent = from_headers
            else:
                linked = get_current_span(from_headers).get_span_context()
                if linked.is_valid:
                    links.append(Link(linked))
        attributes: dict[str, Any] = {"mcp.method.name": method, "network.transport": "tcp",
                                      "network.protocol.name": "http"}
        target = params.get("name") if method in ("tools/call", "prompts/get") else None
        if method == "tools/call" and isinstance(target, str):
            attributes.update({"gen_ai.tool.name": target, "gen_ai.operation.name": "execute_tool"})
        if method == "prompts/get" and isinstance(target, str):
            attributes["gen_ai.prompt.name"] = target
        if method == "resources/read" and isinstance(params.get("uri"), str):
            attributes["mcp.resource.uri"] = params["uri"]
        if request_id is not None:
            attributes["jsonrpc.request.id"] = str(request_id)
        if caller is not None and caller.identifies:  # the anonymous caller of an open server adds nothing
            attributes.update(_caller_attributes(caller))
        if session_id:
            attributes["mcp.session.id"] = hashlib.sha256(session_id.encode()).hexdigest()[:32]
        name = f"{method} {target}" if isinstance(target, str) else method
        with self._tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, links=links,
                                                attributes=attributes) as span:
            yield ServerSpan(span)

    def database_span(self, tool: str, summary: Callable[[], str]) -> AbstractContextManager[str | None]:
        """The CLIENT span around a tool's transaction; yields the sqlcommenter comment for its statements
        (None when tracing or SQLCOMMENTER is off). Fits Toolbox's DatabaseTracer."""
        if self._tracer is None:
            return nullcontext(None)
        return self._database_span(tool, summary)

    @contextmanager
    def _database_span(self, tool: str, summary: Callable[[], str]) -> Iterator[str | None]:
        from opentelemetry.trace import SpanKind

        query_summary = summary()
        attributes = {"db.system.name": "postgresql", "db.query.summary": query_summary,
                      "db.operation.name": query_summary.split(" ", 1)[0], "gen_ai.tool.name": tool}
        with self._tracer.start_as_current_span(query_summary, kind=SpanKind.CLIENT, attributes=attributes):
            comment = None
            if self.sqlcommenter:
                carrier: dict[str, str] = {}
                self._propagator.inject(carrier)
                comment = sqlcomment({**carrier, "tool": tool})
            yield comment


def _caller_attributes(caller: Caller) -> dict[str, str]:
    """Who asked, as span attributes: the subject (``enduser.id``), its role and, for an OAuth caller, the
    token's issuer, client and scopes. Never the token."""
    attributes = {"enduser.id": caller.subject}
    if caller.role is not None:
        attributes["pgmcp.caller.role"] = caller.role
    if caller.issuer is not None:
        attributes["pgmcp.caller.issuer"] = caller.issuer
    if caller.client_id is not None:
        attributes["pgmcp.caller.client_id"] = caller.client_id
    if caller.scopes is not None:
        attributes["enduser.scope"] = " ".join(sorted(caller.scopes))
    return attributes
