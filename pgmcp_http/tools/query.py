"""``query``: one read-only SQL statement with ``$1..$n`` parameters."""

from __future__ import annotations

from typing import Any

from pgmcp_http.db import ParamError, Transaction, bind
from pgmcp_http.tools.approval import approve
from pgmcp_http.tools.ceiling import enforce_ceiling
from pgmcp_http.tools.formats import DEFAULT_FORMAT, FORMATS, render
from pgmcp_http.tools.results import ROWS_OUTPUT_SCHEMA, rows_payload
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec

__all__ = ["FORMAT_SCHEMA", "MAX_PARAMS", "QUERY", "render_rows"]

MAX_PARAMS = 1000
"""More values than any honest statement binds (PostgreSQL's own limit is 65,535)."""

_DESCRIPTION = (
    "Run one read-only SQL statement (SELECT, VALUES, TABLE or SHOW) against the PostgreSQL database and "
    "return its rows. Use $1, $2, ... placeholders with `params` for values instead of writing them into "
    "the SQL. The result is JSON: `columns` (name and type), `rows` as objects keyed by column name, "
    "`row_count` and `truncated` (true when MAX_ROWS or MAX_RESULT_BYTES cut the result: add a filter or "
    "LIMIT). numeric values are strings holding the exact digits; timestamps are ISO 8601; bytea is "
    "'base64:...'. Writes, DDL, settings and server-side file or process functions are refused."
)

FORMAT_SCHEMA: dict[str, Any] = {
    "type": "string",
    "enum": list(FORMATS),
    "default": DEFAULT_FORMAT,
    "description": "How the rows are written in the text you read: json (objects, the default), columns "
                   "(column names once, rows as arrays: fewer tokens), table (Markdown; an empty cell is "
                   "NULL, quoted cells are JSON strings) or csv (an empty unquoted field is NULL); in both, "
                   "json/jsonb values are their JSON text (null is JSON null). "
                   "structuredContent is the same in every format.",
}

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sql": {"type": "string", "description": "One SQL statement; $1..$n refer to `params`."},
        "params": {
            "type": "array",
            "description": "Values for $1..$n, in order: strings, numbers, booleans, null; arrays and objects "
                           "are passed as JSON.",
            "items": {},
            "maxItems": MAX_PARAMS,
        },
        "format": FORMAT_SCHEMA,
    },
    "required": ["sql"],
    "additionalProperties": False,
}


def render_rows(data: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """The text items for the ``format`` the caller asked for."""
    return render(data, args.get("format") or DEFAULT_FORMAT)


def run_query(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    approved = approve(tx, args["sql"], ctx)
    try:
        params = bind(args.get("params") or [], approved.param_count)
    except ParamError as exc:
        raise ToolError(str(exc)) from None
    enforce_ceiling(tx, approved, params, ctx.ceiling)
    if approved.kind == "write":
        tx.make_writable()
    result = tx.fetch(approved.text, params, ctx.limits, server_cursor=approved.server_cursor)
    return rows_payload(result)


def _write_mode_description(read_only: bool) -> str:
    if read_only:
        return _DESCRIPTION
    return _DESCRIPTION.replace("one read-only SQL statement (SELECT, VALUES, TABLE or SHOW)",
                                "one SQL statement (SELECT, VALUES, TABLE, SHOW, or INSERT/UPDATE/DELETE/MERGE, "
                                "committed at once)").replace("Writes, DDL", "DDL")


QUERY = ToolSpec(
    name="query",
    title="Run a SQL query",
    description=_DESCRIPTION,
    input_schema=INPUT_SCHEMA,
    output_schema=ROWS_OUTPUT_SCHEMA,
    run=run_query,
    render=render_rows,
)


def query_tool(*, read_only: bool) -> ToolSpec:
    """The query tool as this server runs it (its description and hints differ in write mode)."""
    if read_only:
        return QUERY
    annotations = dict(QUERY.annotations, readOnlyHint=False, destructiveHint=True, idempotentHint=False)
    return ToolSpec(name=QUERY.name, title=QUERY.title, description=_write_mode_description(False),
                    input_schema=INPUT_SCHEMA, output_schema=ROWS_OUTPUT_SCHEMA, run=run_query,
                    annotations=annotations, render=render_rows)
