"""``describe_table``: one table or view in depth."""

from __future__ import annotations

from typing import Any

from pgmcp_http.catalog import describe_relation, find_relation
from pgmcp_http.catalog.describe import NotFound
from pgmcp_http.db import Transaction
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec

__all__ = ["DESCRIBE_TABLE"]

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "table_name": {"type": "string", "description": "Table or view name as stored (case matters; no quotes)."},
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
        "triggers": {"type": "array", "items": {"type": "object"}},
        "row_security": {"type": "object"},
        "partitioning": {"type": "object"},
        "inheritance": {"type": "object"},
        "statistics": {"type": "object"},
    },
    "required": ["schema", "name", "kind", "columns"],
}


def run_describe_table(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    visibility = ctx.visibility(tx)
    schema = args.get("schema_name") or "public"
    try:
        oid = find_relation(tx, visibility, schema=schema, name=args["table_name"])
    except NotFound as exc:
        raise ToolError(str(exc)) from None
    return describe_relation(tx, oid, visibility)


DESCRIBE_TABLE = ToolSpec(
    name="describe_table",
    title="Describe a table or view",
    description=(
        "Describe one table or view: columns in order (type, nullable, default, identity, generated "
        "expression, collation, comment, enum labels), primary key, unique, check and exclusion constraints, "
        "foreign keys and the tables that reference it, indexes (definition, columns, method, partial "
        "predicate, size, scans, valid), triggers, row-level security and its policies, partitioning or "
        "inheritance, statistics (row estimate, live/dead tuples, seq vs index scans, last vacuum/analyze, "
        "table/index/TOAST sizes) and, for views, the definition. Names are as stored (case matters: "
        "\"Orders\" is not orders); unknown names get suggestions."
    ),
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    run=run_describe_table,
)
