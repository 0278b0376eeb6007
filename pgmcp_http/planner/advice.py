"""Suggestions drawn from a plan and the catalog: candidate indexes, and what keeps indexes unused.

Each suggestion names the relation, says why in a sentence, and, for an
index, gives the ``CREATE INDEX`` statement. Candidate indexes are returned
separately so the caller can try them hypothetically (hypopg) and report
whether the planner would use them and what they save.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pglast import parser
from pglast.parser import ParseError

from pgmcp_http.planner.conditions import ColumnUse, column_uses, join_keys
from pgmcp_http.planner.digest import nodes, relation_of

__all__ = ["LARGE_TABLE_ROWS", "Candidate", "RelationFacts", "advise", "selects_star"]

LARGE_TABLE_ROWS = 10_000
"""Below this many rows a sequential scan is usually the right plan."""
SELECTIVE = 0.1
"""A filter keeping less than this share of a table's rows is worth an index."""
WIDE_TABLE_COLUMNS = 20
_SIMPLE_NAME = re.compile(r"^[a-z_][a-z0-9_$]*$")


@dataclass(frozen=True)
class RelationFacts:
    """What the catalog says about one relation in the plan."""

    relation: str
    schema: str
    name: str
    rows: float
    columns: int
    analyzed: bool
    leading_keys: tuple[str, ...]  # the first key of each valid index, as pg_get_indexdef prints it


@dataclass(frozen=True)
class Candidate:
    """An index worth trying: where, on what, and why."""

    relation: str
    keys: tuple[str, ...]
    statement: str
    reason: str


def _quote(name: str) -> str:
    return name if _SIMPLE_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def _statement(facts: RelationFacts, keys: tuple[str, ...]) -> str:
    return f"CREATE INDEX ON {_quote(facts.schema)}.{_quote(facts.name)} ({', '.join(keys)})"


def _index_keys(uses: list[ColumnUse]) -> tuple[str, ...]:
    """Equality columns first, then one range column: the order a B-tree serves best."""
    keys: list[str] = []
    for kind in ("equality", "null", "range"):
        for use in uses:
            if use.kind == kind and use.wrapper is None and _quote(use.column) not in keys:
                keys.append(_quote(use.column))
                if kind == "range":
                    return tuple(keys[:3])
    return tuple(keys[:3])


def _indexed(facts: RelationFacts, key: str) -> bool:
    return key in facts.leading_keys


def selects_star(sql: str) -> bool:
    """Whether the statement's outer SELECT list has a ``*`` (``SELECT *`` or ``t.*``)."""
    try:
        tree = orjson.loads(parser.parse_sql_json(sql))
    except (ParseError, ValueError):
        return False
    stmts = tree.get("stmts", [])
    select = stmts[0]["stmt"].get("SelectStmt", {}) if stmts else {}
    for target in select.get("targetList", []):
        fields = target.get("ResTarget", {}).get("val", {}).get("ColumnRef", {}).get("fields", [])
        if any("A_Star" in field for field in fields):
            return True
    return False


def advise(document: dict[str, Any], facts: dict[str, RelationFacts], *, select_star: bool,
           spills: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Candidate]]:
    """Suggestions (plain data) and the candidate indexes among them."""
    plan = document["Plan"]
    suggestions: list[dict[str, Any]] = []
    candidates: list[Candidate] = []
    aliases = {node.get("Alias", node["Relation Name"]): relation_of(node)
               for node in nodes(plan) if relation_of(node) is not None}
    for node in nodes(plan):
        relation = relation_of(node)
        if relation is None or relation not in facts:
            continue
        _scan_advice(node, facts[relation], suggestions, candidates)
    _join_advice(plan, aliases, facts, candidates, suggestions)
    for info in facts.values():
        if not info.analyzed:
            suggestions.append({"kind": "analyze", "relation": info.relation,
                                "reason": f"{info.relation} has never been analyzed: the planner is guessing its "
                                          f"size and value distribution; run ANALYZE {info.relation}"})
    if select_star:
        for info in facts.values():
            if info.columns > WIDE_TABLE_COLUMNS:
                suggestions.append({"kind": "select_star", "relation": info.relation,
                                    "reason": f"SELECT * reads all {info.columns} columns of {info.relation}; "
                                              "list only the columns you need"})
    for spill in spills:
        suggestions.append({"kind": "memory", "node": spill["node"],
                            "reason": f"{spill['node']} of about {spill['estimated_bytes']} bytes may spill to "
                                      f"disk ({spill['setting']} allows {spill['memory_limit_bytes']} bytes); "
                                      "filter earlier, add a LIMIT, or index the sort key"})
    return suggestions, candidates


def _scan_advice(node: dict[str, Any], info: RelationFacts, suggestions: list[dict[str, Any]],
                 candidates: list[Candidate]) -> None:
    conditions = " AND ".join(node[key] for key in ("Filter", "Index Cond", "Recheck Cond") if node.get(key))
    uses = column_uses(conditions) if conditions else []
    for use in uses:
        if use.wrapper == "cast" and _indexed(info, _quote(use.column)):
            suggestions.append({"kind": "implicit_cast", "relation": info.relation, "column": use.column,
                                "reason": f"{info.relation}.{use.column} is indexed, but the comparison casts the "
                                          "column, so the index cannot be used; compare with a value of the "
                                          "column's own type"})
        elif use.wrapper_sql and not _indexed(info, use.wrapper_sql):
            note = " (a plain index on the column cannot serve it)" if _indexed(info, _quote(use.column)) else ""
            if node["Node Type"] == "Seq Scan" and info.rows >= LARGE_TABLE_ROWS:
                candidates.append(Candidate(info.relation, (use.wrapper_sql,), _statement(info, (use.wrapper_sql,)),
                                            f"the filter applies {use.wrapper}() to {use.column}{note}; an "
                                            "expression index matches it"))
    if node["Node Type"] != "Seq Scan" or not node.get("Filter") or info.rows < LARGE_TABLE_ROWS:
        return
    if node.get("Plan Rows", 0) >= info.rows * SELECTIVE:
        return
    keys = _index_keys(uses)
    if keys and not _indexed(info, keys[0]):
        candidates.append(Candidate(info.relation, keys, _statement(info, keys),
                                    f"a sequential scan reads about {int(info.rows)} rows of {info.relation} to "
                                    f"keep about {node.get('Plan Rows')} through {node['Filter']}"))


def _join_advice(plan: dict[str, Any], aliases: dict[str, str | None], facts: dict[str, RelationFacts],
                 candidates: list[Candidate], suggestions: list[dict[str, Any]]) -> None:
    """Join keys of large, sequentially scanned relations with no index on the key."""
    seq_scanned = {relation_of(node) for node in nodes(plan) if node["Node Type"] == "Seq Scan"}
    seen = {(c.relation, c.keys) for c in candidates}
    for node in nodes(plan):
        condition = node.get("Hash Cond") or node.get("Merge Cond") or node.get("Join Filter")
        if not condition:
            continue
        for key in join_keys(condition):
            for qualifier, column in (key.left, key.right):
                relation = aliases.get(qualifier or "")
                info = facts.get(relation or "")
                if info is None or relation not in seq_scanned or info.rows < LARGE_TABLE_ROWS:
                    continue
                keys = (_quote(column),)
                if _indexed(info, keys[0]) or (info.relation, keys) in seen:
                    continue
                seen.add((info.relation, keys))
                candidates.append(Candidate(info.relation, keys, _statement(info, keys),
                                            f"{info.relation} ({int(info.rows)} rows) is read in full for a "
                                            f"{node['Node Type']} on {column}; an index on the join key lets "
                                            "the planner look rows up instead"))
