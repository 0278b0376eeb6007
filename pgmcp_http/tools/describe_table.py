"""``describe_table``: one table or view in depth."""

from __future__ import annotations

from typing import Any

from pgmcp_http.catalog import Visibility, describe_relation, find_relation
from pgmcp_http.catalog.describe import NotFound
from pgmcp_http.db import Transaction
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec

__all__ = ["DESCRIBE_TABLE"]

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "table_name": {"type": "string", "description": "Table or view name, exactly as stored (case matters)."},
        "schema_name": {"type": "string", "description": "Its schema.", "default": "public"},
    },
    "required": ["table_name"],
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "schema": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"type": "string"},
        "columns": {"type": "array", "items": {"type": "object"}},
        "primary_key": {"type": ["array", "null"], "items": {"type": "string"}},
        "foreign_keys": {"type": "array", "items": {"type": "object"}},
        "referenced_by": {"type": "array", "items": {"type": "object"}},
        "indexes": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["schema", "name", "kind", "columns"],
}


def run_describe_table(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    visibility = Visibility.from_policy(ctx.policy)
    schema = args.get("schema_name") or "public"
    try:
        oid = find_relation(tx, visibility, schema=schema, name=args["table_name"])
    except NotFound as exc:
        raise ToolError(str(exc)) from None
    return describe_relation(tx, oid)


DESCRIBE_TABLE = ToolSpec(
    name="describe_table",
    title="Describe a table or view",
    description=(
        "Describe one table or view: columns in order (type, nullable, default, identity, generated "
        "expression, comment, enum labels), primary key, unique and check constraints, foreign keys and the "
        "tables that reference it, indexes (definition, method, size, scans), row-level security, statistics "
        "and, for views, the definition. Names are case-sensitive as stored; unknown names get suggestions."
    ),
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    run=run_describe_table,
)
