"""A cost ceiling: the planner's estimate, checked before a statement runs.

``QUERY_TIMEOUT`` stops a ruinous query only after it has burnt the timeout
(and the database's CPU and I/O meanwhile). With ``MAX_QUERY_COST`` or
``MAX_ESTIMATED_ROWS`` set, every approved statement is first planned with
``EXPLAIN (FORMAT JSON)`` in the same read-only transaction, with the same
parameters and role, and refused above the ceiling. No tool argument lifts
it: the ceiling is the operator's, not the agent's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pgmcp_http.db import Transaction
from pgmcp_http.sqlguard import Approved
from pgmcp_http.tools.spec import CostCeiling, ToolError

__all__ = ["CostCeiling", "costliest_node", "enforce_ceiling"]


def costliest_node(plan: dict[str, Any]) -> dict[str, Any]:
    """The node whose own cost (its total minus its children's) is the largest."""
    best: dict[str, Any] = plan
    best_cost = -1.0
    stack = [plan]
    while stack:
        node = stack.pop()
        children = node.get("Plans", [])
        own = float(node.get("Total Cost", 0.0)) - sum(float(child.get("Total Cost", 0.0)) for child in children)
        if own > best_cost:
            best, best_cost = node, own
        stack.extend(children)
    return best


def _describe(node: dict[str, Any]) -> str:
    what = node["Node Type"]
    if node.get("Relation Name"):
        what += f" on {node.get('Schema', 'public')}.{node['Relation Name']}"
    return f"{what} (cost {float(node.get('Total Cost', 0.0)):.0f}, about {int(node.get('Plan Rows', 0))} rows)"


def enforce_ceiling(tx: Transaction, approved: Approved, params: Mapping[str, Any], ceiling: CostCeiling) -> None:
    """Plan the statement and raise ToolError (outcome ``refused``) when it is over the ceiling."""
    if not ceiling or approved.kind == "show":
        return
    (row,) = tx.rows(f"EXPLAIN (FORMAT JSON, VERBOSE) {approved.text}", params)  # VERBOSE: node schemas
    (document,) = row.values()
    plan = document[0]["Plan"]
    cost, rows = float(plan["Total Cost"]), float(plan["Plan Rows"])
    over: list[str] = []
    if ceiling.max_cost is not None and cost > ceiling.max_cost:
        over.append(f"its estimated cost is {cost:.0f}, above {ceiling.setting}={ceiling.max_cost:g}")
    if ceiling.max_rows is not None and rows > ceiling.max_rows:
        over.append(f"it is estimated to return {rows:.0f} rows, above {ceiling.rows_setting}={ceiling.max_rows:g}")
    if not over:
        return
    raise ToolError(
        f"refused before running: {'; and '.join(over)}. The costliest step is {_describe(costliest_node(plan))}. "
        "Add a selective WHERE clause or a LIMIT, aggregate instead of listing rows, or use analyze_query to "
        "see the plan and the indexes that would help.",
        outcome="refused",
    )
