"""``analyze_query``: the planner's view of a statement, without running it, and verified index advice."""

from __future__ import annotations

import math
from typing import Any

from pgmcp_http.catalog.plan_facts import memory_settings, relation_facts
from pgmcp_http.db import DatabaseError, ParamError, Transaction, bind
from pgmcp_http.planner import Candidate, advise, digest, estimate, plan_relations, uses_index
from pgmcp_http.planner.advice import selects_star
from pgmcp_http.sqlguard import Refusal
from pgmcp_http.tools.approval import approve
from pgmcp_http.tools.plans import explain, hypopg_schema, hypothetical_index
from pgmcp_http.tools.query import MAX_PARAMS
from pgmcp_http.tools.spec import ToolContext, ToolError, ToolSpec

__all__ = ["ANALYZE_QUERY"]

MAX_VERIFIED = 5

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sql": {"type": "string", "description": "The statement to explain (without EXPLAIN)."},
        "params": {"type": "array", "items": {}, "maxItems": MAX_PARAMS,
                   "description": "Values for $1..$n, as for the query tool. Leave out to see the generic plan "
                                  "(the one used whatever the values)."},
    },
    "required": ["sql"],
    "additionalProperties": False,
}

OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "plan_kind": {"type": "string", "enum": ["custom", "generic"]},
        "summary": {"type": "object"},
        "suggestions": {"type": "array", "items": {"type": "object"}},
        "plan": {},
    },
    "required": ["plan_kind", "summary", "suggestions", "plan"],
}


def run_analyze_query(tx: Transaction, args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    approved = approve(tx, args["sql"], ctx)
    if approved.kind == "show":
        raise Refusal("SHOW has no plan; analyze_query explains SELECT statements")
    params: dict[str, Any] | None = None
    if "params" in args or approved.param_count == 0:
        try:
            params = bind(args.get("params") or [], approved.param_count)
        except ParamError as exc:
            raise ToolError(str(exc)) from None
    document, kind = explain(tx, approved, params)
    facts = relation_facts(tx, plan_relations(document["Plan"]))
    work_mem, hash_mem = memory_settings(tx)
    summary = digest(document, table_rows={name: info.rows for name, info in facts.items()},
                     work_mem=work_mem, hash_mem=hash_mem)
    suggestions, candidates = advise(document, facts, select_star=selects_star(approved.statement),
                                     spills=summary["may_spill"])
    suggestions = _verify(tx, approved, params, document, candidates) + suggestions
    return {"plan_kind": kind, "summary": summary, "suggestions": suggestions, "plan": [document]}


def _verify(tx: Transaction, approved: Any, params: dict[str, Any] | None, document: dict[str, Any],
            candidates: list[Candidate]) -> list[dict[str, Any]]:
    """Each candidate index as a suggestion; with hypopg, tried hypothetically and re-planned."""
    entries = [{"kind": "index", "relation": c.relation, "statement": c.statement, "reason": c.reason,
                "verified": False} for c in candidates]
    schema = hypopg_schema(tx) if candidates else None
    if schema is None:
        for entry in entries:
            entry["note"] = "not verified: install the hypopg extension to have each index tried hypothetically"
        return entries
    before = document["Plan"]["Total Cost"]
    for entry, candidate in zip(entries[:MAX_VERIFIED], candidates, strict=False):
        try:
            with hypothetical_index(tx, schema, candidate.statement) as name:
                after_document, _ = explain(tx, approved, params)
        except DatabaseError as exc:
            entry["note"] = f"not verified: trying it failed ({exc})"
            break
        after = after_document["Plan"]["Total Cost"]
        used = uses_index(after_document["Plan"], name)
        entry.update({"verified": True, "planner_uses_it": used, "cost_before": before, "cost_after": after,
                      "improvement": _improvement(estimate(before), estimate(after))})
        if not used:
            entry["note"] = "the planner would not use this index for this statement; do not create it for this"
    return entries


def _improvement(before: float, after: float) -> str | None:
    """How much cheaper the plan got, as a percentage; None when a cost is zero or not a number."""
    if not (math.isfinite(before) and math.isfinite(after)) or not before:
        return None
    return f"{(1 - after / before) * 100:.0f}%"


ANALYZE_QUERY = ToolSpec(
    name="analyze_query",
    title="Explain a query's plan",
    description=(
        "Show how PostgreSQL would execute a statement, without running it (EXPLAIN, never ANALYZE). Returns "
        "the raw JSON plan and a summary: total cost, estimated rows, node types, joins in execution order, "
        "scans per relation (sequential, index, bitmap) with estimated rows and filters, and sorts or hashes "
        "that may spill to disk given work_mem. Suggestions name the relation and the reason: CREATE INDEX "
        "statements for selective sequential scans and unindexed join keys (tried hypothetically with hypopg "
        "when installed: cost before and after, and whether the planner would use it), functions or casts "
        "around indexed columns, tables never analyzed, SELECT * on wide tables. With $n placeholders and no "
        "params the generic plan is shown."
    ),
    input_schema=INPUT_SCHEMA,
    output_schema=OUTPUT_SCHEMA,
    run=run_analyze_query,
)
