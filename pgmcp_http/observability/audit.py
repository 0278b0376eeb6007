"""The audit trail: one JSON line per ``tools/call`` and ``resources/read``, whatever its outcome.

Written to ``AUDIT_LOG`` (``stdout``, the default: container platforms
collect it; a file path; or ``off``), apart from the application log, by a
:class:`~pgmcp_http.observability.lines.LineWriter`: each record is one
``write(2)`` of one line on a descriptor opened for appending, so lines from
every thread and every worker stay whole in one file.

A record says who (subject, role, client; for an OAuth caller also the
token's issuer, the OAuth client acting for the user and the scopes granted), what (method, tool or resource,
the statement's text and/or its ``pglast`` fingerprint per ``AUDIT_SQL``, the
number and JSON types of the parameters), and how it ended (rows, bytes,
truncated, duration, outcome and reason). It never holds a token, a
password, a parameter value or a result value: values are not in the
:class:`~pgmcp_http.callrecord.CallRecord` to begin with, reasons are scrubbed
of bound values, and configured secrets are redacted from the finished line.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from pglast import parser

from pgmcp_http.callrecord import CallRecord
from pgmcp_http.identity import Caller
from pgmcp_http.observability.lines import LineWriter, json_line

__all__ = ["OUTCOMES", "AuditTrail", "audit_outcome", "fingerprint"]

OUTCOMES = ("ok", "refused", "error", "timeout", "cancelled", "busy")
MAX_SQL_CHARS = 10_000

_KEPT = {"ok": "ok", "refused": "refused", "timeout": "timeout", "cancelled": "cancelled", "busy": "busy"}


def audit_outcome(detail: str | None, rpc_error: bool) -> str:
    """One of OUTCOMES from the toolbox's precise outcome (``db_error``, ``busy``...) or, for calls that
    never reached a tool (unknown tool, bad params, resources), from whether the reply was an error."""
    if detail is not None:
        return _KEPT.get(detail, "error")
    return "error" if rpc_error else "ok"


@functools.lru_cache(maxsize=4096)
def fingerprint(sql: str) -> str | None:
    """PostgreSQL's query fingerprint (same statement shape, same fingerprint); None when unparseable."""
    try:
        return str(parser.fingerprint(sql))
    except parser.ParseError:
        return None


class AuditTrail:
    """Builds and writes audit records; with ``AUDIT_LOG=off`` it opens no record at all."""

    def __init__(self, *, target: str, sql: str, secrets: Iterable[str] = ()) -> None:
        self.enabled = target != "off"
        self.sql_mode = sql
        self.lines = LineWriter(target, secrets) if self.enabled else None

    def open(self, method: str) -> CallRecord | None:
        """A record for an audited call of ``method``, or None when auditing is off."""
        return CallRecord(method=method) if self.enabled else None

    def write(self, record: CallRecord, *, request_id: str | None, trace_id: str | None, caller: Caller | None,
              bytes_sent: int | None, seconds: float, rpc_error: str | None) -> None:
        """Write ``record`` as one line; ``rpc_error`` is the JSON-RPC error message when the reply was one."""
        if self.lines is None:
            return
        entry: dict[str, Any] = {
            "time": self.lines.clock.now(),
            "request_id": request_id,
            "trace_id": trace_id,
            "subject": caller.subject if caller is not None else None,
            "role": caller.role if caller is not None else None,
            "issuer": caller.issuer if caller is not None else None,
            "client_id": caller.client_id if caller is not None else None,
            "scopes": sorted(caller.scopes) if caller is not None and caller.scopes is not None else None,
            "client_name": record.client_name,
            "client_version": record.client_version,
            "protocol_version": record.protocol_version,
            "method": record.method,
            "tool": record.tool,
            "resource": record.resource,
            "sql_fingerprint": None,
            "sql": None,
            "param_count": len(record.param_types) if record.param_types is not None else None,
            "param_types": record.param_types,
            "rows": record.rows,
            "bytes": bytes_sent,
            "truncated": record.truncated,
            "node": record.node,
            "node_role": record.node_role,
            "duration_ms": round(seconds * 1000, 2),
            "outcome": audit_outcome(record.outcome, rpc_error is not None),
            "reason": record.reason or rpc_error,
        }
        if record.sql is not None and self.sql_mode != "off":
            entry["sql_fingerprint"] = fingerprint(record.sql)
            if self.sql_mode == "text":
                entry["sql"] = record.sql[:MAX_SQL_CHARS]
        self.lines.write(json_line(entry))
