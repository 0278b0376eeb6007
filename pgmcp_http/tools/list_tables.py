"""``list_tables``: what tables and views exist, with size, row estimate and access."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from pgmcp_http.catalog.relations import relations_page
from pgmcp_http.db import Transaction
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec

__all__ = ["LIST_TABLES"]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "schema_name": {"type": "string", "description": "Only this schema (default: every allowed schema)."},
        "name_pattern": {"type": "string", "description": "Only names matching this case-insensitive SQL LIKE "
                                                           "pattern, e.g. 'order%' or '%log%'."},
        "include_partitions": {"type": "boolean", "default": False,
                               "description": "Also list partitions (by default they are folded under their "
                                              "partitioned table, which reports how many it has)."},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT,
                  "description": "Entries per page."},
        "cursor": {"type": "string", "description": "`next_cursor` of the previous page, to continue."},
    },
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tables": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "schema": {"type": "string"},
                    "name": {"type": "string"},
                    "kind": {"type": "string"},
                    "owner": {"type": "string"},
                    "total_bytes": {"type": "integer"},
                    "total_size": {"type": "string"},
                    "row_estimate": {"type": ["integer", "null"]},
                    "analyzed": {"type": "boolean"},
                    "partitions": {"type": "integer"},
                    "partition_of": {"type": "object"},
                    "can_select": {"type": "boolean"},
                    "comment": {"type": ["string", "null"]},
                },
                "required": ["schema", "name", "kind"],
            },
        },
        "count": {"type": "integer"},
        "next_cursor": {"type": "string"},
    },
    "required": ["tables", "count"],
}


def run_list_tables(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    page = relations_page(
        tx,
        ctx.visibility(tx),
        schema=args.get("schema_name"),
        name_pattern=args.get("name_pattern"),
        include_partitions=bool(args.get("include_partitions", False)),
        after=_decode_cursor(args.get("cursor")),
        limit=int(args.get("limit", DEFAULT_LIMIT)),
    )
    result: dict[str, Any] = {"tables": page.relations, "count": len(page.relations)}
    if page.next_after is not None:
        result["next_cursor"] = _encode_cursor(page.next_after)
    return result


def _encode_cursor(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(after))).decode("ascii")


def _decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    if cursor is None:
        return None
    try:
        schema, name = orjson.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if isinstance(schema, str) and isinstance(name, str):
            return schema, name
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        pass
    raise ToolError(f"invalid cursor {cursor[:40]!r}; pass the next_cursor of a previous list_tables result")


LIST_TABLES = ToolSpec(
    name="list_tables",
    title="List tables and views",
    description=(
        "List the tables, views, materialized views, partitioned and foreign tables the server exposes, "
        "optionally in one schema. For each: schema, name, kind, owner, total size, estimated row count "
        "(null with analyzed=false when never analyzed), whether you may SELECT it, and its comment. "
        "Filter with name_pattern (SQL LIKE, case-insensitive); big catalogs come in pages: pass next_cursor "
        "back as cursor."
    ),
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    run=run_list_tables,
)
