"""A plan's digest: cost, rows, node types, joins in execution order, scans, and what may spill.

EXPLAIN's JSON is precise but long; an agent asked "why is this slow?" needs
the few facts below, each naming the relation it is about.

A plan's estimates are numbers, except when one overflows: PostgreSQL then
prints ``Infinity`` or ``NaN`` (decoded as those words, see
:mod:`pgmcp_http.db.values`). :func:`estimate` reads either form, and the
digest says when the planner could not put a number on the plan.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

__all__ = ["digest", "estimate", "nodes", "overflowed", "plan_relations", "relation_of", "uses_index"]

JOIN_NODES = frozenset({"Nested Loop", "Hash Join", "Merge Join"})
SCAN_NODES = frozenset({"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Bitmap Index Scan",
                        "Tid Scan", "Tid Range Scan", "Sample Scan"})
_CONDITIONS = ("Hash Cond", "Merge Cond", "Join Filter")


def estimate(value: Any) -> float:
    """A cost or row estimate as a float: numbers as they are, ``"Infinity"`` and ``"NaN"`` as inf and nan."""
    return float(value) if value is not None else 0.0


def overflowed(plan: dict[str, Any]) -> bool:
    """Whether any node's cost or row estimate is not a finite number (the planner's arithmetic overflowed)."""
    return any(not math.isfinite(estimate(node.get(key))) for node in nodes(plan)
               for key in ("Startup Cost", "Total Cost", "Plan Rows"))


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node, parents before children, without recursion limits."""
    stack = [plan]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.get("Plans", [])))


def _post_order(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Children before parents: the order in which joins produce their rows."""
    ordered: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], bool]] = [(plan, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            ordered.append(node)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.get("Plans", [])))
    return ordered


def relation_of(node: dict[str, Any]) -> str | None:
    """``schema.table`` a scan node reads, if it reads one."""
    if "Relation Name" not in node:
        return None
    return f"{node.get('Schema', 'public')}.{node['Relation Name']}"


def plan_relations(plan: dict[str, Any]) -> list[str]:
    """The distinct relations a plan reads, sorted."""
    return sorted({name for node in nodes(plan) if (name := relation_of(node)) is not None})


def uses_index(plan: dict[str, Any], index_name: str) -> bool:
    """Whether any node of the plan reads through the index ``index_name``."""
    return any(node.get("Index Name") == index_name for node in nodes(plan))


def _aliases(node: dict[str, Any]) -> list[str]:
    return [f"{relation_of(n)} {n['Alias']}" if n.get("Alias") not in (None, n.get("Relation Name"))
            else str(relation_of(n)) for n in nodes(node) if relation_of(n) is not None]


def _scan(node: dict[str, Any], table_rows: dict[str, float]) -> dict[str, Any]:
    relation = relation_of(node)
    scan: dict[str, Any] = {"relation": relation, "node": node["Node Type"], "estimated_rows": node.get("Plan Rows")}
    if node.get("Alias") and node["Alias"] != node.get("Relation Name"):
        scan["alias"] = node["Alias"]
    if relation in table_rows:
        scan["table_rows"] = table_rows[relation]
    for key, label in (("Index Name", "index"), ("Index Cond", "index_condition"), ("Recheck Cond", "recheck"),
                       ("Filter", "filter")):
        if node.get(key):
            scan[label] = node[key]
    return scan


def _spill(node: dict[str, Any], work_mem: int, hash_mem: int) -> dict[str, Any] | None:
    """A Sort, Hash or hashed aggregate whose estimated input exceeds the memory it may use."""
    kind = node["Node Type"]
    hashed = kind == "Hash" or (kind == "Aggregate" and node.get("Strategy") == "Hashed")
    if kind not in ("Sort", "Incremental Sort") and not hashed:
        return None
    size = estimate(node.get("Plan Rows")) * estimate(node.get("Plan Width"))
    limit = hash_mem if hashed else work_mem
    if not math.isfinite(size) or size <= limit:  # an overflowed estimate says nothing about memory
        return None
    estimated = int(size)
    entry: dict[str, Any] = {"node": kind, "estimated_bytes": estimated, "memory_limit_bytes": limit,
                             "setting": "work_mem * hash_mem_multiplier" if hashed else "work_mem"}
    if node.get("Sort Key"):
        entry["sort_key"] = node["Sort Key"]
    return entry


def digest(document: dict[str, Any], *, table_rows: dict[str, float], work_mem: int,
           hash_mem: int) -> dict[str, Any]:
    """The summary of one ``EXPLAIN (FORMAT JSON)`` document (the object holding ``Plan``)."""
    plan = document["Plan"]
    all_nodes = list(nodes(plan))
    joins = [{"strategy": node["Node Type"], "type": node.get("Join Type"),
              "condition": next((node[key] for key in _CONDITIONS if node.get(key)), None),
              "outer": _aliases(node["Plans"][0]), "inner": _aliases(node["Plans"][1])}
             for node in _post_order(plan) if node["Node Type"] in JOIN_NODES and len(node.get("Plans", [])) == 2]
    summary: dict[str, Any] = {
        "total_cost": plan.get("Total Cost"),
        "startup_cost": plan.get("Startup Cost"),
        "estimated_rows": plan.get("Plan Rows"),
        "estimated_row_width": plan.get("Plan Width"),
        "node_types": dict(Counter(node["Node Type"] for node in all_nodes)),
        "joins": joins,
        "scans": [_scan(node, table_rows) for node in all_nodes if relation_of(node) is not None],
        "may_spill": [entry for node in all_nodes if (entry := _spill(node, work_mem, hash_mem)) is not None],
    }
    if overflowed(plan):
        summary["estimate_overflowed"] = True
        summary["note"] = ("the planner's estimate overflowed: some costs or row counts are Infinity or NaN, too "
                           "large to be numbers. The statement would read far more than any table holds (for "
                           "example nested correlated subqueries over huge series); rewrite it before running it")
    if document.get("Settings"):
        summary["non_default_settings"] = document["Settings"]
    return summary
