"""The one shape of a row result, shared by ``query`` and every tool that returns rows."""

from __future__ import annotations

from typing import Any

from pgmcp_http.db import ResultSet

__all__ = ["ROWS_OUTPUT_SCHEMA", "rows_payload"]

ROWS_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "columns": {
            "type": "array",
            "description": "Result columns in order; `key` is the row key when a name repeats.",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "type": {"type": "string"},
                    "key": {"type": "string"},
                },
                "required": ["name", "type"],
            },
        },
        "rows": {"type": "array", "items": {"type": "object"}, "description": "Rows as objects keyed by column."},
        "row_count": {"type": "integer", "description": "Rows returned (after truncation) or affected."},
        "truncated": {"type": "boolean"},
        "truncated_reason": {"type": "string"},
        "note": {"type": "string"},
        "command": {"type": "string", "description": "PostgreSQL's command tag, e.g. SELECT 3 or INSERT 0 1."},
    },
    "required": ["columns", "rows", "row_count", "truncated"],
}


def rows_payload(result: ResultSet) -> dict[str, Any]:
    """A ResultSet as the structured result every row-returning tool gives."""
    columns: list[dict[str, Any]] = []
    for col in result.columns:
        entry: dict[str, Any] = {"name": col.name, "type": col.type}
        if col.key != col.name:
            entry["key"] = col.key
        columns.append(entry)
    payload: dict[str, Any] = {
        "columns": columns,
        "rows": result.rows,
        "row_count": result.rowcount if result.rowcount >= 0 else len(result.rows),
        "truncated": result.truncated,
    }
    if result.truncated and result.truncated_reason:
        payload["truncated_reason"] = result.truncated_reason
        payload["note"] = (
            f"Only the first {len(result.rows)} rows are shown ({result.truncated_reason}); "
            "add a WHERE clause, an aggregate or a LIMIT to see the rest."
        )
    if result.command:
        payload["command"] = result.command
    return payload
