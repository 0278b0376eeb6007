"""``analyze_query``: the planner's view of a statement, without running it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from pgmcp_http.db import ParamCountError, Transaction, bind
from pgmcp_http.sqlguard import Refusal
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec

__all__ = ["ANALYZE_QUERY"]

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sql": {"type": "string", "description": "The statement to explain (without EXPLAIN)."},
        "params": {"type": "array", "description": "Values for $1..$n, as for the query tool.", "items": {}},
    },
    "required": ["sql"],
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "object"},
        "suggestions": {"type": "array", "items": {"type": "object"}},
        "plan": {},
    },
    "required": ["summary", "suggestions", "plan"],
}

SEQ_SCAN_ROWS = 10_000


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


def summarize(plan: dict[str, Any], table_rows: dict[str, float]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A digest of an EXPLAIN (FORMAT JSON) plan, and suggestions drawn from it.

    ``table_rows`` maps ``schema.table`` to the planner's row estimate for the
    table, to tell a selective sequential scan from one that reads most rows.
    """
    nodes = list(_nodes(plan))
    scans: list[dict[str, Any]] = []
    suggestions: list[dict[str, Any]] = []
    for node in nodes:
        if "Relation Name" not in node:
            continue
        relation = f"{node.get('Schema', 'public')}.{node['Relation Name']}"
        scan: dict[str, Any] = {"relation": relation, "node": node["Node Type"],
                                "estimated_rows": node.get("Plan Rows")}
        for key, label in (("Index Name", "index"), ("Filter", "filter"), ("Index Cond", "index_condition")):
            if node.get(key):
                scan[label] = node[key]
        scans.append(scan)
        rows = table_rows.get(relation, 0.0)
        if node["Node Type"] == "Seq Scan" and node.get("Filter") and rows >= SEQ_SCAN_ROWS \
                and node.get("Plan Rows", 0) < rows * 0.1:
            suggestions.append({
                "kind": "index",
                "relation": relation,
                "reason": (f"sequential scan of about {int(rows)} rows keeps about {node.get('Plan Rows')} "
                           f"through the filter {node['Filter']}: an index on the filtered column(s) may help"),
                "verified": False,
            })
    summary = {
        "total_cost": plan.get("Total Cost"),
        "startup_cost": plan.get("Startup Cost"),
        "estimated_rows": plan.get("Plan Rows"),
        "node_types": dict(Counter(node["Node Type"] for node in nodes)),
        "joins": [node["Node Type"] for node in nodes if node["Node Type"] in ("Nested Loop", "Hash Join",
                                                                               "Merge Join")],
        "scans": scans,
    }
    return summary, suggestions


_TABLE_ROWS_SQL = """
SELECT n.nspname || '.' || c.relname AS relation, c.reltuples::float8 AS rows
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname || '.' || c.relname = ANY(%(relations)s)
"""


def _table_rows(tx: Transaction, plan: dict[str, Any]) -> dict[str, float]:
    relations = sorted({f"{node.get('Schema', 'public')}.{node['Relation Name']}"
                        for node in _nodes(plan) if "Relation Name" in node})
    if not relations:
        return {}
    return {row["relation"]: float(row["rows"]) for row in tx.rows(_TABLE_ROWS_SQL, {"relations": relations})}


def run_analyze_query(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    approved = ctx.guard.check(args["sql"])
    if approved.kind == "show":
        raise Refusal("SHOW has no plan; analyze_query explains SELECT statements")
    try:
        params = bind(args.get("params") or [], approved.param_count)
    except ParamCountError as exc:
        raise ToolError(str(exc)) from None
    result = tx.fetch("EXPLAIN (FORMAT JSON, VERBOSE, COSTS, SETTINGS) " + approved.text, params,
                      ctx.limits, server_cursor=False)
    document = result.rows[0][result.columns[0].key]
    plan = document[0]["Plan"]
    summary, suggestions = summarize(plan, _table_rows(tx, plan))
    return {"summary": summary, "suggestions": suggestions, "plan": document}


ANALYZE_QUERY = ToolSpec(
    name="analyze_query",
    title="Explain a query's plan",
    description=(
        "Show how PostgreSQL would execute a statement, without running it (EXPLAIN, never ANALYZE): the "
        "raw JSON plan plus a summary (total cost, estimated rows, node types, joins, scans per relation with "
        "filters) and suggestions such as indexes for selective sequential scans."
    ),
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    run=run_analyze_query,
)
