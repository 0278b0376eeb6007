"""What a tool is: a typed description plus a plain function over a transaction and arguments.

No Flask and no MCP wire types here: the protocol layer turns a ToolSpec into
a ``tools/list`` entry and a tool's return value into a ``tools/call`` result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pgmcp_http.catalog.definers import DefinerCache
from pgmcp_http.catalog.lineage import LineageCache
from pgmcp_http.catalog.visibility import Visibility
from pgmcp_http.db import RowLimits, Transaction
from pgmcp_http.sqlguard import Guard, GuardPolicy

__all__ = ["READ_ONLY_ANNOTATIONS", "CostCeiling", "RenderFn", "ToolContext", "ToolError", "ToolFn", "ToolSpec"]


class ToolError(Exception):
    """A failure the caller can fix (bad argument, unknown table...): becomes an ``isError`` result."""

    def __init__(self, message: str, *, outcome: str = "error") -> None:
        self.message = message
        self.outcome = outcome
        super().__init__(message)


@dataclass(frozen=True)
class CostCeiling:
    """Planner total cost and estimated rows a statement may reach (None: no limit on that); see
    :mod:`pgmcp_http.tools.ceiling`."""

    max_cost: float | None = None
    max_rows: float | None = None
    setting: str = "MAX_QUERY_COST"
    rows_setting: str = "MAX_ESTIMATED_ROWS"

    def __bool__(self) -> bool:
        return self.max_cost is not None or self.max_rows is not None


@dataclass(frozen=True)
class ToolContext:
    """What every tool may consult besides its arguments: the guard, the limits, the worker's memos of the
    catalog. ``roles_mapped`` is True when any role mapping is configured (the catalog then shows each
    caller what its role may use)."""

    guard: Guard
    policy: GuardPolicy
    limits: RowLimits
    read_only: bool
    ceiling: CostCeiling = field(default_factory=CostCeiling)
    definers: DefinerCache = field(default_factory=DefinerCache)
    lineage: LineageCache = field(default_factory=LineageCache)
    roles_mapped: bool = False

    def visibility(self, tx: Transaction) -> Visibility:
        """What the catalog tools may show in ``tx`` (see :mod:`pgmcp_http.catalog.visibility`): views,
        partitions, parents and functions that return a blocked table's rows are hidden like the table."""
        visibility = Visibility.from_policy(self.policy, by_privilege=self.roles_mapped)
        if not self.policy.restricts_relations:
            return visibility
        lineage = self.lineage.get(tx, self.policy)
        return visibility.hiding(lineage.hidden, lineage.hidden_functions)


ToolFn = Callable[[Transaction, dict[str, Any], ToolContext], dict[str, Any]]
RenderFn = Callable[[dict[str, Any], dict[str, Any]], list[str]]
"""(data, arguments) → the text items a model reads; None on a spec means the data as JSON."""

READ_ONLY_ANNOTATIONS: dict[str, Any] = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its MCP description and the function that does the work."""

    name: str
    title: str
    description: str
    input_schema: dict[str, Any]
    run: ToolFn
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] = field(default_factory=lambda: dict(READ_ONLY_ANNOTATIONS))
    render: RenderFn | None = None
    # The statement timeout of this tool's transaction (None: QUERY_TIMEOUT) and the setting a
    # timeout message names, so the caller learns which limit to ask an operator to raise.
    timeout_ms: int | None = None
    timeout_setting: str = "QUERY_TIMEOUT"
