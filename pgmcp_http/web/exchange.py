"""One HTTP request as the web layer tracks it, with or without Flask: id, clock, caller, log fields.

``POST /mcp`` is served by a plain WSGI function (:mod:`pgmcp_http.web.mcp`)
and the other routes by Flask; both open an :class:`Exchange` when a request
starts and close it when the response is ready. It lives in a context
variable, so the layers that need it (the access log, the request-id log
filter, the audit trail) find it the same way on either path and nothing is
kept between requests.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from pgmcp_http.identity import Caller

__all__ = ["Exchange", "begin", "current", "finish", "note", "request_id_of"]

MAX_REQUEST_ID = 128

_current: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar("pgmcp_exchange", default=None)


@dataclass
class Exchange:
    """What the web layer knows of the request being served."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    log_fields: dict[str, Any] = field(default_factory=dict)
    caller: str | None = None
    """A short digest of the credential presented (never the credential): the scope of its cancellations."""
    identity: Caller | None = None
    """Whose role the request's SQL runs as (set once the credential is accepted)."""
    token: contextvars.Token[Exchange | None] | None = None


class _RequestIds:
    """Request ids that are unique without a system call per request: a random prefix drawn per process
    (again after fork) followed by a counter, 32 hex characters like a UUID's."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count(1)  # next() on it is atomic under the GIL

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_ids = _RequestIds()


def request_id_of(incoming: str | None) -> str:
    """The caller's ``X-Request-Id`` when it is short and printable (so logs can follow a call across
    services), else a new id."""
    if incoming and len(incoming) <= MAX_REQUEST_ID and incoming.isprintable():
        return incoming
    return _ids.new()


def begin(incoming_request_id: str | None) -> Exchange:
    """Open the exchange of the request starting on this thread."""
    exchange = Exchange(request_id=request_id_of(incoming_request_id))
    exchange.token = _current.set(exchange)
    return exchange


def finish(exchange: Exchange) -> None:
    """Close ``exchange``: later log lines on this thread no longer carry its request id."""
    if exchange.token is not None:
        _current.reset(exchange.token)
        exchange.token = None


def current() -> Exchange | None:
    """The exchange of the request this thread serves, or None outside a request."""
    return _current.get()


def note(**fields: Any) -> None:
    """Attach fields to this request's access-log line (MCP method, tool, revision...)."""
    exchange = _current.get()
    if exchange is not None:
        exchange.log_fields.update({key: value for key, value in fields.items() if value is not None})
