"""A cost ceiling: the planner's estimate, checked before a statement runs.

``QUERY_TIMEOUT`` stops a ruinous query only after it has burnt the timeout
(and the database's CPU and I/O meanwhile). With ``MAX_QUERY_COST`` or
``MAX_ESTIMATED_ROWS`` set, every approved statement is first planned with
``EXPLAIN (FORMAT JSON)`` in the same read-only transaction, with the same
parameters and role, and refused above the ceiling. No tool argument lifts
it: the ceiling is the operator's, not the agent's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pgmcp_http.db import Transaction
from pgmcp_http.planner import estimate
from pgmcp_http.sqlguard import Approved
from pgmcp_http.tools.spec import CostCeiling, ToolError

__all__ = ["CostCeiling", "costliest_node", "enforce_ceiling", "over_ceiling"]


def costliest_node(plan: dict[str, Any]) -> dict[str, Any]:
    """The node whose own cost (its total minus its children's) is the largest; where the estimate
    overflowed, the first node whose own total is not a number while its children's are."""
    best: dict[str, Any] = plan
    best_cost = -1.0
    stack = [plan]
    while stack:
        node = stack.pop()
        own = _own_cost(node)
        if own > best_cost:
            best, best_cost = node, own
        stack.extend(node.get("Plans", []))
    return best


def _own_cost(node: dict[str, Any]) -> float:
    total = estimate(node.get("Total Cost"))
    below = sum(estimate(child.get("Total Cost")) for child in node.get("Plans", []))
    if math.isfinite(total):
        return total - below
    return math.inf if math.isfinite(below) else -math.inf  # the overflow started here, or further down


def _amount(value: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else "beyond counting"


def _describe(node: dict[str, Any]) -> str:
    what = node["Node Type"]
    if node.get("Relation Name"):
        what += f" on {node.get('Schema', 'public')}.{node['Relation Name']}"
    cost, rows = estimate(node.get("Total Cost")), estimate(node.get("Plan Rows"))
    return f"{what} (cost {_amount(cost)}, about {_amount(rows)} rows)"


def over_ceiling(cost: float, rows: float, ceiling: CostCeiling) -> list[str]:
    """Why a plan of ``cost`` and ``rows`` is over the ceiling (empty: it is not). An estimate that is
    Infinity or NaN is over any ceiling: the planner could not count it, so it fails closed."""
    over: list[str] = []
    if ceiling.max_cost is not None and not cost <= ceiling.max_cost:  # `not <=`: NaN is never within
        over.append(f"its estimated cost is {cost:.0f}, above {ceiling.setting}={ceiling.max_cost:g}"
                    if math.isfinite(cost) else
                    f"the planner could not put a number on its cost (EXPLAIN gives {_word(cost)}: the estimate "
                    f"overflowed), so it is above {ceiling.setting}={ceiling.max_cost:g}")
    if ceiling.max_rows is not None and not rows <= ceiling.max_rows:
        over.append(f"it is estimated to return {rows:.0f} rows, above {ceiling.rows_setting}={ceiling.max_rows:g}"
                    if math.isfinite(rows) else
                    f"the planner could not put a number on the rows it returns (EXPLAIN gives {_word(rows)}), so "
                    f"it is above {ceiling.rows_setting}={ceiling.max_rows:g}")
    return over


def _word(value: float) -> str:
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def enforce_ceiling(tx: Transaction, approved: Approved, params: Mapping[str, Any], ceiling: CostCeiling) -> None:
    """Plan the statement and raise ToolError (outcome ``refused``) when it is over the ceiling."""
    if not ceiling or approved.kind == "show":
        return
    (row,) = tx.rows(f"EXPLAIN (FORMAT JSON, VERBOSE) {approved.text}", params)  # VERBOSE: node schemas
    (document,) = row.values()
    plan = document[0]["Plan"]
    over = over_ceiling(estimate(plan["Total Cost"]), estimate(plan["Plan Rows"]), ceiling)
    if not over:
        return
    raise ToolError(
        f"refused before running: {'; and '.join(over)}. The costliest step is {_describe(costliest_node(plan))}. "
        "Add a selective WHERE clause or a LIMIT, aggregate instead of listing rows, or use analyze_query to "
        "see the plan and the indexes that would help.",
        outcome="refused",
    )
