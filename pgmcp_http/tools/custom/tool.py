"""A checked custom tool as a ToolSpec: the same run path as ``query``, with the SQL fixed by the operator.

The call re-approves the statement (the guard's memo makes that a lookup;
the SECURITY DEFINER check asks the database each time, as for ``query``,
since functions change), binds the arguments, and fetches within the
tool's own ``max_rows`` and ``timeout`` (the Toolbox opens the transaction
with that timeout). The result is ``query``'s shape; a truncation caused by
the tool's own ``max_rows`` names that setting instead of MAX_ROWS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgmcp_http.db import Column, RowLimits, Transaction
from pgmcp_http.tools.approval import approve
from pgmcp_http.tools.ceiling import enforce_ceiling
from pgmcp_http.tools.custom.arguments import bind_arguments
from pgmcp_http.tools.custom.definition import Parameter
from pgmcp_http.tools.custom.schema import FORMAT_ARGUMENT, input_schema, output_schema
from pgmcp_http.tools.custom.statement import CheckedTool
from pgmcp_http.tools.query import render_rows
from pgmcp_http.tools.results import rows_payload
from pgmcp_http.tools.spec import READ_ONLY_ANNOTATIONS, CostCeiling, ToolContext, ToolSpec

__all__ = ["custom_spec"]

_WRITE_ANNOTATIONS: dict[str, Any] = {**READ_ONLY_ANNOTATIONS, "readOnlyHint": False, "destructiveHint": True,
                                      "idempotentHint": False}


@dataclass(frozen=True)
class _Run:
    """The tool function: one fixed statement, the caller's arguments as its parameters."""

    name: str
    sql: str
    parameters: tuple[Parameter, ...]
    max_rows: int | None
    max_cost: float | None = None
    max_estimated_rows: float | None = None

    def __call__(self, tx: Transaction, arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        approved = approve(tx, self.sql, ctx)
        params = bind_arguments(self.parameters, arguments, tx.caller.claims if tx.caller is not None else None)
        enforce_ceiling(tx, approved, params, self._ceiling(ctx.ceiling))
        if approved.kind == "write":
            tx.make_writable()
        limits = ctx.limits
        if self.max_rows is not None:
            limits = RowLimits(max_rows=self.max_rows, max_bytes=ctx.limits.max_bytes)
        payload = rows_payload(tx.fetch(approved.text, params, limits, server_cursor=approved.server_cursor))
        return self._own_limit(payload)

    def _ceiling(self, server: CostCeiling) -> CostCeiling:
        """The tool's own planner ceiling where it sets one, the server's otherwise."""
        if self.max_cost is None and self.max_estimated_rows is None:
            return server
        return CostCeiling(
            max_cost=self.max_cost if self.max_cost is not None else server.max_cost,
            max_rows=self.max_estimated_rows if self.max_estimated_rows is not None else server.max_rows,
            setting=f"{self.name}.max_cost" if self.max_cost is not None else server.setting,
            rows_setting=f"{self.name}.max_estimated_rows" if self.max_estimated_rows is not None
            else server.rows_setting,
        )

    def _own_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Name this tool's max_rows when it cut the rows; the caller cannot add a LIMIT to a fixed statement."""
        reason = payload.get("truncated_reason")
        if not payload["truncated"] or not isinstance(reason, str):
            return payload
        if self.max_rows is not None and reason.startswith("MAX_ROWS="):
            reason = f"{self.name}.max_rows={self.max_rows}"
        payload["truncated_reason"] = reason
        payload["note"] = (f"Only the first {len(payload['rows'])} rows are shown ({reason}); narrow the arguments "
                           "to see the rest.")
        return payload


def _description(tool: CheckedTool) -> str:
    definition = tool.definition
    text = definition.description
    if definition.output:
        text += f"\n\nReturns: {definition.output}"
    text += ("\n\nResult: JSON with `columns` (name and type), `rows` (objects keyed by column name), `row_count` "
             "and `truncated` (true when the row or size limit cut the result). numeric values are strings "
             "holding the exact digits; timestamps are ISO 8601.")
    return text


def custom_spec(tool: CheckedTool, columns: Sequence[Column] | None) -> ToolSpec:
    """The ToolSpec of ``tool``; ``columns`` are its result columns when planning described them."""
    definition = tool.definition
    return ToolSpec(
        name=definition.name,
        title=definition.title,
        description=_description(tool),
        input_schema=input_schema(definition.parameters),
        output_schema=output_schema(columns, definition.output),
        run=_Run(name=definition.name, sql=definition.sql, parameters=definition.parameters,
                 max_rows=definition.max_rows, max_cost=definition.max_cost,
                 max_estimated_rows=definition.max_estimated_rows),
        # `format` as for query, unless the operator named a parameter so (then it is theirs).
        render=None if any(param.name == FORMAT_ARGUMENT for param in definition.parameters) else render_rows,
        annotations=dict(_WRITE_ANNOTATIONS if tool.approved.kind == "write" else READ_ONLY_ANNOTATIONS),
        timeout_ms=definition.timeout_ms,
        timeout_setting=f"{definition.name}.timeout" if definition.timeout_ms is not None else "QUERY_TIMEOUT",
    )
