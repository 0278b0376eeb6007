"""The slow-query line: which tool call took longer than SLOW_QUERY_MS, and on what SQL.

The line must help find the query without leaking data, so it carries the
statement's *shape* only: every literal (strings, numbers, bit strings,
dollar-quoted bodies) becomes ``?`` and comments are dropped, using
PostgreSQL's own scanner (through pglast) rather than a regular expression.
Bound parameters are counted, never written. SQL the scanner cannot read is
not written at all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pglast import parser

__all__ = ["SLOW_LOGGER", "SlowCallLog", "sql_shape"]

SLOW_LOGGER = "pgmcp.slow"
MAX_SHAPE_CHARS = 2000

_LITERALS = frozenset({"SCONST", "USCONST", "ICONST", "FCONST", "BCONST", "XCONST"})
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_IDENTIFIER_ARGUMENTS = ("schema_name", "table_name")


def sql_shape(sql: str) -> str | None:
    """``sql`` with literals replaced by ``?`` and comments removed; None when it cannot be scanned."""
    try:
        tokens = parser.scan(sql)
    except parser.ParseError:
        return None
    parts: list[str] = []
    position = 0
    for token in tokens:
        parts.append(sql[position:token.start])
        if token.name in _LITERALS:
            parts.append("?")
        elif token.name not in _COMMENTS:
            parts.append(sql[token.start:token.end + 1])
        position = token.end + 1
    shape = " ".join("".join(parts).split())
    return shape if len(shape) <= MAX_SHAPE_CHARS else shape[:MAX_SHAPE_CHARS] + "..."


class SlowCallLog:
    """Writes one warning per tool call at or above ``threshold_ms`` (0 turns it off)."""

    def __init__(self, threshold_ms: int, logger: logging.Logger | None = None) -> None:
        self.threshold_ms = threshold_ms
        self.log = logger or logging.getLogger(SLOW_LOGGER)

    def tool_called(self, name: str, arguments: Mapping[str, Any], outcome: str, seconds: float) -> None:
        duration_ms = seconds * 1000
        if self.threshold_ms <= 0 or duration_ms < self.threshold_ms:
            return
        fields: dict[str, Any] = {"tool": name, "outcome": outcome, "duration_ms": round(duration_ms, 1),
                                  "slow_query_ms": self.threshold_ms}
        sql = arguments.get("sql")
        if isinstance(sql, str):
            fields["sql"] = sql_shape(sql) or f"(not scannable, {len(sql)} characters)"
        params = arguments.get("params")
        if isinstance(params, list):
            fields["param_count"] = len(params)
        for key in _IDENTIFIER_ARGUMENTS:
            if isinstance(arguments.get(key), str):
                fields[key] = arguments[key][:128]
        self.log.warning("slow tool call", extra=fields)
