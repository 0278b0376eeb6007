"""``list_tables``: what tables and views exist, with size, row estimate and access."""

from __future__ import annotations

from typing import Any

from pgmcp_http.catalog import Visibility, list_relations
from pgmcp_http.db import Transaction
from pgmcp_http.tools.spec import ToolContext, ToolSpec

__all__ = ["LIST_TABLES"]

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "schema_name": {"type": "string", "description": "Only this schema (default: every allowed schema)."},
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
                    "can_select": {"type": "boolean"},
                    "comment": {"type": ["string", "null"]},
                },
                "required": ["schema", "name", "kind"],
            },
        },
        "count": {"type": "integer"},
    },
    "required": ["tables", "count"],
}


def run_list_tables(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    tables = list_relations(tx, Visibility.from_policy(ctx.policy), schema=args.get("schema_name"))
    return {"tables": tables, "count": len(tables)}


LIST_TABLES = ToolSpec(
    name="list_tables",
    title="List tables and views",
    description=(
        "List the tables, views, materialized views, partitioned and foreign tables the server exposes, "
        "optionally in one schema. For each: schema, name, kind, owner, total size, estimated row count "
        "(null with analyzed=false when never analyzed), whether you may SELECT it, and its comment."
    ),
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    run=run_list_tables,
)
