"""What one request leaves behind: its server span and, for audited calls, exactly one audit record.

``tools/call`` and ``resources/read`` (from ``POST /mcp`` or the REST route)
get a :class:`~pgmcp_http.callrecord.CallRecord` that the layers below fill
in; leaving the ``with`` block writes it, whatever happened inside: a reply,
a refusal, a timeout, an exception, a client gone before the answer. Other
methods get only the span. With auditing and tracing both off this is a
couple of attribute reads per request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from pgmcp_http.callrecord import CallRecord
from pgmcp_http.fairshare import Busy
from pgmcp_http.identity import Caller
from pgmcp_http.observability.tracing import ServerSpan, incoming_trace_id
from pgmcp_http.runtime import Runtime
from pgmcp_http.web.exchange import current, note

__all__ = ["AUDITED_METHODS", "Trail"]

AUDITED_METHODS = frozenset({"tools/call", "resources/read"})


class Trail:
    """The span and audit record of one request; use as a context manager around the dispatch."""

    def __init__(self, runtime: Runtime, *, method: str | None, params: Mapping[str, Any] | None,
                 headers: Mapping[str, str], request_id: Any = None, is_request: bool = True) -> None:
        self.runtime = runtime
        self.method = method
        self.params = params or {}
        self.headers = headers
        self.request_id = request_id
        exchange = current()
        self.http_request_id = exchange.request_id if exchange is not None else None
        self.caller: Caller | None = exchange.identity if exchange is not None else None
        self.record: CallRecord | None = None
        if method in AUDITED_METHODS and is_request:
            self.record = runtime.audit.open(method)
        if self.record is not None:
            name, uri = self.params.get("name"), self.params.get("uri")
            self.record.tool = name if method == "tools/call" and isinstance(name, str) else None
            self.record.resource = uri if method == "resources/read" and isinstance(uri, str) else None
        self.span = ServerSpan()
        self._span_cm: Any = None
        self._started = time.perf_counter()
        self._error: str | None = None
        self._bytes: int | None = None

    def __enter__(self) -> Trail:
        if isinstance(self.method, str):
            self._span_cm = self.runtime.tracing.server_span(
                method=self.method, request_id=self.request_id, params=self.params, headers=self.headers,
                session_id=self.headers.get("Mcp-Session-Id"), caller=self.caller)
            self.span = self._span_cm.__enter__()
        return self

    def replied(self, *, version: str | None, body: Mapping[str, Any] | None, error_code: int | None = None,
                tool_error: bool = False) -> None:
        """The protocol's answer: its revision and, when it is one, the JSON-RPC error."""
        error = body.get("error") if body is not None else None
        self._error = str(error.get("message")) if isinstance(error, Mapping) else None
        if self.record is not None and self.record.protocol_version is None:
            self.record.protocol_version = version
        self.span.finish(version=version, error_code=error_code, error_message=self._error, tool_error=tool_error)

    def turned_away(self, busy: Busy, *, surface: str) -> None:
        """The call was refused for its caller's fair share (``surface``: mcp or rest): the audit record
        says ``busy`` and why, the refusal is counted (by reason, never by caller), the access line says so."""
        if self.record is not None:
            self.record.outcome, self.record.reason = "busy", busy.message
        self.runtime.metrics.caller_refused(busy.reason, surface)
        note(outcome="busy")

    def sent(self, size: int | None) -> None:
        """The response about to go out: its size in bytes is the record's ``bytes``."""
        self._bytes = size

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        trace_id = self.span.trace_id
        if self._span_cm is not None:
            self._span_cm.__exit__(exc_type, exc, tb)
        if self.record is None:
            return
        if exc is not None and self._error is None:
            self._error = f"internal error (request id {self.http_request_id}); the server log has the details"
        meta = self.params.get("_meta")
        self.runtime.audit.write(
            self.record, request_id=self.http_request_id,
            trace_id=trace_id or incoming_trace_id(meta if isinstance(meta, Mapping) else None, self.headers),
            caller=self.caller, bytes_sent=self._bytes, seconds=time.perf_counter() - self._started,
            rpc_error=self._error)
